"""Tests of the gluon-cnns-train command line (gluon_cnns.cli.train, scripts/train.py).

Runs are kept small: LeNet on the first 2048 Fashion-MNIST training images.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from gluon_cnns.cli.train import build_parser, main
from gluon_cnns.training.optim import make_lr_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
DATA = "/usr/share/datasets/fashion-mnist"


EPOCH_LINE = re.compile(r"^epoch (\d+), loss \d+\.\d{4}, train acc \d\.\d{3}, "
                        r"test acc (\d\.\d{3}), time \d+\.\d sec$")
# A setting that learns reliably from 32 batches (plain lr 0.1 and batch 256 is 8 updates).
SMALL = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "2048", "--limit-test", "512",
         "--batch-size", "64", "--lr", "0.05", "--momentum", "0.9", "--seed", "0"]


def run_main(capsys, argv):
    """main(argv) in-process: (exit code, stdout lines, stderr lines)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("gluon-cnns-train: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def epoch_lines(out):
    return [EPOCH_LINE.match(l) for l in out if EPOCH_LINE.match(l)]


# ---------------------------------------------------------------- training runs

def test_one_epoch_learns_and_prints_d2l_lines(capsys):
    code, out, err = run_main(capsys, SMALL + ["--epochs", "1", "--quiet"])
    assert code == 0, err
    assert err == []
    assert re.fullmatch(r"training on cpu\(0\), \d+ threads?", out[0])  # --quiet: first line
    matches = epoch_lines(out)
    assert len(matches) == 1 and matches[0].group(1) == "1"
    assert float(matches[0].group(2)) >= 0.3  # chance is 0.1
    assert out[-1].startswith("final test acc ")


def test_ctx_gpu_without_gpu_warns_once_and_trains_on_cpu(capsys):
    code, out, err = run_main(capsys, SMALL + ["--epochs", "1", "--ctx", "gpu",
                                               "--limit-train", "256", "--limit-test", "64"])
    assert code == 0
    assert err == ["warning: --ctx gpu but no usable GPU found; training on cpu(0)"]
    assert any(line.startswith("training on cpu(0), ") for line in out)
    assert len(epoch_lines(out)) == 1


def test_save_dir_then_resume(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    argv = SMALL + ["--save-dir", run_dir, "--quiet", "--lr-schedule", "step", "--lr-steps", "1"]
    code, out, err = run_main(capsys, argv + ["--epochs", "2"])
    assert code == 0, err
    files = sorted(os.listdir(run_dir))
    # The newest checkpoint and the one before it (a fallback if the newest is damaged).
    assert files == [".gluon_cnns", "best.params", "checkpoint.json", "config.json", "curves.png",
                     "epoch-0001.params", "epoch-0001.rng.npz", "epoch-0001.states",
                     "epoch-0002.params", "epoch-0002.rng.npz", "epoch-0002.states", "log.jsonl",
                     "tensorboard"]
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["net"] == "lenet" and config["epochs"] == 2 and config["batch_size"] == 64
    ckpt = json.load(open(os.path.join(run_dir, "checkpoint.json")))
    assert ckpt["epoch"] == 2 and ckpt["params"] == "epoch-0002.params"
    log = [json.loads(l) for l in open(os.path.join(run_dir, "log.jsonl"))]
    assert [r["epoch"] for r in log] == [1, 2]
    assert {"epoch", "loss", "train_acc", "test_acc", "time", "lr"} <= set(log[0])
    # The step schedule divides the lr by 10 after epoch 1 (it counts batches).
    assert [r["lr"] for r in log] == pytest.approx([0.05, 0.005])
    with open(os.path.join(run_dir, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert any(run_dir in line for line in out)  # says where things were saved

    # Resume: continues at epoch 3, with the restored lr schedule, and appends to the log.
    code, out, err = run_main(capsys, ["--save-dir", run_dir, "--resume", "--epochs", "3",
                                       "--data-dir", DATA, "--quiet"])
    assert code == 0, err
    assert [m.group(1) for m in epoch_lines(out)] == ["3"]
    log = [json.loads(l) for l in open(os.path.join(run_dir, "log.jsonl"))]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[2]["lr"] == pytest.approx(0.005)
    ckpt = json.load(open(os.path.join(run_dir, "checkpoint.json")))
    assert ckpt["epoch"] == 3 and ckpt["previous"]["epoch"] == 2
    assert not os.path.exists(os.path.join(run_dir, "epoch-0001.params"))

    # Mistakes with an existing run: another net, nothing left to do, overwriting it.
    code, _, err = run_main(capsys, ["--save-dir", run_dir, "--resume", "--net", "lenet_bn",
                                     "--epochs", "4"])
    assert_one_line_error(code, err, "checkpoint in %s is for net lenet, not lenet_bn" % run_dir)
    code, _, err = run_main(capsys, ["--save-dir", run_dir, "--resume"])
    assert_one_line_error(code, err, "already done 3 epochs", "--epochs")
    code, _, err = run_main(capsys, ["--save-dir", run_dir, "--resume", "--epochs", "4",
                                     "--lr", "1"])
    assert_one_line_error(code, err, "--lr cannot change on --resume")
    code, _, err = run_main(capsys, SMALL + ["--save-dir", run_dir, "--epochs", "1"])
    assert_one_line_error(code, err, "already holds a checkpoint", "--resume")

    # A damaged checkpoint is found by its checksum; --resume falls back to the one before.
    params = os.path.join(run_dir, "epoch-0003.params")
    with open(params, "rb") as f:
        head = f.read(100)
    with open(params, "wb") as f:
        f.write(head)
    code, out, err = run_main(capsys, ["--save-dir", run_dir, "--resume", "--epochs", "4",
                                       "--data-dir", DATA, "--quiet"])
    assert code == 0
    assert err == ["gluon-cnns-train: warning: the checkpoint at epoch 3 in %s is damaged: "
                   "epoch-0003.params is damaged (its SHA-256 does not match the one recorded "
                   "when it was written); resuming from the one before it, at epoch 2" % run_dir]
    assert [m.group(1) for m in epoch_lines(out)] == ["3", "4"]
    with open(os.path.join(run_dir, "checkpoint.json"), "w") as f:
        f.write("{not json")
    code, _, err = run_main(capsys, ["--save-dir", run_dir, "--resume", "--epochs", "4"])
    assert_one_line_error(code, err, "corrupt")


# ---------------------------------------------------------------- user mistakes

# The table of command-line mistakes (each one line, exit 2, no traceback, nothing
# trained) is tests/test_bad_input.py's TRAIN.


def test_ctrl_c_is_one_line_with_a_resume_hint(monkeypatch, capsys):
    import gluon_cnns.cli.train as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    code, _, err = run_main(capsys, ["--save-dir", "somewhere"])
    assert code == 130
    assert err == ["gluon-cnns-train: interrupted; continue with --resume"]


def test_resume_from_an_empty_folder(tmp_path, capsys):
    code, _, err = run_main(capsys, ["--save-dir", str(tmp_path), "--resume"])
    assert_one_line_error(code, err, "no checkpoint in %s" % tmp_path)


def test_unwritable_save_dir(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_main(capsys, SMALL + ["--save-dir", str(blocker / "run")])
    assert_one_line_error(code, err, "--save-dir", str(blocker / "run"))


@pytest.mark.parametrize("argv,fragment", [(["--batch-size", "0"], "--batch-size"),
                                           (["--net", "nosuchnet"], "unknown network")])
def test_script_exits_2_without_traceback(argv, fragment):
    """The real script, in a fresh interpreter: the exit code and stderr a user sees."""
    proc = subprocess.run([sys.executable, SCRIPT] + argv, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gluon-cnns-train: error: ")
    assert fragment in lines[0]


# ---------------------------------------------------------------- --list, --help, schedules

def test_list_prints_every_net(capsys):
    from gluon_cnns.models import list_models, model_spec
    code, out, _ = run_main(capsys, ["--list"])
    assert code == 0
    assert len(out) == len(list_models())
    for line, name in zip(out, list_models()):
        assert line.split()[0] == name and model_spec(name).description in line


def test_help_shows_each_recipe(capsys):
    from gluon_cnns.models import list_models
    code, out, _ = run_main(capsys, ["--help"])
    assert code == 0
    text = "\n".join(out)
    assert "--lr-schedule" in text and "Recipes" in text
    table = {line.split()[0]: line.split() for line in out if line.startswith("  ")}
    for name in list_models():
        assert name in table, name
    # He et al.'s own recipe is the default (section 4.2); GluonCV's is --recipe gluoncv.
    assert table["resnet20_cifar"][1:8] == ["paper", "*", "cifar10", "164", "128", "0.1", "sgd"]
    assert table["gluoncv"][1:6] == ["cifar10", "200", "128", "0.1", "nag"]


def test_flags_default_to_none_so_the_recipe_decides():
    args = build_parser().parse_args([])
    for key in ("net", "epochs", "batch_size", "lr", "optimizer", "momentum", "wd", "resize",
                "lr_schedule", "lr_steps", "lr_factor", "dataset"):
        assert getattr(args, key) is None, key


def test_lr_schedulers_count_batches():
    settings = {"lr": 0.1, "epochs": 3, "lr_schedule": "step", "lr_steps": [1, 2],
                "lr_factor": 0.1}
    step = make_lr_scheduler(settings, batches_per_epoch=10)
    # Update number u (1-based) uses lr(u); epoch 2 starts at update 11.
    assert [step(u) for u in (1, 10, 11, 20, 21)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
    cosine = make_lr_scheduler(dict(settings, lr_schedule="cosine"), batches_per_epoch=10)
    assert cosine(0) == pytest.approx(0.1) and cosine(15) == pytest.approx(0.05)
    assert cosine(30) == pytest.approx(0.0)
    assert make_lr_scheduler(dict(settings, lr_schedule="none"), 10) is None


def test_export_after_training_loads_back(tmp_path, capsys):
    import mxnet as mx
    import numpy as np

    import gluon_cnns
    prefix = str(tmp_path / "out" / "lenet")
    code, out, err = run_main(capsys, SMALL + ["--epochs", "1", "--quiet", "--export", prefix,
                                               "--save-dir", str(tmp_path / "run")])
    assert code == 0, err
    assert any(line.startswith("exported to ") for line in out)
    loaded = gluon_cnns.load_exported(prefix)
    assert loaded.meta["net"] == "lenet" and loaded.meta["input_shape"] == [1, 1, 28, 28]
    net, _ = gluon_cnns.load_checkpoint_net(str(tmp_path / "run"))
    # The export is the final net; the run's newest epoch checkpoint holds the same weights.
    ckpt = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    net.load_parameters(str(tmp_path / "run" / ckpt["params"]))
    x = mx.nd.random.uniform(shape=(4, 1, 28, 28))
    np.testing.assert_allclose(loaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-5)
    assert os.path.exists(prefix + ".onnx")


def test_export_to_unwritable_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out, err = run_main(capsys, SMALL + ["--epochs", "1", "--quiet",
                                               "--export", str(blocker / "model")])
    assert_one_line_error(code, err, "--export")
    assert not epoch_lines(out)

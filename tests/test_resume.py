"""Exact resume: a run killed (SIGKILL) or interrupted (SIGINT) anywhere and resumed
ends with bit-identical parameters; checkpoints are checksummed and kept two deep.

The subprocess runs train LeNet on the first 4096 Fashion-MNIST images (64 batches of
64 per epoch, two epochs, a few seconds each). Two uninterrupted runs with the same
seed are bit-identical on the CPU: MXNet's oneDNN kernels are deterministic for a
given number of OpenMP threads, and every process here gets the same environment.
"""
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import nn

from gluon_cnns.cli.train import main
from gluon_cnns.artifacts import rundir as checkpoint
from gluon_cnns.data import BatchIterator
from gluon_cnns.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
DATA = "/usr/share/datasets/fashion-mnist"


RUN = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "4096", "--limit-test", "256",
       "--batch-size", "64", "--lr", "0.05", "--momentum", "0.9", "--seed", "7",
       "--epochs", "2", "--quiet"]


def start(args, threads=None, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MXNET_OMP_MAX_THREADS=str(threads))
    return subprocess.Popen([sys.executable, SCRIPT] + args, cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def finish(args, threads=None):
    proc = start(args, threads)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out, err


def read_checkpoint(run_dir):
    with open(os.path.join(run_dir, "checkpoint.json")) as f:
        return json.load(f)


def final_params(run_dir):
    """The parameters of the run's last epoch, as numpy arrays."""
    entry = read_checkpoint(run_dir)
    assert entry["batch"] == 0
    return {k: v.asnumpy() for k, v in mx.nd.load(os.path.join(run_dir, entry["params"])).items()}


def assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # bit for bit, not allclose


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its final parameters and log."""
    run_dir = str(tmp_path_factory.mktemp("reference") / "run")
    finish(RUN + ["--save-dir", run_dir, "--checkpoint-every", "7"])
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    return final_params(run_dir), log


KILLER = os.path.join(ROOT, "tests", "kill_run.py")
BATCHES = 4096 // 64  # per epoch


def position(run_dir):
    """(epochs done, batch within the next epoch) of the run's newest checkpoint."""
    entry = read_checkpoint(run_dir)
    return entry["epoch"], entry["batch"]


def killed(where, args, run_dir):
    """Run ``args`` killed with SIGKILL at ``where`` (see tests/kill_run.py); the position
    of the checkpoint it leaves."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, KILLER, where] + args, cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return position(run_dir)


def test_killed_at_random_moments_then_resumed_is_bit_identical(tmp_path, reference):
    """Three kills at seeded random moments -- inside epoch 1, in the middle of writing a
    checkpoint file, inside epoch 2 -- each resumed from where it stopped, end with the
    uninterrupted run's parameters and log; the log says where each resume started."""
    rng = random.Random(35)
    run_dir = str(tmp_path / "run")
    first = ["--save-dir", run_dir, "--checkpoint-every", "7"]
    resume = ["--save-dir", run_dir, "--resume", "--quiet"]
    b1, write, b3 = rng.randrange(7, BATCHES), rng.randrange(1, 16), rng.randrange(30, BATCHES)
    starts = [killed("batch:1:%d" % b1, RUN + first, run_dir)]
    assert starts[0] == (0, b1 // 7 * 7)  # the last checkpoint every 7 batches
    starts.append(killed("write:%d" % write, resume, run_dir))
    # The torn temporary file is still there: the kill came inside the write.
    assert [n for n in os.listdir(run_dir) if n.endswith(".tmp")]
    assert starts[1] > starts[0] and starts[1] < (1, b3)
    starts.append(killed("batch:2:%d" % b3, resume, run_dir))
    assert starts[2] == (1, b3 // 7 * 7)

    out, _ = finish(resume)
    assert "training on cpu(0)" in out
    params, log = reference
    assert_identical(final_params(run_dir), params)
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        resumed_log = [json.loads(line) for line in f]
    # The resumed epoch's sums were restored too: the same loss and accuracy.
    for key in ("epoch", "loss", "train_acc", "test_acc", "lr"):
        assert [r[key] for r in resumed_log] == [r[key] for r in log], key
    # Each epoch's record names the checkpoint its process started from and the batches
    # it trained to the epoch's end: no process started again from scratch.
    for record in resumed_log:
        start = max(s for s in starts if s[0] < record["epoch"])
        assert record["resumed"]
        assert record["resumed_from"] == {"epoch": start[0], "batch": start[1],
                                          "batches_run": BATCHES * (record["epoch"] - start[0])
                                          - start[1]}
    assert not [r for r in log if "resumed_from" in r or r["resumed"]]
    assert not [n for n in os.listdir(run_dir) if n.endswith(".tmp")]


def test_ctrl_c_saves_where_it_is_and_resume_is_bit_identical(tmp_path, reference):
    run_dir = str(tmp_path / "run")
    proc = start(RUN + ["--save-dir", run_dir])  # no --checkpoint-every: only Ctrl-C saves
    assert proc.stdout.readline().startswith("training on")
    time.sleep(0.5)  # into the first epoch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    entry = read_checkpoint(run_dir)
    where = checkpoint.describe(entry)
    assert err.splitlines() == [
        "gluon-cnns-train: interrupted; saved a checkpoint at %s in %s; continue with: "
        "gluon-cnns-train --save-dir %s --resume" % (where, run_dir, run_dir)]
    assert "Traceback" not in err

    finish(["--save-dir", run_dir, "--resume", "--quiet"])
    assert_identical(final_params(run_dir), reference[0])
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        first = [json.loads(line) for line in f][entry["epoch"]]  # the resumed process's
    assert first["resumed_from"] == {"epoch": entry["epoch"], "batch": entry["batch"],
                                     "batches_run": BATCHES - entry["batch"]}


# The training tricks (gluon_cnns.training.tricks) on lenet_bn, 2 x 16 batches of 64.
TRICKS = ["--net", "lenet_bn", "--data-dir", DATA, "--limit-train", "1024", "--limit-test",
          "256", "--batch-size", "64", "--lr", "0.5", "--wd", "1e-3", "--seed", "7",
          "--epochs", "2", "--quiet", "--mixup", "0.4", "--label-smoothing", "0.1", "--ema",
          "0.9", "--no-wd", "--warmup-epochs", "1"]


def run_files(run_dir, *names):
    """The parameters in the named files of a run folder, by file and parameter name."""
    return {n: {k: v.asnumpy() for k, v in mx.nd.load(os.path.join(run_dir, n)).items()}
            for n in names}


def test_tricks_killed_and_resumed_are_bit_identical_ema_included(tmp_path):
    """Killed inside the warm-up's epoch of a run with every trick and resumed: the weights,
    the weight average (checkpointed beside them) and best.params (the average) are the
    uninterrupted run's, bit for bit."""
    files = ("epoch-0002.params", "epoch-0002.ema.params", "best.params")
    whole = str(tmp_path / "whole")
    finish(TRICKS + ["--save-dir", whole])
    run_dir = str(tmp_path / "run")
    assert killed("batch:1:11", TRICKS + ["--save-dir", run_dir, "--checkpoint-every", "4"],
                  run_dir) == (0, 8)
    assert read_checkpoint(run_dir)["ema"] == "epoch-0001-batch-000008.ema.params"
    finish(["--save-dir", run_dir, "--resume", "--quiet"])
    expected, got = run_files(whole, *files), run_files(run_dir, *files)
    for name in files:
        assert_identical(got[name], expected[name])
    # The average is not the weights, and best.params is the best epoch's average.
    own, average = expected["epoch-0002.params"], expected["epoch-0002.ema.params"]
    assert not all(np.array_equal(own[k], average[k]) for k in own)
    with open(os.path.join(whole, "log.jsonl")) as f:
        accs = [json.loads(line)["test_acc"] for line in f]
    best = "epoch-%04d.ema.params" % (accs.index(max(accs)) + 1)
    assert_identical(expected["best.params"], run_files(whole, best)[best])


def test_an_epoch_resumed_on_other_threads_records_both_counts(tmp_path):
    from tools.results_table import build_row
    run_dir = str(tmp_path / "run")
    proc = start(RUN + ["--save-dir", run_dir], threads=1)
    assert proc.stdout.readline().startswith("training on cpu(0), 1 thread")
    time.sleep(0.5)  # into the first epoch
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    stopped_in = read_checkpoint(run_dir)["epoch"] + 1
    assert read_checkpoint(run_dir)["progress"]["threads"] == [1]

    finish(["--save-dir", run_dir, "--resume", "--quiet"], threads=2)
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    # The stopped process wrote no record of its own: its count comes from the checkpoint.
    assert [(r["threads"], r["epoch_threads"]) for r in log][stopped_in - 1:] == \
        [(2, [1, 2])] + [(2, [2])] * (len(log) - stopped_in)
    with open(os.path.join(run_dir, "config.json")) as f:
        assert build_row("lenet", json.load(f), log, "c", "")["threads"] == [1, 2]


# ---------------------------------------------------------------- checksums and retention

def test_checkpoint_json_names_two_checksummed_checkpoints(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    argv = RUN + ["--epochs", "1", "--limit-train", "640", "--save-dir", run_dir,
                  "--checkpoint-every", "3"]  # later flags win
    assert main(argv) == 0
    entry = read_checkpoint(run_dir)
    assert entry["format"] == 2 and (entry["epoch"], entry["batch"]) == (1, 0)
    assert entry["previous"]["epoch"] == 0 and entry["previous"]["batch"] == 9
    assert entry["previous"]["progress"]["batch"] == 9
    for e in (entry, entry["previous"]):
        names = [e["params"], e["trainer"], e["rng"]]
        assert sorted(e["sha256"]) == sorted(names)
        for name in names:
            assert checkpoint.sha256_file(os.path.join(run_dir, name)) == e["sha256"][name]
    # Only the two checkpoints' files are left (plus the run's other files).
    ours = sorted(n for n in os.listdir(run_dir) if n.startswith("epoch-"))
    assert ours == sorted([entry["params"], entry["trainer"], entry["rng"],
                           entry["previous"]["params"], entry["previous"]["trainer"],
                           entry["previous"]["rng"]])

    # Both damaged: one clear line, exit 2.
    for e in (entry, entry["previous"]):
        with open(os.path.join(run_dir, e["trainer"]), "ab") as f:
            f.write(b"garbage")
    capsys.readouterr()
    assert main(["--save-dir", run_dir, "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "and so is the one before it" in err[0]


def test_remove_unreferenced_keeps_named_and_foreign_files(tmp_path):
    names = ["epoch-0001.params", "epoch-0002-batch-000003.rng.npz", "epoch-0002.states",
             ".epoch-0002.params.x1y2z3.tmp", "notes.txt", ".hidden.tmp", "best.params"]
    for name in names:
        (tmp_path / name).write_text("x")
    checkpoint.remove_unreferenced(str(tmp_path), [{"params": "epoch-0001.params"}, None])
    assert sorted(os.listdir(tmp_path)) == [".hidden.tmp", "best.params", "epoch-0001.params",
                                            "notes.txt"]


# ---------------------------------------------------------------- utils.train in-process

def dropout_net():
    # Children under name_scope, as every net of the zoo: their names (dense0, dense1)
    # are then local to the net. Outside it they come from a process-wide counter, and
    # Trainer, which orders parameters by name, would order "dense9" and "dense10"
    # differently in two nets built at different moments.
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, kernel_size=3, activation="relu"), nn.MaxPool2D(2),
                nn.Dense(16, activation="relu"), nn.Dropout(0.5), nn.Dense(2))
    return net


def toy_iterators(seed=0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, size=96)
    images = (rng.rand(96, 8, 8, 1) * 128 + 127 * labels[:, None, None, None]).astype(np.uint8)
    return (BatchIterator(images, labels, 16, shuffle=True),
            BatchIterator(images[:32], labels[:32], 16))


def fresh(seed):
    """Net, trainer and data as a run seeded ``seed`` starts them."""
    mx.random.seed(seed)
    np.random.seed(seed)
    train_iter, test_iter = toy_iterators()
    net = dropout_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    return net, trainer, train_iter, test_iter


def run(net, trainer, train_iter, test_iter, **kwargs):
    return train(train_iter, test_iter, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
                 mx.cpu(), 3, progress=False, **kwargs)


class Stop(Exception):
    pass


@pytest.mark.parametrize("seed_on_resume,identical", [(5, True), (None, False)])
def test_dropout_masks_follow_the_position(tmp_path, capsys, seed_on_resume, identical):
    """MXNet cannot save its generator; train(seed=) reseeds it per batch instead."""
    net, trainer, train_iter, test_iter = fresh(5)
    run(net, trainer, train_iter, test_iter, seed=5)
    expected = [p.data().asnumpy() for p in net.collect_params().values()]

    net, trainer, train_iter, test_iter = fresh(5)
    saved = {}

    def save_at_epoch_2_batch_4(progress):
        if (progress.epoch, progress.batch) == (2, 4):
            saved["entry"] = checkpoint.write_checkpoint(str(tmp_path), 1, 4, net, trainer,
                                                         train_iter)
            saved["progress"] = progress.snapshot()
            raise Stop

    with pytest.raises(Stop):
        run(net, trainer, train_iter, test_iter, seed=5, batch_callback=save_at_epoch_2_batch_4)

    net, trainer, train_iter, test_iter = fresh(99)  # other initial weights, other generators
    net(mx.nd.zeros((1, 1, 8, 8)))  # shapes, so that trainer.load_states finds the parameters
    checkpoint.restore(str(tmp_path), saved["entry"], net, trainer, mx.cpu(), train_iter)
    history = run(net, trainer, train_iter, test_iter, seed=seed_on_resume, start_epoch=1,
                  resume=saved["progress"])
    assert [r["epoch"] for r in history] == [2, 3]
    got = [p.data().asnumpy() for p in net.collect_params().values()]
    same = all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert same == identical


def test_batch_iterator_state_continues_a_pass():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    it = BatchIterator(images, np.arange(10), 3, shuffle=True)
    np.random.seed(1)
    full = [y.asnumpy().tolist() for _, y in it]
    np.random.seed(1)
    batches = iter(it)
    first = [next(batches)[1].asnumpy().tolist() for _ in range(2)]
    state, numpy_state = it.state(), np.random.get_state()
    assert state["batch"] == 2 and sorted(state["order"]) == list(range(10))

    other = BatchIterator(images, np.arange(10), 3, shuffle=True)
    other.set_state(state)
    np.random.set_state(numpy_state)
    assert first + [y.asnumpy().tolist() for _, y in other] == full
    assert other.state() == {"order": None, "batch": 0}  # a finished pass


def test_ctrl_c_during_an_epochs_evaluation_stops_once_the_epoch_is_saved(tmp_path):
    """Ctrl-C after an epoch's last batch (while it is evaluated) stops the run as soon as
    that epoch is saved, but for the last epoch, after which the run ends anyway."""
    from gluon_cnns.training.saver import Checkpointer, CtrlC, TrainingInterrupted
    net = nn.Dense(2)
    net.initialize()
    net(mx.nd.zeros((1, 3)))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    ctrl_c = CtrlC()
    ctrl_c.requested, ctrl_c.signum = True, signal.SIGINT
    saver = Checkpointer(checkpoint.RunDir(str(tmp_path)), net, trainer, None, [],
                         ctrl_c=ctrl_c, last_epoch=3, resume_command="RESUME")
    records = [{"epoch": e, "loss": 1.0, "train_acc": 0.5, "test_acc": 0.5, "time": 1.0}
               for e in (1, 2, 3)]
    with pytest.raises(TrainingInterrupted, match="^saved a checkpoint at epoch 1 in .*; "
                                                  "continue with: RESUME$"):
        saver(records[0])
    saver(records[2])  # the last epoch: saved, and the run ends as it would have
    with open(os.path.join(str(tmp_path), "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    assert [r["epoch"] for r in log] == [1, 3]  # each epoch's own line
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    assert all(0 < r["peak_rss_mib"] <= peak_mib for r in log)


def test_ctrl_c_handlers_of_the_caller_are_back_after_training():
    """Training from Python (a notebook) takes Ctrl-C and SIGTERM over only while it runs."""
    from gluon_cnns.training.saver import CtrlC
    before = [signal.getsignal(s) for s in CtrlC.SIGNALS]
    with CtrlC() as ctrl_c:
        assert [signal.getsignal(s) for s in CtrlC.SIGNALS] == [ctrl_c._handle] * 2
    assert [signal.getsignal(s) for s in CtrlC.SIGNALS] == before

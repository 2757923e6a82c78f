"""Bad input everywhere: one clear line (or one documented exception), never a traceback.

Each row of a table is one bad invocation: a command line of a console command
(``gluon-cnns-train``, ``gluon-cnns-predict``, ``gluon-cnns-export``, run in-process
through their ``main``) or a call of a public function. A command must exit with 2
and print exactly one line on stderr naming the problem; a function must raise the
documented ``GluonCNNsError`` subclass with a one-line message. A few rows also run
the real scripts in a fresh interpreter, where a traceback would show.
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluon_cnns
from gluon_cnns import utils
from gluon_cnns.errors import (CheckpointError, DataError, GluonCNNsError, InputTooSmallError,
                               UnknownModelError, UsageError)
from gluon_cnns.artifacts import rundir as checkpoint
from gluon_cnns.cli.launch_hosts import check_hosts
from gluon_cnns.data import BatchIterator, read_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------- fixtures the rows refer to

@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Folders and files for the rows: ``{name}`` in a row's argv is replaced by them."""
    base = tmp_path_factory.mktemp("bad-input")
    paths = {"tmp": str(base)}

    # A file where a folder should be: nothing can be created below it.
    blocker = base / "a-file"
    blocker.write_text("not a folder")
    paths["unwritable"] = str(blocker / "run")

    # A data folder whose training images have a broken IDX header.
    broken = base / "broken-data"
    broken.mkdir()
    for name, shape in (("train-images-idx3-ubyte", (4, 28, 28)), ("train-labels-idx1-ubyte", (4,)),
                        ("t10k-images-idx3-ubyte", (2, 28, 28)), ("t10k-labels-idx1-ubyte", (2,))):
        header = struct.pack(">BBBB", 0, 0, 0x08, len(shape)) + struct.pack(">%dI" % len(shape),
                                                                            *shape)
        raw = header + bytes(int(np.prod(shape)))
        if name == "train-images-idx3-ubyte":
            raw = b"\x12\x34" + raw[2:]  # bad magic number
        (broken / (name + ".gz")).write_bytes(gzip.compress(raw))
    paths["broken_data"] = str(broken)

    # A run of lenet (its files only need to match their recorded checksums).
    run = base / "lenet-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"net": "lenet", "epochs": 1, "batch_size": 64}))
    entry = {"epoch": 1, "batch": 0, "sha256": {}}
    for key, suffix in checkpoint.FILES:
        entry[key] = "epoch-0001" + suffix
        (run / entry[key]).write_bytes(b"x")
        entry["sha256"][entry[key]] = checkpoint.sha256_file(str(run / entry[key]))
    (run / "checkpoint.json").write_text(json.dumps(entry))
    paths["lenet_run"] = str(run)

    # Hostfiles that name this machine twice, and 127.0.0.1 next to other hosts.
    (base / "twice").write_text("localhost\n127.0.0.1\n")
    (base / "loopback-and-others").write_text("127.0.0.1\n10.0.0.2\n")
    paths["twice"], paths["mixed"] = str(base / "twice"), str(base / "loopback-and-others")
    # Hosts ssh would read as an option, or that hold shell characters.
    (base / "option-host").write_text("-oProxyCommand=touch\t{}\n".format(base / "pwned"))
    (base / "shell-host").write_text("# hosts\r\n\r\na;touch${{IFS}}{}\r\n".format(base / "pwned"))
    paths["option_host"], paths["shell_host"] = str(base / "option-host"), str(base / "shell-host")
    (base / "bad-port").write_text("10.0.0.2:99999\n")
    (base / "unicode-port").write_text("10.0.0.2:\u00b2\n")
    paths["bad_port"], paths["unicode_port"] = str(base / "bad-port"), str(base / "unicode-port")

    # The lenet run with --ema: its checkpoint without the average, or with a named pipe
    # in place of the average's file.
    for name, change in (("no-average-run", "drop"), ("pipe-average-run", "pipe")):
        folder = base / name
        shutil.copytree(str(run), str(folder))
        (folder / "config.json").write_text(json.dumps({"net": "lenet", "epochs": 1,
                                                        "batch_size": 64, "ema": 0.9}))
        if change == "drop":
            (folder / "checkpoint.json").write_text(json.dumps(
                {k: v for k, v in entry.items() if k != "ema"}))
        else:
            os.remove(str(folder / entry["ema"]))
            os.mkfifo(str(folder / entry["ema"]))
        paths[name.replace("-", "_")] = str(folder)

    # A run whose checkpoint.json is not JSON.
    corrupt = base / "corrupt-run"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(json.dumps({"net": "lenet"}))
    (corrupt / "checkpoint.json").write_text("{not json")
    paths["corrupt_run"] = str(corrupt)

    # The lenet run with a malformed index ("epoch": true, "batch": "x") or config.
    for name, index_change, config_change in (("bad-index-run", {"epoch": True, "batch": "x"}, {}),
                                              ("bad-config-run", {}, {"epochs": "5"})):
        folder = base / name
        shutil.copytree(str(run), str(folder))
        (folder / "checkpoint.json").write_text(json.dumps(dict(entry, **index_change)))
        (folder / "config.json").write_text(json.dumps(dict(
            {"net": "lenet", "epochs": 1, "batch_size": 64}, **config_change)))
        paths[name.replace("-", "_")] = str(folder)

    (base / "empty").mkdir()
    paths["empty"] = str(base / "empty")
    paths["a_file"] = str(blocker)
    os.mkfifo(str(base / "fifo"))
    paths["fifo"] = str(base / "fifo")
    os.symlink(str(base / "nowhere"), str(base / "dangling"))
    paths["dangling"] = str(base / "dangling")
    paths["data"] = DATA
    return paths


def fill(argv, place):
    return [a.format(**place) for a in argv]


# ---------------------------------------------------------------- the commands

TRAIN = [
    # (id, argv, fragment the one line must contain)
    ("unknown net", ["--net", "lenett"], "did you mean lenet"),
    ("batch size 0", ["--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    ("negative epochs", ["--epochs", "-3"], "argument --epochs"),
    ("lr nan", ["--lr", "nan"], "argument --lr: must be a positive number"),
    ("lr 0", ["--lr", "0"], "argument --lr: must be a positive number"),
    ("lr not a number", ["--lr", "fast"], "argument --lr: expected a positive number"),
    ("limit-train 0", ["--limit-train", "0"], "argument --limit-train: must be a positive"),
    ("limit-test negative", ["--limit-test", "-5"], "argument --limit-test: must be a positive"),
    ("negative weight decay", ["--wd", "-1"], "argument --wd"),
    ("momentum 1", ["--momentum", "1"], "argument --momentum: must be in [0, 1)"),
    ("checkpoint every 0", ["--checkpoint-every", "0"], "argument --checkpoint-every"),
    ("nan policy bogus", ["--nan-policy", "bogus"], "argument --nan-policy: invalid choice"),
    ("checkpoint every without save dir", ["--checkpoint-every", "5"],
     "--checkpoint-every needs --save-dir"),
    ("resume without save dir", ["--resume"], "--resume needs --save-dir"),
    ("resume an empty folder", ["--resume", "--save-dir", "{empty}"], "no checkpoint in"),
    ("resume a corrupt checkpoint.json", ["--resume", "--save-dir", "{corrupt_run}"], "corrupt"),
    ("checkpoint of another net", ["--resume", "--save-dir", "{lenet_run}", "--net", "lenet_bn",
                                   "--epochs", "3"], "is for net lenet, not lenet_bn"),
    ("unwritable save dir", ["--net", "lenet", "--save-dir", "{unwritable}"],
     "cannot create --save-dir"),
    ("missing data folder", ["--net", "lenet", "--data-dir", "{tmp}/no-such-data"],
     "not found in the data folder"),
    ("malformed IDX header", ["--net", "lenet", "--data-dir", "{broken_data}"],
     "not an IDX file (bad magic number"),
    ("input too small for the net", ["--net", "alexnet", "--resize", "32"],
     "needs inputs of at least 67x67"),
    ("resize too small for lenet", ["--net", "lenet", "--resize", "4"],
     "LeNet needs inputs of at least 12x12 pixels, got 4x4; resize the images (e.g. --resize 12)"),
    ("resize 0", ["--resize", "0"], "argument --resize"),
    ("adam with momentum", ["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies"),
    ("step schedule without steps", ["--net", "lenet", "--lr-schedule", "step"], "--lr-steps"),
    ("lr steps decreasing", ["--lr-steps", "5,3"], "increasing"),
    ("unknown dataset", ["--dataset", "imagenet"], "argument --dataset: invalid choice"),
    ("a last batch smaller than the devices", ["--net", "lenet", "--cpus", "2", "--batch-size",
                                               "4", "--limit-train", "5", "--limit-test", "8",
                                               "--epochs", "1"],
     "training on 2 devices splits each batch among them, and 5 examples in batches of 4 "
     "leave a batch of 1; give every batch at least 2 examples"),
    ("skip on several devices", ["--net", "lenet", "--cpus", "2", "--nan-policy", "skip"],
     "--nan-policy skip needs a single device"),
    ("gpus without gpus", ["--gpus", "2"], "--gpus 2 but only 0 usable GPU"),
    ("unknown flag", ["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate"),
    ("empty net", ["--net", ""], "argument --net/--model: must not be empty"),
    ("empty save dir", ["--net", "lenet", "--save-dir", ""], "argument --save-dir: must not be"),
    ("empty export", ["--net", "lenet", "--export", ""], "argument --export: must not be empty"),
    ("empty data dir", ["--net", "lenet", "--data-dir", ""], "argument --data-dir: must not be"),
    ("lr beyond float32", ["--lr", "1e308"], "argument --lr: must be a positive number below"),
    ("wd beyond float32", ["--wd", "1e300"], "argument --wd: must be a number >= 0 and below"),
    ("negative seed", ["--seed", "-1"], "argument --seed: must be a whole number in 0..2147483647"),
    ("huge seed", ["--seed", "99999999999999999999"], "argument --seed: must be a whole number in 0..2147483647"),
    ("resize that cannot fit", ["--net", "lenet", "--resize", "100000"],
     "needs 9536.7 GiB for its input alone"),
    ("export name too long", ["--net", "lenet", "--export", "{tmp}/" + "x" * 250],
     "cannot write the --export"),
    ("resume with a malformed index", ["--resume", "--save-dir", "{bad_index_run}"],
     "'epoch' and 'batch' must be whole numbers"),
    ("resume with a malformed config", ["--resume", "--save-dir", "{bad_config_run}"],
     "'epochs' is '5', not a positive whole number"),
    ("resume an --ema run without its average", ["--resume", "--save-dir", "{no_average_run}",
                                                 "--epochs", "3"],
     "cannot load the checkpoint in {no_average_run} (epoch 1 keeps no .ema.params; the "
     "run uses --ema)"),
    ("resume with a named pipe for the average", ["--resume", "--save-dir", "{pipe_average_run}",
                                                  "--epochs", "3"],
     "epoch-0001.ema.params is a named pipe, not a file; start a new --save-dir"),
    ("save dir a named pipe", ["--net", "lenet", "--save-dir", "{fifo}"],
     "--save-dir {fifo} is a named pipe, not a folder"),
    ("data dir a file", ["--net", "lenet", "--data-dir", "{a_file}"],
     "not found in the data folder {a_file}"),
    ("finetune from a dangling link", ["--net", "lenet", "--finetune", "{dangling}"],
     "--finetune {dangling}: no such run folder or export"),
    ("export into a named pipe", ["--net", "lenet", "--export", "{fifo}/lenet"],
     "--export {fifo} is a named pipe, not a folder"),
    ("negative mixup alpha", ["--mixup", "-0.2"],
     "argument --mixup: must be an alpha >= 0, e.g. 0.2 (0: off), got '-0.2'"),
    ("label smoothing 1", ["--label-smoothing", "1"],
     "argument --label-smoothing: must be a number in [0, 1), e.g. 0.1, got '1'"),
    ("negative label smoothing", ["--label-smoothing", "-0.1"],
     "argument --label-smoothing: must be a number in [0, 1)"),
    ("ema 1.5", ["--ema", "1.5"], "argument --ema: must be in 0..1 (both excluded), got '1.5'"),
    ("ema 0", ["--ema", "0"], "argument --ema: must be in 0..1 (both excluded), got '0'"),
    ("last gamma without residual blocks", ["--net", "lenet_bn", "--last-gamma"],
     "--last-gamma zero-initializes the last BatchNorm of each residual block, and lenet_bn "
     "has none"),
    ("two warm-ups", ["--net", "lenet", "--warmup-epochs", "1", "--warmup-iters", "10",
                      "--warmup-lr", "0.01"], "are two warm-ups; give one"),
    ("warm-up as long as the run", ["--net", "lenet", "--warmup-epochs", "5"],
     "--warmup-epochs 5 leaves no epoch of the 5 after the warm-up"),
    ("mixup off epoch without mixup", ["--net", "lenet", "--mixup-off-epoch", "2"],
     "--mixup-off-epoch turns mixup off for the last epochs, and mixup is not on"),
    ("last gamma with finetune", ["--net", "resnet18", "--last-gamma", "--dataset", "folder",
                                  "--data-dir", "{empty}", "--finetune", "{lenet_run}"],
     "--finetune starts from the source net's trained ones; drop --last-gamma"),
    ("mixup off for every epoch", ["--net", "lenet", "--mixup", "0.2", "--mixup-off-epoch", "5"],
     "--mixup-off-epoch 5 turns mixup off for all 5 epochs; give fewer, or drop --mixup"),
    ("negative mixup off epoch", ["--mixup-off-epoch", "-1"],
     "argument --mixup-off-epoch: must be a whole number >= 0"),
]

PREDICT = [
    ("predict without --model", ["x.png"], "--model"),
    ("predict a missing model", ["x.png", "--model", "{tmp}/no-such-model"],
     "neither an export"),
    ("predict top-k 0", ["x.png", "--model", "m", "--top-k", "0"], "argument --top-k"),
    ("predict empty model", ["x.png", "--model", ""], "argument --model: must not be empty"),
]

EXPORT = [
    ("export unknown format", ["--save-dir", "{lenet_run}", "--out", "{tmp}/e", "--formats",
                               "pdf"], "argument --formats"),
    ("export a missing run", ["--save-dir", "{tmp}/no-such-run", "--out", "{tmp}/e"],
     "no such folder"),
    ("export empty out", ["--save-dir", "{lenet_run}", "--out", ""],
     "argument --out: must not be empty"),
    ("export blank out", ["--save-dir", "{lenet_run}", "--out", "  "],
     "argument --out: must not be empty"),
    ("export empty save dir", ["--save-dir", "", "--out", "{tmp}/e"],
     "argument --save-dir: must not be empty"),
    ("export a named pipe", ["--save-dir", "{fifo}", "--out", "{tmp}/e"],
     "{fifo}: no such folder"),
    ("export a dangling link", ["--save-dir", "{dangling}", "--out", "{tmp}/e"],
     "{dangling}: no such folder"),
]

PACK = [
    ("pack a missing folder", ["{tmp}/no-photos", "--out", "{tmp}/p"],
     "the image folder {tmp}/no-photos does not exist"),
    ("pack a named pipe", ["{fifo}", "--out", "{tmp}/p"],
     "the image folder {fifo} is a named pipe, not a folder"),
    ("pack into a file", ["{empty}", "--out", "{a_file}"],
     "--out {a_file} is a file, not a folder; give a folder for the pack"),
    ("pack into a dangling link", ["{empty}", "--out", "{dangling}"],
     "--out {dangling} is a symbolic link to {tmp}/nowhere, which does not exist"),
]


# The smallest benchmark run, so that a row whose check is missing still ends quickly.
QUICK_BENCH = ["--net", "none", "--gemm-size", "64", "--repeat", "1", "--warmup", "0",
               "--min-time", "0.01"]

BENCHMARK = [
    ("peer python missing", QUICK_BENCH + ["--peer", "lenet_bn", "--peer-python",
                                           "{tmp}/no-such-python"],
     "--peer-python {tmp}/no-such-python does not exist; give a Python that can import torch"),
    ("peer python a folder", QUICK_BENCH + ["--peer-python", "{empty}"], "is a folder, not a file"),
    ("peer python not executable", QUICK_BENCH + ["--peer-python", "{a_file}"],
     "--peer-python {a_file} is not executable"),
    ("peer python a dangling link", QUICK_BENCH + ["--peer-python", "{dangling}"],
     "--peer-python {dangling} is a symbolic link to {tmp}/nowhere, which does not exist"),
    ("peer python not on PATH", QUICK_BENCH + ["--peer-python", "no-such-python-3"],
     "no such program on PATH"),
    ("json in a missing folder", QUICK_BENCH + ["--json", "{tmp}/no-such-folder/b.json"],
     "--json {tmp}/no-such-folder/b.json: its folder {tmp}/no-such-folder does not exist"),
    ("json in a file", QUICK_BENCH + ["--json", "{a_file}/b.json"], "is a file, not a folder"),
    ("json onto a named pipe", QUICK_BENCH + ["--json", "{fifo}"],
     "--json {fifo} is a named pipe, not a regular file"),
    ("json onto a dangling link", QUICK_BENCH + ["--json", "{dangling}"],
     "--json {dangling} is a symbolic link, not a regular file"),
    ("markdown onto a folder", QUICK_BENCH + ["--markdown", "{empty}"],
     "--markdown {empty} is a folder, not a regular file"),
    ("render, markdown into a missing folder", ["--render", "{tmp}/none.json", "--markdown",
                                                "{tmp}/none/B.md"], "its folder {tmp}/none"),
    ("render a named pipe", ["--render", "{fifo}"], "not a regular file (a named pipe)"),
    ("data dir missing", QUICK_BENCH + ["--data-dir", "{tmp}/no-data"],
     "--data-dir {tmp}/no-data does not exist; pass the folder holding the Fashion-MNIST"),
    ("data dir a named pipe", QUICK_BENCH + ["--data-dir", "{fifo}"],
     "--data-dir {fifo} is a named pipe, not a folder"),
    ("quant runs missing", QUICK_BENCH + ["--dtype", "int8", "--quant-runs",
                                          "lenet_bn={tmp}/no-such-run"], "no such folder"),
    ("quant runs a file", QUICK_BENCH + ["--dtype", "int8", "--quant-runs", "lenet_bn={a_file}"],
     "no such folder"),
]

# A reduced run, so that a row whose check is missing trains only a moment.
SMALL_RUN = ["--net", "lenet", "--epochs", "1", "--limit-train", "64", "--limit-test", "64"]

REPRODUCE = [
    ("runs dir a file", SMALL_RUN + ["--runs-dir", "{a_file}", "--docs-dir", "{tmp}/docs-r"],
     "--runs-dir {a_file} is a file, not a folder; give a folder for the runs"),
    ("runs dir below a file", SMALL_RUN + ["--runs-dir", "{a_file}/runs", "--docs-dir",
                                           "{tmp}/docs-r"], "its parent {a_file} is a file"),
    ("runs dir a named pipe", SMALL_RUN + ["--runs-dir", "{fifo}", "--docs-dir", "{tmp}/docs-r"],
     "--runs-dir {fifo} is a named pipe, not a folder"),
    ("docs dir a dangling link", SMALL_RUN + ["--runs-dir", "{tmp}/runs-r", "--docs-dir",
                                              "{dangling}"],
     "--docs-dir {dangling} is a symbolic link to {tmp}/nowhere, which does not exist"),
    ("docs dir a named pipe", SMALL_RUN + ["--runs-dir", "{tmp}/runs-r", "--docs-dir", "{fifo}"],
     "--docs-dir {fifo} is a named pipe, not a folder"),
    ("reproduce data dir missing", SMALL_RUN + ["--runs-dir", "{tmp}/runs-r", "--docs-dir",
                                                "{tmp}/docs-r", "--data-dir", "{tmp}/no-data"],
     "--data-dir {tmp}/no-data does not exist"),
    ("reproduce data dir a file", SMALL_RUN + ["--runs-dir", "{tmp}/runs-r", "--docs-dir",
                                               "{tmp}/docs-r", "--data-dir", "{a_file}"],
     "--data-dir {a_file} is a file, not a folder"),
]


def _commands():
    from gluon_cnns.cli import export, pack, predict, train
    from tools import reproduce
    from tools.benchmark import main as benchmark
    rows = [("gluon-cnns-train", train.main) + row for row in TRAIN]
    rows += [("predict", predict.main) + row for row in PREDICT]
    rows += [("export", export.main) + row for row in EXPORT]
    rows += [("pack", pack.main) + row for row in PACK]
    rows += [("gluon-cnns-benchmark", benchmark.main) + row for row in BENCHMARK]
    rows += [("reproduce", reproduce.main) + row for row in REPRODUCE]
    return rows


COMMANDS = _commands()


@pytest.mark.parametrize("prog,main,case,argv,fragment", COMMANDS,
                         ids=[row[2] for row in COMMANDS])
def test_command_exits_2_with_one_line(place, capsys, prog, main, case, argv, fragment):
    code = main(fill(argv, place))
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (case, err)
    assert len(lines) == 1, lines
    assert lines[0].startswith("%s: error: " % prog), lines[0]
    assert fill([fragment], place)[0] in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert "epoch 1," not in out  # nothing was trained


@pytest.mark.parametrize("script,argv,fragment", [
    ("train.py", ["--net", "lenet", "--data-dir", "{broken_data}"], "bad magic number"),
    ("train.py", ["--checkpoint-every", "0"], "--checkpoint-every"),
    ("predict.py", ["x.png", "--model", "{tmp}/nothing"], "neither an export"),
    ("export.py", ["--save-dir", "{tmp}/nothing", "--out", "{tmp}/e"], "no such folder"),
    ("export.py", ["--save-dir", "{lenet_run}", "--out", ""], "must not be empty"),
    ("launch.py", ["-n", "25000", "-s", "1", "--", "true"], "one launcher starts at most 4096"),
    ("launch.py", ["-n", "1", "-H", "{fifo}", "--", "true"],
     "cannot read --hostfile {fifo}: it is a named pipe, not a file of hosts"),
    ("launch.py", ["-n", "1", "-H", "{option_host}", "--", "true"],
     "{option_host} line 1: expected [USER@]HOST or [USER@]HOST:SSH_PORT"),
    ("launch.py", ["-n", "1", "-H", "{shell_host}", "--", "true"],
     "{shell_host} line 3: expected [USER@]HOST"),
    ("launch.py", ["-n", "1", "-H", "{bad_port}", "--", "true"],
     "and a port in 1..65535, got '10.0.0.2:99999'"),
    ("launch.py", ["-n", "1", "-H", "{unicode_port}", "--", "true"],
     "and a port in 1..65535, got '10.0.0.2:\u00b2'"),
    ("launch.py", ["-n", "2", "-H", "{twice}", "--", "true"],
     "the hostfile names this machine twice (localhost and 127.0.0.1, ssh port 22)"),
    ("launch.py", ["-n", "2", "-H", "{mixed}", "--host-ip", "10.0.0.1", "--", "true"],
     "the hostfile lists 127.0.0.1 next to other hosts, which cannot reach it"),
    ("benchmark.py", QUICK_BENCH + ["--peer", "lenet_bn", "--peer-python", "{tmp}/no-python"],
     "--peer-python {tmp}/no-python does not exist"),
])
def test_scripts_in_a_fresh_interpreter(place, script, argv, fragment):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)]
                          + fill(argv, place), capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and fill([fragment], place)[0] in lines[0], lines


# ---------------------------------------------------------------- the public functions

def _lenet():
    net = gluon_cnns.get_model("lenet")
    net.initialize()
    return net


def _hybridized_lenet():
    net = _lenet()
    net.hybridize()
    net(mx.nd.zeros((1, 1, 28, 28)))
    return net


def _broken_idx(place):
    return read_idx(os.path.join(place["broken_data"], "train-images-idx3-ubyte.gz"))


def _set_bad_order():
    it = BatchIterator(np.zeros((4, 2, 2, 1), np.uint8), np.zeros(4), 2, shuffle=True)
    it.set_state({"order": np.array([0, 0, 1, 2]), "batch": 1})


def _train_with_bad_policy():
    net = _lenet()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    utils.train([], [], net, mx.gluon.loss.SoftmaxCrossEntropyLoss(), trainer, mx.cpu(), 1,
                nan_policy="bogus")


def _restore_tampered(place):
    entry = json.load(open(os.path.join(place["lenet_run"], "checkpoint.json")))
    entry = dict(entry, sha256=dict(entry["sha256"], **{entry["params"]: "0" * 64}))
    checkpoint.restore(place["lenet_run"], entry, _lenet(), None)


API = [
    # (id, call, exception type, fragment)
    ("hostfile: this machine as user@localhost and 127.0.0.1",
     lambda p: check_hosts([("alice@localhost", None), ("127.0.0.1", None)], "10.0.0.1"),
     UsageError, "names this machine twice (alice@localhost and 127.0.0.1, ssh port 22)"),
    ("hostfile: a host twice, once with its user",
     lambda p: check_hosts([("10.0.0.2", "22"), ("bob@10.0.0.2", None)], "10.0.0.1"),
     UsageError, "names the same host twice (10.0.0.2 and bob@10.0.0.2, ssh port 22)"),
    ("get_model unknown", lambda p: gluon_cnns.get_model("resnet19"), UnknownModelError,
     "resnet18"),
    ("model_spec unknown", lambda p: gluon_cnns.model_spec("vgg"), UnknownModelError, "vgg11"),
    ("get_model classes 0", lambda p: gluon_cnns.get_model("lenet", classes=0), GluonCNNsError,
     "classes must be a positive integer, got 0"),
    ("get_model unknown argument", lambda p: gluon_cnns.get_model("resnet18", depth=50),
     GluonCNNsError, "takes no argument 'depth'"),
    ("evaluate_accuracy ctx as a string",
     lambda p: utils.evaluate_accuracy([], _lenet(), "cpu"), GluonCNNsError,
     "ctx must be an mx.Context"),
    ("net(2-D NDArray)", lambda p: _lenet()(mx.nd.zeros((28, 28))), InputTooSmallError,
     "expects a 4-D NCHW batch, got shape (28, 28)"),
    ("net(3-D NDArray)", lambda p: _lenet()(mx.nd.zeros((1, 28, 28))), InputTooSmallError,
     "expects a 4-D NCHW batch"),
    ("hybridized net(3-D NDArray)", lambda p: _hybridized_lenet()(mx.nd.zeros((1, 28, 28))),
     InputTooSmallError, "expects a 4-D NCHW batch"),
    ("net(too small)", lambda p: _lenet()(mx.nd.zeros((1, 1, 3, 3))), InputTooSmallError,
     "needs inputs of at least"),
    ("load_data batch_size 0", lambda p: utils.load_data_fashion_mnist(0), DataError,
     "batch_size must be a positive integer"),
    ("load_data unknown dataset", lambda p: utils.load_data("imagenet", 32), DataError,
     "unknown dataset 'imagenet'"),
    ("load_data missing root", lambda p: utils.load_data_mnist(32, root=p["tmp"] + "/none"),
     DataError, "not found in the data folder"),
    ("read_idx broken header", _broken_idx, DataError, "bad magic number"),
    ("get_text_labels out of range", lambda p: utils.get_text_labels([12]), DataError,
     "label 12 is outside 0..9"),
    ("BatchIterator.set_state not a permutation", lambda p: _set_bad_order(), DataError,
     "not a permutation"),
    ("train nan_policy bogus", lambda p: _train_with_bad_policy(), GluonCNNsError,
     "nan_policy must be one of"),
    ("checkpoint with a wrong checksum", _restore_tampered, CheckpointError,
     "epoch-0001.params is damaged"),
]


@pytest.mark.parametrize("call,error,fragment", [row[1:] for row in API],
                         ids=[row[0] for row in API])
def test_function_raises_one_clear_error(place, capsys, call, error, fragment):
    with pytest.raises(error) as info:
        call(place)
    message = str(info.value)
    assert fragment in message
    assert len(message.strip().splitlines()) == 1, message
    assert isinstance(info.value, GluonCNNsError)


def test_the_table_is_big_enough():
    assert len(COMMANDS) + len(API) >= 25


# ---------------------------------------------------------------- issue 15, part B

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A lenet --save-dir with real parameters, and its export (symbol format)."""
    base = tmp_path_factory.mktemp("issue15")
    run = base / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"net": "lenet", "dataset": "fashion-mnist",
                                                 "resize": None}))
    net = _lenet()
    net(mx.nd.zeros((1, 1, 28, 28)))
    net.save_parameters(str(run / "best.params"))
    gluon_cnns.export_model(net, str(base / "export" / "lenet"), (1, 1, 28, 28),
                            formats="symbol", net_name="lenet")
    image = base / "shirt.png"
    from PIL import Image
    Image.new("L", (28, 28), 128).save(str(image))
    return {"base": base, "run": str(run), "export": str(base / "export" / "lenet"),
            "image": str(image)}


def _one_line(capsys, main, argv, prog, fragment):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("%s: error: " % prog), lines
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in out + err
    return lines[0]


@pytest.mark.parametrize("changes, fragment", [
    ({"input_size": "abc"}, "\"input_size\" must be [height, width], integers in 1..4096, "
                            "got 'abc'; export the net again, or correct the file"),
    ({"normalization": None}, '"normalization" must be {"divide_by": 255'),
    ({"channels": 2}, "the net takes 2 input channels; predict reads images as grey"),
    ({"class_names": None}, '"class_names" must be a non-empty list of strings, got None'),
])
def test_predict_with_a_damaged_sidecar(trained_run, tmp_path, capsys, changes, fragment):
    """Issue 15 case 9: every sidecar field is checked; one line, exit 2."""
    from gluon_cnns.cli import predict
    import shutil
    prefix = str(tmp_path / "edited")
    for suffix in ("-symbol.json", "-0000.params"):
        shutil.copy(trained_run["export"] + suffix, prefix + suffix)
    meta = json.load(open(trained_run["export"] + ".json"))
    meta.update(changes)
    (tmp_path / "edited.json").write_text(json.dumps(meta))
    line = _one_line(capsys, predict.main, [trained_run["image"], "--model", prefix], "predict",
                     fragment)
    assert line.startswith("predict: error: --model %s: " % prefix)


@pytest.mark.parametrize("changes, fragment", [
    ({"resize": "big"}, "'big'"),
    ({"resize": [28]}, "[28]"),
    ({"classes": "ten"}, "'ten'"),
])
def test_predict_with_a_damaged_config(trained_run, tmp_path, capsys, changes, fragment):
    """Issue 15 case 9: a save-dir's config.json with a wrong type; one line, exit 2.

    (Whether the run folder's reader or checkpoint_meta finds it: the line names the key
    and the value.)
    """
    from gluon_cnns.cli import predict
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained_run["run"], str(run))
    config = json.load(open(str(run / "config.json")))
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))
    line = _one_line(capsys, predict.main, [trained_run["image"], "--model", str(run)],
                     "predict", fragment)
    assert list(changes)[0] in line


def test_export_out_ending_in_a_slash_writes_inside_the_folder(trained_run, tmp_path, capsys):
    """Issue 15 case 5: --out dir/ wrote dir-symbol.json ... beside dir, in the parent."""
    from gluon_cnns.cli import export
    (tmp_path / "exports").mkdir()
    assert export.main(["--save-dir", trained_run["run"], "--out",
                        str(tmp_path / "exports") + "/", "--formats", "symbol"]) == 0
    assert sorted(os.listdir(str(tmp_path))) == ["exports"]
    assert sorted(os.listdir(str(tmp_path / "exports"))) == [
        "lenet-0000.params", "lenet-symbol.json", "lenet.json"]
    out = capsys.readouterr().out
    assert "wrote %s" % (tmp_path / "exports" / "lenet.json") in out
    assert "replaced" not in out
    # Again: the export there is replaced as a whole, and the output says so.
    assert export.main(["--save-dir", trained_run["run"], "--out",
                        str(tmp_path / "exports") + "/", "--formats", "symbol"]) == 0
    assert "replaced the previous export %s" % (tmp_path / "exports" / "lenet") in \
        capsys.readouterr().out


def _idx_folder(folder, train_labels, n_train=8):
    """The four IDX files of a tiny Fashion-MNIST, with the given training labels."""
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte": np.zeros((n_train, 28, 28), np.uint8),
              "train-labels-idx1-ubyte": np.asarray(train_labels, np.uint8),
              "t10k-images-idx3-ubyte": np.zeros((4, 28, 28), np.uint8),
              "t10k-labels-idx1-ubyte": np.arange(4, dtype=np.uint8)}
    for name, array in arrays.items():
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        header += struct.pack(">%dI" % array.ndim, *array.shape)
        (folder / (name + ".gz")).write_bytes(gzip.compress(header + array.tobytes()))
    return str(folder)


@pytest.mark.parametrize("labels, n_train, fragment", [
    ([0, 1, 2, 3, 12, 5, 6, 7], 8, "train-images-idx3-ubyte.gz: labels span 0..12, but "
                                   "Fashion-MNIST has classes 0..9; the files are damaged or of "
                                   "another data set"),
    ([], 0, "train-images-idx3-ubyte.gz holds no examples; the file is empty or cut short"),
])
def test_train_on_idx_files_that_cannot_train(tmp_path, capsys, labels, n_train, fragment):
    """Issue 15 case 13: labels beyond the classes gave train acc 0.000, no images loss nan."""
    from gluon_cnns.cli import train
    data = _idx_folder(tmp_path / "data", labels, n_train)
    _one_line(capsys, train.main, ["--net", "lenet", "--epochs", "1", "--quiet", "--data-dir",
                                   data], "gluon-cnns-train", fragment)


def test_launch_a_job_too_big_to_follow(capsys):
    """Issue 15 case 11: OSError: Too many open files, after starting thousands of processes."""
    from gluon_cnns.cli import launch
    _one_line(capsys, launch.main, ["-n", "25000", "-s", "1", "--", "true"],
              "gluon-cnns-launch", "-n 25000 -s 1 is 25002 processes with the scheduler; one "
                                   "launcher starts at most 4096")

"""Tests of gluon_cnns.utils.training (try_gpu, evaluate_accuracy, train) and utils.io."""
import io
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import nn

from gluon_cnns import utils
from gluon_cnns import io as gio
from gluon_cnns.training import evaluate_accuracy, train, try_all_gpus, try_gpu

EPOCH_LINE = re.compile(r"^epoch \d+, loss \d+\.\d{4}, train acc \d\.\d{3}, "
                        r"test acc \d\.\d{3}, time \d+\.\d sec$")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_batches(num_batches, batch_size=32, seed=0):
    """An easy 2-class problem: class 1 images are brighter than class 0 images."""
    rng = np.random.RandomState(seed)
    batches = []
    for _ in range(num_batches):
        y = rng.randint(0, 2, size=batch_size).astype("float32")
        X = (rng.rand(batch_size, 1, 8, 8) * 0.5 + 0.5 * y[:, None, None, None]).astype("float32")
        batches.append((mx.nd.array(X), mx.nd.array(y)))
    return batches


def small_net(seed=0):
    """A conv net without BatchNorm or Dropout, so that results are deterministic."""
    mx.random.seed(seed)
    net = nn.HybridSequential()
    with net.name_scope():  # names local to the net, so sorted names line up across nets
        net.add(nn.Conv2D(4, kernel_size=3, activation="relu"), nn.MaxPool2D(2),
                nn.Dense(16, activation="relu"), nn.Dense(2))
    net.initialize(mx.init.Xavier())
    return net


def copy_params(src, dst, ctx):
    """Give ``dst`` exactly the (already shaped) parameters of ``src`` on ``ctx``."""
    dst.initialize(mx.init.Xavier(), ctx=ctx)
    dst(mx.nd.zeros((1, 1, 8, 8), ctx=ctx[0]))  # finish deferred initialization
    for (_, p_src), (_, p_dst) in zip(sorted(src.collect_params().items()),
                                      sorted(dst.collect_params().items())):
        p_dst.set_data(p_src.data())


def fit(net, batches, ctx, epochs=1, **kwargs):
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    return train(batches, batches, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, ctx,
                 epochs, progress=False, **kwargs)


# ---------------------------------------------------------------- devices

def test_try_gpu_falls_back_to_cpu_without_gpu():
    assert mx.context.num_gpus() == 0, "this test expects the GPU-less test machine"
    assert try_gpu() == mx.cpu()
    assert try_all_gpus() == [mx.cpu()]


def test_try_gpu_skips_a_listed_but_unusable_gpu(monkeypatch):
    # The CPU build of MXNet raises MXNetError on any GPU allocation: a GPU
    # that is "there" but does not work.
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 1)
    assert try_gpu(0) == mx.cpu()
    assert try_all_gpus() == [mx.cpu()]


def test_utils_reexports_the_tutorial_helpers():
    for name in ("try_gpu", "try_all_gpus", "evaluate_accuracy", "train", "load_data",
                 "load_data_fashion_mnist", "load_data_mnist", "load_data_cifar10",
                 "FASHION_MNIST_CLASSES"):
        assert hasattr(utils, name), name


# ---------------------------------------------------------------- evaluate_accuracy

@pytest.mark.parametrize("ctx", [mx.cpu(), [mx.cpu(0), mx.cpu(1)]])
def test_evaluate_accuracy_is_argmax_equals_label(ctx):
    logits = mx.nd.array([[0, 1], [1, 0], [0, 1], [1, 0], [0, 1]])  # predicts 1,0,1,0,1
    labels = mx.nd.array([1, 0, 0, 0, 0])                           # 3 of 5 right
    batches = [(logits[:3], labels[:3]), (logits[3:], labels[3:])]
    assert evaluate_accuracy(batches, lambda X: X, ctx) == pytest.approx(0.6)


# ---------------------------------------------------------------- train

def test_train_prints_d2l_lines_and_returns_history(capsys):
    net = small_net()
    history = fit(net, toy_batches(8), mx.cpu(), epochs=3)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"training on cpu\(0\), \d+ threads?", lines[0])
    assert len(lines) == 4 and all(EPOCH_LINE.match(l) for l in lines[1:]), lines
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for r in history:
        assert set(r) == {"epoch", "loss", "train_acc", "test_acc", "time", "cpu_time",
                          "images_per_sec", "lr"}
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert r["lr"] == 0.5 and r["time"] > 0 and r["images_per_sec"] > 0
        assert r["cpu_time"] > 0
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["train_acc"] > 0.6


def test_short_last_batch_steps_with_the_nominal_batch_size(capsys):
    # 32 + 32 + 5 examples: every step must divide by 32, so that the 5 examples of
    # the last batch get the same per-example weight as all the others.
    batches = toy_batches(2, batch_size=32) + toy_batches(1, batch_size=5, seed=1)
    net = small_net()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    steps = []
    original = trainer.step
    trainer.step = lambda batch_size, **kw: (steps.append(batch_size), original(batch_size, **kw))
    train(batches, batches, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, mx.cpu(), 1,
          progress=False)
    assert steps == [32, 32, 32]


def test_train_start_epoch_and_callback(capsys):
    seen = []
    history = fit(small_net(), toy_batches(2), mx.cpu(), epochs=4, start_epoch=2,
                  callback=seen.append)
    assert [r["epoch"] for r in history] == [3, 4]
    assert seen == history
    assert "epoch 3," in capsys.readouterr().out


def test_train_epoch_lr_hook_sets_the_rate(capsys):
    history = fit(small_net(), toy_batches(2), mx.cpu(), epochs=2,
                  epoch_lr=lambda epoch: 0.1 / epoch)
    assert [r["lr"] for r in history] == pytest.approx([0.1, 0.05])


def test_two_contexts_give_the_same_parameters_as_one(capsys):
    batches = toy_batches(6, batch_size=32)
    reference = small_net(seed=1)
    reference(batches[0][0])  # shapes known

    one, two = nn.HybridSequential(), nn.HybridSequential()
    for net in (one, two):
        with net.name_scope():
            net.add(nn.Conv2D(4, kernel_size=3, activation="relu"), nn.MaxPool2D(2),
                    nn.Dense(16, activation="relu"), nn.Dense(2))
    copy_params(reference, one, [mx.cpu(0)])
    copy_params(reference, two, [mx.cpu(0), mx.cpu(1)])

    h1 = fit(one, batches, mx.cpu(0), epochs=2)
    h2 = fit(two, batches, [mx.cpu(0), mx.cpu(1)], epochs=2)
    assert "training on [cpu(0), cpu(1)]" in capsys.readouterr().out
    for (name, p1), (_, p2) in zip(sorted(one.collect_params().items()),
                                   sorted(two.collect_params().items())):
        for data in p2.list_data():  # both copies of the 2-context net agree, too
            np.testing.assert_allclose(p1.data().asnumpy(), data.asnumpy(),
                                       rtol=1e-5, atol=1e-5, err_msg=name)
    for r1, r2 in zip(h1, h2):
        assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-5)
        assert r1["train_acc"] == pytest.approx(r2["train_acc"])


def test_train_reads_the_device_a_fixed_number_of_times_per_epoch(monkeypatch, capsys):
    calls = {"n": 0}
    real_asnumpy = mx.nd.NDArray.asnumpy

    def counting_asnumpy(self):
        calls["n"] += 1
        return real_asnumpy(self)

    def counting_asscalar(self):
        calls["n"] += 1
        return real_asnumpy(self)[0]

    monkeypatch.setattr(mx.nd.NDArray, "asnumpy", counting_asnumpy)
    monkeypatch.setattr(mx.nd.NDArray, "asscalar", counting_asscalar)
    reads = []
    for num_batches in (2, 16):
        net = small_net()
        calls["n"] = 0
        fit(net, toy_batches(num_batches), mx.cpu(), epochs=1)
        reads.append(calls["n"])
    assert reads[0] == reads[1], "host reads grow with the number of batches: %s" % reads
    assert reads[0] <= 4


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    out = FakeTTY()
    monkeypatch.setattr("sys.stdout", out)
    net = small_net()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    train(toy_batches(4), toy_batches(1), net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
          mx.cpu(), 1, progress=True)
    text = out.getvalue()
    assert "img" in text  # tqdm drew its bar (unit "img")
    assert any(EPOCH_LINE.match(l.strip()) for l in re.split(r"[\r\n]", text))


# ---------------------------------------------------------------- utils.io

def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.json"
    gio.write_json(str(path), {"x": 1})
    gio.write_json(str(path), {"x": 2})
    assert gio.read_json(str(path)) == {"x": 2}
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.txt"
    gio.write_text(str(path), "old")

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        gio.atomic_write(str(path), broken)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_jsonl_round_trip(tmp_path):
    path = str(tmp_path / "log.jsonl")
    records = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    gio.write_jsonl(path, records)
    assert gio.read_jsonl(path) == records
    assert [json.loads(l) for l in open(path)] == records


def test_gluoncv_schedules_load_beside_pytorch_2(tmp_path):
    # GluonCV 0.10.5 refuses to import when torch >= 2 is installed; our schedules must not.
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("__version__ = '2.13.0+cpu'\n")
    code = ("import gluon_cnns.training.optim as o, torch\n"
            "s = o.make_lr_scheduler({'lr': 0.1, 'epochs': 2, 'lr_schedule': 'step',\n"
            "                         'lr_steps': [1], 'lr_factor': 0.1}, 5)\n"
            "print(s(5), s(6), torch.__version__)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.1", "0.010000000000000002", "2.13.0+cpu"]

"""The non-finite loss guard: nan_policy "stop" names the first bad batch, "skip" undoes it."""
import json
import os
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import nn

import gluon_cnns.training.engine as training
from gluon_cnns.cli.train import main
from gluon_cnns.errors import GluonCNNsError, NonFiniteLossError
from gluon_cnns.training import train

DATA = "/usr/share/datasets/fashion-mnist"


def batches(num, nan_at=(), seed=0):
    """Easy 2-class batches of 16 8x8 images; the batches in ``nan_at`` (1-based) hold a nan."""
    rng = np.random.RandomState(seed)
    out = []
    for b in range(1, num + 1):
        y = rng.randint(0, 2, size=16).astype("float32")
        X = (rng.rand(16, 1, 8, 8) * 0.5 + 0.5 * y[:, None, None, None]).astype("float32")
        if b in nan_at:
            X[3, 0, 2, 2] = np.nan
        out.append((mx.nd.array(X), mx.nd.array(y)))
    return out


def bn_net(use_bias=True):
    """With BatchNorm: a nan batch would also poison its running statistics. Without
    biases no parameter's shape is known before the first batch."""
    mx.random.seed(0)
    net = nn.HybridSequential()
    with net.name_scope():  # names local to the net (see tests/test_resume.py)
        net.add(nn.Conv2D(4, kernel_size=3, use_bias=use_bias), nn.BatchNorm(),
                nn.Activation("relu"), nn.MaxPool2D(2), nn.Dense(2, use_bias=use_bias))
    net.initialize(mx.init.Xavier())
    return net


def fit(net, data, epochs=1, optimizer="sgd", **kwargs):
    params = {"learning_rate": 0.5}
    if optimizer == "sgd":
        params["momentum"] = 0.9
    trainer = gluon.Trainer(net.collect_params(), optimizer, params)
    return train(data, data[:2], net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, mx.cpu(),
                 epochs, progress=False, **kwargs)


def values(net):
    """Every parameter, BatchNorm's running statistics included, in order."""
    return [p.data().asnumpy() for p in net.collect_params().values()]


def test_stop_names_the_first_bad_batch_and_its_lr(capsys):
    with pytest.raises(NonFiniteLossError) as info:
        fit(bn_net(), batches(8, nan_at=(3, 5)))
    e = info.value
    assert (e.epoch, e.batch, e.lr) == (1, 3, 0.5)
    # oneDNN's max pooling drops a nan, so the loss may stay finite while the
    # gradients (through BatchNorm's batch mean) are not.
    assert e.what in ("loss is nan", "gradient is not finite")
    assert str(e).startswith("%s at epoch 1 batch 3 (lr 0.5); lower the learning rate" % e.what)
    assert "epoch 1," not in capsys.readouterr().out  # no epoch record for a poisoned epoch


def test_stop_looks_at_the_device_count_lazily(monkeypatch, capsys):
    # Told to look after every batch, it stops one batch after the bad one (the
    # count it reads is the previous batch's, which is ready: no wait).
    monkeypatch.setattr(training, "_NAN_CHECK_S", 0.0)
    seen = []
    with pytest.raises(NonFiniteLossError) as info:
        fit(bn_net(), batches(10, nan_at=(3,)), batch_callback=lambda p: seen.append(p.batch))
    assert info.value.batch == 3
    assert seen == [1, 2, 3]  # stopped in batch 4, before its callback


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_skip_undoes_the_bad_batch_exactly(optimizer, capsys):
    clean = batches(6)
    with_nan = clean[:2] + batches(1, nan_at=(1,), seed=1) + clean[2:]
    # One after the other: a net draws its initial weights in its first batch.
    reference = bn_net()
    fit(reference, clean, optimizer=optimizer, nan_policy="skip")
    skipping = bn_net()
    after = {}  # batch -> every value after it
    history = fit(skipping, with_nan, optimizer=optimizer, nan_policy="skip",
                  batch_callback=lambda p: after.setdefault(p.batch, values(skipping)))
    assert history[0]["nan_skips"] == 1
    # The bad third batch left every value (running statistics included) as the second
    # left it; the fourth, a good one, changed every one of them.
    for a, b, c in zip(after[2], after[3], after[4]):
        assert np.array_equal(a, b) and not np.array_equal(b, c)
    assert np.isfinite(history[0]["loss"])
    if optimizer == "sgd":  # Adam's bias correction counts the skipped update
        for a, b in zip(values(reference), values(skipping)):
            assert np.array_equal(a, b)
    assert all(np.isfinite(v).all() for v in values(skipping))
    assert "skipped 1 non-finite batch" in capsys.readouterr().out


@pytest.mark.parametrize("use_bias", [True, False])
def test_skip_on_the_very_first_batch_of_a_fresh_net(capsys, use_bias):
    data = batches(4, nan_at=(1,))
    initial = bn_net(use_bias)
    initial(data[1][0])  # draws the initial weights, as the first batch does
    net, after = bn_net(use_bias), {}
    history = fit(net, data, nan_policy="skip",
                  batch_callback=lambda p: after.setdefault(p.batch, values(net)))
    assert history[0]["nan_skips"] == 1
    # The net ends its skipped first batch as it was drawn; the second batch trains it.
    for a, b, c in zip(values(initial), after[1], after[2]):
        assert np.array_equal(a, b) and not np.array_equal(b, c)


def test_not_finite_looks_at_the_loss_and_every_gradient():
    """1 exactly when the loss or an element of a gradient is nan or infinite, across the
    chunks of _MAX_ARRAYS_PER_OP arrays the check is split into."""
    n = training._MAX_ARRAYS_PER_OP

    def flag(loss, grads):
        return training._not_finite(mx.nd.array([loss]), [mx.nd.array(g) for g in grads])
    finite = [[0.5, -2.0]] * (2 * n + 1)  # three chunks
    assert flag(1.0, finite).asscalar() == 0
    for bad in (np.nan, np.inf, -np.inf):
        assert flag(bad, finite).asscalar() == 1  # the loss alone
        assert flag(1.0, finite[:-1] + [[0.5, bad]]).asscalar() == 1  # in the last chunk
    # Finite, with an all-zero chunk, and with chunks whose squares sum to 1e20 each
    # (a product of the chunks' sums would overflow float32, a quotient divide by 0).
    assert flag(1.0, finite[:n] + [[0.0, 0.0]] * n).asscalar() == 0
    assert flag(1.0, [[1e10]] * (2 * n)).asscalar() == 0


def test_bad_nan_policy_and_skip_inside_the_kvstore_are_refused(capsys):
    with pytest.raises(GluonCNNsError, match="nan_policy must be one of 'stop', 'skip'"):
        fit(bn_net(), batches(2), nan_policy="ignore")
    net = bn_net()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    net2 = nn.Dense(2)
    net2.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    trainer2 = gluon.Trainer(net2.collect_params(), "sgd", {"learning_rate": 0.1})
    with pytest.raises(GluonCNNsError, match="update_on_kvstore=False"):
        train(batches(2), batches(1), net2, gluon.loss.SoftmaxCrossEntropyLoss(), trainer2,
              [mx.cpu(0), mx.cpu(1)], 1, progress=False, nan_policy="skip")
    del trainer


def test_cli_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    argv = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "1024", "--limit-test", "128",
            "--batch-size", "64", "--lr", "10000", "--seed", "3", "--epochs", "1",
            "--save-dir", run_dir, "--checkpoint-every", "1", "--quiet"]
    assert main(argv) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    m = re.match(r"gluon-cnns-train: error: (loss is (nan|inf)|gradient is not finite) at epoch 1 "
                 r"batch (\d+) \(lr 10000\); the last good checkpoint, at epoch 1 batch (\d+), "
                 r"is kept in (.+): start again with a lower --lr, or continue it with --resume "
                 r"--nan-policy skip to skip such batches$", err[0])
    assert m, err[0]
    bad, kept = int(m.group(3)), int(m.group(4))
    assert kept == bad - 1 and m.group(5) == run_dir
    with open(os.path.join(run_dir, "checkpoint.json")) as f:
        assert json.load(f)["batch"] == kept

    # Continue it, skipping the bad batches: it ends, with finite parameters.
    assert main(["--save-dir", run_dir, "--resume", "--nan-policy", "skip", "--quiet"]) == 0
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        record = json.loads(f.readlines()[-1])
    assert record["nan_skips"] >= 1
    params = mx.nd.load(os.path.join(run_dir, "epoch-0001.params"))
    assert all(np.isfinite(v.asnumpy()).all() for v in params.values())


def test_skip_undoes_the_bad_batchs_step_of_the_weight_ema(capsys):
    """With a weight EMA (training/tricks.py) a skipped batch leaves the average too: it
    ends as the average of the run without that batch, bit for bit."""
    from gluon_cnns.training.tricks import Tricks, WeightEMA
    clean = batches(5)
    with_nan = clean[:2] + batches(1, nan_at=(1,), seed=1) + clean[2:]
    shadows = []
    for data in (clean, with_nan):
        net = bn_net()
        tricks = Tricks(ema=WeightEMA(net, 0.5))
        fit(net, data, nan_policy="skip", tricks=tricks)
        shadows.append([a.asnumpy() for a in tricks.ema.shadow])
    for a, b in zip(*shadows):
        assert np.array_equal(a, b)
    assert "skipped 1 non-finite batch" in capsys.readouterr().out

"""The nets and helpers used as plain Gluon and d2l code uses them, with code this project
did not write: Gluon's own slicing, summary, hooks and parameter files, MXNet's
visualizer, d2l's call forms (d2lzh 1.0.0: ``train_ch5(net, train_iter, test_iter,
batch_size, trainer, ctx, num_epochs)``, ``evaluate_accuracy(data_iter, net,
ctx=[mx.cpu()])``) and the old gluon tutorials' ``utils.train(..., print_batches=N)``."""
import contextlib
import gzip
import io
import os
import struct

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import nn

import gluon_cnns
from gluon_cnns import utils

import layer_tables
from test_models import tutorial_shape

HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = "/usr/share/datasets/fashion-mnist"
SIDES = {"lenet_bn": 28, "resnet18": 64, "googlenet": 96, "densenet": 64, "vgg11": 224,
         "resnet20_cifar": 32, "nin": 224}


def initialized(name, classes=10):
    mx.random.seed(0)
    net = gluon_cnns.get_model(name, classes=classes)
    net.initialize(mx.init.Xavier())
    return net


def batch_for(name, n=2):
    channels = tutorial_shape(name)[1]
    return mx.nd.random.uniform(shape=(n, channels, SIDES[name], SIDES[name]))


# ---------------------------------------------------------------- Gluon idioms

@pytest.mark.parametrize("name", ["lenet_bn", "resnet18", "googlenet", "densenet",
                                  "resnet20_cifar", "vgg11"])
def test_slicing_gives_a_plain_sequential_of_the_same_blocks(name):
    net = gluon_cnns.get_model(name)
    head = net[:-1]
    assert type(head) is nn.HybridSequential
    assert len(head) == len(net) - 1
    assert all(a is b for a, b in zip(head, list(net)[:-1]))  # shared, not copies
    assert net[-1] is list(net)[-1]


@pytest.mark.parametrize("name", ["lenet_bn", "resnet18", "googlenet", "densenet",
                                  "resnet20_cifar"])
def test_features_are_the_net_without_its_classifier(name):
    net = initialized(name)
    x = batch_for(name)
    feats = net[:-1](x)
    assert np.array_equal(feats.asnumpy(), net.features(x).asnumpy())
    assert np.allclose(net.output(feats).asnumpy(), net(x).asnumpy(), atol=1e-5)


def test_nin_classifier_is_its_last_block_and_pooling():
    net = gluon_cnns.get_model("nin")
    assert len(net.output) == 3 and len(net.features) == len(net) - 3
    assert isinstance(list(net.output)[1], nn.GlobalAvgPool2D)


@pytest.mark.parametrize("hybridize", [False, True])
def test_swapping_the_head_fine_tunes_on_other_classes(hybridize):
    net = initialized("resnet18")
    if hybridize:
        net.hybridize()
    net(batch_for("resnet18"))
    net.output = nn.Dense(3)
    net.output.initialize(mx.init.Xavier())
    assert net(batch_for("resnet18")).shape == (2, 3)
    assert len(net) == 7 and isinstance(net[-1], nn.Dense)
    assert net.output is net[-1]


def test_gluon_summary_and_hooks_see_one_real_forward():
    net = initialized("lenet_bn")
    seen = []
    net.register_forward_pre_hook(lambda block, inputs: seen.append(("pre", type(inputs[0]))))
    net.register_forward_hook(lambda block, inputs, out: seen.append(("post", type(out))))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        net.summary(mx.nd.zeros((1, 1, 28, 28)))       # Gluon's own, on a fresh net
    assert "Total params: 45330" in out.getvalue()
    net(mx.nd.zeros((1, 1, 28, 28)))
    assert seen == [("pre", mx.nd.NDArray), ("post", mx.nd.NDArray)] * 2


@pytest.mark.parametrize("hybridize", [False, True])
def test_too_small_input_is_still_one_error(hybridize):
    net = initialized("alexnet")
    if hybridize:
        net.hybridize()
    with pytest.raises(gluon_cnns.InputTooSmallError, match="at least 67x67"):
        net(mx.nd.zeros((1, 1, 28, 28)))


def test_mxnet_visualizer_counts_lenet_bn_parameters():
    symbol = gluon_cnns.get_model("lenet_bn")(mx.sym.var("data"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mx.viz.print_summary(symbol, shape={"data": (1, 1, 28, 28)})
    assert "Total params: 44878" in out.getvalue()  # learnable ones; was 16,078


@pytest.mark.parametrize("name", ["lenet", "lenet_bn"])
def test_parameter_files_of_earlier_nets_still_load(name):
    # Saved by gluon_cnns at commit d0cc292 (before the explicit Flatten renumbered the
    # blocks), with the input and the logits it gave.
    saved = np.load(os.path.join(HERE, "data", "%s-d0cc292-logits.npy" % name))
    x, logits = saved[:, :784].reshape(2, 1, 28, 28), saved[:, 784:]
    net = gluon_cnns.get_model(name)
    net.load_parameters(os.path.join(HERE, "data", "%s-d0cc292.params" % name))
    with autograd.predict_mode():
        assert np.allclose(net(mx.nd.array(x)).asnumpy(), logits, atol=1e-5)


def test_a_file_of_another_net_is_still_refused(tmp_path):
    net = initialized("lenet")
    net(mx.nd.zeros((1, 1, 28, 28)))
    net.save_parameters(str(tmp_path / "lenet.params"))
    with pytest.raises(AssertionError):
        gluon_cnns.get_model("lenet_bn").load_parameters(str(tmp_path / "lenet.params"))


# Parameter files of AlexNet and VGG as laid out before their explicit Flatten, written by
# plain Gluon (whose Dense flattens by itself).

def _unflattened_alexnet(classes=10):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(96, kernel_size=11, strides=4, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(256, kernel_size=5, padding=2, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(classes))
    return net


def _unflattened_vgg(config, ratio, fc_units, classes=10):
    """One HybridSequential per run of 3x3 convs up to its max-pool, then the dense layers."""
    net, block = nn.HybridSequential(), nn.HybridSequential()
    for layer in layer_tables.VGG_CONFIGS[config]:
        if layer == "M":
            block.add(nn.MaxPool2D(pool_size=2, strides=2))
            net.add(block)
            block = nn.HybridSequential()
        else:
            block.add(nn.Conv2D(layer // ratio, kernel_size=3, padding=1, activation="relu"))
    net.add(nn.Dense(fc_units, activation="relu"), nn.Dropout(0.5),
            nn.Dense(fc_units, activation="relu"), nn.Dropout(0.5), nn.Dense(classes))
    return net


# Narrow VGGs (fewer channels and dense units) keep the files small; the layout is the same.
NARROW = {"ratio": 16, "fc_units": 64}
UNFLATTENED = [("alexnet", _unflattened_alexnet, {}, 67),
               ("vgg11", lambda: _unflattened_vgg("A", 16, 64), NARROW, 32),
               ("vgg11_small", lambda: _unflattened_vgg("A", 4, 64), {"fc_units": 64}, 32),
               ("vgg19", lambda: _unflattened_vgg("E", 16, 64), NARROW, 32)]


@pytest.mark.parametrize("name,unflattened,kwargs,side", UNFLATTENED,
                         ids=[case[0] for case in UNFLATTENED])
def test_parameter_files_without_the_flatten_still_load(name, unflattened, kwargs, side,
                                                        tmp_path):
    old = unflattened()
    mx.random.seed(5)
    old.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    x = mx.nd.array(np.random.RandomState(0).uniform(size=(2, 1, side, side)))
    expected = old(x).asnumpy()  # predict mode: Dropout is the identity
    path = str(tmp_path / ("%s.params" % name))
    old.save_parameters(path)
    net = gluon_cnns.get_model(name, **kwargs)
    # The Flatten renumbers the dense layers: the file's structural names are not the net's.
    structural = set(net._collect_params_with_prefix())  # pylint: disable=protected-access
    assert set(mx.nd.load(path)) != structural
    net.load_parameters(path)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- d2l call forms

def small_iters(n_train=512, n_test=256, batch_size=64):
    return utils.load_data_fashion_mnist(batch_size, limit_train=n_train, limit_test=n_test)


def test_evaluate_accuracy_without_ctx_uses_the_nets_device():
    train_iter, test_iter = small_iters()
    net = initialized("lenet_bn")
    assert utils.evaluate_accuracy(test_iter, net) == \
        utils.evaluate_accuracy(test_iter, net, mx.cpu())


def test_train_ch5_takes_d2ls_arguments(capsys):
    train_iter, test_iter = small_iters()
    net = initialized("lenet_bn")
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    history = utils.train_ch5(net, train_iter, test_iter, 64, trainer, mx.cpu(), 2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("training on cpu(0)")
    assert [line.split(",")[0] for line in out[1:]] == ["epoch 1", "epoch 2"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_d2l_order_given_to_train_is_one_clear_type_error():
    train_iter, test_iter = small_iters()
    net = initialized("lenet_bn")
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    with pytest.raises(TypeError, match="call train_ch5") as info:
        utils.train(net, train_iter, test_iter, 64, trainer, mx.cpu(), 1)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="not batches of data"):
        utils.evaluate_accuracy(net, test_iter)


def test_print_batches_prints_the_old_tutorials_lines(capsys):
    train_iter, test_iter = small_iters()
    net = initialized("lenet_bn")
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    utils.train(train_iter, test_iter, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
                mx.cpu(), 1, print_batches=3)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Batch")]
    assert [l.split(".")[0] for l in lines] == ["Batch 3", "Batch 6"]  # 8 batches of 64
    assert all("Loss:" in l and "Train acc" in l for l in lines)


def test_ndarrayiter_and_databatches_train_like_pairs(capsys):
    train_iter, test_iter = small_iters(n_train=300)
    X = np.concatenate([x.asnumpy() for x, _ in train_iter])
    y = np.concatenate([t.asnumpy() for _, t in train_iter])
    histories = []
    for data in (mx.io.NDArrayIter(X, y, batch_size=64),           # pads its last batch
                 [(mx.nd.array(X[i:i + 64]), mx.nd.array(y[i:i + 64]))
                  for i in range(0, 300, 64)]):
        net = initialized("lenet_bn")
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
        histories.append(utils.train(data, test_iter, net, gluon.loss.SoftmaxCrossEntropyLoss(),
                                     trainer, mx.cpu(), 2, batch_size=64))
    # The same batches (the padding dropped), so the same numbers; reset between epochs.
    for a, b in zip(*histories):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["test_acc"] == b["test_acc"]


# ---------------------------------------------------------------- plain Gluon code

def read_idx(path):
    """A reader written here, from the IDX format's description, for the plain-Gluon tests."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion(split, n):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(FASHION, prefix + "-images-idx3-ubyte.gz"))[:n]
    labels = read_idx(os.path.join(FASHION, prefix + "-labels-idx1-ubyte.gz"))[:n]
    return images.astype(np.float32)[:, None] / 255, labels.astype(np.float32)


def test_a_zoo_net_in_a_loop_written_in_plain_gluon():
    X, y = fashion("train", 4096)
    Xt, yt = fashion("test", 512)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(X, y), batch_size=64, shuffle=True)
    mx.random.seed(1)
    np.random.seed(1)
    net = gluon_cnns.get_model("lenet_bn")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    for epoch in range(3):
        for data, label in loader:
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(data.shape[0])
    with autograd.predict_mode():
        accuracy = (net(mx.nd.array(Xt)).argmax(axis=1).asnumpy() == yt).mean()
    assert accuracy > 0.5  # chance is 0.1; seeds 1 and 2 gave 0.71 and 0.75


def test_fine_tuning_a_swapped_head_keeps_the_frozen_features():
    classes = (0, 1, 9)  # t-shirt, trouser, ankle boot -> 0, 1, 2
    X, y = fashion("train", 6000)
    keep = np.isin(y, classes)
    X, y = X[keep][:384], np.searchsorted(classes, y[keep][:384]).astype(np.float32)
    X = mx.nd.image.resize(mx.nd.array(X).transpose((0, 2, 3, 1)), size=(64, 64))
    X = X.transpose((0, 3, 1, 2))
    net = initialized("resnet18")
    net(X[:2])                                          # "pretrained" weights, shapes known
    net.output = nn.Dense(3)
    net.output.initialize(mx.init.Xavier())
    net.features.collect_params().setattr("grad_req", "null")
    before = {k: v.data().copy() for k, v in net.features.collect_params().items()}
    trainer = gluon.Trainer(net.output.collect_params(), "sgd", {"learning_rate": 0.1,
                                                                 "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    labels = mx.nd.array(y)
    with autograd.predict_mode():
        feats = net.features(X)                          # frozen: BatchNorm statistics too
        start = (net.output(feats).argmax(axis=1) == labels).mean().asscalar()
    for _ in range(30):
        for i in range(0, len(y), 64):
            with autograd.record():
                loss = loss_fn(net.output(feats[i:i + 64]), labels[i:i + 64])
            loss.backward()
            trainer.step(64)
    with autograd.predict_mode():
        end = (net(X).argmax(axis=1) == labels).mean().asscalar()
    assert end > max(start, 0.8)
    for k, v in net.features.collect_params().items():
        assert np.array_equal(v.data().asnumpy(), before[k].asnumpy()), k

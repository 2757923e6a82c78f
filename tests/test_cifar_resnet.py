"""The CIFAR ResNets of He et al. 2015 section 4.2: shortcut options A and B, GluonCV's weights."""
import random

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

import gluon_cnns
from gluon_cnns import models
from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.models import load_gluoncv_params
from gluon_cnns.models.gluoncv_weights import _creation_key
from gluon_cnns.models.resnet_cifar import CIFARBasicBlock, ZeroPadShortcut
from gluon_cnns.shapes import count_parameters

# Learnable parameters at a 3-channel 32x32 input and 10 classes. Option A adds none to the
# plain net (section 4.2); option B's two 1x1 projections add 16*32 + 2*32 + 32*64 + 2*64.
LEARNABLE = {"A": {14: 172506, 20: 269722, 32: 464154, 44: 658586, 56: 853018, 110: 1727962},
             "B": {14: 175258, 20: 272474, 32: 466906, 44: 661338, 56: 855770, 110: 1730714}}


def _cifar_batch(batch=2, seed=0):
    return mx.nd.array(np.random.RandomState(seed).uniform(size=(batch, 3, 32, 32)))


def _walk(block):
    yield block
    for child in block._children.values():  # pylint: disable=protected-access
        yield from _walk(child)


# BatchNorm parameter -> the range its random values are drawn from.
_BATCHNORM_RANGES = (("gamma", (0.25, 0.75)), ("beta", (-0.2, 0.2)),
                     ("running_mean", (-0.2, 0.2)), ("running_var", (0.5, 1.5)))


def _randomize_batchnorm(net, seed):
    """Non-trivial BatchNorm scales, shifts and running statistics, so that copying them
    to the wrong place (or not at all) shows in the logits."""
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        for suffix, (low, high) in _BATCHNORM_RANGES:
            if name.endswith(suffix):
                param.set_data(mx.nd.array(rng.uniform(low, high, size=param.shape)))


def _gluoncv_net(name, x, seed=0, **kwargs):
    from gluoncv.model_zoo import get_model
    mx.random.seed(seed)
    net = get_model(name, **kwargs)
    net.initialize(mx.init.MSRAPrelu(factor_type="in"))  # layers with their own keep theirs
    net(x)  # finish deferred initialization
    _randomize_batchnorm(net, seed)
    return net


# ---------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("depth", [14, 20, 32, 44, 56, 110])
def test_exact_learnable_parameter_counts(depth, shortcut):
    net = gluon_cnns.get_model("resnet%d_cifar" % depth, shortcut=shortcut)
    assert count_parameters(net, (1, 3, 32, 32), learnable_only=True) == LEARNABLE[shortcut][depth]


def test_option_a_is_the_default_and_the_plain_nets_parameter_count():
    net = gluon_cnns.get_model("resnet20_cifar")
    assert net.shortcut_option == "A" and net.stem_relu
    shortcuts = [b for b in _walk(net) if isinstance(b, CIFARBasicBlock) and b.shortcut is not None]
    assert len(shortcuts) == 2
    assert all(isinstance(b.shortcut, ZeroPadShortcut) and not list(b.shortcut.collect_params())
               for b in shortcuts)
    # A plain net of depth 20: 19 bias-free 3x3 convs and their BatchNorms, a dense layer.
    widths = [(3, 16)] + [(16, 16)] * 6 + [(16, 32)] + [(32, 32)] * 5 + [(32, 64)] + [(64, 64)] * 5
    plain = sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in widths) + 64 * 10 + 10
    assert plain == LEARNABLE["A"][20]


def test_resnet14_is_the_articles_net_with_three_stages_of_two_blocks():
    net = gluon_cnns.get_model("resnet14_cifar")
    assert net.depth == 14 and [len(stage) for stage in list(net)[1:4]] == [2, 2, 2]


def test_bad_shortcut_is_refused():
    with pytest.raises(ValueError, match="'A'.*'B'"):
        models.CIFARResNet(20, shortcut="C")


# ---------------------------------------------------------------- option A

def _shortcut_reference(x, strides, extra):
    sub = x[:, :, ::strides, ::strides]
    return np.concatenate([sub, np.zeros((sub.shape[0], extra) + sub.shape[2:], x.dtype)], axis=1)


@pytest.mark.parametrize("side", [8, 7])
@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("train_mode", [True, False])
def test_option_a_shortcut_is_subsampling_and_zero_channels(side, hybridize, train_mode):
    x = np.arange(2 * 3 * side * side, dtype=np.float32).reshape(2, 3, side, side) - 40.5
    shortcut = ZeroPadShortcut(2, 3, 6)
    if hybridize:
        shortcut.hybridize(static_alloc=True, static_shape=True)
    expected = _shortcut_reference(x, 2, 3)
    x_nd = mx.nd.array(x)
    x_nd.attach_grad()
    weight = np.random.RandomState(0).uniform(size=expected.shape).astype(np.float32)
    with autograd.record(train_mode=train_mode):
        y = shortcut(x_nd)
        (y * mx.nd.array(weight)).sum().backward()
    np.testing.assert_array_equal(y.asnumpy(), expected)
    # The gradient reaches exactly the subsampled pixels, from the copied channels only.
    expected_grad = np.zeros_like(x)
    expected_grad[:, :, ::2, ::2] = weight[:, :3]
    np.testing.assert_array_equal(x_nd.grad.asnumpy(), expected_grad)


def test_option_a_pads_fewer_channels_than_it_has():
    x = np.random.RandomState(1).uniform(size=(1, 4, 6, 6)).astype(np.float32)
    y = ZeroPadShortcut(2, 4, 6)(mx.nd.array(x)).asnumpy()
    np.testing.assert_array_equal(y, _shortcut_reference(x, 2, 2))
    with pytest.raises(ValueError, match="option A"):
        ZeroPadShortcut(2, 4, 9)


def test_option_a_block_adds_the_reference_shortcut():
    mx.random.seed(0)
    block = CIFARBasicBlock(32, strides=2, in_channels=16)
    block.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(2, 16, 8, 8))
    expected = np.maximum(block.body(x).asnumpy() + _shortcut_reference(x.asnumpy(), 2, 16), 0)
    np.testing.assert_allclose(block(x).asnumpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("train_mode", [True, False])
def test_option_a_hybridized_equals_imperative(train_mode):
    mx.random.seed(0)
    net = gluon_cnns.get_model("resnet20_cifar")
    net.initialize(mx.init.Xavier())
    x = _cifar_batch(4)
    net(x)
    _randomize_batchnorm(net, 1)

    def forward_and_input_grad():
        x.attach_grad()
        with autograd.record(train_mode=train_mode):
            y = net(x)
            (y * y).sum().backward()
        return y.asnumpy(), x.grad.asnumpy()

    y_imp, g_imp = forward_and_input_grad()
    net.hybridize(static_alloc=True, static_shape=True)
    y_hyb, g_hyb = forward_and_input_grad()
    assert np.abs(y_imp).max() > 0.1 and np.abs(g_imp).max() > 0
    np.testing.assert_allclose(y_hyb, y_imp, rtol=1e-5, atol=1e-5)
    scale = np.abs(g_imp).max()
    np.testing.assert_allclose(g_hyb / scale, g_imp / scale, rtol=1e-5, atol=1e-5)


def test_stem_relu_is_selectable():
    stems = [list(gluon_cnns.get_model("resnet20_cifar", stem_relu=relu))[0]
             for relu in (True, False)]
    assert [type(layer).__name__ for layer in stems[0]] == ["Conv2D", "BatchNorm", "Activation"]
    assert [type(layer).__name__ for layer in stems[1]] == ["Conv2D", "BatchNorm"]


# ---------------------------------------------------------------- GluonCV's weights

@pytest.mark.parametrize("depth", [20, 56, 110])
def test_gluoncv_cifar_resnet_weights_give_the_same_logits(depth):
    x = _cifar_batch(4, seed=depth)
    theirs = _gluoncv_net("cifar_resnet%d_v1" % depth, x, seed=depth, classes=10)
    expected = theirs(x).asnumpy()
    ours = gluon_cnns.get_model("resnet%d_cifar" % depth, shortcut="B", stem_relu=False)
    assert load_gluoncv_params(ours, theirs) is ours
    got = ours(x).asnumpy()
    assert np.abs(expected).max() > 0.5
    assert np.abs(got - expected).max() <= 1e-5
    ours.hybridize(static_alloc=True, static_shape=True)
    assert np.abs(ours(x).asnumpy() - expected).max() <= 1e-5


def test_gluoncv_parameter_file_loads_in_any_stored_order(tmp_path):
    x = _cifar_batch(2)
    theirs = _gluoncv_net("cifar_resnet20_v1", x, seed=3, classes=10)
    expected = theirs(x).asnumpy()
    theirs.save_parameters(str(tmp_path / "saved.params"))
    arrays = list(mx.nd.load(str(tmp_path / "saved.params")).items())
    random.Random(0).shuffle(arrays)  # BatchNorm's gamma and beta have equal shapes
    mx.nd.save(str(tmp_path / "shuffled.params"), dict(arrays))
    for name in ("saved.params", "shuffled.params"):
        ours = gluon_cnns.get_model("resnet20_cifar", shortcut="B", stem_relu=False)
        load_gluoncv_params(ours, str(tmp_path / name))
        assert np.abs(ours(x).asnumpy() - expected).max() <= 1e-5, name


@pytest.mark.parametrize("theirs", ["cifar_resnet20_v1", "cifar_resnet110_v1", "vgg11", "vgg19"])
def test_file_order_rule_is_gluoncvs_creation_order(theirs):
    """save_parameters' structural names, sorted by the loader's rule, in creation order."""
    from gluoncv.model_zoo import get_model
    net = get_model(theirs, classes=10)
    structural = list(net._collect_params_with_prefix())  # pylint: disable=protected-access
    assert sorted(structural, key=_creation_key) == structural


def test_gluoncv_vgg11_weights_give_the_same_logits():
    x = mx.nd.array(np.random.RandomState(0).uniform(size=(1, 3, 224, 224)))
    theirs = _gluoncv_net("vgg11", x, seed=0, classes=10)
    expected = theirs(x).asnumpy()
    ours = load_gluoncv_params(gluon_cnns.get_model("vgg11", classes=10), theirs)
    got = ours(x).asnumpy()
    del theirs, ours
    assert np.abs(expected).max() > 0.01
    assert np.abs(got - expected).max() <= 1e-5


def _one_line_error(net, source, match):
    with pytest.raises(GluonCNNsError, match=match) as info:
        load_gluoncv_params(net, source)
    assert "\n" not in str(info.value)


def test_mismatches_are_one_line_errors(tmp_path):
    x = _cifar_batch(1)
    theirs = _gluoncv_net("cifar_resnet20_v1", x, classes=10)
    # The paper's net (option A, stem ReLU) is not GluonCV's: refused, naming the fix.
    _one_line_error(gluon_cnns.get_model("resnet20_cifar"), theirs, "shortcut='B', stem_relu=False")
    _one_line_error(gluon_cnns.get_model("resnet20_cifar", shortcut="B"), theirs, "stem_relu=False")
    # Another depth: another number of parameters.
    _one_line_error(gluon_cnns.get_model("resnet32_cifar", shortcut="B", stem_relu=False), theirs,
                    "has 167 parameters.*107")
    # Another number of classes: the same count, the dense layer's shape differs.
    _one_line_error(gluon_cnns.get_model("resnet20_cifar", classes=7, shortcut="B",
                                         stem_relu=False), theirs, r"\(7, 0\).*\(10, 64\)")
    # An uninitialized GluonCV net, a missing file, a file of another kind.
    from gluoncv.model_zoo import get_model
    fresh = get_model("cifar_resnet20_v1", classes=10)
    ours = gluon_cnns.get_model("resnet20_cifar", shortcut="B", stem_relu=False)
    _one_line_error(ours, fresh, "not initialized")
    _one_line_error(ours, str(tmp_path / "none.params"), "no such file")
    theirs.collect_params().save(str(tmp_path / "prefixed.params"))
    _one_line_error(ours, str(tmp_path / "prefixed.params"), "save_parameters")
    (tmp_path / "junk.params").write_bytes(b"not parameters")
    _one_line_error(ours, str(tmp_path / "junk.params"), "cannot read")

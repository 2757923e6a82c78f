"""The predictor's fused CPU graph: the plain net's probabilities to 1e-5, per batch shape,
and the plain net wherever fusing is refused, unequal or turned off.

The net is LeNet-BN with random weights and BatchNorm statistics far from (0, 1), so that
folding BatchNorm into the convolutions changes the arithmetic; the reference is the
Gluon net itself, run imperatively (not hybridized, not fused).
"""
import mxnet as mx
import numpy as np
import pytest

import gluon_cnns
from gluon_cnns.inference import predict, quantize
from gluon_cnns.inference.export import export_model
from gluon_cnns.inference.predict import BATCH_SIZE, FUSED_SHAPES, load_predictor

SHAPE = (1, 28, 28)
FUSE_FROM = 8  # plain forwards of a shape whose time pays for fusing it (see fake_clock)


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch):
    """Each plain forward takes 1/FUSE_FROM of the time that pays for fusing (a clock that
    advances by that at each reading): which shapes are fused does not hang on the load of
    the machine."""
    readings = iter(range(10 ** 6))
    monkeypatch.setattr(predict, "FUSE_SECONDS", 1.0)
    monkeypatch.setattr(predict, "_clock", lambda: next(readings) / FUSE_FROM)


@pytest.fixture(scope="module")
def lenet_bn(tmp_path_factory):
    """(export prefix, the Gluon net, 64 + 6 inputs, the net's imperative probabilities of
    them)."""
    mx.random.seed(3)
    net = gluon_cnns.get_model("lenet_bn", classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1,) + SHAPE))
    for name, param in net.collect_params().items():
        if name.endswith("running_mean"):
            param.set_data(mx.nd.random.normal(0, 0.5, shape=param.shape))
        elif name.endswith("running_var"):
            param.set_data(mx.nd.random.uniform(0.2, 3.0, shape=param.shape))
    prefix = str(tmp_path_factory.mktemp("fused") / "lenet_bn")
    export_model(net, prefix, SHAPE, formats=("symbol",), net_name="lenet_bn")
    inputs = np.random.RandomState(0).uniform(size=(BATCH_SIZE + 6,) + SHAPE).astype("float32")
    with mx.autograd.predict_mode():
        expected = mx.nd.softmax(net(mx.nd.array(inputs))).asnumpy()  # imperative
    return prefix, net, inputs, expected


def _ragged_shapes():
    return [(BATCH_SIZE,) + SHAPE, (6,) + SHAPE]


def _plain(predictor, inputs):
    """The predictor's own plain block on ``inputs``, in its chunks."""
    with mx.autograd.predict_mode():
        return np.concatenate([mx.nd.softmax(predictor.block(mx.nd.array(
            inputs[i:i + BATCH_SIZE]))).asnumpy() for i in range(0, len(inputs), BATCH_SIZE)])


def test_a_shape_that_comes_back_runs_fused_with_the_plain_numbers(lenet_bn, monkeypatch):
    prefix, _, inputs, expected = lenet_bn
    fuse, ran = quantize.fuse_for_cpu, []

    def counted(net, example, ctx=None):
        """oneDNN's fused graph, noting each forward it runs."""
        fused = fuse(net, example, ctx)
        return lambda x: ran.append(x.shape) or fused(x)
    monkeypatch.setattr(quantize, "fuse_for_cpu", counted)
    predictor = load_predictor(prefix)
    for _ in range(FUSE_FROM - 1):  # 64 + 6 inputs: each shape runs plain at first
        assert np.abs(predictor.probabilities(inputs) - expected).max() <= 1e-5
    assert predictor.fused_shapes == [] and ran == []
    for _ in range(2):  # the call that fuses (checked), then one through the fused graphs
        got = predictor.probabilities(inputs)
        assert np.abs(got - expected).max() <= 1e-5
    assert predictor.fused_shapes == _ragged_shapes() and predictor.plain_shapes == {}
    assert ran == _ragged_shapes() * 2  # the check, then the answer
    assert np.abs(predictor.probabilities(inputs[:BATCH_SIZE]) - expected[:BATCH_SIZE]).max() \
        <= 1e-5


def test_a_long_batch_is_fused_at_once_but_not_its_short_last_chunk(lenet_bn, monkeypatch):
    prefix, net, inputs, _ = lenet_bn
    many = np.concatenate([inputs[:BATCH_SIZE]] * FUSE_FROM + [inputs[BATCH_SIZE:]])
    fuse, built, ran = quantize.fuse_for_cpu, [], []

    def counted(net, example, ctx=None):
        built.append(example.shape)
        fused = fuse(net, example, ctx)
        return lambda x: ran.append(x.shape) or fused(x)
    monkeypatch.setattr(quantize, "fuse_for_cpu", counted)
    predictor = load_predictor(prefix)
    got = predictor.probabilities(many)  # FUSE_FROM chunks of 64, then 6
    assert built == [(BATCH_SIZE,) + SHAPE] and predictor.fused_shapes == built
    assert ran == built * FUSE_FROM  # from the first chunk on: its check, then the others
    with mx.autograd.predict_mode():
        expected = mx.nd.softmax(net(mx.nd.array(many))).asnumpy()
    assert np.abs(got - expected).max() <= 1e-5
    # One chunk fewer in a fresh predictor: too little time to pay for fusing.
    fewer = load_predictor(prefix)
    fewer.probabilities(many[BATCH_SIZE:])
    assert fewer.fused_shapes == [] and built == [(BATCH_SIZE,) + SHAPE]


def test_a_gluon_net_is_fused_too(lenet_bn):
    # What a training run's folder loads: the Gluon net itself, hybridized.
    prefix, net, inputs, expected = lenet_bn
    meta = load_predictor(prefix, fuse=False).meta
    net.hybridize()
    predictor = predict.Predictor(net, meta, "the net")
    for _ in range(FUSE_FROM + 1):
        got = predictor.probabilities(inputs)
    assert predictor.fused_shapes == _ragged_shapes()
    assert np.abs(got - expected).max() <= 1e-5


def test_fused_shapes_are_bounded(lenet_bn):
    prefix, _, inputs, expected = lenet_bn
    predictor = load_predictor(prefix)
    sizes = range(1, FUSED_SHAPES + 3)
    for _ in range(FUSE_FROM):
        for n in sizes:
            assert np.abs(predictor.probabilities(inputs[:n]) - expected[:n]).max() <= 1e-5
    assert predictor.fused_shapes == [(n,) + SHAPE for n in sizes[:FUSED_SHAPES]]


def test_a_net_that_cannot_be_fused_runs_plain(lenet_bn, monkeypatch):
    prefix, _, inputs, expected = lenet_bn

    def refuse(net, example, ctx=None):
        raise mx.base.MXNetError("MXNetError: no partition for this graph")
    monkeypatch.setattr(quantize, "fuse_for_cpu", refuse)
    predictor = load_predictor(prefix)
    for _ in range(FUSE_FROM + 1):
        got = predictor.probabilities(inputs)
        assert np.abs(got - expected).max() <= 1e-5
    assert predictor.fused_shapes == []
    assert predictor.plain_shapes == {
        shape: "fusing failed: no partition for this graph" for shape in _ragged_shapes()}


def test_a_fused_graph_with_other_numbers_is_not_used(lenet_bn, monkeypatch):
    prefix, _, inputs, _ = lenet_bn
    built = []

    def unequal(net, example, ctx=None):
        """The net with its logits shifted apart: probabilities off by more than 1e-5."""
        built.append(example.shape)
        return lambda x: net(x) * 1.01
    monkeypatch.setattr(quantize, "fuse_for_cpu", unequal)
    predictor = load_predictor(prefix)
    for _ in range(FUSE_FROM + 1):
        got = predictor.probabilities(inputs)
        assert np.array_equal(got, _plain(predictor, inputs))
    assert built == _ragged_shapes() and predictor.fused_shapes == []
    assert sorted(predictor.plain_shapes) == sorted(_ragged_shapes())
    assert all(why.startswith("fused probabilities differ by")
               for why in predictor.plain_shapes.values())


def test_fuse_false_never_fuses(lenet_bn, monkeypatch):
    prefix, _, inputs, _ = lenet_bn

    def never(net, example, ctx=None):
        raise AssertionError("fuse=False fused the net")
    monkeypatch.setattr(quantize, "fuse_for_cpu", never)
    predictor = load_predictor(prefix, fuse=False)
    for _ in range(FUSE_FROM + 1):
        got = predictor.probabilities(inputs)
    assert np.array_equal(got, _plain(predictor, inputs))
    assert predictor.fused_shapes == [] and predictor.plain_shapes == {}

"""Every registered net: shapes, parameter counts, hybridize parity, export, naming, learning.

The zoo comes from the registry: every test parametrized over ``ALL`` runs for a net
added with one registry line (its input shape comes from its recipe), as
``test_a_new_registry_line_is_picked_up_by_every_generic_test`` shows.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from functools import lru_cache

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluon_cnns
from gluon_cnns import models
from gluon_cnns.data import image_shape
from gluon_cnns.shapes import count_parameters

import layer_tables

HERE = os.path.dirname(os.path.abspath(__file__))
# He et al. 2015, table 6: learnable parameters of the CIFAR ResNets (3-channel input).
PAPER_CIFAR_PARAMS = {"resnet20_cifar": 0.27e6, "resnet32_cifar": 0.46e6,
                      "resnet44_cifar": 0.66e6, "resnet56_cifar": 0.85e6,
                      "resnet110_cifar": 1.7e6}

ALL = models.list_models()


def tutorial_shape(name, batch=1):
    """The input the net's default recipe trains on: its dataset's images, resized."""
    spec = gluon_cnns.model_spec(name)
    return (batch,) + image_shape(spec.recipe.dataset, spec.recipe.resize)


@lru_cache(maxsize=None)
def _small_side(name):
    # The smallest side the net takes, but at least 32 (deep nets on tiny maps test
    # little), and never more than the tutorial's.
    channels, side = tutorial_shape(name)[1:3]
    return min(side, max(32, gluon_cnns.get_model(name).min_input_size(channels)))


def small_shape(name, batch=2):
    """A small input the net accepts, to keep the compute-heavy checks quick."""
    return (batch, tutorial_shape(name)[1], _small_side(name), _small_side(name))


def built(name, shape, seed=0, **kwargs):
    mx.random.seed(seed)
    net = gluon_cnns.get_model(name, **kwargs)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros(shape))  # finish deferred initialization
    return net


def test_registry_lists_every_family():
    families = {"lenet", "lenet_bn", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
                "vgg11_small", "nin", "googlenet", "resnet18", "resnet34", "resnet14_cifar",
                "resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar",
                "resnet110_cifar", "densenet", "inception_mnist", "resnet_mnist"}
    assert families <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_is_hybrid_block_named_under_its_scope(name):
    net = gluon_cnns.get_model(name)
    assert isinstance(net, gluon.HybridBlock)
    prefix = net.prefix
    assert prefix and all(p.startswith(prefix) for p in net.collect_params())


@pytest.mark.parametrize("name", ALL)
def test_output_shape_at_tutorial_size(name):
    shape = tutorial_shape(name)
    net = built(name, shape)
    assert net(mx.nd.random.uniform(shape=shape)).shape == (1, 10)


@pytest.mark.parametrize("name", ALL)
def test_classes_and_three_channels(name):
    shape = small_shape(name, batch=2)
    shape = (2, 3) + shape[2:]
    net = built(name, shape, classes=7)
    assert net(mx.nd.random.uniform(shape=shape)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(layer_tables.LEARNABLE))
def test_parameter_counts_match_the_layer_tables(name):
    shape = tutorial_shape(name)
    learnable, bn_channels = layer_tables.LEARNABLE[name](shape[1], shape[2], 10)
    net = gluon_cnns.get_model(name)
    assert count_parameters(net, shape, learnable_only=True) == learnable
    # Every Parameter (the README's count): BatchNorm's running mean and variance too.
    assert count_parameters(net, shape) == learnable + 2 * bn_channels


@pytest.mark.parametrize("name", sorted(PAPER_CIFAR_PARAMS))
def test_cifar_resnet_parameters_within_2_percent_of_paper(name):
    net = gluon_cnns.get_model(name)
    learnable = count_parameters(net, (1, 3, 32, 32), learnable_only=True)
    assert abs(learnable - PAPER_CIFAR_PARAMS[name]) / PAPER_CIFAR_PARAMS[name] < 0.02


def test_layer_tables_give_the_papers_totals():
    """The tables of tests/layer_tables.py, at the papers' input (3x224x224, 1000 classes),
    give the totals the papers and torchvision publish."""
    # Simonyan & Zisserman 2014, table 2: 133, 133, 138, 144 million for A, B, D, E.
    for config, millions in zip("ABDE", (133, 133, 138, 144)):
        assert round(layer_tables.vgg(config, 3, 224, 1000)[0] / 1e6) == millions
    # Krizhevsky et al. 2012, section 1: "60 million parameters" (two towers, 227 input;
    # the single tower has ungrouped convs, a little more).
    assert abs(layer_tables.alexnet(3, 227, 1000)[0] - 60e6) / 60e6 < 0.05
    # torchvision's resnet18 / resnet34 (bias-free convs): 11,689,512 / 21,797,672.
    assert layer_tables.resnet((2, 2, 2, 2), 3, 224, 1000, conv_bias=False)[0] == 11689512
    assert layer_tables.resnet((3, 4, 6, 3), 3, 224, 1000, conv_bias=False)[0] == 21797672
    # Szegedy et al. 2014, table 1, "params" of the nine inception modules (weights only,
    # K = 1024). Its own widths give 497K and 1018K for 4c and 5a (the table says 463K and
    # 1072K), so the check is on the sum: 5683K there.
    ours = sum(layer_tables.inception(c_in, widths, bias=False)
               for _, c_in, widths, _ in layer_tables.INCEPTIONS) / 1024
    assert abs(ours - sum(k for *_, k in layer_tables.INCEPTIONS)) / ours < 0.02


def _print_summary_total(net, shape):
    """The "Total params" MXNet's own ``mx.viz.print_summary`` prints for ``net`` at ``shape``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mx.viz.print_summary(net(mx.sym.var("data")), shape={"data": shape})
    return int(re.search(r"Total params: ([\d,]+)", out.getvalue()).group(1).replace(",", ""))


@pytest.mark.parametrize("name", ALL)
def test_print_summary_total_is_the_learnable_count(name):
    # print_summary counts a layer's parameters from its input's channel axis: a dense
    # layer fed a 4-D map (no Flatten before it) gets counted from the channels alone.
    # It counts BatchNorm's gamma and beta, not its running statistics.
    net = gluon_cnns.get_model(name)
    for shape in (tutorial_shape(name), (1, 3) + small_shape(name)[2:]):
        assert _print_summary_total(net, shape) == count_parameters(net, shape,
                                                                    learnable_only=True)


@pytest.mark.parametrize("name", ALL)
def test_gluon_summary_totals_are_the_parameter_counts(name):
    # Gluon's own Block.summary: every Parameter, and the trainable ones.
    shape = small_shape(name, batch=1)
    net = gluon_cnns.get_model(name)
    net.initialize()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        net.summary(mx.nd.zeros(shape))
    totals = {key: int(value.replace(",", "")) for key, value in
              re.findall(r"^ *(Total|Trainable) params: ([\d,]+)", out.getvalue(), re.M)}
    assert totals == {"Total": count_parameters(net, shape),
                      "Trainable": count_parameters(net, shape, learnable_only=True)}


def test_lecture_nets_feature_sizes():
    # The lecture hard-codes Linear(1408, 10) and Linear(512, 10) for 28x28 inputs.
    for name, features in [("inception_mnist", 1408), ("resnet_mnist", 512)]:
        rows = gluon_cnns.trace(gluon_cnns.get_model(name), (1, 1, 28, 28))
        flatten_rows = [row[1] for row in rows if "flatten" in row[0]]
        assert flatten_rows == [(1, features)]


def test_googlenet_block_shapes():
    rows = gluon_cnns.trace(gluon_cnns.get_model("googlenet"), (1, 1, 96, 96))
    assert [row[1] for row in rows] == [(1, 64, 24, 24), (1, 192, 12, 12),
                                               (1, 480, 6, 6), (1, 832, 3, 3),
                                               (1, 1024, 1, 1), (1, 10)]


@pytest.mark.parametrize("name", ALL)
def test_hybridized_equals_imperative(name):
    shape = small_shape(name)
    net = built(name, shape)
    x = mx.nd.random.uniform(shape=shape, ctx=mx.cpu())

    def forward_and_input_grad():
        x.attach_grad()
        # Training mode: MXNet 1.9's oneDNN max-pooling backward is wrong in predict mode
        # (no workspace is kept). The same seed gives both runs the same Dropout masks.
        mx.random.seed(7)
        with autograd.record(train_mode=True):
            y = net(x)
            loss = (y * y).sum()
        loss.backward()
        return y.asnumpy(), x.grad.asnumpy()

    y_imp, g_imp = forward_and_input_grad()
    net.hybridize(static_alloc=True, static_shape=True)
    y_hyb, g_hyb = forward_and_input_grad()
    np.testing.assert_allclose(y_hyb, y_imp, rtol=1e-5, atol=1e-6)
    scale = np.abs(g_imp).max()
    np.testing.assert_allclose(g_hyb / scale, g_imp / scale, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_export_then_symbolblock_imports(name, tmp_path):
    shape = small_shape(name)
    net = built(name, shape)
    net.hybridize()
    x = mx.nd.random.uniform(shape=shape)
    expected = net(x).asnumpy()
    prefix = str(tmp_path / name)
    net.export(prefix, epoch=0)
    loaded = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                       prefix + "-0000.params")
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_two_instances_distinct_names_and_parameter_round_trip(name, tmp_path):
    shape = small_shape(name)
    a = built(name, shape, seed=1)
    b = built(name, shape, seed=2)
    assert not set(a.collect_params()) & set(b.collect_params())
    x = mx.nd.random.uniform(shape=shape)
    assert not np.allclose(a(x).asnumpy(), b(x).asnumpy())
    path = str(tmp_path / "a.params")
    a.save_parameters(path)
    b.load_parameters(path)
    np.testing.assert_allclose(b(x).asnumpy(), a(x).asnumpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_an_sgd_step_lowers_the_loss_by_lr_times_the_squared_gradient(name):
    """To first order a step of -lr * g lowers the loss L by lr * |g|^2 (g = dL/dw): the
    gradients are right, every trainable parameter takes its step, with the right sign
    and scale. In float64, with lr chosen for a drop of 1e-5, so that the step is small
    enough for the first order and not lost to rounding."""
    shape = small_shape(name, batch=8)
    net = built(name, shape, seed=3)
    net.cast("float64")
    net.hybridize()
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.uniform(size=shape), dtype="float64")
    y = mx.nd.array(rng.randint(0, 10, size=shape[0]), dtype="float64")
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})

    def forward():
        # Training mode (BatchNorm on batch statistics, as the step sees it), with one
        # fixed Dropout mask so that every reading sees the same function.
        mx.random.seed(11)
        with autograd.train_mode():
            return loss_fn(net(x), y)

    before = forward().mean().asscalar()
    with autograd.record():
        loss = forward()
    loss.backward()
    # step(batch) divides the summed losses' gradients by the batch: g of the mean loss.
    squared = sum(((p.grad().asnumpy() / shape[0]) ** 2).sum()
                  for p in net.collect_params().values() if p.grad_req != "null")
    drop = 1e-5
    trainer.set_learning_rate(drop / squared)
    trainer.step(shape[0])
    assert before - forward().mean().asscalar() == pytest.approx(drop, rel=0.02)


def test_too_small_input_is_one_clear_error():
    net = gluon_cnns.get_model("alexnet")
    net.initialize()
    with pytest.raises(gluon_cnns.InputTooSmallError) as err:
        net(mx.nd.zeros((1, 1, 28, 28)))
    message = str(err.value)
    assert "AlexNet" in message and "67x67" in message and "28x28" in message
    assert "\n" not in message
    assert net.min_input_size(1) == 67  # 67 -> conv 15 -> pool 7 -> pool 3 -> pool 1


def test_too_small_input_when_hybridized():
    net = gluon_cnns.get_model("vgg11")
    net.initialize()
    net.hybridize()
    with pytest.raises(gluon_cnns.InputTooSmallError, match="at least 32x32"):
        net(mx.nd.zeros((1, 1, 28, 28)))


def test_unknown_name_suggests_closest():
    with pytest.raises(gluon_cnns.UnknownModelError) as err:
        gluon_cnns.get_model("resnet19")
    assert "resnet18" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_article_constructors_return_corrected_nets():
    arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    cases = [(gluon_cnns.LeNet(), 28), (gluon_cnns.AlexNet(), 224),
             (gluon_cnns.VGGNet(arch), 224), (gluon_cnns.NiNNet(), 224),
             (gluon_cnns.GoogLeNet(10), 96), (gluon_cnns.ResNet(10), 96)]
    for net, side in cases:
        assert isinstance(net, gluon.HybridBlock)
        rows = gluon_cnns.trace(net, (1, 1, side, side))
        assert rows[-1][1] == (1, 10)
    # The article's ResNet stem had no BatchNorm and no padding; ours has both.
    stem = list(gluon_cnns.ResNet(10))[0]
    assert any(isinstance(layer, mx.gluon.nn.BatchNorm) for layer in stem)
    assert list(stem)[0]._kwargs["pad"] == (3, 3)


def test_vgg_ratio_divides_conv_channels():
    small = count_parameters(gluon_cnns.get_model("vgg11_small"), (1, 1, 224, 224))
    net = models.VGGNet(models.vgg.VGG_ARCHITECTURES[11], ratio=4)
    assert count_parameters(net, (1, 1, 224, 224)) == small
    first_conv = list(list(net)[0])[0]
    assert first_conv._channels == 16


def test_lenet_bn_activation_selectable():
    net = gluon_cnns.get_model("lenet_bn", activation="relu")
    acts = [blk for blk in net if isinstance(blk, mx.gluon.nn.Activation)]
    assert len(acts) == 4 and all(a._act_type == "relu" for a in acts)
    assert all(a._act_type == "sigmoid" for a in gluon_cnns.get_model("lenet_bn")
               if isinstance(a, mx.gluon.nn.Activation))


def test_cifar_resnet_rejects_bad_depth():
    with pytest.raises(ValueError, match="6n\\+2"):
        models.CIFARResNet(21)


def test_min_input_size_after_loading_parameters(tmp_path):
    # Loaded parameters fix the Dense weight shapes; the minimum side must still be
    # the architecture's, and a correct input must still pass the check.
    trained = built("lenet", (1, 1, 28, 28))
    path = str(tmp_path / "lenet.params")
    trained.save_parameters(path)
    net = gluon_cnns.get_model("lenet")
    net.load_parameters(path)
    assert net.min_input_size(1) == 12
    np.testing.assert_allclose(net(mx.nd.ones((1, 1, 28, 28))).asnumpy(),
                               trained(mx.nd.ones((1, 1, 28, 28))).asnumpy(), rtol=1e-6)
    with pytest.raises(gluon_cnns.InputTooSmallError):
        net(mx.nd.ones((1, 1, 8, 8)))


# The d2l idiom, then a read of every parameter; one SHA-256 per net built.
_SEEDED_INITIAL_WEIGHTS = """
import hashlib, sys
import mxnet as mx
import gluon_cnns
for _ in range(int(sys.argv[1])):
    net = gluon_cnns.get_model("resnet18")
    mx.random.seed(3)
    net.initialize(mx.init.Xavier())
    net(mx.nd.ones((1, 1, 16, 16)))
    arrays = [param.data().asnumpy() for param in net.collect_params().values()]
    print(hashlib.sha256(b"".join(array.tobytes() for array in arrays)).hexdigest())
"""


@pytest.mark.slow  # 20 nets built and read in 2 processes: about 16 s
def test_a_seeded_deep_net_reads_the_same_initial_weights_every_time():
    """Seed, initialize, one forward pass in predict mode, read: the same weights in every
    process and for every net built. Without the wait in ClassicNet.forward about one read
    in five of this net overlaps oneDNN's in-place layout change of a conv weight (see
    models.base._wait_for); 2 x 10 nets make a miss unlikely (a measured rate, not a
    guarantee)."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    digests = []
    for _ in range(2):
        digests += subprocess.run([sys.executable, "-c", _SEEDED_INITIAL_WEIGHTS, "10"],
                                  env=env, capture_output=True, text=True,
                                  check=True).stdout.split()
    assert len(digests) == 20
    assert len(set(digests)) == 1, "%d different initial weights" % len(set(digests))


def test_global_avg_pool_equals_gluons_forward_and_backward():
    # models.base.GlobalAvgPool stands in for nn.GlobalAvgPool2D in the CIFAR ResNets
    # (a faster backward under oneDNN); it must compute the same thing.
    from gluon_cnns.models.base import GlobalAvgPool
    x = mx.nd.random.uniform(shape=(4, 64, 8, 8))
    grads = []
    for pool in (GlobalAvgPool(), gluon.nn.GlobalAvgPool2D()):
        pool.hybridize()
        x.attach_grad()
        with autograd.record():
            y = pool(x)
            weighted = (y * mx.nd.arange(64).reshape((1, 64, 1, 1))).sum()
        weighted.backward()
        grads.append((y.asnumpy(), x.grad.asnumpy()))
    (ours, our_grad), (gluons, gluon_grad) = grads
    assert ours.shape == (4, 64, 1, 1)
    assert np.allclose(ours, gluons, atol=1e-6) and np.allclose(our_grad, gluon_grad)
    assert gluon_cnns.flops(_sequential(GlobalAvgPool()), (1, 3, 7, 7)) == 3 * 49


def _sequential(*blocks):
    net = gluon.nn.HybridSequential()
    net.add(*blocks)
    return net


# ---------------------------------------------------------------- a net added to the registry

def _generic_tests():
    """The test functions of this module parametrized over the whole registry."""
    return sorted(name for name, func in globals().items() if name.startswith("test_")
                  and any(mark.name == "parametrize" and mark.args[1] is ALL
                          for mark in getattr(func, "pytestmark", [])))


def test_a_new_registry_line_is_picked_up_by_every_generic_test(tmp_path):
    """tests/tiny_net_plugin.py adds two nets as a contributor would (a model and one
    registry line each); this module, run with it, must test them like the zoo's own.
    ``tiny_net_unflattened`` has no Flatten before its dense layer: the print_summary
    check must catch it, and only that check."""
    report = tmp_path / "report.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    subprocess.run([sys.executable, "-m", "pytest", os.path.join(HERE, "test_models.py"),
                    "-p", "tiny_net_plugin", "-k", "tiny_net", "-q", "-p", "no:cacheprovider",
                    "--junitxml", str(report)], env=env, cwd=str(tmp_path),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    outcomes = {}
    for case in ElementTree.parse(str(report)).iter("testcase"):
        failed = any(child.tag in ("failure", "error", "skipped") for child in case)
        outcomes[case.get("name")] = "failed" if failed else "passed"
    generic = _generic_tests()
    assert len(generic) >= 8 and "test_print_summary_total_is_the_learnable_count" in generic
    expected = {"%s[tiny_net]" % test: "passed" for test in generic}
    expected.update(("%s[tiny_net_unflattened]" % test,
                     "failed" if test == "test_print_summary_total_is_the_learnable_count"
                     else "passed") for test in generic)
    assert outcomes == expected

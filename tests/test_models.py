"""Every registered net: shapes, parameter counts, hybridize parity, export, naming, learning."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluon_cnns
from gluon_cnns import models
from gluon_cnns.shapes import count_parameters

# Tutorial input side per net (d2l / the source articles); 28 for the rest.
TUTORIAL_SIDE = {"alexnet": 224, "vgg11": 224, "vgg13": 224, "vgg16": 224, "vgg19": 224,
                 "vgg11_small": 224, "nin": 224, "googlenet": 96, "resnet18": 96,
                 "resnet34": 96, "densenet": 96}
# A small side every net accepts, to keep the compute-heavy checks quick.
SMALL_SIDE = {"alexnet": 67, "nin": 67, "vgg11": 32, "vgg13": 32, "vgg16": 32, "vgg19": 32,
              "vgg11_small": 32, "googlenet": 32, "resnet18": 32, "resnet34": 32,
              "densenet": 32}

# Parameter counts at 1 channel, 10 classes, every Parameter (BN running stats included):
# the tutorial definitions' values, from the foundation issue.
EXPECTED_PARAMS = {"lenet": 170988, "alexnet": 46764746, "vgg11": 128806154, "nin": 1992166,
                   "googlenet": 5977530, "resnet18": 11186186, "densenet": 764834}
# He et al. 2015, table 6: learnable parameters of the CIFAR ResNets (3-channel input).
PAPER_CIFAR_PARAMS = {"resnet20_cifar": 0.27e6, "resnet32_cifar": 0.46e6,
                      "resnet44_cifar": 0.66e6, "resnet56_cifar": 0.85e6,
                      "resnet110_cifar": 1.7e6}

ALL = models.list_models()


def channels(name):
    return 3 if name.endswith("_cifar") else 1


def tutorial_shape(name, batch=1):
    side = 32 if name.endswith("_cifar") else TUTORIAL_SIDE.get(name, 28)
    return (batch, channels(name), side, side)


def small_shape(name, batch=2):
    side = 32 if name.endswith("_cifar") else SMALL_SIDE.get(name, 28)
    return (batch, channels(name), side, side)


def built(name, shape, seed=0, **kwargs):
    mx.random.seed(seed)
    net = gluon_cnns.get_model(name, **kwargs)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros(shape))  # finish deferred initialization
    return net


def test_registry_lists_every_family():
    expected = {"lenet", "lenet_bn", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
                "vgg11_small", "nin", "googlenet", "resnet18", "resnet34", "resnet14_cifar",
                "resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar",
                "resnet110_cifar", "densenet", "inception_mnist", "resnet_mnist"}
    assert set(ALL) == expected


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


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_matches_tutorial(name):
    net = gluon_cnns.get_model(name)
    assert count_parameters(net, tutorial_shape(name)) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_CIFAR_PARAMS))
def test_cifar_resnet_parameters_within_2_percent_of_paper(name):
    net = gluon_cnns.get_model(name)
    learnable = count_parameters(net, (1, 3, 32, 32), learnable_only=True)
    assert abs(learnable - PAPER_CIFAR_PARAMS[name]) / PAPER_CIFAR_PARAMS[name] < 0.02


def _expected_lenet_bn():
    # conv 6@5x5, conv 16@5x5 (28 -> 24 -> 12 -> 8 -> 4), dense 256->120->84->10;
    # each BatchNorm has gamma, beta, running mean and running var.
    conv = (6 * 1 * 25 + 6) + (16 * 6 * 25 + 16)
    dense = (16 * 4 * 4 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    bn = 4 * (6 + 16 + 120 + 84)
    return conv + dense + bn


def _expected_inception_mnist():
    def inception(c_in):
        return ((c_in * 16 + 16) * 3  # the three 1x1(16) convs
                + (16 * 24 * 25 + 24) + (16 * 24 * 9 + 24) + (24 * 24 * 9 + 24)
                + (c_in * 24 + 24))
    conv = (1 * 10 * 25 + 10) + (88 * 20 * 25 + 20)
    return conv + inception(10) + inception(20) + (1408 * 10 + 10)


def _expected_resnet_mnist():
    def residual(c):
        return 2 * (c * c * 9 + c)
    conv = (1 * 16 * 25 + 16) + (16 * 32 * 25 + 32)
    return conv + residual(16) + residual(32) + (512 * 10 + 10)


@pytest.mark.parametrize("name,expected", [("lenet_bn", _expected_lenet_bn()),
                                           ("inception_mnist", _expected_inception_mnist()),
                                           ("resnet_mnist", _expected_resnet_mnist())])
def test_parameter_count_computed_by_hand(name, expected):
    assert count_parameters(gluon_cnns.get_model(name), (1, 1, 28, 28)) == expected


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
def test_sgd_steps_lower_the_loss(name):
    shape = small_shape(name, batch=8)
    net = built(name, shape, seed=3)
    net.hybridize()
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.uniform(size=shape))
    y = mx.nd.array(rng.randint(0, 10, size=shape[0]))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})

    def loss_value():
        # Training-mode forward (BatchNorm on batch statistics, as the steps see it),
        # with one fixed Dropout mask so the two readings are comparable.
        mx.random.seed(11)
        with autograd.train_mode():
            return loss_fn(net(x), y).mean().asscalar()

    before = loss_value()
    for _ in range(8):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(shape[0])
    assert loss_value() < before


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

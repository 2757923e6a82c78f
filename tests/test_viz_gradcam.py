"""Grad-CAM (gluon_cnns.viz.grad_cam): checked against what it claims, not just drawn.

(a) a net trained on a task where one region decides the class looks there;
(b) Adebayo et al. 2018: re-initialized weights give a different map;
(c) hybridized and plain nets give the same map; every zoo net gives (N, H, W) in [0, 1];
and the gradient it uses equals the numerical derivative of the net's inference function.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluon_cnns
from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.viz import grad_cam
from gluon_cnns.viz.gradcam import _inference_behaviour, resolve_layer, run_prefix

SIDE, SQUARE = 28, 7


def _place(image, quadrant, filled, rng):
    """Draw a bright 7x7 square, filled or a hollow frame, somewhere in ``quadrant`` (0..3)."""
    half = SIDE // 2
    top = rng.randint(0, half - SQUARE + 1) + half * (quadrant // 2)
    left = rng.randint(0, half - SQUARE + 1) + half * (quadrant % 2)
    image[top:top + SQUARE, left:left + SQUARE] = 1.0
    if not filled:
        image[top + 2:top + SQUARE - 2, left + 2:left + SQUARE - 2] = 0.0


def _squares(n, rng):
    """Noise images with a square in the top-left quadrant -- filled: class 1, a hollow
    frame: class 0 -- and a distractor, filled or hollow at random, in another quadrant.
    Only the top-left quadrant decides the class."""
    x = rng.uniform(0, 0.4, size=(n, 1, SIDE, SIDE)).astype(np.float32)
    y = rng.randint(0, 2, size=n)
    for i in range(n):
        _place(x[i, 0], 0, y[i] == 1, rng)
        _place(x[i, 0], rng.randint(1, 4), rng.randint(0, 2) == 1, rng)
    return x, y


@pytest.fixture(scope="module")
def trained():
    """lenet_bn (ReLU) trained for a few hundred steps on the squares; test accuracy > 0.95."""
    mx.random.seed(0)
    rng = np.random.RandomState(0)
    net = gluon_cnns.get_model("lenet_bn", classes=2, activation="relu")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(150):
        x, y = _squares(64, rng)
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x)), mx.nd.array(y))
        loss.backward()
        trainer.step(64)
    x, y = _squares(200, rng)
    accuracy = (net(mx.nd.array(x)).argmax(axis=1).asnumpy() == y).mean()
    assert accuracy > 0.95, accuracy
    return net, x, y


def _spearman(a, b):
    ra, rb = (np.argsort(np.argsort(v.ravel())).astype(np.float64) for v in (a, b))
    return np.corrcoef(ra, rb)[0, 1]


def test_cam_mass_lies_in_the_deciding_region(trained):
    net, x, y = trained
    cams = grad_cam(net, x[:40])
    half = SIDE // 2
    inside = cams[:, :half, :half].sum(axis=(1, 2)) / cams.sum(axis=(1, 2))
    # The quadrant is a quarter of the image; a map that ignored it would put ~25% there.
    assert np.median(inside) > 0.6, inside


def test_reinitialized_weights_change_the_map(trained):
    net, x, y = trained
    images = x[y == 1][:8]
    cams = grad_cam(net, images, target=1)
    nudged = grad_cam(net, images + np.float32(1e-3), target=1)
    twin = gluon_cnns.get_model("lenet_bn", classes=2, activation="relu")
    twin.initialize(mx.init.Xavier())  # same architecture, random weights (Adebayo et al.)
    random_cams = grad_cam(twin, images, target=1)
    same = np.mean([_spearman(a, b) for a, b in zip(cams, nudged)])
    other = np.mean([_spearman(a, b) for a, b in zip(cams, random_cams)])
    assert same > 0.95 and other < same - 0.3, (same, other)


def test_the_gradient_is_that_of_the_inference_function(trained):
    """alpha_k (eq. 1) equals the finite-difference derivative of the net in inference mode;
    its suffix has max-pooling and BatchNorm (running statistics)."""
    net, x, _ = trained
    image = x[:1]
    k = resolve_layer(net)
    acts = run_prefix(net, image, k).asnumpy()[0]
    # Away from ties (max-pooling of ReLU zeros), where the derivative is one-sided.
    acts = acts + np.random.RandomState(0).uniform(0.05, 0.5, acts.shape).astype(np.float32)
    suffix = net[k + 1:]
    eps = 1e-3
    steps = np.eye(acts.size, dtype=np.float32).reshape((-1,) + acts.shape) * eps
    with autograd.pause(train_mode=False):
        up = suffix(mx.nd.array(acts[None] + steps)).asnumpy()[:, 1]
        down = suffix(mx.nd.array(acts[None] - steps)).asnumpy()[:, 1]
    numeric = ((up - down) / (2 * eps)).reshape(acts.shape)
    a = mx.nd.array(acts[None])
    a.attach_grad()
    with _inference_behaviour(suffix), autograd.record(train_mode=True):
        score = suffix(a)[:, 1].sum()
    score.backward()
    np.testing.assert_allclose(a.grad.asnumpy()[0].mean(axis=(1, 2)), numeric.mean(axis=(1, 2)),
                               rtol=0.05, atol=1e-3)


def test_leaves_batchnorm_statistics_and_dropout_alone(trained):
    net, x, _ = trained
    before = {n: p.data().asnumpy().copy() for n, p in net.collect_params().items()}
    grad_cam(net, x[:16])
    for name, p in net.collect_params().items():
        np.testing.assert_array_equal(p.data().asnumpy(), before[name], err_msg=name)
    alexnet = gluon_cnns.get_model("alexnet")  # Dropout after the explained layer
    alexnet.initialize(mx.init.Xavier())
    image = np.random.RandomState(1).uniform(size=(1, 1, 67, 67)).astype(np.float32)
    np.testing.assert_array_equal(grad_cam(alexnet, image), grad_cam(alexnet, image))
    assert [blk._rate for blk in alexnet if isinstance(blk, gluon.nn.Dropout)] == [0.5, 0.5]


@pytest.mark.parametrize("name", gluon_cnns.list_models())
def test_every_zoo_net_hybridized_equals_plain(name):
    mx.random.seed(0)
    net = gluon_cnns.get_model(name)
    net.initialize(mx.init.Xavier())
    channels = 3 if name.endswith("_cifar") else 1
    side = max(net.min_input_size(channels), 32)
    x = np.random.RandomState(0).uniform(size=(2, channels, side, side)).astype(np.float32)
    plain = grad_cam(net, x)
    net.hybridize()
    hybrid = grad_cam(net, x)
    assert plain.shape == (2, side, side) and plain.dtype == np.float32
    assert plain.min() >= 0 and plain.max() <= 1
    np.testing.assert_allclose(hybrid, plain, atol=1e-5)
    target = net(mx.nd.array(x)).argmax(axis=1).asnumpy().astype(int)
    np.testing.assert_allclose(grad_cam(net, x, target=target), plain, atol=1e-5)


def test_bad_input_is_one_line(trained):
    net, x, _ = trained
    cases = [(dict(layer="conv9"), "does not exist"), (dict(layer=40), "does not exist"),
             (dict(target=2), "out of range"), (dict(target=[0, 1, 1]), "one per image"),
             (dict(layer=-1), "last block"), (dict(layer=-2), "convolutional")]
    for kwargs, words in cases:
        with pytest.raises(GluonCNNsError, match=words) as err:
            grad_cam(net, x[:2], **kwargs)
        assert "\n" not in str(err.value)
    for image, words in [(x[:2, :, :20, :20], "does not run"), (x[:2, :, :10], "at least"),
                         (x[0], "batch axis")]:
        with pytest.raises(GluonCNNsError, match=words) as err:
            grad_cam(net, image)
        assert "\n" not in str(err.value)


def test_the_user_overrides_the_declared_layer(trained):
    net, x, _ = trained
    declared = grad_cam(net, x[:4])
    earlier = grad_cam(net, x[:4], layer=2)  # the first conv's activation, 24x24 maps
    assert not np.allclose(declared, earlier)
    declaration, net.cam_layer = net.cam_layer, 2
    try:
        np.testing.assert_array_equal(grad_cam(net, x[:4]), earlier)
    finally:
        net.cam_layer = declaration
    np.testing.assert_array_equal(grad_cam(net, x[:4]), declared)

"""gluon_cnns.viz.feature_maps and filters: the arrays are the net's own, the PNGs are grids."""
import mxnet as mx
import numpy as np
import pytest
from PIL import Image

import gluon_cnns
from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.viz import feature_maps, filters


@pytest.fixture(scope="module")
def net():
    mx.random.seed(0)
    net = gluon_cnns.get_model("resnet_mnist")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    return net


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.mark.parametrize("layer", [3, -3, "residualblock0"])
def test_feature_maps_are_the_layers_output(net, tmp_path, layer):
    x = np.random.RandomState(0).uniform(size=(1, 28, 28)).astype(np.float32)
    maps = feature_maps(net, x, layer, path=str(tmp_path / "maps.png"))
    k = {3: 3, -3: len(net) - 3, "residualblock0": 3}[layer]
    out = mx.nd.array(x[None])
    for blk in list(net)[:k + 1]:  # the d2l idiom: the blocks one by one
        out = blk(out)
    np.testing.assert_allclose(maps, out.asnumpy()[0], rtol=1e-5, atol=1e-6)
    width, height = _png_size(tmp_path / "maps.png")
    assert width > 200 and height > 200  # one tile per channel (16 or 32), not one image


def test_filters_are_the_first_convs_weights(net, tmp_path):
    weights = filters(net, path=str(tmp_path / "filters.png"))
    first = list(net)[0]
    np.testing.assert_array_equal(weights, first.weight.data().asnumpy())
    assert weights.shape == (16, 1, 5, 5)
    _png_size(tmp_path / "filters.png")
    rgb = gluon_cnns.get_model("resnet20_cifar")
    rgb.initialize()
    rgb(mx.nd.zeros((1, 3, 32, 32)))
    assert filters(rgb, path=str(tmp_path / "rgb.png")).shape == (16, 3, 3, 3)


def test_bad_input_is_one_line(net):
    x = np.zeros((1, 28, 28), np.float32)
    for args, words in [((x, "conv7"), "does not exist"), ((x, -2), "not feature maps"),
                        ((np.zeros((2, 1, 28, 28), np.float32), 3), "one image")]:
        with pytest.raises(GluonCNNsError, match=words) as err:
            feature_maps(net, *args)
        assert "\n" not in str(err.value)
    fresh = gluon_cnns.get_model("lenet")
    fresh.initialize()
    with pytest.raises(GluonCNNsError, match="not initialized"):
        filters(fresh)

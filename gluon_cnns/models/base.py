"""What every network of the zoo shares: a ``HybridSequential`` of top-level
blocks that refuses inputs too small for it with one clear error.

Being a ``HybridSequential`` keeps the d2l idiom working::

    for blk in net:
        X = blk(X)
        print(blk.name, 'output shape:', X.shape)

and makes the top-level blocks the natural unit of the shape trace.
"""
import json

import mxnet as mx
from mxnet.gluon import nn

from ..errors import InputTooSmallError

# Largest side the minimum-input search tries; every net of the zoo fits well below it.
_MAX_SEARCHED_SIDE = 1024


class ClassicNet(nn.HybridSequential):
    """A ``HybridSequential`` that checks the spatial size of its input.

    MXNet reports an input that shrinks to nothing somewhere inside the net as a
    long shape-inference traceback from deep inside the graph; this class finds
    the net's smallest usable side once (by symbolic shape inference, no
    compute) and raises :class:`InputTooSmallError` naming it instead.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._min_side_cache = {}

    def min_input_size(self, channels=1):
        """Smallest side ``s`` such that an input of shape (1, channels, s, s) runs."""
        if channels not in self._min_side_cache:
            self._min_side_cache[channels] = _search_min_side(self, channels)
        return self._min_side_cache[channels]

    def check_input_shape(self, shape):
        """Raise :class:`InputTooSmallError` if an NCHW ``shape`` is too small for this net."""
        if len(shape) != 4:
            raise InputTooSmallError(
                "%s expects a 4-D NCHW batch, got shape %s; add a batch axis "
                "(x.expand_dims(0)) or a channel axis as needed"
                % (type(self).__name__, tuple(shape)))
        side = min(shape[2], shape[3])
        need = self.min_input_size(shape[1])
        if side < need:
            raise InputTooSmallError(
                "%s needs inputs of at least %dx%d pixels, got %dx%d; resize the "
                "images (e.g. --resize %d)" % (type(self).__name__, need, need,
                                                shape[2], shape[3], need))

    def forward(self, x, *args):
        if isinstance(x, mx.nd.NDArray):
            self.check_input_shape(x.shape)
        return super().forward(x, *args)


class GlobalAvgPool(nn.HybridBlock):
    """Global average pooling, (N, C, H, W) -> (N, C, 1, 1), with a fast backward.

    The same output as ``nn.GlobalAvgPool2D``, but a much faster training step
    where BatchNorm comes shortly before it. In MXNet 1.9.1 oneDNN runs the
    backward of ``GlobalAvgPool2D`` on a CIFAR ResNet's 8x8 maps with its
    reference kernel and hands the gradient back in a layout (acdB16b) that
    the last stage's BatchNorm backward does not take, so those fall back to
    the reference kernel too: 190 of a 400 ms resnet20_cifar training step
    (DNNL_VERBOSE). ``AdaptiveAvgPooling2D(output_size=1)`` computes the same
    average with MXNet's own kernels and a plain-layout gradient. Measured on
    resnet20_cifar, batch 128, in one run: training step 363 -> 688 images/s,
    hybridized forward 2432 -> 2399 (a mean over the axes gave 695 and 2306).
    resnet18, densenet, nin and googlenet measured no difference, so they keep
    ``GlobalAvgPool2D`` as in the tutorials.
    """

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=1)


def as_pooling(graph):
    """``graph`` (a symbol's JSON as a dict) with every :class:`GlobalAvgPool` turned into
    the equal ``Pooling(global_pool=True)``, the operator ONNX, oneDNN, int8 and the FLOP
    count know."""
    for node in graph["nodes"]:
        output_size = node.get("attrs", {}).get("output_size", "1").replace(" ", "")
        if (node["op"] == "_contrib_AdaptiveAvgPooling2D"
                and output_size in ("1", "(1,)", "(1,1)")):
            node["op"] = "Pooling"
            node["attrs"] = {"global_pool": "True", "kernel": "(1, 1)", "pool_type": "avg"}
    return graph


def infer_shapes(symbol, input_shape):
    """``symbol.infer_shape(data=input_shape)`` without the lines MXNet prints on failure.

    Raises ``MXNetError`` when the shapes do not fit.
    """
    # Symbol.infer_shape prints "infer_shape error. Arguments: ..." before re-raising;
    # the implementation it wraps raises the same error silently.
    return symbol._infer_shape_impl(False, data=tuple(input_shape))  # pylint: disable=protected-access


def _structure_only(symbol):
    """``symbol`` with the shapes of its parameters forgotten.

    Once parameters are initialized or loaded, their variables carry fixed shapes
    (a Dense weight fixes the flattened size), and every other input side would
    "fail"; the minimum side is a property of the architecture, so search on it.
    """
    graph = json.loads(symbol.tojson())
    for node in graph["nodes"]:
        if node["op"] == "null":
            node.get("attrs", {}).pop("__shape__", None)
    return mx.sym.load_json(json.dumps(graph))


def _output_shape(symbol, input_shape):
    """Output shape of ``symbol`` for ``input_shape`` by symbolic inference, or None if it fails."""
    try:
        _, out_shapes, _ = infer_shapes(symbol, input_shape)
    except mx.base.MXNetError:
        return None
    if out_shapes is None or any(d <= 0 for d in out_shapes[0]):
        return None
    return out_shapes[0]


def _search_min_side(net, channels):
    """Binary search for the smallest square side the net accepts (shape inference only)."""
    symbol = _structure_only(net(mx.sym.var("data")))
    if _output_shape(symbol, (1, channels, _MAX_SEARCHED_SIDE, _MAX_SEARCHED_SIDE)) is None:
        return _MAX_SEARCHED_SIDE
    lo, hi = 1, _MAX_SEARCHED_SIDE  # hi always works
    while lo < hi:
        mid = (lo + hi) // 2
        if _output_shape(symbol, (1, channels, mid, mid)) is None:
            lo = mid + 1
        else:
            hi = mid
    return hi

"""What every network of the zoo shares: a ``HybridSequential`` of top-level
blocks with GluonCV's ``features``/``output`` split, that refuses inputs too
small for it with one clear error.

Being a ``HybridSequential`` keeps the d2l idiom working::

    for blk in net:
        X = blk(X)
        print(blk.name, 'output shape:', X.shape)

and makes the top-level blocks the natural unit of the shape trace.
"""
import json
from collections import OrderedDict

import mxnet as mx
from mxnet.gluon import nn

from ..errors import InputTooSmallError

# Largest side the minimum-input search tries; every net of the zoo fits well below it.
_MAX_SEARCHED_SIDE = 1024


class ClassicNet(nn.HybridSequential):
    """A ``HybridSequential`` of the net's top-level blocks, with GluonCV's head/body split.

    It behaves as a plain ``HybridSequential`` (slicing, iteration, hooks, Gluon's
    ``summary``), plus:

    * ``features`` (every block up to the classifier) and ``output`` (the
      classifier), as in GluonCV's model zoo. ``net.output = nn.Dense(k)``
      replaces the classifier, e.g. to fine-tune on k classes.
    * An input too small for the net raises :class:`InputTooSmallError` naming
      its smallest side, instead of MXNet's shape-inference traceback. The
      smallest side is found (by symbolic shape inference, hooks switched off)
      only after a forward pass has failed, so a working forward pass costs
      nothing and runs user hooks exactly once.
    * ``load_parameters`` also takes files whose structural names differ only
      in numbering (a parameterless block added or removed), matching the
      parameters in order and by shape.
    * The call that gives deferred parameters their shapes and initial values
      returns once they are in place, so that reading them right after it
      (``asnumpy``, ``save_parameters``) gives the same values every time for a
      seed: see :func:`_wait_for`.
    """

    # How many trailing top-level blocks make up the classifier (``output``).
    head_size = 1
    # The top-level block whose output Grad-CAM explains (gluon_cnns.viz.grad_cam), counted
    # from the end: each family declares its last convolutional stage.
    cam_layer = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._min_side_cache = {}

    # ------------------------------------------------------------ head and body

    @property
    def features(self):
        """Every top-level block before the classifier, as a ``HybridSequential`` sharing them."""
        return self[:-self.head_size]

    @property
    def output(self):
        """The classifier: the last top-level block (a ``HybridSequential`` of them if several)."""
        blocks = list(self._children.values())[-self.head_size:]
        return blocks[0] if len(blocks) == 1 else self[-self.head_size:]

    def __setattr__(self, name, value):
        if name == "output" and "_children" in vars(self):
            self._replace_output(value)
        else:
            super().__setattr__(name, value)

    def _replace_output(self, block):
        """Put ``block`` in place of the classifier (hybridized like the rest of the net)."""
        if not isinstance(block, nn.HybridBlock):
            raise TypeError("output must be a HybridBlock such as nn.Dense(classes), got %s"
                            % type(block).__name__)
        keys = list(self._children)[-self.head_size:]
        for key in keys:
            del self._children[key]
        self._children[keys[0]] = block
        vars(self)["head_size"] = 1
        if self._active:
            block.hybridize(True, **dict(self._flags))
        self._clear_cached_op()

    def __getitem__(self, key):
        """A block, or for a slice a plain ``HybridSequential`` of the same blocks.

        Gluon's ``HybridSequential`` slices into ``type(self)(prefix=...)``, which
        for a zoo net would build a whole new net and append the slice to it.
        """
        layers = list(self._children.values())[key]
        if not isinstance(layers, list):
            return layers
        view = nn.HybridSequential(prefix=self.prefix)
        view.add(*layers)
        return view

    # ------------------------------------------------------------ input checks

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
        if isinstance(x, mx.nd.NDArray) and (x.ndim != 4 or (self._active and
                                                             self._cached_op is None)):
            # A hybridized net's first call would print MXNet's "infer_shape error"
            # lines before raising: check first (hooks off, once per channel count).
            self.check_input_shape(x.shape)
        built = self._active and self._cached_op is not None  # its parameters are in place
        # Only a predict-mode pass rewrites a fresh (plain-layout) weight: see _wait_for. The
        # walk over the parameters comes last, off the training path.
        initial = (isinstance(x, mx.nd.NDArray) and not built
                   and not mx.autograd.is_training() and _has_deferred_params(self))
        try:
            out = super().forward(x, *args)
        except (mx.base.MXNetError, ValueError) as err:
            if isinstance(err, InputTooSmallError) or not isinstance(x, mx.nd.NDArray):
                raise
            self.check_input_shape(x.shape)  # raises if the input was too small
            raise
        if initial:
            _wait_for(out)
        return out

    # ------------------------------------------------------------ parameters

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source="current"):
        try:
            super().load_parameters(filename, ctx, allow_missing, ignore_extra, cast_dtype,
                                    dtype_source)
        except (AssertionError, ValueError) as err:
            loaded = mx.nd.load(filename)
            renamed = _renamed_in_order(loaded, self._collect_params_with_prefix())
            if renamed is None or allow_missing or ignore_extra:
                raise err
            params = self._collect_params_with_prefix()
            for name, array in renamed.items():
                params[name]._load_init(array, ctx, cast_dtype=cast_dtype,
                                        dtype_source=dtype_source)


def _renamed_in_order(loaded, params):
    """``loaded`` (structural name -> array) under the names of ``params``, matched in order,
    or None unless both hold the same number of arrays with the same shapes in that order.

    A parameterless block (a ``Flatten``) added to a net shifts the numbers in the names
    of the blocks after it, not the order or shapes of the parameters.
    """
    ours = [(name, p.shape) for name, p in params.items()]
    theirs = list(loaded.items())
    if len(ours) != len(theirs):
        return None
    for (_, shape), (_, array) in zip(ours, theirs):
        if shape is not None and all(shape) and tuple(shape) != array.shape:
            return None
    return {name: array for (name, _), (_, array) in zip(ours, theirs)}


def _has_deferred_params(block):
    """True while a parameter of ``block`` or of its children waits for its shape."""
    return (any(p._deferred_init for p in block.params.values())  # pylint: disable=protected-access
            or any(_has_deferred_params(child) for child in block._children.values()))


def _wait_for(out):
    """Wait until ``out`` (an NDArray, or a list or tuple of them) is computed.

    In inference mode MXNet 1.9.1's oneDNN Convolution and FullyConnected move a weight
    still in the plain layout into oneDNN's blocked layout in place, for the next calls
    (``NDArray::MKLDNNDataReorderAsync`` in src/operator/nn/mkldnn/mkldnn_convolution.cc;
    in training mode they only move back a weight already in the blocked layout, which a
    freshly initialized one is not).
    The operator schedules that rewrite only when it runs; a read of the weight issued
    before then (``asnumpy`` and ``save`` wait for the writes scheduled so far, then copy
    outside the engine) can overlap the rewrite and copy half of each layout. Once the
    output is computed every such rewrite has been scheduled, and reads wait for it.
    """
    for array in out if isinstance(out, (list, tuple)) else [out]:
        if isinstance(array, mx.nd.NDArray):
            array.wait_to_read()


def _hooks_off(net):
    """Switch off every forward hook of ``net`` and its children; returns how to put them back."""
    saved = []

    def clear(block):
        saved.append((block, block._forward_hooks, block._forward_pre_hooks))
        block._forward_hooks, block._forward_pre_hooks = OrderedDict(), OrderedDict()
    net.apply(clear)

    def restore():
        for block, hooks, pre_hooks in saved:
            block._forward_hooks, block._forward_pre_hooks = hooks, pre_hooks
    return restore


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


def param_contexts(net):
    """The contexts of ``net``'s parameters, or ``[mx.cpu()]`` before they are initialized."""
    for param in net.collect_params().values():
        try:
            return param.list_ctx()
        except RuntimeError:  # not initialized yet
            break
    return [mx.cpu()]


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
    restore = _hooks_off(net)  # the search is not a forward pass the user's hooks should see
    try:
        symbol = _structure_only(net(mx.sym.var("data")))
    finally:
        restore()
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

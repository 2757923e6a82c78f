"""Grad-CAM (Selvaraju et al. 2017): where in the image a net looks for a class.

    cams = gluon_cnns.viz.grad_cam(net, x)          # (N, H, W) in [0, 1]
    cams = gluon_cnns.viz.grad_cam(net, x, target=[3, 0], layer=-4)

For the activations A^k of one convolutional layer and the score y^c of class
c (the logit, before the softmax), section 3 of the paper weighs each channel
by its average gradient, alpha_k = mean_ij dy^c/dA^k_ij (eq. 1), and keeps the
positive part of the weighted sum, ReLU(sum_k alpha_k A^k) (eq. 2). The map is
then brought to the input's resolution (bilinear) and divided by its maximum.

Which layer: every net of the zoo is a ``HybridSequential`` of its top-level
blocks, and each family declares, as the class attribute ``cam_layer``, the
index of the block whose output is explained -- its last convolutional stage,
counted from the end so that deeper or narrower variants keep it. ``layer=``
(an index or a block's name), or ``net.cam_layer = k`` on one net, overrides it.

How: the net is cut there, ``net[:k + 1]`` and ``net[k + 1:]``. The first part
runs as in inference, its output A is a leaf that gets a gradient, and only the
second part is recorded. That works the same on hybridized and plain nets
(a hybridized net hides its intermediate activations inside one graph; its
blocks, called one by one, each run their own).
"""
import contextlib
import numbers

import numpy as np

from ..errors import GluonCNNsError, error_line

__all__ = ["grad_cam", "resolve_layer", "run_prefix"]


# ---------------------------------------------------------------- which layer

def _blocks(net):
    """The top-level blocks of a ``HybridSequential`` net, in order."""
    from mxnet.gluon import nn
    if not isinstance(net, (nn.HybridSequential, nn.Sequential)):
        raise GluonCNNsError("Grad-CAM and feature maps need a Gluon (Hybrid)Sequential net such "
                             "as gluon_cnns.get_model(...) or a run folder's net, got %s; an "
                             "export (SymbolBlock) has no layers to cut" % type(net).__name__)
    return list(net._children.values())  # pylint: disable=protected-access


def _names(net, blocks):
    """Each block's name, without the net's prefix (``conv1`` for ``lenetbn0_conv1``)."""
    prefix = net.prefix
    return [b.name[len(prefix):] if prefix and b.name.startswith(prefix) else b.name
            for b in blocks]


def resolve_layer(net, layer=None):
    """The index (0-based, from the start) of the top-level block ``layer`` names.

    ``layer``: None (the net's ``cam_layer``), an index (negative counts from the end)
    or a block's name, with or without the net's prefix; GluonCNNsError otherwise.
    """
    blocks = _blocks(net)
    names = _names(net, blocks)
    if layer is None:
        layer = getattr(net, "cam_layer", None)
        if layer is None:
            raise GluonCNNsError("%s declares no cam_layer; pass layer= (an index or one of: %s)"
                                 % (type(net).__name__, ", ".join(names)))
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if -len(blocks) <= layer < len(blocks):
            return int(layer) % len(blocks)
        raise GluonCNNsError("layer %d does not exist: %s has %d top-level blocks (0..%d, or "
                             "-1..-%d from the end)" % (layer, type(net).__name__, len(blocks),
                                                        len(blocks) - 1, len(blocks)))
    full = [b.name for b in blocks]
    if isinstance(layer, str) and (layer in names or layer in full):
        return names.index(layer) if layer in names else full.index(layer)
    raise GluonCNNsError("layer %r does not exist in %s; its top-level blocks: %s"
                         % (layer, type(net).__name__, ", ".join(names)))


# ---------------------------------------------------------------- running the parts

@contextlib.contextmanager
def _running(net, x):
    """MXNet's shape errors as one line naming the batch."""
    import mxnet as mx
    try:
        yield
    except mx.base.MXNetError as err:
        raise GluonCNNsError("%s does not run on a batch of shape %s (%s); pass images of the "
                             "size and channels it was trained on"
                             % (type(net).__name__, tuple(x.shape), error_line(err))) from None


def _as_batch(net, x):
    """``x`` (numpy or NDArray, NCHW) as a float32 NDArray on the net's device, checked."""
    import mxnet as mx
    if not isinstance(x, (mx.nd.NDArray, np.ndarray)) or x.ndim != 4:
        raise GluonCNNsError("expected a batch shaped like the net's input, (N, C, H, W), got "
                             "%s; for one image add the batch axis, x[None]"
                             % (getattr(x, "shape", type(x).__name__),))
    ready = [p for p in net.collect_params().values()
             if p._data is not None]  # pylint: disable=protected-access
    ctx = ready[0].list_ctx()[0] if ready else mx.cpu()
    x = x.as_in_context(ctx) if isinstance(x, mx.nd.NDArray) else mx.nd.array(x, ctx=ctx)
    if hasattr(net, "check_input_shape"):
        net.check_input_shape(x.shape)  # InputTooSmallError names the smallest side
    return x.astype("float32", copy=False)


def run_prefix(net, x, k):
    """The output of top-level block ``k`` for the batch ``x``, computed as in inference."""
    import mxnet as mx
    x = _as_batch(net, x)
    with _running(net, x), mx.autograd.pause(train_mode=False):
        return net[:k + 1](x)


@contextlib.contextmanager
def _inference_behaviour(block):
    """Run ``block`` recorded in training mode but computing what inference computes.

    The backward of oneDNN's max-pooling in MXNet 1.9.1 is wrong when recorded in
    inference mode (``autograd.record(train_mode=False)``: the forward keeps no
    workspace), so the suffix is recorded in training mode. There BatchNorm would
    normalize with the batch's statistics (and update its running ones) and
    Dropout would zero random units -- a different function from the one that
    classified the image, and a random map. For the time of the call every
    BatchNorm uses its running statistics (``use_global_stats``, which also leaves
    them untouched) and every Dropout has rate 0 (what it is in inference, the
    identity). Hybridized blocks keep a graph built with the old settings: it is
    dropped on the way in and on the way out.
    """
    # pylint: disable=protected-access
    from mxnet.gluon import nn
    saved = []

    def switch(blk):
        if isinstance(blk, nn.BatchNorm):
            saved.append((blk, blk._kwargs["use_global_stats"]))
            blk._kwargs["use_global_stats"] = True
        elif isinstance(blk, nn.Dropout):
            saved.append((blk, blk._rate))
            blk._rate = 0.0

    def rebuild(blk):
        if isinstance(blk, nn.HybridBlock):
            blk._clear_cached_op()
    block.apply(switch)
    block.apply(rebuild)
    try:
        yield
    finally:
        for blk, value in saved:
            if isinstance(blk, nn.BatchNorm):
                blk._kwargs["use_global_stats"] = value
            else:
                blk._rate = value
        block.apply(rebuild)


def _targets(target, logits):
    """Class index per image: ``target`` (one int, or one per image) or the predicted class."""
    n, classes = logits.shape
    if target is None:
        return logits.argmax(axis=1).astype(np.int64)
    values = np.atleast_1d(np.asarray(target))
    if values.dtype.kind not in "iu" or values.ndim != 1 or len(values) not in (1, n):
        raise GluonCNNsError("target must be a class index, or one per image (%d), got %r"
                             % (n, target))
    bad = values[(values < 0) | (values >= classes)]
    if len(bad):
        raise GluonCNNsError("target %d is out of range: the net has %d classes (0..%d)"
                             % (bad[0], classes, classes - 1))
    return np.broadcast_to(values, (n,)).astype(np.int64)


# ---------------------------------------------------------------- Grad-CAM

def grad_cam(net, x, target=None, layer=None):
    """Grad-CAM maps of the batch ``x`` (N, C, H, W, prepared as the net's input): a numpy
    float32 array (N, H, W) in [0, 1], 1 where the evidence for the class is strongest.

    ``target``: the class explained, one index or one per image (default: the predicted
    class); ``layer``: the top-level block explained (default: the net's ``cam_layer``).
    """
    import mxnet as mx
    k = resolve_layer(net, layer)
    if k == len(_blocks(net)) - 1:
        raise GluonCNNsError("layer %d is the net's last block: Grad-CAM explains a "
                             "convolutional layer before the classifier" % k)
    acts = run_prefix(net, x, k)
    if acts.ndim != 4:
        raise GluonCNNsError("layer %d gives a %d-D output %s; Grad-CAM needs a convolutional "
                             "(N, C, H, W) one, such as the net's cam_layer %s"
                             % (k, acts.ndim, acts.shape, getattr(net, "cam_layer", None)))
    acts.attach_grad()
    suffix = net[k + 1:]
    with _running(net, x), _inference_behaviour(suffix):
        with mx.autograd.record(train_mode=True):
            logits = suffix(acts)
            targets = _targets(target, logits.asnumpy())
            score = mx.nd.pick(logits, mx.nd.array(targets, ctx=logits.context), axis=1).sum()
        score.backward()
    weights = acts.grad.mean(axis=(2, 3), keepdims=True)                   # eq. 1
    cam = mx.nd.relu((weights * acts).sum(axis=1, keepdims=True))          # eq. 2
    height, width = x.shape[2:]
    cam = mx.nd.contrib.BilinearResize2D(cam, height=height, width=width)[:, 0].asnumpy()
    cam = np.maximum(cam, 0)  # bilinear resizing keeps values in range; rounding may not
    peak = cam.reshape(len(cam), -1).max(axis=1)
    return (cam / np.where(peak > 0, peak, 1)[:, None, None]).astype(np.float32)

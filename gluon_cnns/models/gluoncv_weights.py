"""GluonCV model-zoo weights in the zoo's nets that are GluonCV's layer for layer.

``get_model('resnet20_cifar', shortcut='B', stem_relu=False)`` (and depths 56,
110, ...) is GluonCV's ``cifar_resnet20_v1``, and ``vgg11`` ... ``vgg19`` are
GluonCV's ``vgg11`` ... ``vgg19``: the same parameters, created in the same
order with the same shapes, under other names. :func:`load_gluoncv_params`
copies them across by that order.
"""
# pylint: disable=protected-access
import os

import mxnet as mx

from ..errors import GluonCNNsError, error_line

# Rank of each child or parameter name inside its block, in the order GluonCV's blocks
# create them: a GluonCV ``.params`` file (``save_parameters``) names its arrays by
# structure ("features.2.0.body.1.gamma") and need not store them in creation order.
_CREATION_RANK = {"features": 0, "output": 1,              # CIFARResNetV1, VGG
                  "body": 0, "downsample": 1,              # CIFARBasicBlockV1
                  "weight": 0, "gamma": 0,                 # Conv2D / Dense, BatchNorm
                  "bias": 1, "beta": 1, "running_mean": 2, "running_var": 3}


def _creation_key(name):
    key = []
    for part in name.split("."):
        if part.isdigit():
            key.append((0, int(part)))
        elif part in _CREATION_RANK:
            key.append((1, _CREATION_RANK[part]))
        else:
            return None
    return tuple(key)


def _from_file(path):
    """[(name, array)] of a GluonCV ``.params`` file, in GluonCV's creation order."""
    if not os.path.isfile(path):
        raise GluonCNNsError("load_gluoncv_params: no such file %r" % (path,))
    try:
        arrays = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise GluonCNNsError("load_gluoncv_params: cannot read %r as MXNet parameters (%s)"
                             % (path, error_line(err))) from None
    if not isinstance(arrays, dict) or not arrays:
        raise GluonCNNsError("load_gluoncv_params: %r holds no named parameters" % (path,))
    names = list(arrays)
    keys = [_creation_key(n) for n in names]
    if None in keys:
        odd = names[keys.index(None)]
        raise GluonCNNsError("load_gluoncv_params: %r is not a GluonCV CIFAR ResNet v1 or VGG "
                             "file saved with save_parameters (parameter %r); load it into the "
                             "GluonCV net and pass the net instead" % (path, odd))
    order = sorted(range(len(names)), key=lambda i: keys[i])
    values = list(arrays.values())
    return [(names[i], values[i]) for i in order]


def _from_net(net):
    """[(name, array)] of an initialized GluonCV net, in creation order."""
    items = []
    for name, param in net.collect_params().items():
        if param._data is None:
            raise GluonCNNsError("load_gluoncv_params: GluonCV's %s is not initialized (%s); "
                                 "initialize it and run it on one batch first"
                                 % (type(net).__name__, name))
        items.append((name, param.data(param.list_ctx()[0])))
    return items


def _fits(ours, theirs):
    """Whether a parameter of shape ``ours`` (0 = not inferred yet) takes ``theirs``."""
    return len(ours) == len(theirs) and all(a in (0, b) for a, b in zip(ours, theirs))


def load_gluoncv_params(net, path_or_gluoncv_net, ctx=None):
    """Copy GluonCV's parameters into ``net`` by creation order; returns ``net``.

    ``path_or_gluoncv_net`` is a GluonCV ``.params`` file (as ``save_parameters``
    and GluonCV's model store write them) or an initialized GluonCV net. ``net``
    must be GluonCV's architecture: ``CIFARResNet(depth, shortcut='B',
    stem_relu=False)`` for ``cifar_resnet{depth}_v1``, ``vgg11`` ... ``vgg19``
    (with GluonCV's ``classes``) for GluonCV's namesakes. Every array, BatchNorm
    running statistics included, goes to the parameter created at the same
    position, whose shape must match (dimensions not inferred yet take
    GluonCV's). Parameters not yet initialized are initialized on ``ctx``
    (default: CPU). A mismatch raises :class:`GluonCNNsError` in one line.
    """
    from .resnet_cifar import CIFARResNet
    ours_name = type(net).__name__
    if isinstance(net, CIFARResNet) and (net.shortcut_option != "B" or net.stem_relu):
        raise GluonCNNsError(
            "load_gluoncv_params: GluonCV's CIFAR ResNets have 1x1 projection shortcuts and no "
            "ReLU after the stem's BatchNorm; build the net with get_model('resnet%d_cifar', "
            "shortcut='B', stem_relu=False)" % net.depth)
    if isinstance(path_or_gluoncv_net, (str, os.PathLike)):
        theirs = _from_file(os.fspath(path_or_gluoncv_net))
        source = os.path.basename(os.fspath(path_or_gluoncv_net))
    else:
        theirs = _from_net(path_or_gluoncv_net)
        source = "GluonCV's " + type(path_or_gluoncv_net).__name__
    ours = list(net.collect_params().items())
    if len(ours) != len(theirs):
        raise GluonCNNsError("load_gluoncv_params: %s has %d parameters, %s %d; not the same "
                             "architecture" % (ours_name, len(ours), source, len(theirs)))
    for position, ((name, param), (their_name, array)) in enumerate(zip(ours, theirs)):
        if not _fits(param.shape, array.shape):
            raise GluonCNNsError(
                "load_gluoncv_params: parameter %d, %s of shape %s, does not fit %s of shape %s "
                "in %s (another depth, width or number of classes?)"
                % (position, name, param.shape, their_name, array.shape, source))
    for (_, param), (_, array) in zip(ours, theirs):
        started = param._data is not None or param._deferred_init  # its context is chosen
        param._load_init(array, None if started else (ctx or mx.cpu()), cast_dtype=True,
                         dtype_source="current")
    return net

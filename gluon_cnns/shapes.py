"""Shape trace and parameter count, by symbolic shape inference (no compute, no init).

Replaces the source articles' ``verbose=True`` printing: it works on hybridized
nets, on nets not yet initialized, and on inputs of any size the net accepts.
"""
import mxnet as mx
from mxnet.gluon import nn

from .models.base import ClassicNet, infer_shapes


def _param_shapes(symbol, input_shape):
    """{parameter name: shape} for every parameter ``symbol`` uses (running statistics too)."""
    arg_shapes, _, aux_shapes = infer_shapes(symbol, input_shape)
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    shapes.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    shapes.pop("data", None)
    return shapes


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _learnable(net):
    return {p.name for p in net.collect_params().values() if p.grad_req != "null"}


def count_parameters(net, input_shape, learnable_only=False):
    """Number of parameters ``net`` has for inputs of ``input_shape`` (NCHW).

    Every ``Parameter`` counts, BatchNorm running statistics included, unless
    ``learnable_only`` is set.
    """
    if isinstance(net, ClassicNet):
        net.check_input_shape(input_shape)
    shapes = _param_shapes(net(mx.sym.var("data")), tuple(input_shape))
    if learnable_only:
        keep = _learnable(net)
        shapes = {k: v for k, v in shapes.items() if k in keep}
    return sum(_size(s) for s in shapes.values())


def trace(net, input_shape):
    """[(block name, output shape, parameter count)] for each top-level block."""
    input_shape = tuple(input_shape)
    if isinstance(net, ClassicNet):
        net.check_input_shape(input_shape)
    blocks = list(net) if isinstance(net, nn.HybridSequential) else [net]
    x = mx.sym.var("data")
    rows = []
    for block in blocks:
        x = block(x)
        _, out_shapes, _ = infer_shapes(x, input_shape)
        shapes = _param_shapes(x, input_shape)
        count = sum(_size(shapes[name]) for name in block.collect_params() if name in shapes)
        rows.append((block.name, tuple(out_shapes[0]), count))
    return rows


def summary(net, input_shape, print_fn=print):
    """Print each top-level block's name, output shape and parameter count, then totals.

    Returns the rows of :func:`trace`.
    """
    rows = trace(net, input_shape)
    width = max([len(name) for name, _, _ in rows] + [len("block")])
    print_fn("%-*s  %-22s  %12s" % (width, "block", "output shape", "params"))
    print_fn("%-*s  %-22s  %12s" % (width, "input", tuple(input_shape), ""))
    for name, shape, count in rows:
        print_fn("%-*s  %-22s  %12s" % (width, name, shape, "{:,}".format(count)))
    total = count_parameters(net, input_shape)
    learnable = count_parameters(net, input_shape, learnable_only=True)
    print_fn("total parameters: {:,} ({:,} learnable)".format(total, learnable))
    return rows

"""Shape trace, parameter count and FLOPs, by symbolic shape inference (no compute, no init).

Replaces the source articles' ``verbose=True`` printing: it works on hybridized
nets, on nets not yet initialized, and on inputs of any size the net accepts.

FLOPs convention (per image, forward pass): a multiply-add is 2 FLOPs, so a
convolution costs ``2 * C_in/groups * k_h * k_w`` per output element and a
dense layer ``2 * in_features`` per output; a pooling window costs one FLOP
per element it reads. Bias adds, BatchNorm, activations, additions and
concatenations are not counted (they are a few per output element, noise
next to the convolutions).
"""
import ast
import json

import mxnet as mx
from mxnet.gluon import nn

from .models.base import ClassicNet, as_pooling, infer_shapes


def _param_shapes(symbol, input_shape):
    """{parameter name: shape} for every parameter ``symbol`` uses (running statistics too)."""
    arg_shapes, _, aux_shapes = infer_shapes(symbol, input_shape)
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    shapes.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    shapes.pop("data", None)
    return shapes


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
    return sum(_prod(s) for s in shapes.values())


def _prod(values):
    """The product of the numbers in ``values`` (the size of a shape)."""
    n = 1
    for v in values:
        n *= v
    return n


def _symbol_flops(symbol, input_shape):
    """Forward FLOPs of ``symbol`` for one batch of ``input_shape`` (see module docstring)."""
    internals = symbol.get_internals()
    _, out_shapes, _ = infer_shapes(internals, input_shape)
    shape_of = dict(zip(internals.list_outputs(), out_shapes))
    # GlobalAvgPool counts as the global Pooling it equals.
    nodes = as_pooling(json.loads(symbol.tojson()))["nodes"]

    def entry_shape(entry):
        node = nodes[entry[0]]
        return shape_of[node["name"] if node["op"] == "null" else node["name"] + "_output"]

    total = 0
    for node in nodes:
        op, attrs = node["op"], node.get("attrs", {})
        if op not in ("Convolution", "FullyConnected", "Pooling"):
            continue
        out_elems = _prod(shape_of[node["name"] + "_output"])
        if op == "Convolution":
            weight = entry_shape(node["inputs"][1])  # (C_out, C_in/groups, k_h, k_w)
            total += 2 * _prod(weight[1:]) * out_elems
        elif op == "FullyConnected":
            total += 2 * entry_shape(node["inputs"][1])[1] * out_elems
        else:
            if attrs.get("global_pool", "False") == "True":
                window = _prod(entry_shape(node["inputs"][0])[2:])
            else:
                window = _prod(ast.literal_eval(attrs["kernel"]))
            total += window * out_elems
    return total


def flops(net, input_shape):
    """Forward FLOPs per image of ``net`` for NCHW ``input_shape`` (conv, dense, pooling)."""
    input_shape = (1,) + tuple(input_shape)[1:]
    if isinstance(net, ClassicNet):
        net.check_input_shape(input_shape)
    return _symbol_flops(net(mx.sym.var("data")), input_shape)


def trace(net, input_shape):
    """[(block name, output shape, parameter count, FLOPs per image)] for each top-level block."""
    input_shape = tuple(input_shape)
    if isinstance(net, ClassicNet):
        net.check_input_shape(input_shape)
    blocks = list(net) if isinstance(net, nn.HybridSequential) else [net]
    one_image = (1,) + input_shape[1:]
    x = mx.sym.var("data")
    rows = []
    flops_so_far = 0
    for block in blocks:
        x = block(x)
        _, out_shapes, _ = infer_shapes(x, input_shape)
        shapes = _param_shapes(x, input_shape)
        count = sum(_prod(shapes[name]) for name in block.collect_params() if name in shapes)
        cumulative = _symbol_flops(x, one_image)
        rows.append((block.name, tuple(out_shapes[0]), count, cumulative - flops_so_far))
        flops_so_far = cumulative
    return rows


def summary(net, input_shape, print_fn=print):
    """Print each top-level block's name, output shape, parameters and MFLOPs, then totals.

    Returns the rows of :func:`trace`.
    """
    rows = trace(net, input_shape)
    width = max([len(row[0]) for row in rows] + [len("block")])
    line = "%-*s  %-22s  %12s  %10s"
    print_fn(line % (width, "block", "output shape", "params", "MFLOPs"))
    print_fn(line % (width, "input", tuple(input_shape), "", ""))
    for name, shape, count, block_flops in rows:
        print_fn(line % (width, name, shape, "{:,}".format(count), "%.2f" % (block_flops / 1e6)))
    total = count_parameters(net, input_shape)
    learnable = count_parameters(net, input_shape, learnable_only=True)
    print_fn("total parameters: {:,} ({:,} learnable); {:,} FLOPs per image".format(
        total, learnable, sum(row[3] for row in rows)))
    return rows

"""Faster CPU inference: graph fusion, int8 post-training quantization and bfloat16.

All three start from a trained fp32 network and return a new block for
inference only; the original network is left untouched.

    qnet = quantize_net(net, calib_batches_iter, mx.cpu())     # int8 (oneDNN)
    bnet = to_bfloat16(net, example_batch)                      # bf16 (oneDNN)
    fnet = fuse_for_cpu(net, example_batch)                     # fp32, fused

Why :func:`fuse_for_cpu` exists, and why the other two go through it: the
tutorials' blocks (and many users') write ``F.relu(x)``. MXNet 1.9.1's oneDNN
backend fuses Convolution + BatchNorm + ``Activation(act_type='relu')`` (and
the residual addition) into one kernel, but it does not recognise the ``relu``
operator, and ``relu`` has no oneDNN bfloat16 kernel at all: in a bf16 ResNet
it ran as a scalar loop and took more time than all the convolutions. So the
exported graph is rewritten, ``relu`` -> ``Activation(relu)`` (the same
function), before oneDNN sees it. The fp32 and bf16 paths then take each
activation back out of its convolution kernel, where oneDNN runs it slower
than on its own (see :func:`_activations_out_of_convs`); the int8 path keeps
conv + ReLU fused, which keeps the ReLU's output in uint8.

Everything here is CPU-only: MXNet 1.9.1 has no int8 or bf16 GPU kernels for
these paths.
"""
import contextlib
import json
import os
import warnings

import mxnet as mx
from mxnet import gluon

from ..cpu import bf16_supported, cpu_features
from ..errors import GluonCNNsError
from ..models.base import as_pooling

__all__ = ["CALIB_MODES", "bf16_supported", "cpu_features", "fuse_for_cpu", "quantize_net",
           "to_bfloat16"]

CALIB_MODES = ("naive", "entropy")

# The fused operators oneDNN runs in bf16 when asked to. MXNet's default amp
# lists keep them in fp32 (they were added before the bf16 kernels).
_FUSED_OPS = ("_sg_mkldnn_conv", "_sg_mkldnn_fully_connected")


def _check_cpu(ctx, what):
    """``ctx`` (default: the CPU), or GluonCNNsError if it is not a CPU."""
    ctx = mx.cpu() if ctx is None else ctx
    if ctx.device_type != "cpu":
        raise GluonCNNsError("%s runs on the CPU only (oneDNN) in MXNet 1.9.1, got ctx=%s; "
                             "pass ctx=mx.cpu()" % (what, ctx))
    return ctx


@contextlib.contextmanager
def _quiet_mxnet():
    """Silence the notices MXNet's converters print: "Subgraph backend MKLDNN is
    activated" (MXNET_SUBGRAPH_VERBOSE, read per call) and Python warnings such
    as "Cannot decide type for data". They are informational and would bury the
    benchmark table. The quantizer's C++ notices ("sigmoid is excluded from
    quantization") go to stderr regardless.
    """
    old = os.environ.get("MXNET_SUBGRAPH_VERBOSE")
    os.environ["MXNET_SUBGRAPH_VERBOSE"] = "0"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if old is None:
            os.environ.pop("MXNET_SUBGRAPH_VERBOSE", None)
        else:
            os.environ["MXNET_SUBGRAPH_VERBOSE"] = old


# How a residual addition ``x + y`` appears in an exported graph.
_ADD_OPS = ("elemwise_add", "_plus", "_Plus", "broadcast_add")


def _for_onednn(symbol, after_add=True):
    """``symbol`` with each ReLU as ``Activation(relu)``, the form oneDNN fuses and has
    bf16/int8 kernels for, and :class:`~gluon_cnns.models.base.GlobalAvgPool` as the
    equal global ``Pooling`` (which has oneDNN and int8 kernels).

    ``after_add=False``: the ReLU of ``relu(x + y)`` becomes (or stays) the ``relu``
    operator instead, which oneDNN does not fuse into the conv + add: see
    :func:`quantize_net`.
    """
    graph = as_pooling(json.loads(symbol.tojson()))
    nodes = graph["nodes"]
    for node in nodes:
        is_relu = node["op"] == "relu" or (
            node["op"] == "Activation" and node.get("attrs", {}).get("act_type") == "relu")
        if not is_relu:
            continue
        if not after_add and nodes[node["inputs"][0][0]]["op"] in _ADD_OPS:
            node["op"], node["attrs"] = "relu", {}
        else:
            node["op"], node["attrs"] = "Activation", {"act_type": "relu"}
    return mx.sym.load_json(json.dumps(graph))


def _graph(net, example):
    """(inputs, symbol) of ``net``'s forward graph, tracing it on ``example`` if needed."""
    if not getattr(net, "_cached_graph", None):
        if not net._active:  # pylint: disable=protected-access
            net.hybridize()  # keep the caller's hybridize flags when there are some
        with mx.autograd.predict_mode():
            net(example)
    return net._cached_graph  # pylint: disable=protected-access


def _block_of(symbol, inputs, source, ctx):
    """A SymbolBlock of ``symbol`` whose parameters are copies of those of block ``source``."""
    with _quiet_mxnet():
        block = gluon.SymbolBlock(symbol, inputs)
    own = source.collect_params()
    for name, param in block.collect_params().items():
        # A copy: the oneDNN pass folds BatchNorm into the conv weights of the
        # new block, which must not change the caller's net.
        param._load_init(own[name].data().copyto(ctx), ctx)  # pylint: disable=protected-access
    return block


def _symbol_block(net, example, ctx, relu_after_add=True):
    """A SymbolBlock of ``net``'s graph with relu rewritten, sharing nothing with ``net``."""
    inputs, symbol = _graph(net, example)
    return _block_of(_for_onednn(symbol, relu_after_add), inputs, net, ctx)


def _activations_out_of_convs(symbol):
    """A fused graph with each activation that oneDNN put inside a conv kernel moved back out.

    oneDNN applies an activation fused into a convolution as a post-op, and in
    MXNet 1.9.1's oneDNN that is slower than running it on its own, badly so
    for the small convolutions of the MNIST nets, which oneDNN computes with
    its GEMM-based kernel: ``lenet_bn``'s first conv (1 -> 6 channels, batch
    256) took 7.2 ms with its sigmoid fused against 1.55 ms + 0.2 ms apart
    (DNNL_VERBOSE). Measured whole-net inference, fused with / without this
    change: lenet 15.4k / 28.2k img/s, lenet_bn 30.2k / 85.2k, resnet_mnist
    45.7k / 46.0k, resnet18 316 / 317. BatchNorm stays folded into the conv
    and the residual addition fused.
    """
    graph = json.loads(symbol.tojson())
    nodes, kept, where = graph["nodes"], [], {}
    for i, node in enumerate(nodes):
        node["inputs"] = [[where[entry[0]]] + entry[1:] for entry in node["inputs"]]
        where[i] = len(kept)
        kept.append(node)
        attrs = node.get("attrs", {})
        flag = "with_postsum_act" if attrs.get("with_postsum_act") == "true" else "with_act"
        if node["op"] != "_sg_mkldnn_conv" or attrs.get(flag) != "true":
            continue
        sub = node["subgraphs"][0]
        act = sub["nodes"][sub["heads"][0][0]]
        if act["op"] != "Activation" or sub["heads"][0][0] != len(sub["nodes"]) - 1:
            continue  # e.g. LeakyReLU: left fused
        sub["nodes"].pop()
        sub["heads"] = [act["inputs"][0]]
        sub.pop("node_row_ptr", None)
        attrs[flag] = "false"
        # The activation's name goes to the new node: exclude_layers and
        # profiles keep finding it.
        kept.append({"op": "Activation", "name": act["name"], "attrs": dict(act["attrs"]),
                     "inputs": [[where[i], 0, 0]]})
        where[i] = len(kept) - 1  # the conv's consumers now read the activation
    graph["nodes"] = kept
    graph["arg_nodes"] = [where[i] for i in graph["arg_nodes"]]
    graph["heads"] = [[where[h[0]]] + h[1:] for h in graph["heads"]]
    graph.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(graph))


def fuse_for_cpu(net, example, ctx=None):
    """``net`` for fp32 CPU inference with oneDNN's fusions (conv+BN(+add) in one kernel).

    ``example`` is one input batch; the returned block is built for that batch
    shape (``static_shape``) and gives the same outputs as ``net`` up to
    float rounding. Activations run as their own oneDNN kernels, not inside
    the convolutions: see :func:`_activations_out_of_convs` for why.
    """
    ctx = _check_cpu(ctx, "fuse_for_cpu")
    example = example.as_in_context(ctx)
    block = _symbol_block(net, example, ctx)
    with _quiet_mxnet():
        block.optimize_for(example, backend="MKLDNN", static_alloc=True, static_shape=True)
    inputs, fused = block._cached_graph  # the partitioned graph, after optimize_for
    split = _block_of(_activations_out_of_convs(fused), inputs, block, ctx)
    split.hybridize(static_alloc=True, static_shape=True)
    return split


def _calibration_iter(calib_data, calib_batches):
    """The first ``calib_batches`` image batches of ``calib_data`` as one mx.io.NDArrayIter.

    ``calib_data`` yields ``(X, y)`` pairs (the package's loaders, a DataLoader)
    or bare ``X`` batches. MXNet's own wrapper for such iterables passes the
    labels on as a second network input, so the images are collected here.
    """
    batches = []
    for batch in calib_data:
        batches.append(batch[0] if isinstance(batch, (list, tuple)) else batch)
        if len(batches) >= calib_batches:
            break
    if not batches:
        raise GluonCNNsError("calib_data gave no batches; pass a loader of real images")
    images = mx.nd.concat(*[b.as_in_context(mx.cpu()) for b in batches], dim=0)
    return mx.io.NDArrayIter(images, batch_size=batches[0].shape[0]), images.shape[0]


def _slow_in_int8(symbol):
    """Names of the nodes of ``symbol`` that MXNet 1.9.1 runs slower in int8 than in fp32.

    * A BatchNorm that does not follow a convolution (those are folded into
      the conv's weights): oneDNN has only its reference int8 batch norm.
    * A Pooling that follows an activation other than ReLU: those stay fp32
      (no int8 kernel), so an int8 pooling first needs a quantization of the
      full-size map; pooled in fp32, only the map four times smaller is.

    Measured on a trained lenet_bn (batch 256, one run): fp32 65k img/s, int8
    59k, int8 without these in int8 85k.
    """
    nodes = json.loads(symbol.tojson())["nodes"]

    def source(node):
        return nodes[node["inputs"][0][0]]

    slow = []
    for node in nodes:
        if node["op"] == "BatchNorm" and source(node)["op"] != "Convolution":
            slow.append(node["name"])
        elif (node["op"] == "Pooling" and source(node)["op"] == "Activation"
              and source(node).get("attrs", {}).get("act_type") != "relu"):
            slow.append(node["name"])
    return slow


def quantize_net(net, calib_data, ctx=None, calib_batches=10, calib_mode="naive",
                 quantized_dtype="auto", exclude_layers=None, granularity="tensor-wise"):
    """An int8 copy of the trained fp32 ``net`` (oneDNN post-training quantization).

    Activation ranges come from ``calib_batches`` batches of ``calib_data``
    (real images, e.g. ``load_data_fashion_mnist(...)[0]``): ``'naive'`` takes
    each layer's min and max, ``'entropy'`` picks the range that minimises the
    KL divergence of the int8 histogram (slower to calibrate, better with
    outliers). Operators oneDNN cannot run in int8 (e.g. sigmoid) stay fp32,
    with (de)quantization around them, and so do those it runs slower in int8
    (see :func:`_slow_in_int8`), besides the names in ``exclude_layers``.
    Returns a hybridized SymbolBlock whose output is fp32 logits.

    The ReLU of a residual block's ``relu(x + y)`` is kept out of the int8
    kernel, so oneDNN fuses conv + add in int8 but applies that ReLU after
    dequantizing: with the ReLU fused too (conv + add + ReLU in one int8
    kernel) MXNet 1.9.1 lost about 1 point of Fashion-MNIST accuracy on
    ``resnet_mnist`` (1.19 points, 94.7% of predictions unchanged, against
    +0.02 points and 98.9% this way).
    """
    ctx = _check_cpu(ctx, "int8 quantization")
    if calib_mode not in CALIB_MODES:
        raise GluonCNNsError("calib_mode must be one of %s, got %r"
                             % (", ".join(CALIB_MODES), calib_mode))
    calib_iter, num_examples = _calibration_iter(calib_data, calib_batches)
    example = calib_iter.data[0][1][:calib_iter.batch_size].as_in_context(ctx)
    block = _symbol_block(net, example, ctx, relu_after_add=False)
    block.hybridize()
    # A SymbolBlock holds its graph from the start: no forward pass needed to read it.
    exclude_layers = list(exclude_layers or []) + _slow_in_int8(block._cached_graph[1])
    from mxnet.contrib import quantization
    with _quiet_mxnet():
        qnet = quantization.quantize_net_v2(
            block, quantized_dtype=quantized_dtype, quantize_mode="full",
            quantize_granularity=granularity,
            exclude_layers=exclude_layers, calib_data=calib_iter, calib_mode=calib_mode,
            num_calib_examples=num_examples, ctx=ctx)
        qnet.hybridize(static_alloc=True, static_shape=True)
        qnet(example).wait_to_read()  # build the int8 kernels now, not in the first timed call
    return qnet


class _Float32Output(gluon.HybridBlock):
    """Casts the output of ``body`` (a bf16 graph) to float32 for the caller."""

    def __init__(self, body, **kwargs):
        super().__init__(**kwargs)
        self.body = body

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        return F.amp_cast(self.body(x), dtype="float32")


def to_bfloat16(net, example, ctx=None):
    """A bfloat16 copy of the trained fp32 ``net`` for CPU inference (fp32 in, fp32 out).

    The graph is fused first (:func:`fuse_for_cpu`), then MXNet's AMP converts
    the fused convolutions and dense layers to bf16 and stores their weights in
    bf16; BatchNorm, pooling and activations follow the dtype of their input.
    Needs a CPU with AVX512-BF16 or AMX to be fast (see :func:`bf16_supported`).
    """
    ctx = _check_cpu(ctx, "bfloat16 inference")
    example = example.as_in_context(ctx)
    fused = fuse_for_cpu(net, example, ctx)
    from mxnet.contrib import amp
    from mxnet.contrib.amp.lists import symbol_bf16
    fp32_ops = [op for op in symbol_bf16.FP32_FUNCS if op not in _FUSED_OPS]
    with _quiet_mxnet():
        body = amp.convert_hybrid_block(
            fused, target_dtype="bfloat16",
            target_dtype_ops=list(symbol_bf16.BF16_FUNCS) + list(_FUSED_OPS),
            fp32_ops=fp32_ops, ctx=ctx,
            # Store weights in bf16 once, rather than casting them on every call.
            cast_optional_params=True)
        bnet = _Float32Output(body)
        bnet.hybridize(static_alloc=True, static_shape=True)
        bnet(example).wait_to_read()
    return bnet

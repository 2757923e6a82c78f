"""bfloat16 mixed-precision training on the CPU (MXNet 1.9.1 AMP + oneDNN).

    from gluon_cnns.training.amp import enable_bf16_training
    enable_bf16_training()              # before the net is built or hybridized
    net = gluon_cnns.get_model('lenet_bn')
    ...                                 # train exactly as in fp32

What it does: ``mxnet.contrib.amp.init(target_dtype='bfloat16')`` wraps the
operators of ``mx.sym``/``mx.nd`` so that every Convolution and FullyConnected
casts its inputs (data and the fp32 master weights) to bf16; the optimizer
keeps updating fp32 weights, so checkpoints stay fp32 and interchangeable
with fp32 runs. bf16 has fp32's exponent range, so unlike float16 it needs no
loss scaling: ``amp.init_trainer``/``amp.scale_loss`` are not used (their
overflow check would copy a flag to the host after every batch).

Two MXNet 1.9.1 CPU problems are worked around (measured on an AVX512-BF16 CPU):

* The ``relu`` operator (``F.relu``, which the tutorials' blocks and many user
  blocks write; the zoo writes ``Activation('relu')``) has no oneDNN kernel, and in bf16 it runs as a scalar loop: forward plus backward
  ReLU took longer than all the convolutions of ResNet-18. ``relu`` is
  therefore routed to ``Activation(act_type='relu')``, the same function with
  a oneDNN bf16 kernel.
* BatchNorm on a bf16 tensor in plain (NCHW) layout falls back to oneDNN's
  reference kernel (one BatchNorm after a 1-channel convolution took 100 ms a
  step). With ``fp32_batchnorm=True`` BatchNorm runs in fp32 instead, at the
  cost of two casts per BatchNorm.

AMP changes MXNet process-wide and cannot be undone: call this once, at
start-up, in a process that trains in bf16 only. The network's output is
bf16; compare predictions with ``output.argmax(axis=1) == y.astype('float32')``
(``argmax`` returns float32), never with ``y.astype(output.dtype)``.
"""
import mxnet as mx

from ..cpu import bf16_supported
from ..errors import GluonCNNsError

__all__ = ["enable_bf16_training", "bf16_training_enabled", "check_bf16_context"]

_ENABLED = {"value": False}


def _relu_via_activation():
    """Route ``mx.sym.relu``/``mx.nd.relu`` to ``Activation(act_type='relu')`` (see module doc).

    Gluon's ``F.relu`` looks the function up on the module at call time, so
    replacing the module attribute is enough; ``amp.init`` does the same kind
    of replacement for every operator it wraps.
    """
    sym_relu, nd_relu = mx.symbol.relu, mx.ndarray.relu

    def relu_sym(data=None, name=None, attr=None, out=None, **kwargs):
        return mx.symbol.Activation(data, act_type="relu", name=name, attr=attr, **kwargs)

    def relu_nd(data=None, out=None, name=None, **kwargs):
        return mx.ndarray.Activation(data, act_type="relu", out=out, name=name, **kwargs)

    relu_sym.__doc__, relu_nd.__doc__ = sym_relu.__doc__, nd_relu.__doc__
    for module, function in ((mx.symbol, relu_sym), (mx.symbol.op, relu_sym),
                             (mx.ndarray, relu_nd), (mx.ndarray.op, relu_nd)):
        module.relu = function


def check_bf16_context(ctx):
    """Raise :class:`GluonCNNsError` unless all contexts are CPUs (no bf16 GPU kernels in 1.9.1)."""
    ctxs = ctx if isinstance(ctx, (list, tuple)) else [ctx]
    bad = [c for c in ctxs if c.device_type != "cpu"]
    if bad:
        raise GluonCNNsError("bf16 training runs on the CPU only in MXNet 1.9.1 (oneDNN), got "
                             "%s; use --ctx cpu, or train in fp32 on the GPU"
                             % ", ".join(map(str, bad)))


def bf16_training_enabled():
    """True once :func:`enable_bf16_training` has run in this process."""
    return _ENABLED["value"]


def enable_bf16_training(fp32_batchnorm=False, warn=print):
    """Switch this process to bf16 mixed-precision training; call before building the net.

    Returns True. Calling it again does nothing (AMP cannot be re-initialised
    with other settings). ``warn`` gets one line when the CPU lacks bf16
    instructions (oneDNN then emulates bf16, slower than fp32).
    """
    if _ENABLED["value"]:
        return True
    if not bf16_supported() and warn is not None:
        warn("warning: this CPU has no AVX512-BF16/AMX instructions; bf16 training will be "
             "emulated and slower than fp32")
    from mxnet.contrib import amp
    from mxnet.contrib.amp.lists import symbol_bf16
    _relu_via_activation()
    fp32_ops = None
    if fp32_batchnorm:
        fp32_ops = list(symbol_bf16.FP32_FUNCS) + ["BatchNorm"]
    amp.init(target_dtype="bfloat16", fp32_ops=fp32_ops)
    _ENABLED["value"] = True
    return True

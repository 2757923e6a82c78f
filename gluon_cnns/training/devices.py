"""Which devices to train on: the tutorials' ``try_gpu``/``try_all_gpus``, and the CLI's
choice from ``--ctx``/``--gpus``/``--cpus`` with its one-line fallback to the CPU."""
import sys

import mxnet as mx
from mxnet import gluon

from ..errors import GluonCNNsError


def try_gpu(i=0):
    """Return ``mx.gpu(i)`` if that GPU exists and works, else ``mx.cpu()``."""
    if i < mx.context.num_gpus():
        ctx = mx.gpu(i)
        try:
            # A GPU can be listed but unusable (driver/toolkit mismatch, out of
            # memory): only a real allocation tells.
            mx.nd.zeros((1,), ctx=ctx).wait_to_read()
            return ctx
        except mx.base.MXNetError:
            pass
    return mx.cpu()


def try_all_gpus():
    """Return every usable GPU as a list, or ``[mx.cpu()]`` if there is none."""
    ctxs = [try_gpu(i) for i in range(mx.context.num_gpus())]
    ctxs = [c for c in ctxs if c.device_type == "gpu"]
    return ctxs or [mx.cpu()]


def as_contexts(ctx):
    """Accept one context or a list of them."""
    ctxs = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    if not ctxs or not all(isinstance(c, mx.Context) for c in ctxs):
        raise GluonCNNsError("ctx must be an mx.Context, e.g. mx.cpu() or mx.gpu(0), or a "
                             "list of them; got %r" % (ctx,))
    return ctxs


def split(X, y, ctxs):
    """Split a batch across the contexts (a plain copy when there is only one); a batch
    smaller than the contexts goes to its first ones, one example each (MXNet cannot copy
    an empty part; training refuses such a batch, ``training.fit.check_split``)."""
    ctxs = ctxs[:X.shape[0]]
    Xs = gluon.utils.split_and_load(X, ctxs, even_split=False)
    ys = gluon.utils.split_and_load(y, ctxs, even_split=False)
    return Xs, ys


def training_contexts(ctx=None, gpus=None, cpus=None, activity="training"):
    """The list of contexts that ``--ctx``, ``--gpus`` and ``--cpus`` ask for.

    ``--ctx gpu`` without a usable GPU falls back to the CPU with one warning
    line on stderr ("... ; <activity> on cpu(0)"); impossible combinations raise
    GluonCNNsError.
    """
    if cpus is not None:
        if gpus is not None or ctx == "gpu":
            raise GluonCNNsError("--cpus trains on CPU contexts; drop --gpus and --ctx gpu")
        return [mx.cpu(i) for i in range(cpus)]
    if gpus is not None:
        if ctx == "cpu":
            raise GluonCNNsError("--gpus trains on GPUs; drop --ctx cpu")
        found = [c for c in try_all_gpus() if c.device_type == "gpu"]
        if gpus > len(found):
            fix = ("use --gpus %d or fewer" % len(found) if found
                   else "drop --gpus to train on the CPU")
            raise GluonCNNsError("--gpus %d but only %d usable GPU(s) found; %s"
                                 % (gpus, len(found), fix))
        return found[:gpus]
    if ctx == "gpu":
        device = try_gpu()
        if device.device_type != "gpu":
            print("warning: --ctx gpu but no usable GPU found; %s on %s" % (activity, device),
                  file=sys.stderr)
        return [device]
    return [mx.cpu()]


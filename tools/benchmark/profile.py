"""Where a training step's time goes: mx.profiler's per-operator aggregate."""
import contextlib
import json
import os
import shutil
import tempfile

from .argtypes import for_net
from .nets import (TRAIN_FLOPS_FACTOR, hybridize, input_shape, random_batch, recipe_trainer,
                   release, train_step)

_CONVOLUTION_OPS = ("Convolution", "_backward_Convolution")


def profile_train_step(name, ctx, opts, steps=2, top=8):
    """Per-operator time of ``steps`` hybridized training steps of ``name`` (mx.profiler,
    inside a :func:`profiler_session`).

    Operator bulking is switched off while the net's graph is built, else
    MXNet reports whole graph segments as one "operator". Returns the total
    and the ``top`` operators (name, ms, calls, share of the total).
    """
    import mxnet as mx
    from mxnet import gluon
    from gluon_cnns.models import get_model, model_spec
    from gluon_cnns.shapes import flops
    recipe = model_spec(name).recipe
    shape = input_shape(name, for_net(opts.batch_size, name, None))
    with _env(MXNET_EXEC_BULK_EXEC_TRAIN="0", MXNET_EXEC_BULK_EXEC_INFERENCE="0"):
        net = get_model(name, classes=10)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        hybridize(net, static=True)
        X, y = random_batch(shape, ctx, opts.seed)
        step = train_step(net, recipe_trainer(net, recipe, 1, lr=1e-3),
                          gluon.loss.SoftmaxCrossEntropyLoss(), X, y)
        step()  # builds the graph (read the variables above) and warms up
        mx.nd.waitall()
        mx.profiler.dumps(reset=True)  # what an earlier net of the session left
        mx.profiler.set_state("run")
        for _ in range(steps):
            step()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        table = json.loads(mx.profiler.dumps(reset=True, format="json"))
    flops_per_step = TRAIN_FLOPS_FACTOR * flops(net, shape) * shape[0] * steps
    del net
    release()
    profile = _operator_rows(table, top)
    # What the convolutions alone achieve: their share of the time and their GFLOP/s
    # (the conv FLOPs are nearly all of flops() for these nets).
    conv_ms = sum(v["Total"] for k, v in table.get("Time", {}).get("operator", {}).items()
                  if k in _CONVOLUTION_OPS)
    profile["conv_share"] = conv_ms / profile["total_ms"]
    profile["conv_gflops"] = flops_per_step / (conv_ms / 1e3) / 1e9 if conv_ms else None
    profile["all_ops_gflops"] = flops_per_step / (profile["total_ms"] / 1e3) / 1e9
    return profile


@contextlib.contextmanager
def profiler_session():
    """mx.profiler configured (aggregating) for the :func:`profile_train_step` calls inside,
    tracing into a private folder.

    MXNet's profiler unlinks the file it is given and creates it anew (set_config), and
    writes its trace there once more when the process exits: handed /dev/null, it
    replaces the device with a regular file. So the trace goes to a fresh 0700 folder;
    the explicit final dump ends the profiler's output, so nothing is written at exit,
    and the folder is removed. Configured once for all nets: a set_config after a final
    dump can fail in MXNet's thread group ("Check failed: auto_remove_ == false").
    """
    import mxnet as mx
    profiler = mx.profiler
    folder = tempfile.mkdtemp(prefix="gluon-cnns-profile-")
    try:
        profiler.set_config(profile_all=True, aggregate_stats=True,
                            filename=os.path.join(folder, "trace.json"))
        try:
            yield
        finally:
            profiler.set_state("stop")
            profiler.dump(finished=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _env(**variables):
    """Set environment variables for the duration of a block (MXNet reads some per call)."""
    old = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _operator_rows(table, top):
    """The ``top`` operators by total time from mx.profiler's JSON aggregate."""
    ops = table.get("Time", {}).get("operator", {})
    total = sum(v["Total"] for v in ops.values()) or 1.0
    rows = sorted(((name, v["Total"], v["Count"], v["Total"] / total) for name, v in ops.items()),
                  key=lambda r: -r[1])
    return {"total_ms": total, "operators": [
        {"op": n, "ms": ms, "calls": c, "share": share} for n, ms, c, share in rows[:top]]}

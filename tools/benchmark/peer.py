"""The PyTorch peer column: the same architectures, batch and optimizer in PyTorch eager.

For each net: a training step (forward, softmax cross entropy, backward, SGD
with momentum 0.9) and inference (forward in predict mode) on random data of
the recipe's batch and input size, images/s. Ours runs as ``scripts/train.py``
would (``gluon_cnns.threads.configure(net)`` before MXNet is imported,
``hybridize(static_alloc, static_shape)``); theirs with PyTorch's defaults
(``torch.get_num_threads()`` threads). Ours also times the net of
:func:`gluon_cnns.inference.fuse_for_cpu` (BatchNorm folded into the
convolutions), the package's fp32 CPU inference path, and the default prediction
path: the net exported and ``load_predictor(export).probabilities(X)`` on the same
batch after one warm-up call (its fused graph where equal, its softmax and copy to
numpy). The inference target is judged on the plain hybridized net and, where
measured, on the prediction path. Each side runs in a fresh process with no
thread variable in its environment, the sides alternating (ours, theirs; then
theirs, ours; ...) over ``--peer-rounds`` rounds: a change in the machine's
load hits both alike. PyTorch also runs a third time with the variables our
policy sets for the net (``OMP_NUM_THREADS``, ``GOMP_SPINCOUNT``; PyTorch's own
libgomp reads them): the ratio to that separates the frameworks from the
thread settings. The nets are ``tools/benchmark/torch_nets.py``, layer for
layer ours; the parameter counts are compared in every run.

PyTorch runs under ``--peer-python`` (default: this interpreter): a separate
environment keeps torch away from GluonCV, which refuses to import next to a
torch >= 2.0.
"""
import json
import os
import subprocess
import sys

from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.threads import plan

from .nets import input_shape
from .threads import ROOT, thread_free_env
from .timing import summarize

PEER_NETS = ("lenet_bn", "resnet_mnist", "resnet18", "googlenet", "resnet20_cifar", "densenet")
# ours / PyTorch eager, training step and inference alike.
TARGETS = {"resnet18": 1.3, "googlenet": 1.3, "resnet20_cifar": 1.3, "densenet": 1.3}
DEFAULT_TARGET = 1.0
LR, MOMENTUM = 0.01, 0.9


def _net_kwargs(name):
    """Builder arguments both sides use: resnet20_cifar with option-B shortcuts when ours
    has them (``get_model(..., shortcut='B')``), else our default, option A."""
    if name != "resnet20_cifar":
        return {}
    from gluon_cnns.models import get_model
    try:
        get_model(name, shortcut="B")
    except GluonCNNsError:
        return {"shortcut": "A"}
    return {"shortcut": "B"}


def mxnet_worker(spec):
    """Our side (in a fresh process): the thread policy, then MXNet; prints a RESULT line."""
    from gluon_cnns.threads import configure, effective_threads
    configure(spec["net"])  # as scripts/train.py does, before MXNet is imported
    import mxnet as mx
    from mxnet import gluon
    from gluon_cnns.models import get_model
    from .nets import hybridize, random_batch, train_step
    from .timing import measure_throughputs
    mx.random.seed(spec["seed"])
    net = get_model(spec["net"], classes=10, **spec["kwargs"])
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    hybridize(net, static=True)
    X, y = random_batch(spec["shape"], mx.cpu(), spec["seed"])
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": spec["lr"], "momentum": spec["momentum"]})
    step = train_step(net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), X, y)
    timing = (spec["shape"][0], spec["warmup"], spec["repeat"], spec["min_time"])
    (train,) = measure_throughputs([step], *timing)
    (forward,) = measure_throughputs([lambda: net(X)], *timing)
    from gluon_cnns.inference.quantize import fuse_for_cpu
    fused = fuse_for_cpu(net, X)  # the package's fp32 CPU inference (BatchNorm folded)
    (forward_fused,) = measure_throughputs([lambda: fused(X)], *timing)
    predictor = predictor_throughput(net, spec, X, timing)
    params = list(net.collect_params().values())
    print("RESULT " + json.dumps({
        "framework": "mxnet %s" % mx.__version__, "threads": effective_threads(),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT")
                       if k in os.environ},
        "train_step": train, "inference": forward, "inference_fused": forward_fused,
        "inference_predictor": predictor,
        "learnable_params": sum(p.data().size for p in params if p.grad_req != "null"),
        "params": sum(p.data().size for p in params)}))


def predictor_throughput(net, spec, X, timing):
    """Images/s of the default prediction path: ``net`` exported, then
    ``load_predictor(export).probabilities(X)`` after one warm-up call, as a user's
    script calls it (its chunks, its fused graph, its softmax and copy to numpy)."""
    import tempfile
    from gluon_cnns.inference.export import export_model
    from gluon_cnns.inference.predict import load_predictor
    from .timing import measure_throughputs
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, spec["net"])
        export_model(net, prefix, spec["shape"][1:], formats=("symbol",), net_name=spec["net"])
        predictor = load_predictor(prefix)
    predictor.probabilities(X)
    (figure,) = measure_throughputs([lambda: predictor.probabilities(X)], *timing)
    figure["fused_shapes"] = [list(shape) for shape in predictor.fused_shapes]
    return figure


def run_result(argv, what, variables=None):
    """Run ``argv`` (a Python worker) with no thread variables but ``variables``; return its
    RESULT dict."""
    env = thread_free_env(dict(variables or {}, PYTHONPATH=ROOT + os.pathsep
                               + os.environ.get("PYTHONPATH", "")))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise GluonCNNsError("%s failed: %s" % (what, tail))


def torch_version(python):
    """PyTorch's version under ``python``, or None when it cannot import torch."""
    proc = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True, check=False, env=thread_free_env())
    return proc.stdout.strip() if proc.returncode == 0 else None


def torch_or_skipped(opts):
    """``(python, torch version, None)`` of the PyTorch side, or ``(python, None, section)``
    with the report section that says why it was skipped."""
    python = opts.peer_python or sys.executable
    version = torch_version(python)
    if version is None:
        return python, None, {"python": python,
                              "skipped": "torch is not importable by %s" % python}
    return python, version, None


def _spec(name, opts):
    return worker_spec(name, opts, opts.batch_size.get(name))


def worker_spec(name, opts, batch_size):
    """What a timing worker of ``name`` builds and runs (both sides read the same)."""
    return {"net": name, "shape": list(input_shape(name, batch_size)),
            "kwargs": _net_kwargs(name), "lr": LR, "momentum": MOMENTUM,
            "warmup": max(opts.warmup, 1), "repeat": opts.repeat, "min_time": opts.min_time,
            "seed": opts.seed}


def _sides(spec, python):
    """``[(side, argv, thread variables)]``: ours, PyTorch with its defaults, and PyTorch
    with the variables our policy sets for the net (its libgomp reads them too)."""
    code = "import json, sys; from tools.benchmark.%s import %s; %s(json.loads(sys.argv[1]))"
    ours = [sys.executable, "-c", code % ("peer", "mxnet_worker", "mxnet_worker"),
            json.dumps(spec)]
    theirs = [python, "-c", code % ("torch_nets", "torch_worker", "torch_worker"),
              json.dumps(spec)]
    return [("ours", ours, {}), ("pytorch", theirs, {}),
            ("pytorch_our_threads", theirs, plan(spec["net"], environ={}))]


def _peer_record(name, spec, runs):
    """One net's record from its runs {side: [result per round]}."""
    record = {"net": name, "input_shape": spec["shape"][1:], "batch_size": spec["shape"][0],
              "kwargs": spec["kwargs"], "target": TARGETS.get(name, DEFAULT_TARGET)}
    for side, results in runs.items():
        record[side] = {
            "framework": results[0]["framework"], "threads": results[0]["threads"],
            "thread_env": results[0].get("thread_env", {}),
            "params": results[0]["params"], "learnable_params": results[0]["learnable_params"],
            "train_step": summarize([r["train_step"]["median"] for r in results]),
            "inference": summarize([r["inference"]["median"] for r in results])}
        for figure in ("inference_fused", "inference_predictor"):
            if figure in results[0]:
                record[side][figure] = summarize([r[figure]["median"] for r in results])
    record["params_equal"] = (record["ours"]["params"] == record["pytorch"]["params"] and
                              record["ours"]["learnable_params"]
                              == record["pytorch"]["learnable_params"])
    for figure in ("train_step", "inference"):
        ratio = (record["ours"][figure]["median"] / record["pytorch"][figure]["median"])
        record[figure + "_ratio"] = ratio
        record[figure + "_met"] = ratio >= record["target"]
        record[figure + "_ratio_our_threads"] = (
            record["ours"][figure]["median"] / record["pytorch_our_threads"][figure]["median"])
    for figure in ("inference_fused", "inference_predictor"):
        if figure in record["ours"]:
            record[figure + "_ratio"] = (record["ours"][figure]["median"]
                                         / record["pytorch"]["inference"]["median"])
    if "inference_predictor" in record["ours"]:
        record["inference_predictor_met"] = record["inference_predictor_ratio"] >= record["target"]
    return record


def bench_peer(names, opts, say=lambda *_: None):
    """The peer column of ``names``: a report section ({python, torch, nets} or {skipped})."""
    python, version, skipped = torch_or_skipped(opts)
    if skipped:
        return skipped
    specs = {name: _spec(name, opts) for name in names}
    runs = {name: {side: [] for side, _, _ in _sides(specs[name], python)} for name in names}
    for round_ in range(opts.peer_rounds):
        for name in names:
            sides = _sides(specs[name], python)
            for side, argv, variables in (sides if round_ % 2 == 0 else sides[::-1]):
                say("peer, round %d: %s, %s" % (round_ + 1, name, side))
                runs[name][side].append(run_result(argv, "the %s worker of %s" % (side, name),
                                                   variables))
    return {"python": python, "torch": version, "rounds": opts.peer_rounds,
            "nets": [_peer_record(name, specs[name], runs[name]) for name in names]}


def peer_targets(section):
    """Target rows: ours / PyTorch eager, training step and inference."""
    rows = []
    figures = (("train_step", "training step"), ("inference", "inference"),
               ("inference_predictor", "inference through load_predictor"))
    for r in (section or {}).get("nets", []):
        for figure, what in figures:
            if figure + "_ratio" in r:
                rows.append({"what": "%s %s vs PyTorch eager" % (r["net"], what),
                             "target": r["target"], "measured": r[figure + "_ratio"],
                             "met": r[figure + "_met"]})
    return rows

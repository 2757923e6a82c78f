"""The library path: a plain user script that trains a net of the zoo, against PyTorch eager.

    python scripts/benchmark.py --net none --library-path resnet18,resnet20_cifar,lenet_bn \\
        --peer-python /tmp/torch-venv/bin/python --merge-into docs/benchmark.json --markdown

The script is what a Gluon user writes (:func:`library_worker`): ``import gluon_cnns``,
``import mxnet``, ``gluon_cnns.get_model``, ``initialize``, ``hybridize()`` as the
tutorials do, a ``gluon.Trainer`` (SGD, momentum 0.9) and a training loop on one random
batch. It runs twice: importing gluon_cnns first (``ours``: the package's thread policy
at import) and mxnet first (``mxnet_first``: MXNet's own thread count, the one-line
notice). PyTorch runs the same architecture, batch and optimizer
(``tools/benchmark/torch_nets.py``) with its defaults. Every run is a fresh process with
no thread variable in its environment; the sides alternate within each round (ours,
mxnet first, PyTorch; then the reverse), over ``--peer-rounds`` rounds, so that a change
in the machine's load hits all of them alike. Each run records the OpenMP threads MXNet
was loaded with (:func:`gluon_cnns.threads.loaded_threads`) or ``torch.get_num_threads()``.

This module imports nothing at the top but the standard library: the worker decides the
import order.
"""
import json
import sys

# The batch size of each net in the comparison.
LIBRARY_NETS = {"resnet18": 64, "resnet20_cifar": 128, "lenet_bn": 256}
# ours / PyTorch eager, training step, both at their defaults.
TARGETS = {"resnet18": 1.3, "resnet20_cifar": 1.3, "lenet_bn": 1.0}
SIDES = ("ours", "mxnet_first", "pytorch")


def library_worker(spec):
    """One plain user script (in a fresh process); prints a RESULT line."""
    if spec["order"] == "mxnet_first":
        import mxnet as mx
        import gluon_cnns
    else:
        import gluon_cnns
        import mxnet as mx
    import os
    from mxnet import autograd, gluon
    from gluon_cnns.threads import loaded_threads
    from .timing import measure_throughputs
    mx.random.seed(spec["seed"])
    net = gluon_cnns.get_model(spec["net"], classes=10, **spec["kwargs"])
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": spec["lr"], "momentum": spec["momentum"]})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    X = mx.nd.random.uniform(shape=spec["shape"])
    y = mx.nd.array([i % 10 for i in range(spec["shape"][0])])

    def step():
        with autograd.record():
            loss = loss_fn(net(X), y)
        loss.backward()
        trainer.step(spec["shape"][0])
    (train,) = measure_throughputs([step], spec["shape"][0], spec["warmup"], spec["repeat"],
                                   spec["min_time"])
    print("RESULT " + json.dumps({
        "framework": "mxnet %s" % mx.__version__, "threads": loaded_threads(),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT")
                       if k in os.environ},
        "train_step": train}))


def _argv(side, spec, python):
    code = "import json, sys; from tools.benchmark.%s import %s; %s(json.loads(sys.argv[1]))"
    if side == "pytorch":
        return [python, "-c", code % ("torch_nets", "torch_worker", "torch_worker"),
                json.dumps(spec)]
    return [sys.executable, "-c", code % ("library", "library_worker", "library_worker"),
            json.dumps(dict(spec, order=side))]


def _spec(name, opts):
    from .peer import worker_spec
    return worker_spec(name, opts, LIBRARY_NETS[name])


def _record(name, spec, runs):
    """One net's record from ``runs`` {side: [result per round]}."""
    from .timing import summarize
    record = {"net": name, "batch_size": spec["shape"][0], "input_shape": spec["shape"][1:],
              "kwargs": spec["kwargs"], "target": TARGETS[name]}
    for side, results in runs.items():
        record[side] = {"threads": [r["threads"] for r in results],
                        "thread_env": results[0].get("thread_env", {}),
                        "framework": results[0]["framework"],
                        "train_step": summarize([r["train_step"]["median"] for r in results])}
    for side in ("ours", "mxnet_first"):
        per_round = [a["train_step"]["median"] / b["train_step"]["median"]
                     for a, b in zip(runs[side], runs["pytorch"])]
        record[side + "_ratio"] = summarize(per_round)
    record["met"] = record["ours_ratio"]["median"] >= record["target"]
    return record


def bench_library(names, opts, say=lambda *_: None):
    """The library-path section of ``names``: {command, torch, rounds, load, nets} or {skipped}."""
    import datetime
    from .machine import load_average
    from .peer import run_result, torch_or_skipped
    python, version, skipped = torch_or_skipped(opts)
    if skipped:
        return skipped
    started, load = datetime.datetime.now().isoformat(timespec="seconds"), load_average()
    specs = {name: _spec(name, opts) for name in names}
    runs = {name: {side: [] for side in SIDES} for name in names}
    for round_ in range(opts.peer_rounds):
        for name in names:
            for side in (SIDES if round_ % 2 == 0 else SIDES[::-1]):
                say("library path, round %d: %s, %s" % (round_ + 1, name, side))
                runs[name][side].append(run_result(_argv(side, specs[name], python),
                                                   "the %s run of %s" % (side, name)))
    return {"python": python, "torch": version, "rounds": opts.peer_rounds,
            "started": started, "load_average": [load, load_average()],
            "nets": [_record(name, specs[name], runs[name]) for name in names]}


def busy_text(section, machine):
    """``" on a busy machine (...)"`` when the 1-minute load reached the cores of the
    measuring ``machine`` (a merged section carries its own) at the start or the end,
    else ``""``: the targets are for a quiet machine."""
    machine = section.get("machine", machine) or {}
    loads = [load[0] for load in section.get("load_average", []) if load]
    cores = machine.get("cores")
    if not cores or not loads or max(loads) < cores:
        return ""
    return " on a busy machine (load %.1f on %d cores; the target is for a quiet one)" % (
        max(loads), cores)


def library_targets(section, machine=None):
    """Target rows: the plain user script's training step / PyTorch eager's."""
    busy = busy_text(section or {}, machine)
    return [{"what": "%s plain user script vs PyTorch eager%s" % (r["net"], busy),
             "target": r["target"], "measured": r["ours_ratio"]["median"], "met": r["met"]}
            for r in (section or {}).get("nets", [])]


def _threads_text(side):
    counts = sorted(set(side["threads"]))
    return "/".join(map(str, counts))


def library_lines(section, table, machine=None):
    """The section's lines; ``table(header, rows)`` renders a table."""
    if "skipped" in section:
        return ["skipped: %s" % section["skipped"]]
    header = ["net", "batch", "gluon_cnns first img/s (threads)",
              "mxnet first img/s (threads)", "PyTorch img/s (threads)",
              "gluon_cnns first / PyTorch", "mxnet first / PyTorch", "target", "met"]
    rows = []
    for r in section["nets"]:
        cells = ["%.0f (%s)" % (r[s]["train_step"]["median"], _threads_text(r[s]))
                 for s in SIDES]
        rows.append([r["net"], r["batch_size"]] + cells + [
            "%.2fx (%.2f-%.2f)" % (r[k]["median"], r[k]["min"], r[k]["max"])
            for k in ("ours_ratio", "mxnet_first_ratio")] + [
            ">= %.1fx" % r["target"], "yes" if r["met"] else "NO"])
    load = [x or [] for x in section["load_average"]]
    command = ["command: %s" % section["command"], ""] if "command" in section else []
    return command + [table(header, rows), "",
            "Training step of a plain user script (get_model, hybridize(), gluon.Trainer SGD "
            "momentum 0.9, one random batch), no thread variable set, against PyTorch %s "
            "eager at its defaults; %d rounds from %s, the sides alternating in fresh "
            "processes; ratios are the medians (min-max) of the per-round ratios. Threads: "
            "the OpenMP threads MXNet was loaded with, torch.get_num_threads(). Load average "
            "%s at the start, %s at the end: the machine was shared with other sessions%s."
            % (section["torch"], section["rounds"], section["started"],
               "/".join("%.2f" % x for x in load[0]), "/".join("%.2f" % x for x in load[1]),
               busy_text(section, machine).replace(" on a busy machine", ", measured on a "
                                                   "busy machine"))]

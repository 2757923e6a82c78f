"""Low precision: int8 and bf16 inference of a trained net, and bf16 against fp32 training."""
import contextlib
import io
import json
import os
import subprocess
import sys
import time

from gluon_cnns.errors import GluonCNNsError

from .argtypes import for_net
from .nets import fresh_net, hybridize, input_shape, recipe_trainer, release
from .timing import measure_throughput

# What the benchmark judges a low-precision net against: its speed-up over the
# hybridized fp32 net, at no more than MAX_ACCURACY_LOSS points of test accuracy.
INT8_TARGET = 2.5
BF16_TARGET = 1.3
MAX_ACCURACY_LOSS = 0.5
JUDGED_ACCURACY = 0.5     # below this fp32 test accuracy, accuracy changes are not judged


# ---------------------------------------------------------------- the fp32 net

def check_run(name, folder):
    """GluonCNNsError unless ``folder`` is a scripts/train.py --save-dir that trained
    ``name`` on the data and input size the benchmark uses (its recipe's)."""
    from gluon_cnns.models import model_spec
    from gluon_cnns.artifacts.rundir import RunDir
    config = RunDir(folder).read_config()  # one clear line if it is not a training run
    if config["net"] != name:
        raise GluonCNNsError("--quant-runs: %s trained %s, not %s; pass %s=%s or leave it out"
                             % (folder, config["net"], name, config["net"], folder))
    recipe = model_spec(name).recipe
    for key, default in (("dataset", recipe.dataset), ("resize", recipe.resize)):
        if config.get(key, default) != default:
            raise GluonCNNsError("--quant-runs: %s trained %s with %s=%r, the benchmark uses "
                                 "the recipe's %r" % (folder, name, key, config[key], default))


def _trained_run(folder, ctx):
    """(net, info) of a scripts/train.py --save-dir (see :func:`check_run`)."""
    from gluon_cnns.inference.export import load_checkpoint_net
    from gluon_cnns.io import read_jsonl
    net, config = load_checkpoint_net(folder, ctx)  # check_run vetted the run up front
    try:
        log = read_jsonl(os.path.join(folder, "log.jsonl"))
    except FileNotFoundError:
        log = []
    return net, {"run": folder, "epochs": len(log) or None,
                 "train_images": config.get("limit_train") or 60000,
                 "final_loss": log[-1].get("loss") if log else None}


def _train_for_lowp(name, ctx, opts):
    """Train ``name`` briefly on real Fashion-MNIST, or take it from ``--quant-runs``;
    returns (net, train_iter, test_iter, info). ``train_iter`` feeds the int8 calibration."""
    from mxnet import gluon
    from gluon_cnns.data import load_data_fashion_mnist
    from gluon_cnns.models import model_spec
    from gluon_cnns.training import train
    recipe = model_spec(name).recipe
    if recipe.dataset != "fashion-mnist":
        raise GluonCNNsError("--quant-nets: %s trains on %s; only Fashion-MNIST nets are "
                             "supported" % (name, recipe.dataset))
    shape = input_shape(name, for_net(opts.batch_size, name, None))
    run = opts.quant_runs.get(name)
    limit = for_net(opts.quant_train, name, 60000)
    train_iter, test_iter = load_data_fashion_mnist(
        shape[0], resize=recipe.resize, root=opts.data_dir, ctx=ctx,
        limit_train=shape[0] * opts.calib_batches if run else limit,
        limit_test=for_net(opts.quant_test, name, 10000))
    if run:
        net, info = _trained_run(run, ctx)
        info["test_images"] = test_iter.num_examples
        return net, train_iter, test_iter, info
    net = fresh_net(name, ctx, opts.seed)
    hybridize(net, static=False)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        history = train(train_iter, [], net, gluon.loss.SoftmaxCrossEntropyLoss(),
                        recipe_trainer(net, recipe, len(train_iter)), ctx, opts.quant_epochs,
                        progress=False)
    info = {"train_images": train_iter.num_examples, "epochs": opts.quant_epochs,
            "seconds": time.perf_counter() - start, "final_loss": history[-1]["loss"],
            "test_images": test_iter.num_examples}
    return net, train_iter, test_iter, info


# ---------------------------------------------------------------- int8 / bf16 inference

def predictions(net, data_iter):
    """(argmax predictions, labels) of ``net`` over ``data_iter``, as numpy arrays.

    The outputs are cast to float32 first: a bf16 output compared with
    ``y.astype(output.dtype)`` would compare bit patterns, not numbers.
    """
    import numpy as np
    preds, labels = [], []
    for X, y in data_iter:
        out = net(X)
        preds.append(out.astype("float32").argmax(axis=1).asnumpy())
        labels.append(y.asnumpy())
    return np.concatenate(preds), np.concatenate(labels)


def _lowp_variants(net, train_iter, X, ctx, opts):
    """{variant: inference block} for fp32 (hybridized, fused) and the requested dtypes."""
    from gluon_cnns.inference.quantize import fuse_for_cpu, quantize_net, to_bfloat16
    hybridize(net, static=True)
    variants = {"fp32": net, "fp32_fused": fuse_for_cpu(net, X, ctx)}
    if "int8" in opts.dtype:
        variants["int8"] = quantize_net(net, train_iter, ctx, calib_batches=opts.calib_batches,
                                        calib_mode=opts.calib_mode)
    if "bf16" in opts.dtype:
        variants["bf16"] = to_bfloat16(net, X, ctx)
    return variants


def bench_lowp(name, ctx, opts):
    """Train ``name``, then time and score its fp32, fused fp32, int8 and bf16 versions."""
    import numpy as np
    net, train_iter, test_iter, info = _train_for_lowp(name, ctx, opts)
    X = next(iter(test_iter))[0]  # a real batch of the recipe's batch size
    record = {"net": name, "batch_size": X.shape[0], "input_shape": list(X.shape[1:]),
              "training": info, "calib_batches": opts.calib_batches,
              "calib_mode": opts.calib_mode, "variants": {}}
    reference = None
    for variant, block in _lowp_variants(net, train_iter, X, ctx, opts).items():
        speed = measure_throughput(lambda b=block: b(X), X.shape[0], max(opts.warmup, 1),
                                   opts.repeat, opts.min_time)
        preds, labels = predictions(block, test_iter)
        if reference is None:
            reference = preds
        record["variants"][variant] = {
            "images_per_sec": speed, "test_acc": float(np.mean(preds == labels)),
            "agreement_with_fp32": float(np.mean(preds == reference))}
    release()
    return judge_lowp(record)


def judge_lowp(record):
    """Add the speed-ups, accuracy changes and target verdicts to a low-precision record.

    An accuracy change is only judged when the fp32 net learned something
    (test accuracy >= JUDGED_ACCURACY): on a net near chance level, "lost
    0.4 points" says nothing. The agreement with fp32 is reported either way.
    """
    variants = record["variants"]
    fp32 = variants["fp32"]
    fused_speed = variants["fp32_fused"]["images_per_sec"]["median"]
    record["accuracy_judged"] = fp32["test_acc"] >= JUDGED_ACCURACY
    for v in variants.values():
        v["speedup_vs_fp32"] = v["images_per_sec"]["median"] / fp32["images_per_sec"]["median"]
        v["speedup_vs_fp32_fused"] = v["images_per_sec"]["median"] / fused_speed
        v["accuracy_change_points"] = 100.0 * (v["test_acc"] - fp32["test_acc"])
    for variant, target in (("int8", INT8_TARGET), ("bf16", BF16_TARGET)):
        if variant in variants:
            v = variants[variant]
            v["target_speedup"] = target
            v["met"] = v["speedup_vs_fp32"] >= target and (
                not record["accuracy_judged"]
                or v["accuracy_change_points"] >= -MAX_ACCURACY_LOSS)
    return record


# ---------------------------------------------------------------- bf16 training

def train_worker(spec):
    """Train ``spec['net']`` one epoch in ``spec['dtype']`` (fp32/bf16); print a JSON line.

    Runs in a process of its own (:func:`bench_bf16_training` starts it),
    because bf16 AMP changes MXNet process-wide. After the epoch (the
    accuracy figure) a second epoch is timed for the steady-state speed: the
    first includes tracing the graph.
    """
    import mxnet as mx
    import numpy as np
    if spec["dtype"] == "bf16":
        from gluon_cnns.training.amp import enable_bf16_training
        enable_bf16_training()
    from mxnet import gluon
    from gluon_cnns.data import load_data_fashion_mnist
    from gluon_cnns.models import model_spec
    from gluon_cnns.training import train
    recipe = model_spec(spec["net"]).recipe
    train_iter, test_iter = load_data_fashion_mnist(
        recipe.batch_size, resize=recipe.resize, root=spec.get("data_dir"),
        limit_train=spec["limit_train"], limit_test=spec.get("limit_test"))
    net = fresh_net(spec["net"], mx.cpu(), spec["seed"])
    hybridize(net, spec.get("static"))
    trainer = recipe_trainer(net, recipe, len(train_iter))
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    with contextlib.redirect_stdout(io.StringIO()):
        first = train(train_iter, [], net, loss, trainer, mx.cpu(), 1, progress=False)[0]
        preds, labels = predictions(net, test_iter)
        second = train(train_iter, [], net, loss, trainer, mx.cpu(), 2, progress=False,
                       start_epoch=1)[0]
    result = {"net": spec["net"], "dtype": spec["dtype"], "static": bool(spec.get("static")),
              "train_images": train_iter.num_examples,
              "loss_epoch1": first["loss"], "test_acc_epoch1": float(np.mean(preds == labels)),
              "images_per_sec_epoch1": first["images_per_sec"],
              "images_per_sec_epoch2": second["images_per_sec"],
              "param_dtype": str(next(iter(net.collect_params().values())).data().dtype)}
    print("RESULT " + json.dumps(result))


def _run_worker(spec):
    """Run :func:`train_worker` in a fresh Python process; return its result dict."""
    # The repository root: tools/ is not installed, and gluon_cnns may not be either.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import json, sys; from tools.benchmark.lowp import train_worker; "
            "train_worker(json.loads(sys.argv[1]))")
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise GluonCNNsError("the %s training worker for %s failed: %s"
                         % (spec["dtype"], spec["net"], tail))


def bench_bf16_training(name, opts):
    """fp32 and bf16 training of ``name``, same seed and data, each in a fresh process.

    Both with plain ``hybridize()`` and with ``static_alloc``/``static_shape``
    (as scripts/train.py); the accuracy is that of the plain runs.
    """
    spec = {"net": name, "seed": opts.seed, "data_dir": opts.data_dir,
            "limit_train": for_net(opts.bf16_train_limit, name, 20000),
            "limit_test": for_net(opts.quant_test, name, 10000)}
    runs = {(dtype, static): _run_worker(dict(spec, dtype=dtype, static=static))
            for static in (False, True) for dtype in ("fp32", "bf16")}
    fp32, bf16 = runs["fp32", False], runs["bf16", False]
    speed = "images_per_sec_epoch2"
    return {"net": name, "fp32": fp32, "bf16": bf16,
            "fp32_static": runs["fp32", True], "bf16_static": runs["bf16", True],
            "speedup": bf16[speed] / fp32[speed],
            "speedup_static": runs["bf16", True][speed] / runs["fp32", True][speed],
            "accuracy_change_points": 100.0 * (bf16["test_acc_epoch1"]
                                               - fp32["test_acc_epoch1"])}

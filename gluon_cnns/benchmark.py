"""Speed, measured: throughput of every net of the zoo, against the machine and GluonCV.

    python scripts/benchmark.py --net lenet_bn,resnet18 --repeat 5 --json bench.json
    python scripts/benchmark.py --net lenet_bn --dtype int8,bf16 --markdown

For each net, at its recipe's input size and batch size, on random data:

* forward images/s, imperative and hybridized (``static_alloc``/``static_shape``);
* a training step's images/s (forward + backward + ``trainer.step``, hybridized);
* FLOPs per image (:func:`gluon_cnns.flops`) and the GFLOP/s achieved, as a
  percentage of the machine's GEMM limit measured in the same run (a training
  step is counted as 3x the forward FLOPs: forward, and the two backward
  products, one for the input gradient and one for the weight gradient);
* the architecturally identical GluonCV net, where there is one, timed the same way.

Then, optionally: end-to-end training of N batches with our loader and loop
against the tutorials' own loop (``--e2e-nets``); int8/bf16 inference of a net
trained in the run (``--dtype``); bf16 against fp32 training (``--bf16-train``);
a per-operator profile of a training step (``--profile``). ``--render FILE``
re-prints (and with ``--markdown`` rewrites) a report saved by ``--json``.

Timing: every figure is the median of ``--repeat`` samples (min-max shown),
after ``--warmup`` untimed ones; a sample repeats the call until it lasts
``--min-time`` seconds. Only ratios taken within one run are comparable:
the machine may be shared.
"""
import argparse
import contextlib
import datetime
import gc
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

from .cli.common import OneLineParser, cpu_model, parse, positive_float, positive_int
from .errors import GluonCNNsError
from .utils.data import image_shape

PROG = "gluon-cnns-benchmark"

# Targets of the "Speed, measured" issue.
E2E_TARGET = 2.0          # our loader + loop vs the tutorial's, same net and data
E2E_TARGET_NETS = ("lenet_bn", "alexnet")
INT8_TARGET = 2.5         # int8 vs fp32 hybridized images/s
BF16_TARGET = 1.3         # bf16 vs fp32 hybridized images/s
MAX_ACCURACY_LOSS = 0.5   # points of test accuracy
JUDGED_ACCURACY = 0.5     # below this fp32 test accuracy, accuracy changes are not judged

TRAIN_FLOPS_FACTOR = 3    # a training step = forward + 2 backward products

# He et al.'s stem is conv-BN-ReLU (ours); GluonCV's CIFAR v1 stem stops at the BN.
_CIFAR_TWIN_NOTE = "same parameters; GluonCV's stem has no ReLU after its BatchNorm"
# Our net -> (GluonCV model zoo name, how they differ). Checked by parameter
# count in every run; a difference in the note means "not identical".
GLUONCV_PAIRS = {
    "vgg11": ("vgg11", "identical layers"),
    "vgg13": ("vgg13", "identical layers"),
    "vgg16": ("vgg16", "identical layers"),
    "vgg19": ("vgg19", "identical layers"),
    "resnet20_cifar": ("cifar_resnet20_v1", _CIFAR_TWIN_NOTE),
    "resnet56_cifar": ("cifar_resnet56_v1", _CIFAR_TWIN_NOTE),
    "resnet110_cifar": ("cifar_resnet110_v1", _CIFAR_TWIN_NOTE),
    "resnet18": ("resnet18_v1", "NOT identical: ours (d2l) has conv biases and a 1x1 shortcut "
                 "without BatchNorm; GluonCV's convs have no bias and its shortcut has BatchNorm"),
    "resnet34": ("resnet34_v1", "NOT identical: ours (d2l) has conv biases and a 1x1 shortcut "
                 "without BatchNorm; GluonCV's convs have no bias and its shortcut has BatchNorm"),
}
# Nets with a namesake in GluonCV that is a different network: not timed.
GLUONCV_UNPAIRED = {
    "alexnet": "GluonCV's alexnet is the one-tower torchvision variant (64-192-384-256-256 "
               "filters, 57.0M parameters vs our 46.8M): not paired",
    "googlenet": "GluonCV's googlenet has BatchNorm after every conv (d2l's has none): not paired",
    "densenet": "GluonCV only has DenseNet-121/161/169/201, not d2l's small DenseNet: not paired",
}


# ---------------------------------------------------------------- argument types

def non_negative_int(text):
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer >= 0, got %r" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %r" % text)
    return value


def name_list(text):
    """Comma-separated names, e.g. ``lenet,alexnet``; ``none`` is the empty list."""
    if text.strip().lower() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, got %r" % text)
    return names


def per_net_int(text):
    """``50`` (every net) or ``lenet_bn=100,alexnet=10[,50]``: {net or None: count}."""
    counts = {}
    for part in text.split(","):
        name, _, value = part.rpartition("=")
        counts[name.strip() or None] = positive_int(value.strip())
    return counts


def per_net_dir(text):
    """``lenet_bn=runs/lenet,resnet18=runs/r18``: {net: folder}."""
    dirs = {}
    for part in text.split(","):
        name, sep, folder = part.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise argparse.ArgumentTypeError("expected NET=FOLDER[,NET=FOLDER...], got %r" % text)
        dirs[name.strip()] = folder.strip()
    return dirs


def _for_net(counts, name, default):
    """The count ``per_net_int`` gave for ``name``, else its bare default, else ``default``."""
    return counts.get(name, counts.get(None, default))


def build_parser():
    """The benchmark's command line."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="Example: python scripts/benchmark.py --net lenet_bn,alexnet "
                            "--repeat 5 --markdown")
    add = parser.add_argument
    add("--net", type=name_list, metavar="A,B", help="nets to time (default: all of the zoo)")
    add("--batch-size", type=per_net_int, default={}, metavar="N|NET=N,...",
        help="batch size, for every net or per net (default: each net's recipe)")
    add("--ctx", choices=("cpu", "gpu"), default="cpu", help="device (default: cpu)")
    add("--repeat", type=positive_int, default=3, metavar="N",
        help="timed samples per figure; the median is reported (default: 3)")
    add("--warmup", type=non_negative_int, default=1, metavar="N",
        help="untimed samples before them (default: 1)")
    add("--min-time", type=positive_float, default=0.5, metavar="S",
        help="a sample repeats the call until it lasts S seconds (default: 0.5)")
    add("--gemm-size", type=positive_int, default=2048, metavar="N",
        help="side of the square matrices of the GEMM-limit measurement (default: 2048)")
    add("--no-gluoncv", action="store_true", help="do not time GluonCV's nets")
    add("--e2e-nets", type=name_list, metavar="A,B",
        help="nets for the end-to-end comparison with the tutorial loop (default: those of "
             "%s that are benchmarked; 'none' to skip)" % ", ".join(E2E_TARGET_NETS))
    add("--e2e-batches", type=per_net_int, default={None: 50}, metavar="N|NET=N,...",
        help="training batches per end-to-end sample (default: 50)")
    add("--e2e-repeat", type=positive_int, metavar="N",
        help="timed epochs per end-to-end figure (default: --repeat)")
    add("--e2e-workers", type=non_negative_int, default=4, metavar="N",
        help="DataLoader workers of the tutorial loop (default: 4, as in the tutorials)")
    add("--dtype", type=name_list, default=[], metavar="int8,bf16",
        help="also time int8 and/or bf16 inference of trained nets (trained in this run, "
             "or see --quant-runs)")
    add("--quant-nets", type=name_list, default=["lenet_bn"], metavar="A,B",
        help="nets trained for --dtype (default: lenet_bn)")
    add("--quant-runs", type=per_net_dir, default={}, metavar="NET=DIR,...",
        help="take these --dtype nets from a scripts/train.py --save-dir (its best.params) "
             "instead of training them here")
    add("--quant-train", type=per_net_int, default={None: 60000}, metavar="N|NET=N,...",
        help="training images for --dtype nets (default: 60000, all)")
    add("--quant-epochs", type=positive_int, default=1, metavar="N",
        help="epochs of that training (default: 1)")
    add("--quant-test", type=per_net_int, default={None: 10000}, metavar="N|NET=N,...",
        help="test images for the accuracies (default: 10000, all)")
    add("--calib-batches", type=positive_int, default=10, metavar="N",
        help="training batches for int8 calibration (default: 10)")
    add("--calib-mode", choices=("naive", "entropy"), default="naive",
        help="int8 calibration (default: naive = min/max)")
    add("--bf16-train", type=name_list, default=[], metavar="A,B",
        help="nets to train one epoch in fp32 and in bf16 (each in a fresh process)")
    add("--bf16-train-limit", type=per_net_int, default={None: 20000}, metavar="N|NET=N,...",
        help="training images for --bf16-train (default: 20000)")
    add("--profile", type=name_list, default=[], metavar="A,B",
        help="per-operator time of two training steps of these nets (mx.profiler)")
    add("--data-dir", metavar="DIR", help="folder with the Fashion-MNIST files")
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    add("--json", metavar="FILE", help="write every figure to FILE (atomically)")
    add("--markdown", nargs="?", const="docs/BENCHMARKS.md", metavar="FILE",
        help="write the tables as Markdown (default file: docs/BENCHMARKS.md)")
    add("--render", metavar="JSON",
        help="measure nothing: print (and --markdown) the report saved in JSON by --json")
    return parser


# ---------------------------------------------------------------- machine

def machine_info():
    """CPU model, cores, MXNet version and enabled features: the header of every report."""
    import mxnet as mx
    import numpy as np
    from .quantize import bf16_supported
    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "python": platform.python_version(),
            "mxnet": mx.__version__, "numpy": np.__version__,
            "mxnet_features": sorted(k for k, v in mx.runtime.Features().items() if v.enabled),
            "bf16_instructions": bf16_supported(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def resolve_ctx(name):
    """``mx.cpu()``, or the first GPU; ``gpu`` without one falls back to the CPU with a warning."""
    import mxnet as mx
    if name != "gpu":
        return mx.cpu()
    from .utils.training import try_gpu
    ctx = try_gpu()
    if ctx.device_type != "gpu":
        print("warning: --ctx gpu but no usable GPU found; benchmarking on %s" % ctx,
              file=sys.stderr)
    return ctx


# ---------------------------------------------------------------- timing

def summarize(samples):
    """{'median', 'min', 'max', 'samples'} of a list of numbers."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}


def measure_throughput(call, images, warmup, repeat, min_time):
    """Images/s of ``call()`` (which processes ``images`` images), as :func:`summarize` stats."""
    return measure_throughputs([call], images, warmup, repeat, min_time)[0]


def measure_throughputs(calls, images, warmup, repeat, min_time):
    """Images/s of each of ``calls`` (each processes ``images`` images): a list of stats.

    MXNet is asynchronous: a call only queues work. So a sample queues ``k``
    calls and then waits for all of them (``waitall``), and ``k`` is chosen
    from the last warm-up call so that a sample lasts about ``min_time``.
    The samples of several calls are interleaved (A B A B ...), so that a
    change in the machine's load hits all of them alike and their ratios hold.
    """
    import mxnet as mx
    counts = [1] * len(calls)
    for _ in range(warmup):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            mx.nd.waitall()
            counts[i] = max(1, int(math.ceil(min_time / max(time.perf_counter() - start,
                                                            1e-9))))
    samples = [[] for _ in calls]
    for _ in range(repeat):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            for _ in range(counts[i]):
                call()
            mx.nd.waitall()
            samples[i].append(counts[i] * images / (time.perf_counter() - start))
    stats = [summarize(s) for s in samples]
    for stat, count in zip(stats, counts):
        stat["calls_per_sample"] = count
    return stats


def gemm_limit(ctx, size, warmup, repeat, min_time):
    """GFLOP/s of a large float32 matrix product: ``mx.nd.dot`` and oneDNN's (FullyConnected).

    ``mx.nd.dot`` goes to the BLAS MXNet was built with (OpenBLAS in the pip
    wheel); convolutions and dense layers go to oneDNN, whose GEMM is the
    ceiling they can reach. The limit is the best sample of
    the faster of the two.
    """
    import mxnet as mx
    a = mx.nd.random.uniform(shape=(size, size), ctx=ctx)
    b = mx.nd.random.uniform(shape=(size, size), ctx=ctx)
    flop = 2.0 * size ** 3 / 1e9
    # images=flop turns "images/s" into GFLOP/s.
    dot = measure_throughput(lambda: mx.nd.dot(a, b), flop, max(warmup, 1), repeat, min_time)
    onednn = measure_throughput(
        lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=size), flop,
        max(warmup, 1), repeat, min_time)
    # The best sample, not the median: a ceiling should not be lowered by
    # moments when another process had the cores.
    return {"size": size, "dot_gflops": dot, "onednn_gflops": onednn,
            "limit_gflops": max(dot["max"], onednn["max"])}


# ---------------------------------------------------------------- nets

def input_shape(name, batch_size=None):
    """(batch, channels, side, side) of ``name``'s recipe (``batch_size`` overrides)."""
    from .models import model_spec
    recipe = model_spec(name).recipe
    return (batch_size or recipe.batch_size,) + image_shape(recipe.dataset, recipe.resize)


def _seed(seed):
    """Seed MXNet's and NumPy's generators."""
    import mxnet as mx
    import numpy as np
    mx.random.seed(seed)
    np.random.seed(seed)


def _random_batch(shape, ctx, seed):
    """Uniform [0, 1) images and random labels of 10 classes: speed does not depend on content."""
    import mxnet as mx
    import numpy as np
    rng = np.random.RandomState(seed)
    X = mx.nd.array(rng.rand(*shape).astype(np.float32), ctx=ctx)
    y = mx.nd.array(rng.randint(0, 10, size=shape[0]).astype(np.float32), ctx=ctx)
    return X, y


def _trainer(net, recipe, lr=None):
    """A Trainer with the recipe's optimizer, momentum and weight decay."""
    from mxnet import gluon
    params = {"learning_rate": recipe.lr if lr is None else lr, "wd": recipe.wd}
    if recipe.optimizer in ("sgd", "nag"):
        params["momentum"] = recipe.momentum
    return gluon.Trainer(net.collect_params(), recipe.optimizer, params)


def _train_step(net, trainer, loss, X, y):
    """The function a training-step measurement calls: forward, backward, update."""
    from mxnet import autograd

    def step():
        # record() records in train mode: oneDNN's max-pooling backward is wrong
        # under train_mode=False in MXNet 1.9.1.
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(X.shape[0])
    return step


def time_blocks(nets, shape, ctx, recipe, opts):
    """Forward (imperative, hybridized) and training-step images/s of uninitialized ``nets``.

    Returns one timing dict per net; the nets' samples are interleaved (see
    :func:`measure_throughputs`), so ours/GluonCV's ratios are not at the
    mercy of a load change between two nets' measurements.
    """
    import mxnet as mx
    from mxnet import gluon
    X, y = _random_batch(shape, ctx, opts.seed)
    for net in nets:
        net.initialize(mx.init.Xavier(), ctx=ctx)

    def measure(calls):
        return measure_throughputs(calls, shape[0], opts.warmup, opts.repeat, opts.min_time)

    forwards = [lambda n=n: n(X) for n in nets]
    imperative = measure(forwards)
    for net in nets:
        net.hybridize(static_alloc=True, static_shape=True)
    hybrid = measure(forwards)
    # The lr is irrelevant to speed; a small one keeps random labels from blowing up.
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    training = measure([_train_step(n, _trainer(n, recipe, lr=1e-3), loss, X, y) for n in nets])
    return [{"forward_imperative": i, "forward_hybrid": h, "train_step": t}
            for i, h, t in zip(imperative, hybrid, training)]


def _gflops(flops_per_image, stats, factor=1):
    """GFLOP/s achieved at the median images/s of ``stats``."""
    return flops_per_image * factor * stats["median"] / 1e9


def bench_net(name, ctx, opts):
    """Every per-net figure of the table for ``name``, GluonCV's counterpart included.

    The GEMM limit is measured again just before the net (briefly), and the
    net's percentages are of that figure: other processes on a shared
    machine change what the cores deliver from one minute to the next.
    GluonCV's counterpart is timed together with ours, samples interleaved.
    """
    from .models import get_model, model_spec
    from .shapes import count_parameters, flops
    recipe = model_spec(name).recipe
    shape = input_shape(name, _for_net(opts.batch_size, name, None))
    net = get_model(name, classes=10)
    record = {"net": name, "input_shape": list(shape[1:]), "batch_size": shape[0],
              "params": count_parameters(net, shape),
              "learnable_params": count_parameters(net, shape, learnable_only=True),
              "flops_per_image": flops(net, shape)}
    record["gluoncv"] = None
    record["gluoncv_note"] = GLUONCV_UNPAIRED.get(name)
    nets = [net]
    if name in GLUONCV_PAIRS and not opts.no_gluoncv:
        twin, record["gluoncv"] = gluoncv_twin(name, shape, record)
        record["gluoncv_note"] = record["gluoncv"]["note"]
        nets.append(twin)
    limit = gemm_limit(ctx, opts.gemm_size, 1, 2, min(opts.min_time, 0.2))["limit_gflops"]
    record["gemm_limit_gflops"] = limit
    timings = time_blocks(nets, shape, ctx, recipe, opts)
    record.update(timings[0])
    f = record["flops_per_image"]
    record["hybrid_speedup"] = (record["forward_hybrid"]["median"]
                                / record["forward_imperative"]["median"])
    record["gflops"] = {"forward_hybrid": _gflops(f, record["forward_hybrid"]),
                        "train_step": _gflops(f, record["train_step"], TRAIN_FLOPS_FACTOR)}
    record["pct_of_gemm_limit"] = {k: 100.0 * v / limit
                                   for k, v in record["gflops"].items()}
    if record["gluoncv"] is not None:
        theirs = record["gluoncv"]
        theirs.update(timings[1])
        theirs["ratio"] = {k: record[k]["median"] / theirs[k]["median"]
                           for k in ("forward_imperative", "forward_hybrid", "train_step")}
    del net, nets
    _release()
    return record


def gluoncv_twin(name, shape, ours):
    """GluonCV's counterpart of ``name`` (uninitialized) and the start of its record."""
    from gluoncv.model_zoo import get_model as gluoncv_model
    from .shapes import count_parameters
    theirs_name, note = GLUONCV_PAIRS[name]
    net = gluoncv_model(theirs_name, classes=10)
    record = {"model": theirs_name, "note": note,
              "params": count_parameters(net, shape),
              "learnable_params": count_parameters(net, shape, learnable_only=True)}
    record["same_param_count"] = (record["params"] == ours["params"]
                                  and record["learnable_params"] == ours["learnable_params"])
    return net, record


def _release():
    """Free the memory of the net just timed before the next (VGG's gradients are GBs)."""
    import mxnet as mx
    mx.nd.waitall()
    gc.collect()


# ---------------------------------------------------------------- end to end

def _fashion_mnist_train_arrays(limit, root=None):
    """The first ``limit`` Fashion-MNIST training images (N, 28, 28, 1) uint8 and labels."""
    from .utils.data import find_data, read_idx
    files = find_data("fashion-mnist", root)
    images = read_idx(files["train-images-idx3-ubyte"])[:limit, :, :, None]
    labels = read_idx(files["train-labels-idx1-ubyte"])[:limit]
    return images, labels


def tutorial_loader(images, labels, batch_size, resize, num_workers):
    """The tutorials' pipeline: a Dataset, per-image ``Compose([Resize, ToTensor])``, DataLoader.

    ``gluon.data.vision.FashionMNIST`` holds the images as one uint8 NDArray
    and the labels as int32 numpy; an ArrayDataset of the same arrays behaves
    the same (MXNet's downloader cannot run offline).
    """
    import mxnet as mx
    from mxnet import gluon
    from mxnet.gluon.data.vision import transforms
    dataset = gluon.data.ArrayDataset(mx.nd.array(images, dtype="uint8"),
                                      labels.astype("int32"))
    steps = ([transforms.Resize(resize)] if resize else []) + [transforms.ToTensor()]
    return gluon.data.DataLoader(dataset.transform_first(transforms.Compose(steps)),
                                 batch_size=batch_size, shuffle=True, num_workers=num_workers)


def tutorial_train_epoch(loader, net, loss, trainer, ctx, max_batches=None):
    """The tutorials' ``utils.train`` inner loop: imperative, two host reads per batch.

    ``asscalar()`` on the loss and on the accuracy makes Python wait for every
    batch to finish before it prepares the next one. Returns (loss, accuracy).
    """
    import mxnet as mx
    from mxnet import autograd
    train_loss = train_acc = 0.0
    n = 0
    for data, label in loader:
        data, label = data.as_in_context(ctx), label.as_in_context(ctx)
        with autograd.record():
            output = net(data)
            L = loss(output, label)
        L.backward()
        trainer.step(data.shape[0])
        train_loss += mx.nd.mean(L).asscalar()
        train_acc += mx.nd.mean(output.argmax(axis=1) == label.astype("float32")).asscalar()
        n += 1
        if max_batches is not None and n >= max_batches:
            break
    return train_loss / max(n, 1), train_acc / max(n, 1)


def _fresh_net(name, ctx, seed):
    """``name`` initialized with Xavier from ``seed``: both loops start from the same weights."""
    import mxnet as mx
    from .models import get_model
    _seed(seed)
    net = get_model(name, classes=10)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net


def _e2e_ours(name, ctx, batches, batch_size, opts, static=False):
    """Seconds per sample of our loader + ``utils.train`` loop (hybridized) on ``batches`` batches.

    ``static``: hybridize with ``static_alloc``/``static_shape``, as
    ``scripts/train.py`` does; else with plain ``hybridize()``, as the
    tutorials do when they hybridize.
    """
    from mxnet import gluon
    from .models import model_spec
    from .utils.data import load_data_fashion_mnist
    from .utils.training import train
    recipe = model_spec(name).recipe
    net = _fresh_net(name, ctx, opts.seed)
    if static:
        net.hybridize(static_alloc=True, static_shape=True)
    else:
        net.hybridize()  # the tutorials' way
    trainer = _trainer(net, recipe)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    train_iter, _ = load_data_fashion_mnist(batch_size, resize=recipe.resize, root=opts.data_dir,
                                            ctx=ctx, limit_train=batches * batch_size,
                                            limit_test=1)
    warm_iter, _ = load_data_fashion_mnist(batch_size, resize=recipe.resize, root=opts.data_dir,
                                           ctx=ctx, limit_train=2 * batch_size, limit_test=1)
    samples = []
    with contextlib.redirect_stdout(io.StringIO()):  # train() prints a line per epoch
        if opts.warmup:
            train(warm_iter, [], net, loss, trainer, ctx, 1, progress=False)
        for _ in range(opts.e2e_repeat):
            start = time.perf_counter()
            train(train_iter, [], net, loss, trainer, ctx, 1, progress=False)
            samples.append(time.perf_counter() - start)
    return samples


def _e2e_tutorial(name, ctx, batches, batch_size, opts):
    """Seconds per sample of the tutorials' DataLoader + loop (imperative) on the same batches."""
    from mxnet import gluon
    from .models import model_spec
    recipe = model_spec(name).recipe
    net = _fresh_net(name, ctx, opts.seed)
    trainer = _trainer(net, recipe)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    images, labels = _fashion_mnist_train_arrays(batches * batch_size, opts.data_dir)
    # Built once, like the tutorials do before their epoch loop: the worker
    # processes start here, untimed.
    loader = tutorial_loader(images, labels, batch_size, recipe.resize, opts.e2e_workers)
    if opts.warmup:
        tutorial_train_epoch(loader, net, loss, trainer, ctx, max_batches=2)
    samples = []
    for _ in range(opts.e2e_repeat):
        start = time.perf_counter()
        tutorial_train_epoch(loader, net, loss, trainer, ctx)
        samples.append(time.perf_counter() - start)
    return samples


def bench_e2e(name, ctx, opts):
    """Our training pipeline against the tutorials' on the same net, data and batch size."""
    from .models import model_spec
    recipe = model_spec(name).recipe
    shape = input_shape(name, _for_net(opts.batch_size, name, None))
    batches = _for_net(opts.e2e_batches, name, 50)
    record = {"net": name, "batches": batches, "batch_size": shape[0],
              "input_shape": list(shape[1:]), "target": E2E_TARGET if name in E2E_TARGET_NETS
              else None}
    if recipe.dataset != "fashion-mnist":
        record["skipped"] = "the tutorial loop is only reproduced for Fashion-MNIST nets"
        return record
    batches = min(batches, 60000 // shape[0])
    record["batches"] = batches
    record["ours_seconds"] = summarize(_e2e_ours(name, ctx, batches, shape[0], opts))
    _release()
    record["ours_static_seconds"] = summarize(_e2e_ours(name, ctx, batches, shape[0], opts,
                                                        static=True))
    _release()
    record["tutorial_seconds"] = summarize(_e2e_tutorial(name, ctx, batches, shape[0], opts))
    _release()
    tutorial = record["tutorial_seconds"]["median"]
    record["speedup"] = tutorial / record["ours_seconds"]["median"]
    record["speedup_static"] = tutorial / record["ours_static_seconds"]["median"]
    record["met"] = None if record["target"] is None else record["speedup"] >= record["target"]
    record["met_static"] = (None if record["target"] is None
                            else record["speedup_static"] >= record["target"])
    return record


def add_compute_floor(e2e, timed):
    """Add the time the training steps alone would take (from the per-net table), if known.

    No loader or loop can beat it, so ``tutorial / floor`` is the largest
    end-to-end speed-up possible with these kernels.
    """
    e2e["compute_floor_seconds"] = e2e["max_speedup"] = None
    if timed is not None and "speedup" in e2e and timed["batch_size"] == e2e["batch_size"]:
        floor = e2e["batches"] * e2e["batch_size"] / timed["train_step"]["median"]
        e2e["compute_floor_seconds"] = floor
        e2e["max_speedup"] = e2e["tutorial_seconds"]["median"] / floor
    return e2e


# ---------------------------------------------------------------- int8 / bf16

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


def _trained_run(folder, ctx):
    """(net, info) of a scripts/train.py --save-dir (see :func:`_check_run`)."""
    from .export import load_checkpoint_net
    from .utils.io import read_jsonl
    net, config = load_checkpoint_net(folder, ctx)  # _check_run vetted the run up front
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
    from .models import model_spec
    from .utils.data import load_data_fashion_mnist
    from .utils.training import train
    recipe = model_spec(name).recipe
    if recipe.dataset != "fashion-mnist":
        raise GluonCNNsError("--quant-nets: %s trains on %s; only Fashion-MNIST nets are "
                             "supported" % (name, recipe.dataset))
    shape = input_shape(name, _for_net(opts.batch_size, name, None))
    run = opts.quant_runs.get(name)
    limit = _for_net(opts.quant_train, name, 60000)
    train_iter, test_iter = load_data_fashion_mnist(
        shape[0], resize=recipe.resize, root=opts.data_dir, ctx=ctx,
        limit_train=shape[0] * opts.calib_batches if run else limit,
        limit_test=_for_net(opts.quant_test, name, 10000))
    if run:
        net, info = _trained_run(run, ctx)
        info["test_images"] = test_iter.num_examples
        return net, train_iter, test_iter, info
    net = _fresh_net(name, ctx, opts.seed)
    net.hybridize()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        history = train(train_iter, [], net, gluon.loss.SoftmaxCrossEntropyLoss(),
                        _trainer(net, recipe), ctx, opts.quant_epochs, progress=False)
    info = {"train_images": train_iter.num_examples, "epochs": opts.quant_epochs,
            "seconds": time.perf_counter() - start, "final_loss": history[-1]["loss"],
            "test_images": test_iter.num_examples}
    return net, train_iter, test_iter, info


def _lowp_variants(net, train_iter, X, ctx, opts):
    """{variant: inference block} for fp32 (hybridized, fused) and the requested dtypes."""
    from .quantize import fuse_for_cpu, quantize_net, to_bfloat16
    net.hybridize(static_alloc=True, static_shape=True)
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
    _release()
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
        from .amp import enable_bf16_training
        enable_bf16_training()
    from mxnet import gluon
    from .models import model_spec
    from .utils.data import load_data_fashion_mnist
    from .utils.training import train
    recipe = model_spec(spec["net"]).recipe
    train_iter, test_iter = load_data_fashion_mnist(
        recipe.batch_size, resize=recipe.resize, root=spec.get("data_dir"),
        limit_train=spec["limit_train"], limit_test=spec.get("limit_test"))
    net = _fresh_net(spec["net"], mx.cpu(), spec["seed"])
    if spec.get("static"):
        net.hybridize(static_alloc=True, static_shape=True)
    else:
        net.hybridize()  # the tutorials' way
    trainer, loss = _trainer(net, recipe), gluon.loss.SoftmaxCrossEntropyLoss()
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
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import json, sys; from gluon_cnns.benchmark import train_worker; "
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
            "limit_train": _for_net(opts.bf16_train_limit, name, 20000),
            "limit_test": _for_net(opts.quant_test, name, 10000)}
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


# ---------------------------------------------------------------- profile

def profile_train_step(name, ctx, opts, steps=2, top=8):
    """Per-operator time of ``steps`` hybridized training steps of ``name`` (mx.profiler).

    Operator bulking is switched off while the net's graph is built, else
    MXNet reports whole graph segments as one "operator". Returns the total
    and the ``top`` operators (name, ms, calls, share of the total).
    """
    import mxnet as mx
    from mxnet import gluon
    from .models import get_model, model_spec
    from .shapes import flops
    recipe = model_spec(name).recipe
    shape = input_shape(name, _for_net(opts.batch_size, name, None))
    with _env(MXNET_EXEC_BULK_EXEC_TRAIN="0", MXNET_EXEC_BULK_EXEC_INFERENCE="0"):
        net = get_model(name, classes=10)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        net.hybridize(static_alloc=True, static_shape=True)
        X, y = _random_batch(shape, ctx, opts.seed)
        step = _train_step(net, _trainer(net, recipe, lr=1e-3),
                           gluon.loss.SoftmaxCrossEntropyLoss(), X, y)
        step()  # builds the graph (read the variables above) and warms up
        mx.nd.waitall()
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=os.devnull)
        mx.profiler.set_state("run")
        for _ in range(steps):
            step()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        table = json.loads(mx.profiler.dumps(reset=True, format="json"))
    flops_per_step = TRAIN_FLOPS_FACTOR * flops(net, shape) * shape[0] * steps
    del net
    _release()
    profile = _operator_rows(table, top)
    # What the convolutions alone achieve: their share of the time and their GFLOP/s
    # (the conv FLOPs are nearly all of flops() for these nets).
    conv_ms = sum(v["Total"] for k, v in table.get("Time", {}).get("operator", {}).items()
                  if k in ("Convolution", "_backward_Convolution"))
    profile["conv_share"] = conv_ms / profile["total_ms"]
    profile["conv_gflops"] = flops_per_step / (conv_ms / 1e3) / 1e9 if conv_ms else None
    profile["all_ops_gflops"] = flops_per_step / (profile["total_ms"] / 1e3) / 1e9
    return profile


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


# ---------------------------------------------------------------- report

def _fmt_stats(stats, digits=0):
    """'median (min-max)' of a stats dict."""
    fmt = "%%.%df" % digits
    return "%s (%s-%s)" % (fmt % stats["median"], fmt % stats["min"], fmt % stats["max"])


def _table(header, rows, markdown):
    """An aligned text table, or a Markdown one."""
    rows = [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def _shape_text(shape):
    """(1, 28, 28) -> '1x28x28'."""
    return "x".join(map(str, shape))


def _net_rows(nets):
    """Header and rows of the per-net table."""
    header = ["net", "input", "batch", "params", "MFLOP/img", "fwd imperative img/s",
              "fwd hybrid img/s", "hybrid/imp", "train step img/s", "GEMM limit GFLOP/s",
              "fwd GFLOP/s (% limit)", "train GFLOP/s (% limit)"]
    rows = [[r["net"], _shape_text(r["input_shape"]), r["batch_size"],
             "{:,}".format(r["params"]), "%.1f" % (r["flops_per_image"] / 1e6),
             _fmt_stats(r["forward_imperative"]), _fmt_stats(r["forward_hybrid"]),
             "%.2fx" % r["hybrid_speedup"], _fmt_stats(r["train_step"]),
             "%.0f" % r["gemm_limit_gflops"],
             "%.1f (%.0f%%)" % (r["gflops"]["forward_hybrid"],
                                r["pct_of_gemm_limit"]["forward_hybrid"]),
             "%.1f (%.0f%%)" % (r["gflops"]["train_step"], r["pct_of_gemm_limit"]["train_step"])]
            for r in nets]
    return header, rows


def _gluoncv_rows(nets):
    """Header and rows of the GluonCV table."""
    header = ["net", "GluonCV net", "params ours / theirs", "fwd imperative ours/theirs",
              "fwd hybrid ours/theirs", "train step ours/theirs", "difference"]
    rows = []
    for r in nets:
        g = r["gluoncv"]
        if g is None:
            if r["gluoncv_note"]:
                rows.append([r["net"], "-", "-", "-", "-", "-", r["gluoncv_note"]])
            continue
        rows.append([r["net"], g["model"], "{:,} / {:,}".format(r["params"], g["params"]),
                     "%.2f" % g["ratio"]["forward_imperative"],
                     "%.2f" % g["ratio"]["forward_hybrid"], "%.2f" % g["ratio"]["train_step"],
                     g["note"]])
    return header, rows


def _e2e_rows(e2e):
    """Header and rows of the end-to-end table."""
    header = ["net", "input", "batches x batch", "tutorial s", "ours s (hybridize())",
              "speed-up", "ours s (static_alloc, as scripts/train.py)", "speed-up",
              "train steps alone s", "largest possible speed-up", "target",
              "met (plain / static)"]
    rows = []
    for r in e2e:
        if "skipped" in r:
            rows.append([r["net"], _shape_text(r["input_shape"])] + ["-"] * 9 + [r["skipped"]])
            continue
        floor = "-" if r.get("compute_floor_seconds") is None else "%.2f" % (
            r["compute_floor_seconds"])
        best = "-" if r.get("max_speedup") is None else "%.2fx" % r["max_speedup"]
        target = "%.1fx" % r["target"] if r["target"] else "-"
        met = "-" if r["met"] is None else "%s / %s" % (
            "yes" if r["met"] else "NO", "yes" if r["met_static"] else "NO")
        rows.append([r["net"], _shape_text(r["input_shape"]),
                     "%d x %d" % (r["batches"], r["batch_size"]),
                     _fmt_stats(r["tutorial_seconds"], 2), _fmt_stats(r["ours_seconds"], 2),
                     "%.2fx" % r["speedup"], _fmt_stats(r["ours_static_seconds"], 2),
                     "%.2fx" % r["speedup_static"], floor, best, target, met])
    return header, rows


def _lowp_rows(lowp):
    """Header and rows of the int8/bf16 inference table."""
    header = ["net", "variant", "img/s", "x fp32 hybrid", "x fp32 fused", "test acc",
              "acc change (points)", "agrees with fp32", "target", "met", "trained"]
    rows = []
    order = ("fp32", "fp32_fused", "int8", "bf16")  # JSON files keep keys sorted, not in order
    for r in lowp:
        for name in sorted(r["variants"], key=lambda n: order.index(n) if n in order else 9):
            v = r["variants"][name]
            target = "%.1fx, >= -%.1f pt" % (v["target_speedup"], MAX_ACCURACY_LOSS) \
                if "target_speedup" in v else "-"
            met = ("yes" if v["met"] else "NO") if "met" in v else "-"
            if "met" in v and not r.get("accuracy_judged", True):
                met += " (speed only: fp32 net at %.0f%%, too weakly trained to judge "\
                       "accuracy)" % (100 * r["variants"]["fp32"]["test_acc"])
            rows.append([r["net"], name, _fmt_stats(v["images_per_sec"]),
                         "%.2f" % v["speedup_vs_fp32"], "%.2f" % v["speedup_vs_fp32_fused"],
                         "%.4f" % v["test_acc"], "%+.2f" % v["accuracy_change_points"],
                         "%.2f%%" % (100 * v["agreement_with_fp32"]), target, met,
                         _trained_text(r.get("training")) if name == "fp32" else ""])
    return header, rows


def _trained_text(info):
    """How the fp32 net of an int8/bf16 record was trained, in a few words."""
    if not info:
        return "-"
    where = "by %s" % info["run"] if info.get("run") else "in this run"
    epochs = info.get("epochs")
    return "%s epoch(s) on %d images, %s" % (epochs if epochs else "?", info["train_images"],
                                            where)


def _bf16_train_rows(runs):
    """Header and rows of the bf16 training table."""
    header = ["net", "train images", "fp32 img/s", "bf16 img/s", "bf16/fp32",
              "fp32 img/s (static)", "bf16 img/s (static)", "bf16/fp32 (static)",
              "fp32 test acc (1 epoch)", "bf16 test acc (1 epoch)", "change (points)"]
    speed = "images_per_sec_epoch2"
    rows = [[r["net"], r["fp32"]["train_images"], "%.0f" % r["fp32"][speed],
             "%.0f" % r["bf16"][speed], "%.2fx" % r["speedup"],
             "%.0f" % r["fp32_static"][speed], "%.0f" % r["bf16_static"][speed],
             "%.2fx" % r["speedup_static"],
             "%.4f" % r["fp32"]["test_acc_epoch1"], "%.4f" % r["bf16"]["test_acc_epoch1"],
             "%+.2f" % r["accuracy_change_points"]] for r in runs]
    return header, rows


def _target_rows(targets_):
    """Header and rows of the targets table."""
    header = ["target", "wanted", "measured", "met"]
    rows = []
    for t in targets_:
        measured = "%.2fx" % t["measured"]
        if "measured_static" in t:
            measured += " (%.2fx with static_alloc)" % t["measured_static"]
        if "accuracy_change_points" in t:
            measured += ", accuracy %+.2f points" % t["accuracy_change_points"]
            if not t.get("accuracy_judged", True):
                measured += " (not judged: weakly trained net)"
        wanted = ">= %.1fx" % t["target"]
        if "accuracy_change_points" in t:
            wanted += ", loss <= %.1f points" % MAX_ACCURACY_LOSS
        met = "yes" if t["met"] else "NO"
        if "met_static" in t:
            met += " / %s" % ("yes" if t["met_static"] else "NO")
        rows.append([t["what"], wanted, measured, met])
    return header, rows


def _profile_rows(profiles, order=()):
    """Header and rows of the profile table, nets in ``order`` (as asked for) first."""
    header = ["net", "operator", "ms (2 steps)", "calls", "share"]
    rows = []
    names = [n for n in order if n in profiles] + [n for n in profiles if n not in order]
    for name in names:
        p = profiles[name]
        for o in p["operators"]:
            rows.append([name, o["op"], "%.1f" % o["ms"], o["calls"],
                         "%.0f%%" % (100 * o["share"])])
        conv = "-" if p["conv_gflops"] is None else "%.1f" % p["conv_gflops"]
        rows.append([name, "(convolutions: %.0f%% of the time, %s GFLOP/s; all operators: "
                     "%.1f GFLOP/s)" % (100 * p["conv_share"], conv, p["all_ops_gflops"]),
                     "%.1f" % p["total_ms"], "", ""])
    return header, rows


def machine_lines(report):
    """The header: command, date, machine, GEMM limit."""
    m, g = report["machine"], report["gemm"]
    lines = ["command: %s" % report["command"],
             "date: %s, %.0f s" % (report["started"], report.get("seconds", 0)),
             "machine: %s, %s cores; Python %s, MXNet %s, numpy %s"
             % (m["cpu"], m["cores"], m["python"], m["mxnet"], m["numpy"]),
             "MXNet features: %s" % " ".join(m["mxnet_features"]),
             "bf16 instructions: %s; load average at start %s, at end %s"
             % ("yes" if m["bf16_instructions"] else "no",
                _load_text(m.get("load_average_start")), _load_text(m.get("load_average_end"))),
             "GEMM limit (float32 %dx%d) at the start: %.1f GFLOP/s = best sample of "
             "mx.nd.dot %s and oneDNN FullyConnected %s" % (
                 g["size"], g["size"], g["limit_gflops"], _fmt_stats(g["dot_gflops"], 1),
                 _fmt_stats(g["onednn_gflops"], 1))]
    end = report.get("gemm_end")
    if end:
        lines.append("GEMM limit at the end: %.1f GFLOP/s (mx.nd.dot %s, oneDNN %s)" % (
            end["limit_gflops"], _fmt_stats(end["dot_gflops"], 1),
            _fmt_stats(end["onednn_gflops"], 1)))
    return lines


def _load_text(load):
    """Load averages as '1.00/0.50/0.20'."""
    return "-" if not load else "/".join("%.2f" % x for x in load)


_NOTES = [
    "Figures are medians of the samples, min-max in parentheses; images/s unless noted. "
    "What limits each net, and what was changed to get here: docs/SPEED_NOTES.md.",
    "End to end: both loops train the same net from the same initial weights on the same "
    "real Fashion-MNIST images; the tutorial's DataLoader workers start before the clock. "
    "'train steps alone' is batches / the per-net table's training-step speed (random data, "
    "static_alloc): a loader and loop can only add to it, up to the noise of the machine, so "
    "tutorial / that time is the largest speed-up any loader and loop could show.",
    "Training GFLOP/s count a training step as %dx the forward FLOPs (forward, plus the "
    "input-gradient and weight-gradient products of the backward pass)." % TRAIN_FLOPS_FACTOR,
    "FLOPs count conv, dense and pooling layers (a multiply-add is 2 FLOPs); '% limit' is of "
    "the GEMM limit measured again just before each net (the machine is shared; a figure "
    "above 100% means the load changed during the net's measurement).",
    "Ratios ours/theirs > 1 mean ours is faster. Our net and its GluonCV twin are timed "
    "together, their samples interleaved (ours, theirs, ours, ...), so that a change in the "
    "machine's load hits both alike. The machine may be shared: compare ratios within one "
    "run only.",
]


def render(report, markdown=False):
    """The whole report as text (or Markdown)."""
    out = []
    heading = (lambda t: "\n## " + t + "\n") if markdown else (lambda t: "\n== " + t + " ==")
    if markdown:
        out.append("# Benchmarks\n")
        out.append("Produced by `scripts/benchmark.py` (`gluon_cnns/benchmark.py`).\n")
        out.append("```\n" + "\n".join(machine_lines(report)) + "\n```")
    else:
        out.extend(machine_lines(report))
    sections = [("Per net (random data, recipe input size and batch)", report["nets"], _net_rows),
                ("GluonCV model zoo, same input and batch", report["nets"], _gluoncv_rows),
                ("End to end: our loader + loop (hybridized) vs the tutorial's DataLoader + "
                 "loop", report["e2e"], _e2e_rows),
                ("int8 / bf16 inference of a trained net", report["low_precision"],
                 _lowp_rows),
                ("bf16 vs fp32 training (fresh process each)", report["bf16_training"],
                 _bf16_train_rows)]
    for title, data, rows_fn in sections:
        if data:
            header, rows = rows_fn(data)
            if rows:
                out.append(heading(title))
                out.append(_table(header, rows, markdown))
    if report.get("targets"):
        out.append(heading("Targets of the issue"))
        out.append(_table(*_target_rows(report["targets"]), markdown))
    if report.get("profiles"):
        out.append(heading("Training-step profile (mx.profiler, operator bulking off)"))
        # A JSON file keeps keys sorted: the order asked for is in the settings.
        order = report.get("settings", {}).get("profile") or ()
        out.append(_table(*_profile_rows(report["profiles"], order), markdown))
    out.append(heading("Notes"))
    out.extend(("* " if markdown else "- ") + n for n in _NOTES + report.get("notes", []))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def _check_names(names, what):
    """``names``, after checking that each is a net of the zoo."""
    from .errors import UnknownModelError
    from .models import model_spec
    for name in names:
        try:
            model_spec(name)
        except UnknownModelError as e:  # names the net and suggests close ones
            raise GluonCNNsError("%s: %s" % (what, e)) from None
    return names


def _check_run(name, folder):
    """GluonCNNsError unless ``folder`` is a scripts/train.py --save-dir that trained
    ``name`` on the data and input size the benchmark uses (its recipe's)."""
    from .export import _read_config
    from .models import model_spec
    config = _read_config(folder)  # one clear line if it is not a training run
    if config["net"] != name:
        raise GluonCNNsError("--quant-runs: %s trained %s, not %s; pass %s=%s or leave it out"
                             % (folder, config["net"], name, config["net"], folder))
    recipe = model_spec(name).recipe
    for key, default in (("dataset", recipe.dataset), ("resize", recipe.resize)):
        if config.get(key, default) != default:
            raise GluonCNNsError("--quant-runs: %s trained %s with %s=%r, the benchmark uses "
                                 "the recipe's %r" % (folder, name, key, config[key], default))


def _check_args(opts):
    from .models import list_models
    opts.net = _check_names(opts.net or list_models(), "--net")
    if opts.e2e_repeat is None:
        opts.e2e_repeat = opts.repeat
    if opts.e2e_nets is None:
        opts.e2e_nets = [n for n in E2E_TARGET_NETS if n in opts.net]
    _check_names(opts.e2e_nets, "--e2e-nets")
    bad = [d for d in opts.dtype if d not in ("int8", "bf16")]
    if bad:
        raise GluonCNNsError("--dtype takes int8 and/or bf16, got %s" % ", ".join(bad))
    _check_names(opts.quant_nets, "--quant-nets")
    extra = [n for n in opts.quant_runs if n not in opts.quant_nets]
    if extra:
        raise GluonCNNsError("--quant-runs names %s, which --quant-nets leaves out; add it: "
                             "--quant-nets %s" % (", ".join(extra),
                                                  ",".join(opts.quant_nets + extra)))
    if opts.quant_runs and not opts.dtype:
        raise GluonCNNsError("--quant-runs needs --dtype int8 and/or bf16")
    for name, folder in opts.quant_runs.items():
        _check_run(name, folder)
    _check_names(opts.bf16_train, "--bf16-train")
    _check_names(opts.profile, "--profile")
    for flag in ("batch_size", "e2e_batches", "quant_train", "quant_test", "bf16_train_limit"):
        _check_names([k for k in getattr(opts, flag) if k is not None],
                     "--" + flag.replace("_", "-"))


def _say(*parts):
    """Progress on stderr, so that stdout holds only the report."""
    print(*parts, file=sys.stderr, flush=True)


def run(opts, command):
    """Run every measurement ``opts`` asks for; returns the report dict."""
    import mxnet as mx
    _check_args(opts)
    ctx = resolve_ctx(opts.ctx)
    start = time.time()
    report = {"schema": 1, "command": command, "started":
              datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(), "ctx": str(ctx),
              "settings": {k: v for k, v in vars(opts).items() if k not in ("json", "markdown")},
              "nets": [], "e2e": [], "low_precision": [], "bf16_training": [], "profiles": {},
              "notes": [], "section_seconds": {}}
    report["settings"] = json.loads(json.dumps(report["settings"], default=str))

    def timed(section, label, fn, *args):
        """``fn(*args)``, announced on stderr, its time added to section_seconds."""
        _say(label + " ...")
        begin = time.time()
        result = fn(*args)
        seconds = report["section_seconds"]
        seconds[section] = seconds.get(section, 0.0) + time.time() - begin
        return result

    def gemm():
        return gemm_limit(ctx, opts.gemm_size, opts.warmup, opts.repeat, opts.min_time)

    report["gemm"] = timed("gemm", "measuring the GEMM limit", gemm)
    for name in opts.net:
        report["nets"].append(timed("nets", "timing %s" % name, bench_net, name, ctx, opts))
    by_name = {r["net"]: r for r in report["nets"]}
    for name in opts.e2e_nets:
        record = timed("e2e", "end to end: %s" % name, bench_e2e, name, ctx, opts)
        report["e2e"].append(add_compute_floor(record, by_name.get(name)))
    if opts.dtype and ctx.device_type != "cpu":
        report["notes"].append("--dtype skipped: int8/bf16 need the CPU (oneDNN)")
    elif opts.dtype:
        for name in opts.quant_nets:
            report["low_precision"].append(timed("low_precision", "int8/bf16: training and "
                                                 "converting %s" % name, bench_lowp, name, ctx,
                                                 opts))
    for name in opts.bf16_train:
        report["bf16_training"].append(timed("bf16_training", "bf16 training: %s" % name,
                                             bench_bf16_training, name, opts))
    for name in opts.profile:
        report["profiles"][name] = timed("profiles", "profiling %s" % name, profile_train_step,
                                         name, ctx, opts)
    # Once more at the end: on a shared machine the ceiling moves.
    report["gemm_end"] = timed("gemm", "measuring the GEMM limit again", gemm)
    report["machine"]["load_average_end"] = (list(os.getloadavg())
                                             if hasattr(os, "getloadavg") else None)
    report["seconds"] = time.time() - start
    report["targets"] = targets(report)
    mx.nd.waitall()
    return report


def targets(report):
    """Every target of the issue that this run measured: [{what, target, measured, met}]."""
    rows = []
    for r in report["e2e"]:
        if r.get("target") and "speedup" in r:
            rows.append({"what": "end to end %s" % r["net"], "target": r["target"],
                         "measured": r["speedup"], "met": r["met"],
                         "measured_static": r["speedup_static"], "met_static": r["met_static"]})
    for r in report["low_precision"]:
        for variant in ("int8", "bf16"):
            v = r["variants"].get(variant)
            if v is not None:
                rows.append({"what": "%s %s inference" % (r["net"], variant),
                             "target": v["target_speedup"], "measured": v["speedup_vs_fp32"],
                             "accuracy_change_points": v["accuracy_change_points"],
                             "accuracy_judged": r.get("accuracy_judged", True),
                             "met": v["met"]})
    return rows


def load_report(path):
    """A report saved with --json, its verdicts recomputed with the current rules."""
    from .utils.io import read_json
    try:
        report = read_json(path)
    except (OSError, ValueError) as e:
        raise GluonCNNsError("--render: cannot read %s (%s); pass a file written by --json"
                             % (path, e)) from None
    report["low_precision"] = [judge_lowp(r) for r in report.get("low_precision", [])]
    report["targets"] = targets(report)
    return report


def main(argv=None):
    """Entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts, code = parse(build_parser(), argv)
    if opts is None:  # --help, or a usage error already printed by the parser
        return code
    command = " ".join(["python scripts/benchmark.py"] + argv)
    try:
        report = load_report(opts.render) if opts.render else run(opts, command)
    except GluonCNNsError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 2
    print(render(report))
    from .utils.io import write_json, write_text
    if opts.json and not opts.render:
        write_json(opts.json, report)
    if opts.markdown:
        write_text(opts.markdown, render(report, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

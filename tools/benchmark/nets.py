"""Per-net figures on random data: forward and training-step images/s, FLOPs, GluonCV's twin.

Also the helpers the other suites build their nets and trainers with.
"""
import gc

from gluon_cnns.artifacts.state import seed_all

from .argtypes import for_net
from .machine import gemm_limit
from .timing import measure_throughputs

# A training step = forward + 2 backward products (input and weight gradients).
TRAIN_FLOPS_FACTOR = 3

# Our CIFAR ResNets follow He et al. (option A shortcuts, conv-BN-ReLU stem); GluonCV's
# v1 has 1x1 projection shortcuts and no ReLU after the stem BN: the twin is ours built so.
_CIFAR_TWIN = {"shortcut": "B", "stem_relu": False}
_CIFAR_TWIN_NOTE = "identical layers, ours built with shortcut='B', stem_relu=False"
_D2L_RESNET_NOTE = ("NOT identical: ours (d2l) has conv biases and a 1x1 shortcut without "
                    "BatchNorm; GluonCV's convs have no bias and its shortcut has BatchNorm")
# Our net -> (GluonCV model zoo name, how they differ, the get_model arguments that make
# ours its twin). Checked by parameter count in every run; a difference in the note
# means "not identical".
GLUONCV_PAIRS = {
    "vgg11": ("vgg11", "identical layers", {}),
    "vgg13": ("vgg13", "identical layers", {}),
    "vgg16": ("vgg16", "identical layers", {}),
    "vgg19": ("vgg19", "identical layers", {}),
    "resnet20_cifar": ("cifar_resnet20_v1", _CIFAR_TWIN_NOTE, _CIFAR_TWIN),
    "resnet56_cifar": ("cifar_resnet56_v1", _CIFAR_TWIN_NOTE, _CIFAR_TWIN),
    "resnet110_cifar": ("cifar_resnet110_v1", _CIFAR_TWIN_NOTE, _CIFAR_TWIN),
    "resnet18": ("resnet18_v1", _D2L_RESNET_NOTE, {}),
    "resnet34": ("resnet34_v1", _D2L_RESNET_NOTE),
}
# Nets with a namesake in GluonCV that is a different network: not timed.
GLUONCV_UNPAIRED = {
    "alexnet": "GluonCV's alexnet is the one-tower torchvision variant (64-192-384-256-256 "
               "filters, 57.0M parameters vs our 46.8M): not paired",
    "googlenet": "GluonCV's googlenet has BatchNorm after every conv (d2l's has none): not paired",
    "densenet": "GluonCV only has DenseNet-121/161/169/201, not d2l's small DenseNet: not paired",
}


# ---------------------------------------------------------------- shared by the suites

def input_shape(name, batch_size=None):
    """(batch, channels, side, side) of ``name``'s recipe (``batch_size`` overrides)."""
    from gluon_cnns.data import image_shape
    from gluon_cnns.models import model_spec
    recipe = model_spec(name).recipe
    return (batch_size or recipe.batch_size,) + image_shape(recipe.dataset, recipe.resize)


def fresh_net(name, ctx, seed_value):
    """``name`` initialized with Xavier from ``seed_value``: every loop starts from the same
    weights."""
    import mxnet as mx
    from gluon_cnns.models import get_model
    seed_all(seed_value)
    net = get_model(name, classes=10)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net


def hybridize(net, static):
    """``static``: with ``static_alloc``/``static_shape``, as ``scripts/train.py`` does;
    else plain ``hybridize()``, as the tutorials do when they hybridize."""
    if static:
        net.hybridize(static_alloc=True, static_shape=True)
    else:
        net.hybridize()


def random_batch(shape, ctx, seed_value):
    """Uniform [0, 1) images and random labels of 10 classes: speed does not depend on content."""
    import mxnet as mx
    import numpy as np
    rng = np.random.RandomState(seed_value)
    X = mx.nd.array(rng.rand(*shape).astype(np.float32), ctx=ctx)
    y = mx.nd.array(rng.randint(0, 10, size=shape[0]).astype(np.float32), ctx=ctx)
    return X, y


def recipe_trainer(net, recipe, batches_per_epoch, lr=None):
    """The Trainer ``scripts/train.py`` builds for the recipe (optimizer, momentum, wd, lr
    schedule). ``lr`` replaces the recipe's learning rate and schedule with a constant."""
    from gluon_cnns.training.optim import make_trainer
    settings = recipe._asdict()
    if lr is not None:
        settings.update(lr=lr, lr_schedule="none")
    return make_trainer(net, settings, batches_per_epoch)


def train_step(net, trainer, loss, X, y):
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


def release():
    """Free the memory of the net just timed before the next (VGG's gradients are GBs)."""
    import mxnet as mx
    mx.nd.waitall()
    gc.collect()


# ---------------------------------------------------------------- the per-net table

def time_blocks(nets, shape, ctx, recipe, opts):
    """Forward (imperative, hybridized) and training-step images/s of uninitialized ``nets``.

    Returns one timing dict per net; the nets' samples are interleaved (see
    :func:`~tools.benchmark.timing.measure_throughputs`), so ours/GluonCV's
    ratios are not at the mercy of a load change between two nets' measurements.
    """
    import mxnet as mx
    from mxnet import gluon
    X, y = random_batch(shape, ctx, opts.seed)
    for net in nets:
        net.initialize(mx.init.Xavier(), ctx=ctx)

    def measure(calls):
        return measure_throughputs(calls, shape[0], opts.warmup, opts.repeat, opts.min_time)

    forwards = [lambda n=n: n(X) for n in nets]
    imperative = measure(forwards)
    for net in nets:
        hybridize(net, static=True)
    hybrid = measure(forwards)
    # The lr is irrelevant to speed; a small one keeps random labels from blowing up.
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    training = measure([train_step(n, recipe_trainer(n, recipe, 1, lr=1e-3), loss, X, y)
                        for n in nets])
    return [{"forward_imperative": i, "forward_hybrid": h, "train_step": t}
            for i, h, t in zip(imperative, hybrid, training)]


def _gflops(flops_per_image, stats, factor=1):
    """GFLOP/s achieved at the median images/s of ``stats``."""
    return flops_per_image * factor * stats["median"] / 1e9


def _add_rates(record, limit):
    """Add the hybridize speed-up, the GFLOP/s and their share of the GEMM ``limit``."""
    f = record["flops_per_image"]
    record["hybrid_speedup"] = (record["forward_hybrid"]["median"]
                                / record["forward_imperative"]["median"])
    record["gflops"] = {"forward_hybrid": _gflops(f, record["forward_hybrid"]),
                        "train_step": _gflops(f, record["train_step"], TRAIN_FLOPS_FACTOR)}
    record["pct_of_gemm_limit"] = {k: 100.0 * v / limit for k, v in record["gflops"].items()}


def bench_net(name, ctx, opts):
    """Every per-net figure of the table for ``name``, GluonCV's counterpart included.

    The GEMM limit is measured again just before the net (briefly), and the
    net's percentages are of that figure: other processes on a shared
    machine change what the cores deliver from one minute to the next.
    GluonCV's counterpart is timed together with ours, samples interleaved.
    """
    from gluon_cnns.models import get_model, model_spec
    from gluon_cnns.shapes import count_parameters, flops
    recipe = model_spec(name).recipe
    shape = input_shape(name, for_net(opts.batch_size, name, None))
    net = get_model(name, classes=10)
    record = {"net": name, "input_shape": list(shape[1:]), "batch_size": shape[0],
              "params": count_parameters(net, shape),
              "learnable_params": count_parameters(net, shape, learnable_only=True),
              "flops_per_image": flops(net, shape)}
    record["gluoncv"] = None
    record["gluoncv_note"] = GLUONCV_UNPAIRED.get(name)
    nets = [net]
    if name in GLUONCV_PAIRS and not opts.no_gluoncv:
        # Ours as GluonCV's twin (the default net itself where no arguments are needed)
        # and theirs, timed with the default net, samples interleaved.
        ours_as = GLUONCV_PAIRS[name][2]
        twin_of_ours = get_model(name, classes=10, **ours_as) if ours_as else net
        theirs, record["gluoncv"] = gluoncv_twin(name, shape, twin_of_ours)
        record["gluoncv_note"] = record["gluoncv"]["note"]
        nets += ([twin_of_ours] if ours_as else []) + [theirs]
    limit = gemm_limit(ctx, opts.gemm_size, 1, 2, min(opts.min_time, 0.2))["limit_gflops"]
    record["gemm_limit_gflops"] = limit
    timings = time_blocks(nets, shape, ctx, recipe, opts)
    record.update(timings[0])
    _add_rates(record, limit)
    if record["gluoncv"] is not None:
        theirs, ours_twin = record["gluoncv"], timings[-2]
        theirs.update(timings[-1])
        theirs["ours"] = ours_twin  # our net as the twin: the default net or shortcut B
        theirs["ratio"] = {k: ours_twin[k]["median"] / theirs[k]["median"]
                           for k in ("forward_imperative", "forward_hybrid", "train_step")}
    del net, nets
    release()
    return record


def gluoncv_twin(name, shape, ours):
    """GluonCV's counterpart of ``name`` (uninitialized) and the start of its record, its
    parameters counted against ``ours``, our net built as its twin."""
    from gluon_cnns.gluoncv_import import import_gluoncv
    gluoncv_model = import_gluoncv("gluoncv.model_zoo").get_model
    from gluon_cnns.shapes import count_parameters
    theirs_name, note, ours_as = GLUONCV_PAIRS[name]
    net = gluoncv_model(theirs_name, classes=10)
    record = {"model": theirs_name, "note": note, "ours_as": ours_as,
              "params": count_parameters(net, shape),
              "learnable_params": count_parameters(net, shape, learnable_only=True)}
    record["same_param_count"] = all(
        record[key] == count_parameters(ours, shape, learnable_only=key != "params")
        for key in ("params", "learnable_params"))
    return net, record

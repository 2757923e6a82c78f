"""A training run's settings, each declared once in :data:`SETTINGS`.

One :class:`Setting` says everything about one option of a run: its name (the key
of the ``settings`` dict and of config.json, and the flag ``--name-with-dashes``),
its type, its default (or the recipe default), whether config.json may hold None
for it, whether ``--resume`` may change it, its ``--help`` text and how the flag's
text becomes a value. From this one table come the training command's flags and
``--help`` (``cli/train_args.py``), the :data:`Recipe` a net registers
(``models/registry.py``), config.json's type checks (``training/records.py``),
and which settings ``--resume`` takes from config.json and which it refuses to
change (``training/prepare.py``, ``cli/train_args.py``). Adding a flag is one
entry here plus the code that uses it.

This module sits beside ``errors.py``, below every layer: it imports neither
MXNet nor NumPy, so building the command line stays light.
"""
import math
from collections import namedtuple
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

from .errors import BadValue

# The types config.json holds; int, float, str and bool are themselves.
EPOCHS = "epochs"    # increasing positive whole numbers (epochs or iterations)
NAMES = "names"      # non-empty strings (class names)
NUMBERS = "numbers"  # numbers (a per-channel mean or std)


# ---------------------------------------------------------------- text -> value

def _whole(text, accept, requirement):
    """An int for which ``accept(value)`` holds, else BadValue."""
    try:
        value = int(text)
    except ValueError:
        raise BadValue("expected %s, got %r" % (requirement, text))
    if not accept(value):
        raise BadValue("must be %s, got %r" % (requirement, text))
    return value


def positive_int(text):
    """An integer > 0."""
    return _whole(text, lambda v: v > 0, "a positive integer")


def non_negative_int(text):
    """An integer >= 0 (0: none)."""
    return _whole(text, lambda v: v >= 0, "a whole number >= 0")


def seed_value(text):
    """A seed MXNet, NumPy and Python all take: a whole number in 0..2**31-1."""
    return _whole(text, lambda v: 0 <= v < 2 ** 31, "a whole number in 0..2147483647")


# MXNet passes optimizer settings to its operators as float32: anything larger fails
# deep inside the first update ("Invalid Parameter format").
FLOAT32_MAX = 3.4e38


def number(text, accept, requirement):
    """A finite float for which ``accept(value)`` holds, else BadValue."""
    try:
        value = float(text)
    except ValueError:
        raise BadValue("expected %s, got %r" % (requirement, text))
    if not (math.isfinite(value) and accept(value)):
        raise BadValue("must be %s, got %r" % (requirement, text))
    return value


def positive_float(text):
    """A number > 0 that fits float32."""
    return number(text, lambda v: 0 < v < FLOAT32_MAX, "a positive number below 3.4e38")


def non_negative_float(text):
    """A number >= 0 that fits float32 (weight decay)."""
    return number(text, lambda v: 0 <= v < FLOAT32_MAX, "a number >= 0 and below 3.4e38")


def momentum_value(text):
    """A number in [0, 1): momentum 1 or more never forgets and diverges."""
    value = non_negative_float(text)
    if value >= 1:
        raise BadValue("must be in [0, 1), got %r" % text)
    return value


def smoothing_value(text):
    """A number in [0, 1): a smoothing of 1 or more leaves no weight on the true class."""
    return number(text, lambda v: 0 <= v < 1, "a number in [0, 1), e.g. 0.1")


def mixup_alpha(text):
    """Mixup's Beta(alpha, alpha) parameter: a number >= 0, 0 meaning no mixup."""
    return number(text, lambda v: 0 <= v < FLOAT32_MAX, "an alpha >= 0, e.g. 0.2 (0: off)")


def non_empty(example=None):
    """A string that is not empty (an empty --save-dir or --net must not quietly mean
    "none"); ``example`` completes the message, e.g. "a path, e.g. out/lenet"."""
    def check(text):
        if not text.strip():
            raise BadValue("must not be empty" + ("; give %s" % example if example else ""))
        return text
    check.__name__ = "non_empty"
    return check


def epoch_list(text):
    """Comma-separated, strictly increasing positive epochs, e.g. ``100,150``."""
    try:
        steps = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise BadValue("expected epochs like 100,150, got %r" % text)
    if any(s <= 0 for s in steps) or any(a >= b for a, b in zip(steps, steps[1:])):
        raise BadValue("epochs must be positive and increasing, like 100,150; got %r" % text)
    return steps


def fraction(low_open=True):
    """A number in (0, 1) (``low_open``) or (0, 1]."""
    def check(text):
        try:
            value = float(text)
        except ValueError:
            raise BadValue("expected a fraction like 0.2, got %r" % text)
        if not (0 < value < 1 or (value == 1 and not low_open)):
            raise BadValue("must be in 0..1%s, got %r" % (" (both excluded)" if low_open else "",
                                                         text))
        return value
    check.__name__ = "fraction"
    return check


def number_list(text):
    """One number, or one per channel: ``0.5`` or ``0.485,0.456,0.406``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadValue("expected numbers like 0.5 or 0.485,0.456,0.406, got %r" % text)
    if len(values) not in (1, 3) or not all(abs(v) < 1e6 for v in values):
        raise BadValue("expected 1 or 3 numbers, got %r" % text)
    return values


# ---------------------------------------------------------------- one setting

REFUSAL = ("{flag} cannot change on --resume (the checkpoint in {dir} used {used}); start a "
           "new --save-dir instead")


@dataclass(frozen=True)
class Setting:
    """One option of a training run.

    ``kind`` is the type config.json holds: int, float, str, bool, EPOCHS, NAMES or
    NUMBERS. ``kept`` settings are the run's own: they are in the ``settings`` dict and
    config.json, and ``--resume`` takes them from config.json when the flag is
    left out; the others only say how this command runs (devices, output).
    ``recipe`` settings are fields of :data:`Recipe`, ``default`` their value in
    the d2l recipe; for other settings ``default`` is the value when nothing gives
    one (for a kept one, a flag left out is None, so that config.json or the recipe
    can fill it). ``flag`` False: filled in from the data, not a flag; ``help``
    None: a hidden flag. ``fixed_on_resume``: ``--resume`` refuses a new value, in
    the words of ``refusal``. ``low``: the least whole number config.json takes.
    ``images_only``: given with a built-in dataset, it is refused.
    """
    name: str
    kind: object = str
    help: Optional[str] = None
    parse: Optional[Callable[[str], object]] = None
    choices: Union[Tuple, Callable[[], Tuple], None] = None
    metavar: Optional[str] = None
    aliases: Tuple[str, ...] = ()
    group: Optional[str] = None
    default: object = None
    recipe: bool = False
    kept: bool = True
    flag: bool = True
    may_be_none: bool = False
    low: int = 1
    fixed_on_resume: bool = False
    refusal: str = REFUSAL
    images_only: bool = False

    @property
    def option(self):
        """The flag, e.g. ``--batch-size``."""
        return "--" + self.name.replace("_", "-")

    def refuse(self, given, used, save_dir):
        """The message of a ``--resume`` that would change this setting."""
        return self.refusal.format(flag=self.option, dir=save_dir, given=given,
                                   used="none" if used is None else used)


def _datasets():
    """The --dataset names: the built-in datasets, then the own-image kinds."""
    from .data.datasets import DATASETS  # NumPy: only when a parser is built
    from .data.images import IMAGE_DATASETS
    return DATASETS + IMAGE_DATASETS


_RECIPE = " (default: the net's recipe)"
_DEFAULT_NET = "lenet_bn"
_IMAGES = "your own images (--dataset folder or rec)"
_TRICKS = "training tricks (He et al. 2019; off in the book's recipes; see docs/TRAINING.md)"

# In the order of ``gluon-cnns-train --help``.
SETTINGS = (
    Setting("net", parse=non_empty(), aliases=("--model",), default=_DEFAULT_NET,
            fixed_on_resume=True, refusal="checkpoint in {dir} is for net {used}, not {given}; "
            "use --net {used} or another --save-dir",
            help="network name, see --list (default: %s); --model is the same flag, for "
                 "horovodrun, whose own parser takes --net for its --network-interface"
                 % _DEFAULT_NET),
    Setting("list", bool, kept=False, default=False, help="list the networks and exit"),
    Setting("ctx", kept=False, choices=("cpu", "gpu"), help="device to train on (default: cpu)"),
    Setting("gpus", int, kept=False, parse=positive_int, metavar="N",
            help="train on N GPUs in data parallel"),
    Setting("cpus", int, kept=False, parse=positive_int, metavar="N",
            help="train on N CPU contexts in data parallel (tests the multi-device path; no "
                 "speed-up)"),
    Setting("kvstore", kept=False,
            choices=("device", "local", "dist_sync", "dist_async", "horovod"),
            help="how gradients are summed: device or local within this process (default "
                 "device), dist_sync or dist_async across the workers of scripts/launch.py, "
                 "horovod across the ranks of horovodrun; --batch-size stays the global batch "
                 "(see docs/SCALING.md)"),
    Setting("dump_params", kept=False, metavar="PATH"),  # tests: each rank's weights
    # The recipe: what `scripts/train.py --net NAME` uses when a flag is not given. The step
    # schedule multiplies the lr by lr_factor after each epoch in lr_steps, or after each
    # number of iterations (optimizer updates) in lr_step_iters; warmup_iters updates at
    # warmup_lr come first. The defaults are the d2l book's (SGD, 5 epochs, Fashion-MNIST).
    Setting("epochs", int, recipe=True, default=5, parse=positive_int, metavar="N",
            help="total number of epochs" + _RECIPE),
    Setting("batch_size", int, recipe=True, default=256, parse=positive_int, metavar="N",
            fixed_on_resume=True, help="examples per batch" + _RECIPE),
    Setting("lr", float, recipe=True, default=0.1, parse=positive_float, fixed_on_resume=True,
            help="learning rate" + _RECIPE),
    Setting("optimizer", recipe=True, default="sgd", choices=("sgd", "nag", "adam"),
            fixed_on_resume=True, help="optimizer" + _RECIPE),
    Setting("momentum", float, recipe=True, default=0.0, parse=momentum_value, metavar="M",
            may_be_none=True, fixed_on_resume=True, help="momentum of sgd/nag" + _RECIPE),
    Setting("wd", float, recipe=True, default=0.0, parse=non_negative_float,
            fixed_on_resume=True, help="weight decay" + _RECIPE),
    Setting("lr_schedule", recipe=True, default="none", choices=("none", "step", "cosine"),
            fixed_on_resume=True, help="learning-rate schedule" + _RECIPE),
    Setting("lr_steps", EPOCHS, recipe=True, default=(), parse=epoch_list, metavar="E1,E2",
            fixed_on_resume=True,
            help="epochs after which the step schedule multiplies the lr by --lr-factor"
                 + _RECIPE),
    Setting("lr_factor", float, recipe=True, default=0.1, parse=positive_float, metavar="F",
            fixed_on_resume=True, help="factor of the step schedule" + _RECIPE),
    Setting("lr_step_iters", EPOCHS, recipe=True, default=(), parse=epoch_list,
            metavar="I1,I2", fixed_on_resume=True,
            help="iterations (updates) after which the step schedule multiplies the lr by "
                 "--lr-factor, instead of --lr-steps" + _RECIPE),
    Setting("warmup_iters", int, recipe=True, default=0, low=0, parse=positive_int,
            metavar="N", fixed_on_resume=True,
            help="first train N iterations at --warmup-lr" + _RECIPE),
    Setting("warmup_lr", float, recipe=True, parse=positive_float, metavar="LR",
            may_be_none=True, fixed_on_resume=True, help="the warm-up's lr" + _RECIPE),
    # The tricks of "Bag of Tricks for Image Classification" (He et al. 2019), under
    # GluonCV's names (scripts/classification/imagenet/train_imagenet.py), and timm's weight
    # EMA; their maths is training/tricks.py, docs/TRAINING.md says where each comes from.
    # Left out, each is off: the book's recipes stay as they were.
    Setting("warmup_epochs", int, recipe=True, default=0, low=0, parse=non_negative_int,
            metavar="N", fixed_on_resume=True, group=_TRICKS,
            help="raise the lr linearly from 0 to --lr over the first N epochs (Goyal et al. "
                 "2017; He et al. 2019 sec. 3.1), instead of --warmup-iters' constant "
                 "--warmup-lr" + _RECIPE),
    Setting("label_smoothing", float, recipe=True, default=0.0, parse=smoothing_value,
            metavar="EPS", fixed_on_resume=True, group=_TRICKS,
            help="train on smoothed labels: 1-EPS+EPS/K on the true class, EPS/K on the other "
                 "K-1 (Szegedy et al. 2016; He et al. 2019 sec. 5.2)" + _RECIPE),
    Setting("mixup", float, recipe=True, default=0.0, parse=mixup_alpha, metavar="ALPHA",
            fixed_on_resume=True, group=_TRICKS,
            help="mixup (Zhang et al. 2018; He et al. 2019 sec. 5.4): train on lam*x + "
                 "(1-lam)*x' and the labels mixed alike, lam ~ Beta(ALPHA, ALPHA), x' the batch "
                 "reversed; 0: off" + _RECIPE),
    Setting("mixup_off_epoch", int, recipe=True, default=0, low=0, parse=non_negative_int,
            metavar="N", fixed_on_resume=True, group=_TRICKS,
            help="train the last N epochs without mixup" + _RECIPE),
    Setting("no_wd", bool, recipe=True, default=False, fixed_on_resume=True, group=_TRICKS,
            help="no weight decay on biases and BatchNorm's gamma and beta (He et al. 2019 "
                 "sec. 3.1)" + _RECIPE),
    Setting("last_gamma", bool, recipe=True, default=False, fixed_on_resume=True, group=_TRICKS,
            help="start the last BatchNorm's gamma of each residual block at 0 (He et al. 2019 "
                 "sec. 3.1; the ResNets and CIFAR ResNets)" + _RECIPE),
    Setting("ema", float, recipe=True, parse=fraction(), metavar="DECAY", may_be_none=True,
            fixed_on_resume=True, group=_TRICKS,
            help="keep an exponential moving average of the weights, ema = DECAY*ema + "
                 "(1-DECAY)*w after each update (timm's ModelEmaV2), e.g. 0.999; it is what is "
                 "tested and saved as best.params and the final weights" + _RECIPE),
    Setting("recipe", parse=non_empty(), metavar="NAME", fixed_on_resume=True,
            help="which of the net's recipes gives the defaults, e.g. paper or gluoncv for the "
                 "CIFAR ResNets (default: the first; see the table below)"),
    Setting("resize", int, recipe=True, parse=positive_int, metavar="SIDE", may_be_none=True,
            fixed_on_resume=True, help="resize images to SIDE x SIDE" + _RECIPE),
    Setting("dataset", recipe=True, default="fashion-mnist", choices=_datasets,
            fixed_on_resume=True,
            help="dataset" + _RECIPE + "; folder: your own images in --data-dir "
                 "(train/<class>/*.jpg and val/<class>/...); rec: its RecordIO pack made by "
                 "scripts/pack.py"),
    # The run itself: data, seed, limits, the run folder, export.
    Setting("data_dir", parse=non_empty(), metavar="DIR", may_be_none=True,
            help="folder with the dataset files"),
    Setting("no_hybridize", bool, kept=False, default=False,
            help="run imperatively (slower, easier to debug)"),
    Setting("dtype", kept=False, choices=("fp32", "bf16"), default="fp32",
            help="bf16: mixed-precision training on a CPU with AVX512-BF16/AMX (weights stay "
                 "fp32; see docs/BENCHMARKS.md for its speed-up)"),
    Setting("seed", int, parse=seed_value, metavar="N", may_be_none=True, low=0,
            fixed_on_resume=True, refusal="--seed cannot change on --resume (the run's data "
            "order and dropout masks follow seed {used}); drop --seed",
            help="seed mxnet, numpy and random for a repeatable run (default: a random seed, "
                 "saved in config.json so that --resume continues exactly)"),
    Setting("limit_train", int, parse=positive_int, metavar="N", may_be_none=True,
            fixed_on_resume=True, help="train on the first N examples only"),
    Setting("limit_test", int, parse=positive_int, metavar="N", may_be_none=True,
            fixed_on_resume=True, help="test on the first N examples only"),
    Setting("save_dir", kept=False, parse=non_empty(), metavar="DIR",
            help="write config, per-epoch checkpoints, best.params, log.jsonl and curves.png "
                 "here"),
    Setting("resume", bool, kept=False, default=False,
            help="continue from the last checkpoint in --save-dir"),
    Setting("checkpoint_every", int, parse=positive_int, metavar="K", may_be_none=True,
            help="also save a checkpoint every K batches, not only after each epoch (needs "
                 "--save-dir)"),
    Setting("nan_policy", choices=("stop", "skip"), may_be_none=True,
            help="on a nan or infinite loss: stop (exit 3, keeping the last good checkpoint) or "
                 "skip the batch, undoing its update (default: stop)"),
    Setting("export", kept=False, parse=non_empty(), metavar="PATH",
            help="after training, export the net to PATH-symbol.json + PATH-0000.params, "
                 "PATH.onnx and PATH.json (for scripts/predict.py)"),
    Setting("tensorboard", kept=False, parse=non_empty(), metavar="DIR",
            help="write TensorBoard events here (default: SAVE_DIR/tensorboard with "
                 "--save-dir); see `tensorboard --logdir DIR`"),
    Setting("no_tensorboard", bool, kept=False, default=False,
            help="write no TensorBoard events"),
    Setting("tensorboard_every", int, kept=False, parse=positive_int, metavar="N", default=50,
            help="log the running loss to TensorBoard every N batches (default: 50)"),
    Setting("quiet", bool, kept=False, default=False,
            help="no progress bar or extra information"),
    # Your own images and fine-tuning; the data fills in what is left out (training/prepare.py).
    Setting("channels", int, parse=int, choices=(1, 3), group=_IMAGES, images_only=True,
            fixed_on_resume=True,
            help="read images as grey (1) or RGB (3) (default: 1 if every image is grey, else "
                 "3; when fine-tuning, the source net's)"),
    Setting("val_split", float, parse=fraction(), metavar="F", group=_IMAGES,
            images_only=True, may_be_none=True, fixed_on_resume=True,
            help="without a val/ folder, hold out this fraction of each class for testing, "
                 "chosen by file name (default 0.1)"),
    Setting("bad_images", choices=("skip", "stop"), default="skip", group=_IMAGES,
            images_only=True, may_be_none=True,
            help="an image that cannot be read: skip it and count it, or stop (default: skip)"),
    Setting("augment", choices=("crop-flip", "flip", "none"), default="crop-flip",
            group=_IMAGES, images_only=True, may_be_none=True, fixed_on_resume=True,
            help="training augmentation: random resized crop and mirror, mirror only, or none "
                 "(default: crop-flip)"),
    Setting("center_crop", float, parse=fraction(low_open=False), metavar="F", default=0.875,
            group=_IMAGES, images_only=True, may_be_none=True, fixed_on_resume=True,
            help="evaluation: scale the shorter side to SIDE/F and cut out the centre SIDE x "
                 "SIDE (default 0.875, as 224 of 256)"),
    Setting("mean", NUMBERS, parse=number_list, metavar="M[,M,M]", group=_IMAGES,
            images_only=True, may_be_none=True, fixed_on_resume=True,
            help="per-channel mean subtracted after /255 (default: ImageNet's for RGB, none "
                 "for grey; when fine-tuning, the source net's)"),
    Setting("std", NUMBERS, parse=number_list, metavar="S[,S,S]", group=_IMAGES,
            images_only=True, may_be_none=True, fixed_on_resume=True,
            help="per-channel std, with --mean"),
    Setting("workers", int, parse=positive_int, metavar="N", group=_IMAGES, images_only=True,
            may_be_none=True, help="threads decoding images (default: the CPUs, at most 4)"),
    Setting("finetune", parse=non_empty("a run's --save-dir or an export prefix"),
            metavar="RUN_DIR_OR_EXPORT", group=_IMAGES, may_be_none=True, fixed_on_resume=True,
            help="start from this trained net's features (a --save-dir or an export), with a "
                 "new classifier for this data's classes"),
    Setting("freeze_features", bool, group=_IMAGES, may_be_none=True, fixed_on_resume=True,
            help="with --finetune: train only the new classifier"),
    # What the data decides (training/prepare.py's resolve_data).
    Setting("classes", int, flag=False),
    Setting("class_names", NAMES, flag=False, may_be_none=True),
    Setting("data_fingerprint", flag=False, may_be_none=True),
)


def setting(name):
    """The :class:`Setting` called ``name``; KeyError if there is none."""
    for spec in SETTINGS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def flags():
    """The settings given by a flag, in the order of ``--help``."""
    return [spec for spec in SETTINGS if spec.flag]


def kept():
    """The run's own settings: those of the ``settings`` dict and config.json."""
    return [spec for spec in SETTINGS if spec.kept]


def kept_flags():
    """The settings a flag gives and ``--resume`` takes from config.json when it is left out."""
    return [spec for spec in SETTINGS if spec.kept and spec.flag]


# ---------------------------------------------------------------- the recipe

# A training recipe: the recipe settings' values, registered with each net.
Recipe = namedtuple("Recipe", [spec.name for spec in SETTINGS if spec.recipe])


def recipe(**values):
    """Build a :data:`Recipe`; what is left out is the d2l book's (SGD, 5 epochs, Fashion-MNIST).

    The keywords are :data:`Recipe`'s fields; epoch lists become tuples.
    """
    unknown = sorted(set(values) - set(Recipe._fields))
    if unknown:
        raise TypeError("recipe() got an unexpected keyword argument %r" % unknown[0])
    fields = {}
    for spec in SETTINGS:
        if spec.recipe:
            value = values.get(spec.name, spec.default)
            fields[spec.name] = tuple(value) if spec.kind == EPOCHS else value
    return Recipe(**fields)

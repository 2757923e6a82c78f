"""``gluon-cnns-train``: train any net of the zoo with the recipe of its tutorial.

    gluon-cnns-train --net lenet --epochs 1
    gluon-cnns-train --net resnet20_cifar --ctx gpu --save-dir runs/r20
    gluon-cnns-train --save-dir runs/r20 --resume      # continue after a crash

Every setting left out comes from the net's recipe (``model_spec(net).recipe``);
``--help`` lists them all. A user mistake ends with one line on stderr and
exit code 2, never a traceback.

With ``--save-dir`` the run can always be continued exactly with ``--resume``
(the same final parameters as an uninterrupted run, on the CPU): it saves a
checkpoint after every epoch, every ``--checkpoint-every`` batches and on
Ctrl-C, and ``kill -9`` at any moment leaves the last complete one in place
(see gluon_cnns.utils.checkpoint).

Exit codes: 0 done; 2 a user mistake, or a damaged checkpoint with no usable
earlier one; 3 the loss or gradients became nan or infinite (``--nan-policy
stop``; the last good checkpoint is kept); 130 interrupted (Ctrl-C), after
saving a checkpoint when there is a ``--save-dir``.
"""
import argparse
import contextlib
import os
import random
import signal
import sys
import threading

from ..errors import GluonCNNsError, NonFiniteLossError, error_line
from ..utils.data import DATASETS, image_shape
from .common import (OneLineParser, non_negative_float, parse, positive_float,  # noqa: F401
                     positive_int)

PROG = "gluon-cnns-train"
DEFAULT_NET = "lenet_bn"

# Settings that a recipe provides; a flag left out falls back to these.
_RECIPE_KEYS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "momentum", "wd",
                "resize", "lr_schedule", "lr_steps", "lr_factor")
# Settings that --resume may also take from the saved config.json.
_SAVED_KEYS = _RECIPE_KEYS + ("limit_train", "limit_test", "seed", "data_dir",
                               "checkpoint_every", "nan_policy")
# Settings that --resume must not change: the saved optimizer state, learning-rate
# schedule and data order were made with them.
_FIXED_ON_RESUME = ("dataset", "batch_size", "lr", "optimizer", "momentum", "wd", "resize",
                    "lr_schedule", "lr_steps", "lr_factor", "limit_train", "limit_test")

CONFIG, CHECKPOINT, LOG, BEST, CURVES = ("config.json", "checkpoint.json", "log.jsonl",
                                         "best.params", "curves.png")


class UsageError(GluonCNNsError):
    """A user mistake found by this script; ``main`` turns it into one stderr line."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, after a checkpoint was saved; the message says where and how to go on."""


# ---------------------------------------------------------------- argument types

def momentum_value(text):
    """A number in [0, 1): momentum 1 or more never forgets and diverges."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError("must be in [0, 1), got %r" % text)
    return value


def epoch_list(text):
    """Comma-separated, strictly increasing positive epochs, e.g. ``100,150``."""
    try:
        steps = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected epochs like 100,150, got %r" % text)
    if any(s <= 0 for s in steps) or any(a >= b for a, b in zip(steps, steps[1:])):
        raise argparse.ArgumentTypeError(
            "epochs must be positive and increasing, like 100,150; got %r" % text)
    return steps


def _recipe_table():
    """The --help epilog: every net with the recipe its flags default to."""
    from ..models import list_models, model_spec
    rows = [("net", "dataset", "epochs", "batch", "lr", "optimizer", "resize", "lr schedule")]
    for name in list_models():
        r = model_spec(name).recipe
        schedule = r.lr_schedule
        if r.lr_schedule == "step":
            schedule = "step x%g at %s" % (r.lr_factor, ",".join(map(str, r.lr_steps)))
        rows.append((name, r.dataset, str(r.epochs), str(r.batch_size), "%g" % r.lr,
                     r.optimizer, str(r.resize or "-"), schedule))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return ("Recipes (what each net trains with when a flag is left out):\n  "
            + "\n  ".join(lines))


def build_parser():
    """The argument parser; every recipe flag defaults to None, meaning "from the recipe"."""
    parser = OneLineParser(
        prog=PROG, usage="%(prog)s [--net NAME] [options]  (--list for the nets)",
        description="Train a classic CNN of the gluon_cnns zoo with its tutorial recipe.",
        epilog=_recipe_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    recipe = " (default: the net's recipe)"
    add = parser.add_argument
    add("--net", help="network name, see --list (default: %s)" % DEFAULT_NET)
    add("--list", action="store_true", help="list the networks and exit")
    add("--ctx", choices=("cpu", "gpu"), help="device to train on (default: cpu)")
    add("--gpus", type=positive_int, metavar="N", help="train on N GPUs in data parallel")
    add("--cpus", type=positive_int, metavar="N",
        help="train on N CPU contexts in data parallel (tests the multi-device path; no speed-up)")
    add("--kvstore", choices=("device", "local", "dist_sync", "dist_async"),
        help="how gradients are summed: device or local within this process (default device), "
             "dist_sync or dist_async across the workers of scripts/launch.py; --batch-size "
             "stays the global batch (see docs/SCALING.md)")
    add("--dump-params", metavar="PATH", help=argparse.SUPPRESS)  # tests: each rank's weights
    add("--epochs", type=positive_int, metavar="N", help="total number of epochs" + recipe)
    add("--batch-size", type=positive_int, metavar="N", help="examples per batch" + recipe)
    add("--lr", type=positive_float, help="learning rate" + recipe)
    add("--optimizer", choices=("sgd", "nag", "adam"), help="optimizer" + recipe)
    add("--momentum", type=momentum_value, metavar="M", help="momentum of sgd/nag" + recipe)
    add("--wd", type=non_negative_float, help="weight decay" + recipe)
    add("--lr-schedule", choices=("none", "step", "cosine"), help="learning-rate schedule" + recipe)
    add("--lr-steps", type=epoch_list, metavar="E1,E2",
        help="epochs after which the step schedule multiplies the lr by --lr-factor" + recipe)
    add("--lr-factor", type=positive_float, metavar="F", help="factor of the step schedule" + recipe)
    add("--resize", type=positive_int, metavar="SIDE", help="resize images to SIDE x SIDE" + recipe)
    add("--dataset", choices=DATASETS, help="dataset" + recipe)
    add("--data-dir", metavar="DIR", help="folder with the dataset files")
    add("--no-hybridize", action="store_true", help="run imperatively (slower, easier to debug)")
    add("--dtype", choices=("fp32", "bf16"), default="fp32",
        help="bf16: mixed-precision training on a CPU with AVX512-BF16/AMX (weights stay "
             "fp32; see docs/BENCHMARKS.md for its speed-up)")
    add("--seed", type=int, metavar="N",
        help="seed mxnet, numpy and random for a repeatable run (default: a random seed, "
             "saved in config.json so that --resume continues exactly)")
    add("--limit-train", type=positive_int, metavar="N", help="train on the first N examples only")
    add("--limit-test", type=positive_int, metavar="N", help="test on the first N examples only")
    add("--save-dir", metavar="DIR",
        help="write config, per-epoch checkpoints, best.params, log.jsonl and curves.png here")
    add("--resume", action="store_true", help="continue from the last checkpoint in --save-dir")
    add("--checkpoint-every", type=positive_int, metavar="K",
        help="also save a checkpoint every K batches, not only after each epoch (needs "
             "--save-dir)")
    add("--nan-policy", choices=("stop", "skip"),
        help="on a nan or infinite loss: stop (exit 3, keeping the last good checkpoint) or "
             "skip the batch, undoing its update (default: stop)")
    add("--export", metavar="PATH",
        help="after training, export the net to PATH-symbol.json + PATH-0000.params, "
             "PATH.onnx and PATH.json (for scripts/predict.py)")
    add("--quiet", action="store_true", help="no progress bar or extra information")
    return parser


# ---------------------------------------------------------------- settings

def resolve_settings(args, saved=None):
    """Merge explicit flags, the saved config (when resuming) and the net's recipe.

    Precedence: a flag given on the command line, then ``saved``, then the recipe.
    """
    from ..models import model_spec
    net = args.net or (saved or {}).get("net") or DEFAULT_NET
    recipe = model_spec(net).recipe._asdict()  # raises UnknownModelError with close matches
    settings = {"net": net}
    for key in _SAVED_KEYS:
        given = getattr(args, key)
        if given is not None:
            settings[key] = given
        elif saved is not None and key in saved:
            settings[key] = saved[key]
        else:
            settings[key] = recipe.get(key)
    # JSON has no tuples; keep one type so that comparisons with config.json work.
    settings["lr_steps"] = list(settings["lr_steps"] or ())

    if settings["optimizer"] == "adam":
        if args.momentum is not None:
            raise UsageError("--momentum applies to sgd and nag, not adam; drop --momentum")
        settings["momentum"] = None
    if settings["lr_schedule"] == "step" and not settings["lr_steps"]:
        raise UsageError("--lr-schedule step needs --lr-steps, e.g. --lr-steps 100,150")
    if args.lr_steps is not None and settings["lr_schedule"] != "step":
        raise UsageError("--lr-steps only applies to --lr-schedule step; add --lr-schedule step")
    return settings


def _check_resume_changes(args, saved, save_dir):
    """Refuse flags that would silently disagree with the saved optimizer state."""
    if args.net is not None and args.net != saved.get("net"):
        raise UsageError("checkpoint in %s is for net %s, not %s; use --net %s or another "
                         "--save-dir" % (save_dir, saved.get("net"), args.net, saved.get("net")))
    for key in _FIXED_ON_RESUME:
        given = getattr(args, key)
        if given is None:
            continue
        if isinstance(given, tuple):
            given = list(given)
        if given != saved.get(key):
            raise UsageError("--%s cannot change on --resume (the checkpoint in %s used %s); "
                             "start a new --save-dir instead"
                             % (key.replace("_", "-"), save_dir, saved.get(key)))
    if (args.epochs is not None and saved.get("lr_schedule") == "cosine"
            and args.epochs != saved.get("epochs")):
        raise UsageError("--epochs cannot change on --resume with a cosine schedule (it decays "
                         "over %s epochs); start a new --save-dir" % saved.get("epochs"))


def _contexts(args):
    """The list of contexts to train on, from --ctx, --gpus and --cpus."""
    import mxnet as mx
    from ..utils.training import try_all_gpus, try_gpu
    if args.cpus is not None:
        if args.gpus is not None or args.ctx == "gpu":
            raise UsageError("--cpus trains on CPU contexts; drop --gpus and --ctx gpu")
        return [mx.cpu(i) for i in range(args.cpus)]
    if args.gpus is not None:
        if args.ctx == "cpu":
            raise UsageError("--gpus trains on GPUs; drop --ctx cpu")
        gpus = [c for c in try_all_gpus() if c.device_type == "gpu"]
        if args.gpus > len(gpus):
            fix = ("use --gpus %d or fewer" % len(gpus) if gpus
                   else "drop --gpus to train on the CPU")
            raise UsageError("--gpus %d but only %d usable GPU(s) found; %s"
                             % (args.gpus, len(gpus), fix))
        return gpus[:args.gpus]
    if args.ctx == "gpu":
        ctx = try_gpu()
        if ctx.device_type != "gpu":
            print("warning: --ctx gpu but no usable GPU found; training on %s" % ctx,
                  file=sys.stderr)
        return [ctx]
    return [mx.cpu()]


def _seed(seed):
    """Seed every random generator a run uses: MXNet's, NumPy's and Python's."""
    import mxnet as mx
    import numpy as np
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def make_lr_scheduler(settings, batches_per_epoch):
    """An ``mx.lr_scheduler`` for the settings, or None; it counts updates, i.e. batches."""
    import mxnet as mx
    lr = settings["lr"]
    if settings["lr_schedule"] == "step":
        steps = [e * batches_per_epoch for e in settings["lr_steps"]]
        return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=settings["lr_factor"],
                                                    base_lr=lr)
    if settings["lr_schedule"] == "cosine":
        return mx.lr_scheduler.CosineScheduler(max_update=settings["epochs"] * batches_per_epoch,
                                               base_lr=lr, final_lr=0)
    return None


def make_trainer(net, settings, batches_per_epoch, cluster=None):
    """The gluon.Trainer the settings describe.

    It sums gradients with a ``device`` kvstore over several contexts, or with
    the distributed kvstore of ``cluster`` (see gluon_cnns.distributed).
    """
    from ..distributed import Cluster
    params = {"learning_rate": settings["lr"], "wd": settings["wd"]}
    if settings["optimizer"] in ("sgd", "nag"):
        params["momentum"] = settings["momentum"]
    cluster = cluster or Cluster()
    # The schedule counts optimizer updates: with dist_async every worker's push is one.
    scheduler = make_lr_scheduler(settings, batches_per_epoch * cluster.updates_per_batch)
    if scheduler is not None:
        params["lr_scheduler"] = scheduler
    return cluster.trainer(net.collect_params(), settings["optimizer"], params)


# ---------------------------------------------------------------- save dir

def _prepare_save_dir(save_dir, resume):
    """Create the folder; refuse to overwrite someone's checkpoint without --resume."""
    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as e:
        raise UsageError("cannot create --save-dir %s: %s; choose a writable folder"
                         % (save_dir, e.strerror or e))
    if not resume and os.path.exists(os.path.join(save_dir, CHECKPOINT)):
        raise UsageError("%s already holds a checkpoint; add --resume to continue it or "
                         "choose another --save-dir" % save_dir)


def _check_export_folder(path):
    """Refuse an --export PATH whose folder cannot be created or written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError("cannot create the --export folder %s: %s; choose a writable folder"
                         % (folder, e.strerror or e))
    if not os.access(folder, os.W_OK):
        raise UsageError("cannot write to the --export folder %s; choose a writable folder"
                         % folder)


def _load_checkpoint(save_dir):
    """config.json and the newest usable checkpoint entry of ``save_dir``.

    checkpoint.json names the newest checkpoint and the one before it. One whose
    files are missing or fail their SHA-256 check is passed over for the one
    before, saying so in one line on stderr.
    """
    from ..errors import CheckpointError
    from ..utils.checkpoint import describe, verify
    from ..utils.io import read_json
    if not os.path.exists(os.path.join(save_dir, CHECKPOINT)):
        raise UsageError("--resume: no checkpoint in %s (no %s); train without --resume first"
                         % (save_dir, CHECKPOINT))
    try:
        config = read_json(os.path.join(save_dir, CONFIG))
        newest = read_json(os.path.join(save_dir, CHECKPOINT))
        if not isinstance(config.get("net"), str) or not isinstance(newest.get("epoch"), int):
            raise ValueError("missing 'net' or 'epoch'")
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise UsageError("--resume: the checkpoint in %s is corrupt (%s); start a new "
                         "--save-dir" % (save_dir, error_line(e)))
    entries = [newest]
    if isinstance(newest.get("previous"), dict) and isinstance(
            newest["previous"].get("epoch"), int):
        entries.append(newest["previous"])
    for entry in entries:
        try:
            verify(save_dir, entry)
        except CheckpointError as e:
            damage = "the checkpoint at %s in %s is damaged: %s" % (describe(entry), save_dir,
                                                                     error_line(e))
            continue
        if entry is not newest:
            print("%s: warning: %s; resuming from the one before it, at %s"
                  % (PROG, damage, describe(entry)), file=sys.stderr)
        return config, entry
    if len(entries) > 1:
        damage += ", and so is the one before it"
    raise UsageError("--resume: %s; start a new --save-dir" % damage)


def _restore(save_dir, entry, net, trainer, ctxs, train_iter):
    """Load the checkpoint into the net, the trainer, the random generators and the data order."""
    from ..utils.checkpoint import restore
    try:
        restore(save_dir, entry, net, trainer, ctxs, train_iter)
    except GluonCNNsError as e:  # CheckpointError, DataError
        raise UsageError("--resume: cannot load the checkpoint in %s (%s); start a new "
                         "--save-dir" % (save_dir, error_line(e)))


def _read_log(save_dir, last_epoch):
    """Log records up to ``last_epoch``: a crash after the log write but before the
    checkpoint write leaves one record too many, which the resumed run redoes."""
    from ..utils.io import read_jsonl
    try:
        records = read_jsonl(os.path.join(save_dir, LOG))
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict) and r.get("epoch", 0) <= last_epoch]


def save_curves(history, path):
    """Plot loss and train/test accuracy per epoch to a PNG (atomically)."""
    # The object-oriented API with the Agg canvas: no pyplot, so importing this
    # never changes the backend of a notebook that uses the package.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from ..utils.io import atomic_write
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["loss"] for r in history], "o-", label="train loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], "o-", label="train acc")
    ax_acc.plot(epochs, [r["test_acc"] for r in history], "s--", label="test acc")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.5"
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


class Checkpointer:
    """Saves the run to ``save_dir``: after every epoch (as ``train``'s callback), and
    every ``every`` batches and on Ctrl-C (``on_batch``, ``train``'s batch_callback).

    ``checkpoint.json`` names the newest checkpoint and the one before it, with
    the SHA-256 of every file (gluon_cnns.utils.checkpoint). Write order makes a
    kill at any point recoverable: the new checkpoint's files, best.params and
    the log first, then ``checkpoint.json`` (atomically replaced), and only then
    are the files that it no longer names deleted. Two checkpoints at most: a
    200-epoch run of a large net would otherwise fill the disk.
    """

    def __init__(self, save_dir, net, trainer, train_iter, history, best=None, current=None,
                 every=None, ctrl_c=None, last_epoch=None):
        self.save_dir, self.net, self.trainer, self.train_iter = save_dir, net, trainer, train_iter
        self.history = history  # log records so far, including earlier runs
        self.best = best or {"test_acc": -1.0, "epoch": None}
        self.current = current  # the entry of the newest checkpoint (resumed from)
        self.every = every      # also save every this many batches
        self.ctrl_c = ctrl_c    # a _CtrlC: save and stop once it was pressed
        self.last_epoch = last_epoch

    def path(self, name):
        return os.path.join(self.save_dir, name)

    def __call__(self, record):
        """After an epoch: checkpoint, best.params, log and curves."""
        from ..utils.checkpoint import write_checkpoint
        from ..utils.io import atomic_write, write_jsonl
        epoch = record["epoch"]
        entry = write_checkpoint(self.save_dir, epoch, 0, self.net, self.trainer, self.train_iter)
        if record["test_acc"] > self.best["test_acc"]:
            atomic_write(self.path(BEST), self.net.save_parameters)
            self.best = {"test_acc": record["test_acc"], "epoch": epoch}
        self.history.append({k: record[k] for k in ("epoch", "loss", "train_acc", "test_acc",
                                                    "time", "images_per_sec", "lr", "nan_skips")
                             if k in record})
        write_jsonl(self.path(LOG), self.history)
        self._switch(entry)
        save_curves(self.history, self.path(CURVES))
        if epoch != self.last_epoch:
            self._stop_if_interrupted()

    def on_batch(self, progress):
        """After a batch: a checkpoint when one is due, or when Ctrl-C was pressed."""
        from ..utils.checkpoint import write_checkpoint
        stop = self.ctrl_c is not None and self.ctrl_c.requested
        due = (self.every and progress.batch % self.every == 0
               and progress.batch != progress.num_batches)  # the epoch's end saves anyway
        position = (progress.epoch - 1, progress.batch)
        if not (due or stop) or position == self._position(self.current):
            return
        snapshot = progress.snapshot()  # first: raises if a batch was not finite
        entry = write_checkpoint(self.save_dir, progress.epoch - 1, progress.batch, self.net,
                                 self.trainer, self.train_iter)
        entry["progress"] = snapshot
        self._switch(entry)
        self._stop_if_interrupted()

    @staticmethod
    def _position(entry):
        return None if entry is None else (entry["epoch"], entry.get("batch", 0))

    def _switch(self, entry):
        """Make ``entry`` the newest checkpoint, the current one the one before it."""
        from ..utils.checkpoint import remove_unreferenced
        from ..utils.io import write_json
        entry.update(best_test_acc=self.best["test_acc"], best_epoch=self.best["epoch"])
        previous = None
        if self.current is not None:
            previous = {k: v for k, v in self.current.items()
                        if k not in ("previous", "format", "best_params", "log")}
        write_json(self.path(CHECKPOINT), dict(entry, format=2, best_params=BEST, log=LOG,
                                               previous=previous))
        remove_unreferenced(self.save_dir, [entry, previous])
        self.current = entry

    def _stop_if_interrupted(self):
        from ..utils.checkpoint import describe
        if self.ctrl_c is not None and self.ctrl_c.requested:
            raise TrainingInterrupted(
                "saved a checkpoint at %s in %s; continue with: %s --save-dir %s --resume"
                % (describe(self.current), self.save_dir, PROG, self.save_dir))


class _CtrlC:
    """While training with --save-dir: the first Ctrl-C asks for a checkpoint at the
    end of the batch in flight and a clean stop; a second one stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------- main

def _print_models():
    from ..models import list_models, model_spec
    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print("%s  %s" % (name.ljust(width), model_spec(name).description))


def run(args):
    """Train as ``args`` says; returns the history. Raises UsageError/GluonCNNsError on mistakes."""
    import mxnet as mx
    from mxnet import gluon

    from ..distributed import setup as setup_cluster
    from ..models import get_model
    from ..utils.data import load_data
    from ..utils.io import write_json
    from ..utils.training import train

    if args.checkpoint_every is not None and not args.save_dir:
        raise UsageError("--checkpoint-every needs --save-dir DIR to write the checkpoints to")
    saved = ckpt = None
    if args.resume:
        if not args.save_dir:
            raise UsageError("--resume needs --save-dir DIR, the folder of the run to continue")
        saved, ckpt = _load_checkpoint(args.save_dir)
        _check_resume_changes(args, saved, args.save_dir)
    settings = resolve_settings(args, saved)
    if settings["seed"] is None:
        # A seed even when none was asked for: config.json keeps it, so that
        # --resume can continue the run exactly.
        settings["seed"] = random.SystemRandom().randrange(2 ** 31)
    done = ckpt["epoch"] if ckpt else 0
    if done >= settings["epochs"]:
        raise UsageError("the checkpoint in %s has already done %d epochs of %d; pass a larger "
                         "--epochs to train further" % (args.save_dir, done, settings["epochs"]))
    ctxs = _contexts(args)
    if args.dtype == "bf16":
        from ..amp import check_bf16_context, enable_bf16_training
        check_bf16_context(ctxs)  # a GluonCNNsError: one stderr line, exit 2
        enable_bf16_training(warn=lambda message: print(message, file=sys.stderr))
    if settings["nan_policy"] == "skip" and len(ctxs) > 1:
        raise UsageError("--nan-policy skip needs a single device: with several, MXNet updates "
                         "inside the kvstore, where a bad batch cannot be undone; drop --%s"
                         % ("gpus" if args.gpus else "cpus"))
    if saved and saved.get("contexts") and saved["contexts"] != [str(c) for c in ctxs]:
        # Allowed (a run may move to another machine), but a batch split another
        # way sums in another order: not the uninterrupted run's numbers.
        print("%s: warning: the run trained on %s, this resumes on %s: pass the same "
              "--ctx/--gpus/--cpus for an exact continuation"
              % (PROG, ", ".join(saved["contexts"]), ", ".join(str(c) for c in ctxs)),
              file=sys.stderr)
    if args.export:
        _check_export_folder(args.export)  # before training, not after hours of it

    # Catch a too-small input now, not as a shape error deep inside the first batch.
    net = get_model(settings["net"], classes=10)
    sample_shape = (1,) + image_shape(settings["dataset"], settings["resize"])
    net.check_input_shape(sample_shape)
    # Joins a distributed job (--kvstore dist_*): blocks until every worker is there.
    cluster = setup_cluster(args, settings["batch_size"])
    if cluster.distributed and settings["checkpoint_every"]:
        raise UsageError("--checkpoint-every is not supported with --kvstore %s: a distributed "
                         "run saves after each epoch; drop --checkpoint-every" % args.kvstore)

    if args.save_dir and cluster.is_chief:  # only rank 0 writes
        _prepare_save_dir(args.save_dir, args.resume)
        config = dict(settings, contexts=[str(c) for c in ctxs], hybridize=not args.no_hybridize,
                      dtype=args.dtype)
        try:
            write_json(os.path.join(args.save_dir, CONFIG), config)
        except OSError as e:
            raise UsageError("cannot write to --save-dir %s: %s; choose a writable folder"
                             % (args.save_dir, e.strerror or e))
    _seed(settings["seed"])

    # With several devices the batch is split later; keep it on the CPU until then.
    data_ctx = ctxs[0] if len(ctxs) == 1 else mx.cpu()
    train_iter, test_iter = load_data(settings["dataset"], cluster.batch_size,
                                      resize=settings["resize"], root=settings["data_dir"],
                                      ctx=data_ctx, limit_train=settings["limit_train"],
                                      limit_test=settings["limit_test"])
    train_iter = cluster.shard(train_iter)  # a distributed worker's own part

    net.initialize(mx.init.Xavier(), ctx=ctxs)
    if not args.no_hybridize:
        # Static memory and shapes: the graph is planned once (a short last batch plans it
        # once more); lenet_bn's training step measured 10.4k -> 14k images/s.
        net.hybridize(static_alloc=True, static_shape=True)
    trainer = make_trainer(net, settings, len(train_iter), cluster)
    history, best = [], None
    if ckpt:
        _restore(args.save_dir, ckpt, net, trainer, ctxs, train_iter)
        history = _read_log(args.save_dir, done)
        best = {"test_acc": ckpt.get("best_test_acc", -1.0), "epoch": ckpt.get("best_epoch")}

    cluster.sync_parameters(net, trainer, sample_shape, ctxs[0])

    if not args.quiet and cluster.is_chief:
        _print_summary(settings, train_iter, test_iter, ckpt, args.save_dir)
    saver = ctrl_c = None
    if args.save_dir and cluster.is_chief:
        # Ctrl-C saves first; a distributed job cannot stop all its workers at one batch.
        ctrl_c = None if cluster.distributed else _CtrlC()
        saver = Checkpointer(args.save_dir, net, trainer, train_iter, history, best,
                             current=ckpt, every=settings["checkpoint_every"], ctrl_c=ctrl_c,
                             last_epoch=settings["epochs"])
    try:
        with ctrl_c or contextlib.nullcontext():
            new = train(train_iter, test_iter, net, gluon.loss.SoftmaxCrossEntropyLoss(),
                        trainer, ctxs if len(ctxs) > 1 else ctxs[0], settings["epochs"],
                        progress=not args.quiet, callback=saver, start_epoch=done,
                        seed=settings["seed"], nan_policy=settings["nan_policy"] or "stop",
                        batch_callback=saver.on_batch if saver else None,
                        resume=ckpt.get("progress") if ckpt else None)
    except NonFiniteLossError as e:
        raise NonFiniteLossError(_diverged_message(e, saver), e.epoch, e.batch, e.lr,
                                 e.what) from None

    cluster.dump_params(net, args.dump_params)
    print("final test acc %.3f" % new[-1]["test_acc"])
    if args.export:
        from ..export import export_trained
        written = export_trained(net, settings, args.export)
        print("exported to %s" % ", ".join(sorted(written.values())))
    if saver:
        print("saved to %s: best.params (test acc %.3f, epoch %d), %s, %s, %s"
              % (args.save_dir, saver.best["test_acc"], saver.best["epoch"],
                 saver.current["params"], LOG, CURVES))
    return new


def _diverged_message(error, saver):
    """One line for a loss that became nan or infinite: where, and what to do."""
    from ..utils.checkpoint import describe
    if error.batch is None:
        return error_line(error)
    text = "%s at epoch %d batch %d (lr %g)" % (error.what, error.epoch, error.batch, error.lr)
    if saver is None or saver.current is None:
        return text + "; lower --lr, or skip such batches with --nan-policy skip"
    return (text + "; the last good checkpoint, at %s, is kept in %s: start again with a lower "
            "--lr, or continue it with --resume --nan-policy skip to skip such batches"
            % (describe(saver.current), saver.save_dir))


def _print_summary(settings, train_iter, test_iter, resumed, save_dir):
    """One line of what is about to happen (left out with --quiet)."""
    s = settings
    opt = "%s lr %g" % (s["optimizer"], s["lr"])
    if s["momentum"]:
        opt += " momentum %g" % s["momentum"]
    if s["wd"]:
        opt += " wd %g" % s["wd"]
    if s["lr_schedule"] != "none":
        opt += ", %s schedule" % s["lr_schedule"]
    size = "%dx%d" % (s["resize"], s["resize"]) if s["resize"] else "native size"
    print("%s on %s (%d train / %d test images, %s): %d epoch%s, batch %d, %s"
          % (s["net"], s["dataset"], train_iter.num_examples, test_iter.num_examples, size,
             s["epochs"], "" if s["epochs"] == 1 else "s", s["batch_size"], opt))
    if resumed:
        from ..utils.checkpoint import describe
        print("resuming from %s %s %s" % (save_dir, "at" if resumed.get("batch") else "after",
                                          describe(resumed)))


def main(argv=None):
    """Entry point of ``gluon-cnns-train``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    if args.list:
        _print_models()
        return 0
    try:
        run(args)
    except NonFiniteLossError as e:  # the run diverged: not a usage mistake
        print("%s: error: %s" % (PROG, error_line(e)), file=sys.stderr)
        return 3
    except GluonCNNsError as e:  # includes UsageError
        print("%s: error: %s" % (PROG, error_line(e)), file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the disk filled up while saving a checkpoint
        print("%s: error: %s" % (PROG, error_line(e)), file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # Ctrl-C with --save-dir: a checkpoint was saved
        print("%s: interrupted; %s" % (PROG, e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        hint = "; continue with --resume" if args.save_dir else ""
        print("%s: interrupted%s" % (PROG, hint), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line of ``gluon-cnns-train``: its flags, and the settings they resolve to.

Every recipe flag defaults to None, meaning "from the net's recipe" (or, on
``--resume``, from the run's config.json); :func:`resolve_settings` merges them.
"""
import argparse
import os
import sys

from ..data.datasets import DATASETS
from ..errors import UsageError
from ..models.registry import Recipe
from .images_args import (IMAGE_FIXED_KEYS, IMAGE_KINDS, IMAGE_RUN_KEYS, add_image_flags,
                          check_image_flags)
from .common import (OneLineParser, non_empty, non_negative_float, positive_float, positive_int,
                     seed_value)

PROG = "gluon-cnns-train"
DEFAULT_NET = "lenet_bn"

# Settings that a recipe provides come from Recipe; these belong to the run alone.
# --resume takes both kinds from the saved config.json when a flag is left out.
_RUN_KEYS = ("limit_train", "limit_test", "seed", "data_dir", "checkpoint_every", "nan_policy") \
    + IMAGE_RUN_KEYS
# Settings that --resume must not change: the saved optimizer state, learning-rate
# schedule and data order were made with them.
_FIXED_ON_RESUME = ("recipe", "dataset", "batch_size", "lr", "optimizer", "momentum", "wd",
                    "resize", "lr_schedule", "lr_steps", "lr_factor", "lr_step_iters",
                    "warmup_iters", "warmup_lr", "limit_train", "limit_test") + IMAGE_FIXED_KEYS


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


def _schedule_text(r):
    """A recipe's schedule in words, e.g. "step x0.1 at 32000,48000 it, warm-up 400 it"."""
    text = r.lr_schedule
    if r.lr_schedule == "step":
        text = "step x%.3g at %s" % (r.lr_factor, ",".join(map(str, r.lr_step_iters))
                                     + " it" if r.lr_step_iters else
                                     ",".join(map(str, r.lr_steps)))
    if r.warmup_iters:
        text += ", warm-up %d it at %g" % (r.warmup_iters, r.warmup_lr)
    return text


def _recipe_table():
    """The --help epilog: every net with the recipes its flags default to."""
    from ..models.registry import list_models, model_spec
    rows = [("net", "recipe", "dataset", "epochs", "batch", "lr", "optimizer", "resize",
             "lr schedule")]
    for name in list_models():
        for i, (recipe_name, r) in enumerate(model_spec(name).recipes.items()):
            rows.append((name if i == 0 else "", recipe_name + (" *" if i == 0 and len(
                model_spec(name).recipes) > 1 else ""), r.dataset, str(r.epochs),
                str(r.batch_size), "%g" % r.lr, r.optimizer, str(r.resize or "-"),
                _schedule_text(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return ("Recipes (what each net trains with when a flag is left out; * the default of "
            "--recipe):\n  " + "\n  ".join(lines))


def build_parser():
    """The argument parser; every recipe flag defaults to None, meaning "from the recipe"."""
    parser = OneLineParser(
        prog=PROG, usage="%(prog)s [--net NAME] [options]  (--list for the nets)",
        description="Train a classic CNN of the gluon_cnns zoo with its tutorial recipe.",
        epilog=_recipe_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--net", "--model", dest="net", type=non_empty(),
        help="network name, see --list (default: %s); --model is the same flag, for "
             "horovodrun, whose own parser takes --net for its --network-interface"
             % DEFAULT_NET)
    add("--list", action="store_true", help="list the networks and exit")
    add("--ctx", choices=("cpu", "gpu"), help="device to train on (default: cpu)")
    add("--gpus", type=positive_int, metavar="N", help="train on N GPUs in data parallel")
    add("--cpus", type=positive_int, metavar="N",
        help="train on N CPU contexts in data parallel (tests the multi-device path; no speed-up)")
    add("--kvstore", choices=("device", "local", "dist_sync", "dist_async", "horovod"),
        help="how gradients are summed: device or local within this process (default device), "
             "dist_sync or dist_async across the workers of scripts/launch.py, horovod across "
             "the ranks of horovodrun; --batch-size stays the global batch (see "
             "docs/SCALING.md)")
    add("--dump-params", metavar="PATH", help=argparse.SUPPRESS)  # tests: each rank's weights
    _add_recipe_flags(add)
    _add_run_flags(add)
    add_image_flags(parser.add_argument_group(
        "your own images (--dataset folder or rec)").add_argument)
    return parser


def _add_recipe_flags(add):
    """The flags whose default is the net's recipe."""
    recipe = " (default: the net's recipe)"
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
    add("--lr-step-iters", type=epoch_list, metavar="I1,I2",
        help="iterations (updates) after which the step schedule multiplies the lr by "
             "--lr-factor, instead of --lr-steps" + recipe)
    add("--warmup-iters", type=positive_int, metavar="N",
        help="first train N iterations at --warmup-lr" + recipe)
    add("--warmup-lr", type=positive_float, metavar="LR", help="the warm-up's lr" + recipe)
    add("--recipe", type=non_empty(), metavar="NAME",
        help="which of the net's recipes gives the defaults, e.g. paper or gluoncv for the "
             "CIFAR ResNets (default: the first; see the table below)")
    add("--resize", type=positive_int, metavar="SIDE", help="resize images to SIDE x SIDE" + recipe)
    add("--dataset", choices=DATASETS + IMAGE_KINDS,
        help="dataset" + recipe + "; folder: your own images in --data-dir (train/<class>/*.jpg "
             "and val/<class>/...); rec: its RecordIO pack made by scripts/pack.py")



def _add_run_flags(add):
    """The flags of the run itself: data, seed, limits, the run folder, export."""
    add("--data-dir", type=non_empty(), metavar="DIR", help="folder with the dataset files")
    add("--no-hybridize", action="store_true", help="run imperatively (slower, easier to debug)")
    add("--dtype", choices=("fp32", "bf16"), default="fp32",
        help="bf16: mixed-precision training on a CPU with AVX512-BF16/AMX (weights stay "
             "fp32; see docs/BENCHMARKS.md for its speed-up)")
    add("--seed", type=seed_value, metavar="N",
        help="seed mxnet, numpy and random for a repeatable run (default: a random seed, "
             "saved in config.json so that --resume continues exactly)")
    add("--limit-train", type=positive_int, metavar="N", help="train on the first N examples only")
    add("--limit-test", type=positive_int, metavar="N", help="test on the first N examples only")
    add("--save-dir", type=non_empty(), metavar="DIR",
        help="write config, per-epoch checkpoints, best.params, log.jsonl and curves.png here")
    add("--resume", action="store_true", help="continue from the last checkpoint in --save-dir")
    add("--checkpoint-every", type=positive_int, metavar="K",
        help="also save a checkpoint every K batches, not only after each epoch (needs "
             "--save-dir)")
    add("--nan-policy", choices=("stop", "skip"),
        help="on a nan or infinite loss: stop (exit 3, keeping the last good checkpoint) or "
             "skip the batch, undoing its update (default: stop)")
    add("--export", type=non_empty(), metavar="PATH",
        help="after training, export the net to PATH-symbol.json + PATH-0000.params, "
             "PATH.onnx and PATH.json (for scripts/predict.py)")
    add("--quiet", action="store_true", help="no progress bar or extra information")


# ---------------------------------------------------------------- settings

def resolve_settings(args, saved=None):
    """Merge explicit flags, the saved config (when resuming) and the net's recipe.

    Precedence: a flag given on the command line, then ``saved``, then the recipe.
    """
    from ..models.registry import model_spec
    net = args.net or (saved or {}).get("net") or finetune_net(args) or DEFAULT_NET
    spec = model_spec(net)  # raises UnknownModelError with close matches
    recipe_name = args.recipe or (saved or {}).get("recipe") or next(iter(spec.recipes))
    recipe = spec.recipe_named(recipe_name)._asdict()
    settings = {"net": net, "recipe": recipe_name}
    for key in Recipe._fields + _RUN_KEYS:
        given = getattr(args, key)
        if given is not None:
            settings[key] = given
        elif saved is not None and key in saved:
            settings[key] = saved[key]
        else:
            settings[key] = recipe.get(key)
    if args.data_dir is not None:  # a --resume from another folder must find the same data
        settings["data_dir"] = os.path.abspath(os.path.expanduser(args.data_dir))
    # JSON has no tuples; keep one type so that comparisons with config.json work.
    settings["lr_steps"] = list(settings["lr_steps"] or ())
    settings["lr_step_iters"] = list(settings["lr_step_iters"] or ())

    if settings["optimizer"] == "adam":
        if args.momentum is not None:
            raise UsageError("--momentum applies to sgd and nag, not adam; drop --momentum")
        settings["momentum"] = None
    if settings["warmup_iters"] and not settings["warmup_lr"]:
        raise UsageError("--warmup-iters needs --warmup-lr, e.g. --warmup-lr 0.01")
    if settings["lr_schedule"] == "step" and not (settings["lr_steps"]
                                                   or settings["lr_step_iters"]):
        raise UsageError("--lr-schedule step needs --lr-steps, e.g. --lr-steps 100,150")
    if args.lr_steps is not None and settings["lr_schedule"] != "step":
        raise UsageError("--lr-steps only applies to --lr-schedule step; add --lr-schedule step")
    check_image_flags(settings, args)
    return settings


def finetune_net(args):
    """The net of ``--finetune``'s source, the net a fine-tuning run trains by default."""
    if not getattr(args, "finetune", None):
        return None
    from ..artifacts.source import source_net_name
    return source_net_name(args.finetune)


def check_resume_changes(args, saved, save_dir):
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
            used = saved.get(key)
            raise UsageError("--%s cannot change on --resume (the checkpoint in %s used %s); "
                             "start a new --save-dir instead"
                             % (key.replace("_", "-"), save_dir,
                                "none" if used is None else used))
    if args.seed is not None and args.seed != saved.get("seed"):
        raise UsageError("--seed cannot change on --resume (the run's data order and dropout "
                         "masks follow seed %s); drop --seed" % saved.get("seed"))
    if args.data_dir is not None and os.path.abspath(os.path.expanduser(args.data_dir)) \
            != saved.get("data_dir"):
        print("%s: warning: --data-dir %s, the run read %s: the data must be the same files "
              "for an exact continuation" % (PROG, args.data_dir, saved.get("data_dir")),
              file=sys.stderr)
    if (args.epochs is not None and saved.get("lr_schedule") == "cosine"
            and args.epochs != saved.get("epochs")):
        raise UsageError("--epochs cannot change on --resume with a cosine schedule (it decays "
                         "over %s epochs); start a new --save-dir" % saved.get("epochs"))



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
(see gluon_cnns.training.rundir).

Exit codes: 0 done; 2 a user mistake, or a damaged checkpoint with no usable
earlier one; 3 the loss or gradients became nan or infinite (``--nan-policy
stop``; the last good checkpoint is kept); 130 interrupted (Ctrl-C), after
saving a checkpoint when there is a ``--save-dir``.
"""
import argparse
import random
import sys

from ..data.datasets import DATASETS, image_shape
from ..errors import GluonCNNsError, NonFiniteLossError, UsageError, error_line
from ..models.registry import Recipe
from .common import (OneLineParser, non_negative_float, parse, positive_float, positive_int,
                     report)

PROG = "gluon-cnns-train"
DEFAULT_NET = "lenet_bn"

# Settings that a recipe provides come from Recipe; these belong to the run alone.
# --resume takes both kinds from the saved config.json when a flag is left out.
_RUN_KEYS = ("limit_train", "limit_test", "seed", "data_dir", "checkpoint_every", "nan_policy")
# Settings that --resume must not change: the saved optimizer state, learning-rate
# schedule and data order were made with them.
_FIXED_ON_RESUME = ("dataset", "batch_size", "lr", "optimizer", "momentum", "wd", "resize",
                    "lr_schedule", "lr_steps", "lr_factor", "limit_train", "limit_test")


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
    from ..models.registry import list_models, model_spec
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
    from ..models.registry import model_spec
    net = args.net or (saved or {}).get("net") or DEFAULT_NET
    recipe = model_spec(net).recipe._asdict()  # raises UnknownModelError with close matches
    settings = {"net": net}
    for key in Recipe._fields + _RUN_KEYS:
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


# ---------------------------------------------------------------- prepare

def _resume_point(args):
    """``(run_dir, saved config, checkpoint entry)``; the last two None for a fresh run."""
    from ..training.rundir import RunDir
    if args.checkpoint_every is not None and not args.save_dir:
        raise UsageError("--checkpoint-every needs --save-dir DIR to write the checkpoints to")
    if args.resume and not args.save_dir:
        raise UsageError("--resume needs --save-dir DIR, the folder of the run to continue")
    run_dir = RunDir(args.save_dir) if args.save_dir else None
    if not args.resume:
        return run_dir, None, None
    saved, ckpt = run_dir.load_checkpoint(warn=lambda line: print("%s: %s" % (PROG, line),
                                                                   file=sys.stderr))
    _check_resume_changes(args, saved, args.save_dir)
    return run_dir, saved, ckpt


def _settings(args, saved, ckpt):
    """The run's settings; a seed is drawn when none was given (config.json keeps it)."""
    settings = resolve_settings(args, saved)
    if settings["seed"] is None:
        settings["seed"] = random.SystemRandom().randrange(2 ** 31)
    done = ckpt["epoch"] if ckpt else 0
    if done >= settings["epochs"]:
        raise UsageError("the checkpoint in %s has already done %d epochs of %d; pass a larger "
                         "--epochs to train further" % (args.save_dir, done, settings["epochs"]))
    return settings


def _devices(args, settings, saved):
    """The contexts to train on, after checking what they allow (bf16, nan skip)."""
    from ..training.devices import training_contexts
    ctxs = training_contexts(args.ctx, args.gpus, args.cpus)
    if args.dtype == "bf16":
        from ..training.amp import check_bf16_context, enable_bf16_training
        check_bf16_context(ctxs)
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
    return ctxs


def _check_export_folder(path):
    """Refuse an --export PATH whose folder cannot be created or written (before training)."""
    import os
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError("cannot create the --export folder %s: %s; choose a writable folder"
                         % (folder, e.strerror or e))
    if not os.access(folder, os.W_OK):
        raise UsageError("cannot write to the --export folder %s; choose a writable folder"
                         % folder)


def prepare(args):
    """Everything checked and set up before the data is read: the run as a namespace."""
    from ..models import get_model
    from ..training.distributed import setup as setup_cluster
    from ..training.fit import Run
    run_dir, saved, ckpt = _resume_point(args)
    settings = _settings(args, saved, ckpt)
    ctxs = _devices(args, settings, saved)
    if args.export:
        _check_export_folder(args.export)
    # Catch a too-small input now, not as a shape error deep inside the first batch.
    net = get_model(settings["net"], classes=10)
    sample_shape = (1,) + image_shape(settings["dataset"], settings["resize"])
    net.check_input_shape(sample_shape)
    # Joins a distributed job (--kvstore dist_*): blocks until every worker is there.
    cluster = setup_cluster(args, settings["batch_size"])
    if cluster.distributed and settings["checkpoint_every"]:
        raise UsageError("--checkpoint-every is not supported with --kvstore %s: a distributed "
                         "run saves after each epoch; drop --checkpoint-every" % args.kvstore)
    writer = run_dir if cluster.is_chief else None  # only rank 0 writes
    if writer is not None:
        writer.create(args.resume)
        writer.lock()
        try:
            writer.write_config(dict(settings, contexts=[str(c) for c in ctxs],
                                     hybridize=not args.no_hybridize, dtype=args.dtype))
        except BaseException:
            writer.unlock()
            raise
    return Run(settings, ctxs, net, sample_shape, cluster, source=run_dir, writer=writer,
               ckpt=ckpt, hybridize=not args.no_hybridize, progress=not args.quiet,
               resume_command="%s --save-dir %s --resume" % (PROG, args.save_dir))


def _finish(run, args, history):
    """After training: the final accuracy, the export, and where the run was saved."""
    run.cluster.dump_params(run.net, args.dump_params)
    print("final test acc %.3f" % history[-1]["test_acc"])
    if args.export:
        from ..inference.export import export_trained
        written = export_trained(run.net, run.settings, args.export)
        print("exported to %s" % ", ".join(sorted(written.values())))
    saver = run.saver
    if saver:
        from ..training.rundir import CURVES, LOG
        print("saved to %s: best.params (test acc %.3f, epoch %d), %s, %s, %s"
              % (args.save_dir, saver.best["test_acc"], saver.best["epoch"],
                 saver.current["params"], LOG, CURVES))


def run(args):
    """Train as ``args`` says; returns the history. Raises GluonCNNsError on mistakes."""
    from ..training.fit import fit
    prepared = prepare(args)
    show = None
    if not args.quiet and prepared.cluster.is_chief:
        def show(train_iter, test_iter):
            _print_summary(prepared.settings, train_iter, test_iter, prepared.ckpt, args.save_dir)
    try:
        history = fit(prepared, on_ready=show)
        _finish(prepared, args, history)
    except NonFiniteLossError as e:
        raise NonFiniteLossError(_diverged_message(e, prepared.saver), e.epoch, e.batch, e.lr,
                                 e.what) from None
    finally:
        if prepared.writer is not None:
            prepared.writer.unlock()
    return history


def _diverged_message(error, saver):
    """One line for a loss that became nan or infinite: where, and what to do."""
    from ..training.rundir import describe
    if error.batch is None:
        return error_line(error)
    text = "%s at epoch %d batch %d (lr %g)" % (error.what, error.epoch, error.batch, error.lr)
    if saver is None or saver.current is None:
        return text + "; lower --lr, or skip such batches with --nan-policy skip"
    return (text + "; the last good checkpoint, at %s, is kept in %s: start again with a lower "
            "--lr, or continue it with --resume --nan-policy skip to skip such batches"
            % (describe(saver.current), saver.run_dir))


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
        from ..training.rundir import describe
        print("resuming from %s %s %s" % (save_dir, "at" if resumed.get("batch") else "after",
                                          describe(resumed)))


def _print_models():
    from ..models.registry import list_models, model_spec
    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print("%s  %s" % (name.ljust(width), model_spec(name).description))


def main(argv=None):
    """Entry point of ``gluon-cnns-train``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    if args.list:
        _print_models()
        return 0
    from ..training.saver import TrainingInterrupted
    try:
        run(args)
    except NonFiniteLossError as e:  # the run diverged: not a usage mistake
        return report(PROG, e, 3)
    except (GluonCNNsError, OSError) as e:  # OSError: e.g. the disk filled up while saving
        return report(PROG, e)
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

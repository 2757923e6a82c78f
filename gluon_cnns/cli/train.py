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
(see gluon_cnns.artifacts.rundir).

Exit codes: 0 done; 2 a user mistake, or a damaged checkpoint with no usable
earlier one; 3 the loss or gradients became nan or infinite (``--nan-policy
stop``; the last good checkpoint is kept); 130 interrupted (Ctrl-C), after
saving a checkpoint when there is a ``--save-dir``.
"""
import random
import sys

from ..artifacts.run_files import TENSORBOARD
from ..cpu import machine_description
from ..data.datasets import image_shape
from ..data.images import IMAGE_DATASETS as IMAGE_KINDS
from ..errors import GluonCNNsError, NonFiniteLossError, UsageError, error_line
from ..training.prepare import finetune_net, resolve_data
from .common import configure_threads, parse, report
from .train_args import (DEFAULT_NET, PROG, build_parser, check_resume_changes,  # noqa: F401
                         resolve_settings)

# ---------------------------------------------------------------- prepare

def _resume_point(args):
    """``(run_dir, saved config, checkpoint entry)``; the last two None for a fresh run."""
    from ..artifacts.rundir import RunDir
    if args.checkpoint_every is not None and not args.save_dir:
        raise UsageError("--checkpoint-every needs --save-dir DIR to write the checkpoints to")
    if args.resume and not args.save_dir:
        raise UsageError("--resume needs --save-dir DIR, the folder of the run to continue")
    run_dir = RunDir(args.save_dir) if args.save_dir else None
    if not args.resume:
        return run_dir, None, None
    saved, ckpt = run_dir.load_checkpoint(warn=_warn)
    check_resume_changes(args, saved, args.save_dir)
    return run_dir, saved, ckpt


def _net_name(args):
    """The net this run trains: --net, a resumed run's own (the same threads, so the same
    numbers), or the default."""
    from ..artifacts.rundir import RunDir
    if args.net is None and args.resume and args.save_dir:
        try:
            return RunDir(args.save_dir).read_config()["net"]
        except GluonCNNsError:
            pass  # --resume reports it, in its own words
    return args.net or finetune_net(args.finetune) or DEFAULT_NET


def _warn(line):
    print("%s: %s" % (PROG, line), file=sys.stderr)


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
    """Refuse an --export PATH that cannot be written, before training rather than after:
    its folder is created and a file as long as the export's longest name is made there."""
    import errno
    import os
    from ..artifacts.export_owner import claim_export_folder
    from ..ownership import check_stream_target
    check_stream_target(path, "--export")
    folder = os.path.dirname(os.path.abspath(path))
    probe = os.path.join(folder, os.path.basename(path) + "-symbol.json.probe")
    try:
        if len(os.fsencode(os.path.basename(probe))) > 255:  # NAME_MAX: refused before the
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))  # folder check
        claim_export_folder(path, "--export")
        if not os.path.exists(probe):
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.remove(probe)
    except OSError as e:
        raise UsageError("cannot write the --export %s: %s; choose another --export"
                         % (path, e.strerror or e))


def _check_batch_fits(settings, shape):
    """Refuse a batch whose input alone is larger than this machine's memory."""
    import os
    need = 4 * settings["batch_size"] * shape[1] * shape[2] * shape[3]  # float32
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise UsageError("a batch of %d images of %dx%d needs %.1f GiB for its input alone, more "
                         "than this machine's %.1f GiB; lower --resize or --batch-size"
                         % (settings["batch_size"], shape[2], shape[3], need / 2 ** 30,
                            have / 2 ** 30))


def _start_from(settings, ckpt):
    """The --finetune source: ``(net, meta, record)``, or Nones (none, or resuming)."""
    if not settings.get("finetune") or ckpt:
        return None, None, None
    from ..artifacts.source import read_source
    net, meta, record = read_source(settings["finetune"])
    if meta["net"] != settings["net"]:
        raise UsageError("--finetune %s holds a %s, not a %s; drop --net or pass --net %s"
                         % (settings["finetune"], meta["net"], settings["net"], meta["net"]))
    return net, meta, record


def _input(settings, saved, ckpt):
    """The net, its sample input shape, the scanned images and the fine-tuning source."""
    from ..models import get_model
    source, meta, record = _start_from(settings, ckpt)
    images = resolve_data(settings, saved, meta, _warn)
    net = get_model(settings["net"], classes=settings["classes"])
    side = settings["resize"] or image_shape(settings["dataset"])[1]
    sample_shape = (1, settings["channels"], side, side)
    _check_batch_fits(settings, sample_shape)
    # Catch a too-small input now, not as a shape error deep inside the first batch.
    net.check_input_shape(sample_shape)
    if settings["last_gamma"]:
        from ..training.tricks import check_last_gamma
        check_last_gamma(net, settings["net"])
    return net, sample_shape, images, source, record


def prepare(args):
    """Everything checked and set up before the data is read: the run as a namespace."""
    from ..training.distributed import setup as setup_cluster
    from ..training.fit import Run
    run_dir, saved, ckpt = _resume_point(args)
    settings = _settings(args, saved, ckpt)
    ctxs = _devices(args, settings, saved)
    if args.export:
        _check_export_folder(args.export)
    net, sample_shape, images, source, record = _input(settings, saved, ckpt)
    # Joins a distributed job (--kvstore dist_*): blocks until every worker is there.
    cluster = setup_cluster(args.kvstore, settings["batch_size"], save_dir=args.save_dir,
                            gpus=args.gpus, cpus=args.cpus)
    ctxs = cluster.devices(ctxs)  # e.g. a Horovod rank's own GPU
    if cluster.distributed and settings["checkpoint_every"]:
        raise UsageError("--checkpoint-every is not supported with --kvstore %s: a distributed "
                         "run saves after each epoch; drop --checkpoint-every" % args.kvstore)
    writer = run_dir if cluster.is_chief else None  # only rank 0 writes
    if writer is not None:
        writer.create(args.resume)
    # config.json is written once the checkpoint is restored: a failed --resume leaves it.
    config = dict(settings, contexts=[str(c) for c in ctxs], hybridize=not args.no_hybridize,
                  dtype=args.dtype, machine=machine_description(),
                  finetune_source=record or (saved or {}).get("finetune_source"))
    return Run(settings, ctxs, net, sample_shape, cluster, source=run_dir, writer=writer,
               ckpt=ckpt, hybridize=not args.no_hybridize, progress=not args.quiet,
               tensorboard=_board_dir(args) if cluster.is_chief else None,
               tensorboard_every=args.tensorboard_every,
               resume_command="%s --save-dir %s --resume" % (PROG, args.save_dir),
               warn=_warn, config=config, images=images, start_from=source)


def _board_dir(args):
    """Where TensorBoard's events go: --tensorboard, else SAVE_DIR/tensorboard, else nowhere."""
    import os
    if args.no_tensorboard:
        if args.tensorboard:
            raise UsageError("--tensorboard and --no-tensorboard contradict each other; "
                             "drop one")
        return None
    return args.tensorboard or (os.path.join(args.save_dir, TENSORBOARD) if args.save_dir
                                else None)


def _finish(run, args, history):
    """After training: the final accuracy, the export, and where the run was saved."""
    run.cluster.dump_params(run.net, args.dump_params)
    print("final test acc %.3f" % history[-1]["test_acc"])
    if args.export:
        _export(run, args.export)
    saver = run.saver
    if saver:
        from ..artifacts.rundir import CURVES, LOG
        print("saved to %s: best.params (test acc %.3f, epoch %d), %s, %s, %s"
              % (args.save_dir, saver.best["test_acc"], saver.best["epoch"],
                 saver.current["params"], LOG, CURVES))


def _export(run, path):
    """Export the trained net; if any of its writes fails, keep the weights and say where."""
    from mxnet.base import MXNetError
    from ..inference.export import export_trained
    try:
        written = export_trained(run.net, run.settings, path)
    except (GluonCNNsError, OSError, MXNetError) as err:  # params, symbol, ONNX or sidecar
        raise UsageError("the export to %s failed (%s); %s"
                         % (path, error_line(err), _keep_weights(run, path))) from None
    print("exported to %s" % ", ".join(sorted(written.values())))


def _keep_weights(run, path):
    """Save the trained net as a run folder that scripts/export.py takes (config.json and
    best.params), in the working folder or else the temporary one; says where, in words."""
    import os
    import tempfile
    from ..artifacts.rundir import RunDir
    problems = []
    for folder in (os.getcwd(), tempfile.gettempdir()):
        try:
            # A new folder of our own (mkdtemp: created exclusively, 0700): a guessable name
            # in a shared folder could be a link to someone else's folder.
            made = tempfile.mkdtemp(dir=folder, prefix="%s-trained-" % run.settings["net"])
            kept = RunDir(made)
            kept.create(resume=False)
            kept.write_config(run.config or run.settings)
            kept.save_best(run.net)
            kept.unlock()
        except Exception as err:  # noqa: BLE001  MXNetError, OSError, CheckpointError: next
            problems.append(error_line(err))
            continue
        return ("the trained weights are kept in %s: export them again with scripts/export.py "
                "--save-dir %s --out %s" % (kept, kept, path))
    return ("the trained weights could not be kept either (%s); train again with --save-dir"
            % problems[-1])


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
    from ..artifacts.rundir import describe
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
    data = s["dataset"]
    if s.get("class_names") and s["dataset"] in IMAGE_KINDS:
        data = "%s %s, %d classes" % (s["dataset"], s["data_dir"], s["classes"])
    print("%s on %s (%d train / %d test images, %s): %d epoch%s, batch %d, %s"
          % (s["net"], data, train_iter.num_examples, test_iter.num_examples, size,
             s["epochs"], "" if s["epochs"] == 1 else "s", s["batch_size"], opt))
    if s.get("finetune") and not resumed:
        print("fine-tuning from %s%s" % (s["finetune"], ", features frozen"
                                         if s.get("freeze_features") else ""))
    if resumed:
        from ..artifacts.rundir import describe
        print("resuming from %s %s %s" % (save_dir, "at" if resumed.get("batch") else "after",
                                          describe(resumed)))


def _print_models():
    from ..models.registry import list_models, model_spec
    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print("%s  %s" % (name.ljust(width), model_spec(name).description))


def _exit_if_horovod_lost_a_peer(error):
    """A Horovod rank whose job lost a peer: one line, and out at once (exit 1), before
    MXNet's exit handler reports the same shutdown again with its own traceback."""
    if "horovod" not in sys.modules:
        return
    from ..training.horovod import lost_peer_line
    line = lost_peer_line(error)
    if line:
        import os
        print("%s: %s" % (PROG, line), file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)


def main(argv=None):
    """Entry point of ``gluon-cnns-train``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    failed = configure_threads(PROG, _net_name(args), args.cpus)  # before MXNet is imported
    if failed:
        return failed
    if args.list:
        _print_models()
        return 0
    from ..training.saver import TrainingInterrupted
    try:
        run(args)
    except NonFiniteLossError as e:  # the run diverged: not a usage mistake
        from ..training.distributed import exit_failed_worker  # a dist worker: no exit barrier
        return exit_failed_worker(report(PROG, e, 3))
    except (GluonCNNsError, OSError) as e:  # OSError: e.g. the disk filled up while saving
        from ..training.distributed import exit_failed_worker
        return exit_failed_worker(report(PROG, e))
    except TrainingInterrupted as e:  # Ctrl-C or SIGTERM with --save-dir: a checkpoint was saved
        print("%s: interrupted; %s" % (PROG, e), file=sys.stderr)
        return 128 + int(e.signum)  # 130 for Ctrl-C, 143 for SIGTERM
    except KeyboardInterrupt:
        hint = "; continue with --resume" if args.save_dir else ""
        print("%s: interrupted%s" % (PROG, hint), file=sys.stderr)
        return 130
    except Exception as e:  # a bug: its traceback; a failed dist worker leaves at once
        _exit_if_horovod_lost_a_peer(e)
        from ..training.distributed import exit_failed_worker
        exit_failed_worker(1, show_traceback=True)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``scripts/reproduce.py``: train nets with their tutorial recipes and publish the results.

Each net is trained by ``scripts/train.py`` in a subprocess (the package's own
training path, exactly the command printed in the table) into ``RUNS/NET`` with
``--save-dir`` and ``--checkpoint-every``. Every figure of a row comes from that
run folder: the recipe and machine from config.json; per-epoch loss, accuracy,
seconds, threads, peak memory and whether the epoch ran in a resumed process
from log.jsonl; the plot from curves.png. A folder that already holds a
finished run is read, not trained again; an unfinished one is continued with
``--resume`` (so a long recipe spans sessions: run it in the background, stop
it any time, run the same command again). A folder holding another run (another net,
seed, epoch count, subset or recipe setting) or anything else is refused, never deleted.
Results accumulate in ``docs/results.json`` (seed 0 under NET, other seeds under
``NET@seedS``); ``docs/RESULTS.md`` is rewritten from it after every net.

    python scripts/reproduce.py --net lenet,lenet_bn
    python scripts/reproduce.py --net googlenet --runs-dir ~/runs     # continue or read it
    python scripts/reproduce.py --net googlenet --seed 1 --runs-dir ~/runs-seed1   # a seed
    python scripts/reproduce.py --net googlenet --epochs 1 --limit-train 6000   # reduced run
"""
import os
import subprocess
import sys
import tempfile
import time

from gluon_cnns.cli.common import (OneLineParser, check_folder, check_new_folder, parse,
                                   positive_int, seed_value)
from gluon_cnns.errors import GluonCNNsError, error_line
from tools.results_table import (build_row, check_log, copy_plot, plot_name, render_markdown,
                                 result_key, results_problem)

PROG = "reproduce"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_OUT = "train.out"  # train.py's output, kept in its run folder


def build_parser():
    """The reproduction tool's command line."""
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--net", required=True, help="comma-separated registry names")
    p.add_argument("--epochs", type=positive_int,
                   help="fewer epochs than the recipe: a reduced run")
    p.add_argument("--limit-train", type=positive_int, help="train on a subset: a reduced run")
    p.add_argument("--limit-test", type=positive_int, help="test on a subset: a reduced run")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of every run (default 0)")
    p.add_argument("--recipe", metavar="NAME",
                   help="train with the net's recipe NAME instead of the book's (the first), "
                        "e.g. fast or tricks (train.py --help lists them); its runs go in "
                        "RUNS/NET-NAME and its rows in the \"Beyond the book\" table"),
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--data-dir", help="dataset folder, passed to train.py")
    p.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "reproduce"),
                   help="where the runs' --save-dir folders go (default runs/reproduce)")
    p.add_argument("--docs-dir", default=os.path.join(ROOT, "docs"),
                   help="where RESULTS.md, results.json and the plots go (default docs/). A "
                        "reduced run (--epochs, --limit-train or --limit-test) never replaces "
                        "a full run's row: when the folder holds one for the net and seed, the "
                        "tool refuses before training; give the reduced run its own --docs-dir")
    p.add_argument("--checkpoint-every", type=positive_int, default=100, metavar="K",
                   help="checkpoint every K batches, so a cut-off run loses little (default 100)")
    p.add_argument("--read-only", action="store_true",
                   help="only read the run folders as they are (an unfinished run gives a row "
                        "marked in progress); train nothing")
    return p


def _usage_error(message):
    """Print a one-line usage error; the exit code 2."""
    print("%s: error: %s" % (PROG, message), file=sys.stderr)
    return 2


def train_command(net, args):
    """The exact ``scripts/train.py`` command line of one run (recipe defaults + reductions)."""
    cmd = ["python", "scripts/train.py", "--net", net, "--seed", str(args.seed), "--quiet",
           "--ctx", args.ctx]
    for flag, value in (("--recipe", args.recipe), ("--epochs", args.epochs),
                        ("--limit-train", args.limit_train), ("--limit-test", args.limit_test),
                        ("--data-dir", args.data_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def _train(cmd, save_dir):
    """Run the train.py command ``cmd`` into ``save_dir``; returns (its output, exit code).
    The output is appended to save_dir/train.out under a line naming the command, so the
    output of every session of a long run is kept."""
    out_path = os.path.join(save_dir, TRAIN_OUT)
    with open(out_path, "a") as out:
        out.write("$ %s   (%s)\n" % (" ".join(cmd), time.strftime("%Y-%m-%d %H:%M")))
        out.flush()
        start = out.tell()
        code = subprocess.run([sys.executable] + cmd[1:], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    with open(out_path, errors="replace") as f:
        f.seek(start)
        return f.read(), code


def _reductions(net, config):
    """How a run was cut down from the net's recipe, e.g. "1 of 5 epochs, 6000 train images"."""
    from gluon_cnns.models import model_spec
    recipe = model_spec(net).recipe_named(config.get("recipe"))
    reduced = []
    if config["epochs"] < recipe.epochs:
        reduced.append("%d of %d epochs" % (config["epochs"], recipe.epochs))
    if config.get("limit_train"):
        reduced.append("%d train images" % config["limit_train"])
    if config.get("limit_test"):
        reduced.append("%d test images" % config["limit_test"])
    return ", ".join(reduced)


def _epoch_records(net, run_dir, warn):
    """The finished epochs' records of ``run_dir``: its log, or, when the log is missing,
    empty or damaged, the records its checkpoint index keeps (with a warning)."""
    from gluon_cnns.artifacts.rundir import CHECKPOINT, LOG
    log = run_dir.read_log()
    if not log:
        records = run_dir.index_records()
        if records:
            warn("warning: %s is missing, empty or damaged; the figures come from %s's "
                 "records" % (run_dir.file(LOG), CHECKPOINT))
            log = records
    if log is None and os.path.lexists(run_dir.file(LOG)):
        raise RuntimeError("%s: %s is damaged and the checkpoint index keeps no records to "
                           "replace it; train this net again in another --runs-dir"
                           % (net, run_dir.file(LOG)))
    log = log or []
    check_log(log, run_dir.file(LOG))
    return log


def _not_regular(path):
    """What ``path`` is if it exists but is not a regular file ("a named pipe", "a symbolic
    link"), else None."""
    import stat
    from gluon_cnns.io import file_kind
    if not os.path.lexists(path):
        return None
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _refuse_irregular(path):
    """UsageError if the docs file ``path`` exists but is not a regular file."""
    from gluon_cnns.errors import UsageError
    kind = _not_regular(path)
    if kind:
        raise UsageError("%s is %s, not a file; move it away" % (path, kind))


def _has_run(net, save_dir):
    """Whether ``save_dir`` holds a run (its config.json). A folder that holds something
    else, or links to another run's files, is refused: it is never deleted or written."""
    from gluon_cnns.artifacts.rundir import CHECKPOINT, CONFIG, CURVES, LOCK, LOG
    if os.path.lexists(save_dir) and not os.path.isdir(save_dir):
        raise RuntimeError("%s: %s is not a folder; move it away or give another --runs-dir"
                           % (net, save_dir))
    if not os.path.isdir(save_dir):
        return False
    for name in (CONFIG, LOG, CHECKPOINT, CURVES, TRAIN_OUT):  # what a row is made from
        path = os.path.join(save_dir, name)
        kind = _not_regular(path)
        if kind:
            raise RuntimeError("%s: %s is %s, not a file of the run; move it away"
                               % (net, path, kind))
    if os.path.lexists(os.path.join(save_dir, CONFIG)):
        return True
    # What train.py itself leaves in a run folder before its config.json exists.
    foreign = sorted(set(os.listdir(save_dir)) - {TRAIN_OUT, LOCK})
    if foreign:
        raise RuntimeError("%s: %s holds %s but no training run (no config.json); move it "
                           "away or give another --runs-dir" % (net, save_dir, foreign[0]))
    return False


_ABSENT = {"finetune_source": None}  # what a key missing from config.json means


def _same(value, wanted):
    """A config.json value against the wanted setting (JSON lists are tuples in a Recipe)."""
    return (list(value) if isinstance(value, (list, tuple)) else value) == (
        list(wanted) if isinstance(wanted, (list, tuple)) else wanted)


def _check_same_run(net, save_dir, args):
    """The run's config.json if its run is the one asked for; else RuntimeError (another
    net, seed, epoch count, subset, data folder or recipe setting would be published under
    the wrong command)."""
    from gluon_cnns.models import Recipe, model_spec
    from gluon_cnns.artifacts.rundir import RunDir
    config = RunDir(save_dir).read_config()
    spec = model_spec(net)
    recipe = spec.recipe_named(args.recipe)
    wanted = dict((key, getattr(recipe, key)) for key in Recipe._fields)
    wanted.update(net=net, seed=args.seed, recipe=args.recipe or spec.recipe_name,
                  limit_train=args.limit_train,
                  limit_test=args.limit_test, epochs=args.epochs or recipe.epochs,
                  dtype="fp32", hybridize=True, finetune_source=None)
    for key, value in sorted(wanted.items()):
        # finetune_source is only written by fine-tuning runs; any other key must be there.
        if not _same(config.get(key, _ABSENT.get(key, "missing")), value):
            raise RuntimeError("%s: %s holds a run with %s %s, not %s; give another "
                               "--runs-dir or move that folder away" % (
                                   net, save_dir, key, config.get(key), value))
    used = config.get("data_dir")
    if (used is None) != (args.data_dir is None) or (
            used and os.path.realpath(used) != os.path.realpath(args.data_dir)):
        raise RuntimeError("%s: %s holds a run on data from %s, not %s; give another "
                           "--runs-dir" % (net, save_dir, used or "the default folder",
                                           args.data_dir or "the default folder"))
    return config


def _own(lock_path, what, wait=0):
    """Take the lock at ``lock_path`` (waiting up to ``wait`` seconds); returns its fd.
    RuntimeError names the process that holds it."""
    from gluon_cnns.io import LockHeld, NotRegularFile, take_lock
    deadline = time.time() + wait
    while True:
        try:
            return take_lock(lock_path)
        except NotRegularFile as e:
            raise RuntimeError("cannot lock %s (%s); remove it" % (lock_path, error_line(e)))
        except LockHeld as held:
            if time.time() >= deadline:
                raise RuntimeError("%s is in use by another reproduce.py (pid %s); wait for it "
                                   "to end" % (what, held.holder)) from None
        time.sleep(0.2)


def run_one(net, args, warn):
    """Train, continue or read ``net``'s run folder; return its result row (or raise
    RuntimeError with the log tail)."""
    from gluon_cnns.io import release_lock
    save_dir = run_folder(net, args)
    if args.read_only:  # reads only: a run in progress can be read while it trains
        return _read_or_train(net, save_dir, args, warn)
    os.makedirs(args.runs_dir, exist_ok=True)
    lock = os.path.join(args.runs_dir, ".%s.reproduce.lock" % os.path.basename(save_dir))
    fd = _own(lock, save_dir)
    try:
        return _read_or_train(net, save_dir, args, warn)
    finally:
        release_lock(lock, fd)


def _read_or_train(net, save_dir, args, warn):
    """run_one's work, once the folder is ours (or only read): the row of a finished run
    (or, with --read-only, of the run as it stands), else of the run trained to its end."""
    from gluon_cnns.artifacts.rundir import CHECKPOINT, RunDir
    if _has_run(net, save_dir):
        config = _check_same_run(net, save_dir, args)
        log = _epoch_records(net, RunDir(save_dir), warn)
        if args.read_only or max([r["epoch"] for r in log], default=0) >= config["epochs"]:
            return _row(net, save_dir, config, log, args)
        # Stopped before its first checkpoint: config.json only, so a fresh start.
        resume = os.path.lexists(RunDir(save_dir).file(CHECKPOINT))
    elif args.read_only:
        raise RuntimeError("%s has no run in %s" % (net, save_dir))
    else:
        resume = False
    _train_or_resume(net, save_dir, args, resume)
    run_dir = RunDir(save_dir)
    return _row(net, save_dir, run_dir.read_config(), _epoch_records(net, run_dir, warn), args)


def _train_or_resume(net, save_dir, args, resume):
    """Run train.py into ``save_dir``: a fresh run of the recipe, or ``--resume``."""
    from gluon_cnns.ownership import mark
    mark(save_dir, "run")  # _has_run vetted it; train.out goes in before train.py runs
    run = (["--save-dir", save_dir, "--resume", "--quiet"] if resume else
           train_command(net, args)[2:] + ["--save-dir", save_dir, "--checkpoint-every",
                                           str(args.checkpoint_every)])
    cmd = ["python", "scripts/train.py"] + run
    print("$ " + " ".join(cmd), flush=True)
    output, code = _train(cmd, save_dir)
    print(output, end="", flush=True)
    if code != 0:
        raise RuntimeError("%s exited %d: %s" % (net, code,
                                                 " ".join(output.strip().splitlines()[-1:])))


def _row(net, save_dir, config, log, args):
    """The result row of the run in ``save_dir`` from its config and epoch records."""
    if not log:
        raise RuntimeError("%s: the run in %s has no finished epoch yet" % (net, save_dir))
    return build_row(net, config, log, " ".join(train_command(net, args)),
                     _reductions(net, config))


def run_folder(net, args):
    """A run's --save-dir: RUNS/NET for the book's recipe, RUNS/NET-RECIPE for another."""
    return os.path.join(args.runs_dir, "%s-%s" % (net, args.recipe) if args.recipe else net)


def _check_docs_dir(docs_dir):
    """UsageError unless ``docs_dir`` (and its results/ folder) can be written."""
    from gluon_cnns.errors import UsageError
    check_new_folder(docs_dir, "--docs-dir", "give a writable folder")
    try:
        os.makedirs(os.path.join(docs_dir, "results"), exist_ok=True)
        # A new file of our own (O_EXCL): a fixed name could be a link to someone's file.
        fd, probe = tempfile.mkstemp(dir=docs_dir, prefix=".reproduce-write-test.")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UsageError("--docs-dir %s cannot hold the results (%s); give a writable folder"
                         % (docs_dir, e.strerror or e)) from None


def _read_docs(docs_dir):
    """(results.json's rows, RESULTS_NOTES.md's text) of ``docs_dir``, checked; a missing
    file is empty. UsageError for anything that would stop the tool after training."""
    from gluon_cnns.errors import UsageError
    from gluon_cnns.io import open_regular, read_json
    for name in ("results.json", "RESULTS.md", "RESULTS_NOTES.md"):
        _refuse_irregular(os.path.join(docs_dir, name))
    results, notes = {}, ""
    path = os.path.join(docs_dir, "results.json")
    try:
        if os.path.lexists(path):
            results = read_json(path)
        notes_path = os.path.join(docs_dir, "RESULTS_NOTES.md")
        if os.path.lexists(notes_path):
            with open_regular(notes_path, text=True) as f:
                notes = f.read()
    except (OSError, ValueError) as e:
        raise UsageError("cannot read %s (%s); fix or remove it" % (docs_dir, error_line(e)))
    problem = results_problem(results)
    if problem:
        raise UsageError("%s: %s; fix it or remove the file" % (path, problem))
    return results, notes


def publish(row, key, save_dir, docs_dir):
    """Merge ``row`` into docs_dir's results.json (re-read under a lock, so a second
    reproduce.py on the same docs loses nothing), then write its plot and RESULTS.md."""
    from gluon_cnns.io import release_lock, write_json, write_text
    from gluon_cnns.artifacts.rundir import CURVES, RunDir
    lock = os.path.join(docs_dir, ".results.lock")
    fd = _own(lock, docs_dir, wait=600)
    try:
        results, notes = _read_docs(docs_dir)
        _refuse_replacing_full(results, key, row["reduced"], docs_dir, RuntimeError)
        results[key] = row
        text = render_markdown(results, notes)
        copy_plot(RunDir(save_dir).file(CURVES), docs_dir, row)
        write_json(os.path.join(docs_dir, "results.json"), results)
        write_text(os.path.join(docs_dir, "RESULTS.md"), text)
    finally:
        release_lock(lock, fd)


def _nets(text, recipe=None):
    """The --net list (each having the recipe called ``recipe``, if given), or UsageError."""
    from gluon_cnns.errors import UsageError
    from gluon_cnns.models import list_models, model_spec
    nets = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not nets:
        raise UsageError("--net names no net; e.g. --net lenet,lenet_bn")
    unknown = [n for n in nets if n not in list_models()]
    if unknown:
        raise UsageError("unknown net(s) %s; see python scripts/train.py --list"
                         % ", ".join(unknown))
    for net in nets:
        if recipe is not None and recipe not in model_spec(net).recipes:
            raise UsageError("%s has no recipe %r (its recipes: %s); see python "
                             "scripts/train.py --help" % (net, recipe,
                                                          ", ".join(model_spec(net).recipes)))
    return nets


def _refuse_replacing_full(results, key, reduced, docs_dir, error):
    """Raise ``error`` if a ``reduced`` (or unfinished) row would replace a full run's."""
    old = results.get(key)
    if reduced and old and not old["reduced"]:
        raise error("%s already has a full run of %s; a reduced or unfinished one does not "
                    "replace it (give another --docs-dir)" % (docs_dir, key))


def _check_before_training(nets, args, results):
    """What would stop publishing after hours of training, checked first (UsageError)."""
    from gluon_cnns.errors import UsageError
    reduced = any(v is not None for v in (args.epochs, args.limit_train, args.limit_test))
    for net in nets:
        key = result_key(net, args.seed, args.recipe)
        _refuse_irregular(os.path.join(args.docs_dir, plot_name(key)))
        _refuse_replacing_full(results, key, reduced, args.docs_dir, UsageError)


def main(argv=None):
    """Entry point; returns the exit code (2 for usage errors, 1 if any net's run failed)."""
    args, code = parse(build_parser(), argv)
    if args is None:
        return code

    def warn(line):
        print(line, file=sys.stderr)
    try:
        from gluon_cnns.models import model_spec
        nets = _nets(args.net, args.recipe)
        if args.recipe is not None and all(args.recipe == model_spec(n).recipe_name
                                           for n in nets):
            args.recipe = None  # the book's recipe by its name: its usual folder and row
        if args.data_dir is not None:
            check_folder(args.data_dir, "--data-dir", "pass the folder holding the data set's "
                                                      "files (see train.py --data-dir)")
        check_new_folder(args.runs_dir, "--runs-dir", "give a folder for the runs")
        _check_docs_dir(args.docs_dir)
        results, _ = _read_docs(args.docs_dir)
        _check_before_training(nets, args, results)
    except GluonCNNsError as e:
        return _usage_error(error_line(e))
    failed = 0
    for net in nets:
        try:
            row = run_one(net, args, warn)
            publish(row, result_key(net, args.seed, args.recipe), run_folder(net, args),
                    args.docs_dir)
        except (RuntimeError, OSError, ValueError) as e:  # one line: a failed or bad run
            print("%s: error: %s" % (PROG, error_line(e) if str(e).startswith(net) else
                                     "%s: %s" % (net, error_line(e))), file=sys.stderr)
            failed += 1
        except KeyboardInterrupt:
            print("%s: interrupted; the same command continues %s's run" % (PROG, net),
                  file=sys.stderr)
            return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

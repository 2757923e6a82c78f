"""``scripts/reproduce.py``: train nets with their tutorial recipes and publish the results.

Each net is trained by ``scripts/train.py`` in a subprocess (the package's own
training path, exactly the command printed in the table) into ``RUNS/NET`` with
``--save-dir`` and ``--checkpoint-every``. Every figure of a row comes from that
run folder: the recipe and machine from config.json; per-epoch loss, accuracy,
seconds, threads, peak memory and whether the epoch ran in a resumed process
from log.jsonl; the plot from curves.png. A folder that already holds a
finished run is read, not trained again; an unfinished one is continued with
``--resume`` (so a long recipe spans sessions: run it in the background, stop
it any time, run the same command again). Results accumulate in
``docs/results.json``; ``docs/RESULTS.md`` is rewritten from it after every net.

    python scripts/reproduce.py --net lenet,lenet_bn
    python scripts/reproduce.py --net googlenet --runs-dir ~/runs     # continue or read it
    python scripts/reproduce.py --net googlenet --epochs 1 --limit-train 6000   # reduced run
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

from gluon_cnns.cpu import machine_description
from gluon_cnns.errors import GluonCNNsError

PROG = "reproduce"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Test accuracy the reference reports for each net. Fashion-MNIST: d2l, MXNet edition,
# 5 epochs, SGD, Xavier, on a GPU. CIFAR-10: GluonCV's model zoo (200+ epochs).
BOOK_TEST_ACC = {"lenet_bn": 0.881, "alexnet": 0.867, "vgg11_small": 0.909, "nin": 0.812,
                 "googlenet": 0.883, "resnet18": 0.913, "densenet": 0.879,
                 "resnet20_cifar": 0.921, "resnet56_cifar": 0.936, "resnet110_cifar": 0.930}
# d2l's LeNet figure (0.754) is for its sigmoid LeNet with lr 0.9; `lenet` is the MXNet
# article's ReLU LeNet, so the figure is shown for reference only.
BOOK_NOTES = {"lenet": "d2l sigmoid LeNet: 0.754 (a different net)"}


def _parser():
    """The reproduction tool's command line."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--net", required=True, help="comma-separated registry names")
    p.add_argument("--epochs", type=int, help="fewer epochs than the recipe: a reduced run")
    p.add_argument("--limit-train", type=int, help="train on a subset: a reduced run")
    p.add_argument("--limit-test", type=int, help="test on a subset: a reduced run")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--data-dir", help="dataset folder, passed to train.py")
    p.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "reproduce"),
                   help="where the runs' --save-dir folders go (default runs/reproduce)")
    p.add_argument("--docs-dir", default=os.path.join(ROOT, "docs"),
                   help="where RESULTS.md, results.json and the plots go (default docs/)")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="K",
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
    for flag, value in (("--epochs", args.epochs), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test), ("--data-dir", args.data_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def _train(cmd, save_dir):
    """Run the train.py command ``cmd`` into ``save_dir``; returns (output, exit code).
    The output is also kept in save_dir/train.out."""
    out_path = os.path.join(save_dir, "train.out")
    with open(out_path, "w") as out:
        code = subprocess.run([sys.executable] + cmd[1:], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    with open(out_path) as f:
        return f.read(), code


def _reductions(net, config):
    """How a run was cut down from the net's recipe, e.g. "1 of 5 epochs, 6000 train images"."""
    from gluon_cnns.models import model_spec
    recipe = model_spec(net).recipe
    reduced = []
    if config["epochs"] < recipe.epochs:
        reduced.append("%d of %d epochs" % (config["epochs"], recipe.epochs))
    if config.get("limit_train"):
        reduced.append("%d train images" % config["limit_train"])
    if config.get("limit_test"):
        reduced.append("%d test images" % config["limit_test"])
    return ", ".join(reduced)


def _run_state(save_dir):
    """"none", "unfinished" or "finished": what ``save_dir`` holds of a run."""
    from gluon_cnns.training.rundir import RunDir
    run_dir = RunDir(save_dir)
    if not run_dir.has_config():
        return "none"
    log = run_dir.read_log() or []
    done = max([r["epoch"] for r in log], default=0)
    return "finished" if done >= run_dir.read_config()["epochs"] else "unfinished"


def _check_same_run(net, save_dir, args):
    """Raise RuntimeError if the run in ``save_dir`` is not the one asked for (another seed,
    epoch count or subset): its figures would be published under the wrong command."""
    from gluon_cnns.models import model_spec
    from gluon_cnns.training.rundir import RunDir
    config = RunDir(save_dir).read_config()
    wanted = {"seed": args.seed, "limit_train": args.limit_train,
              "limit_test": args.limit_test,
              "epochs": args.epochs or model_spec(net).recipe.epochs}
    for key, value in sorted(wanted.items()):
        if config.get(key) != value:
            raise RuntimeError("%s: %s holds a run with %s %s, not %s; give another "
                               "--runs-dir or remove that folder" % (
                                   net, save_dir, key, config.get(key), value))


def result_key(net, seed):
    """The run's key in results.json: the net for the table's seed 0, else ``NET@seedS``."""
    return net if seed == 0 else "%s@seed%d" % (net, seed)


def run_one(net, args):
    """Train, continue or read ``net``'s run folder; return its result record (or raise
    RuntimeError with the log tail)."""
    save_dir = os.path.join(args.runs_dir, net)
    cmd = train_command(net, args)
    state = _run_state(save_dir)
    if state != "none":
        _check_same_run(net, save_dir, args)
    if state != "finished" and not args.read_only:
        if state == "none" and os.path.isdir(save_dir):
            shutil.rmtree(save_dir)  # a folder without a run: --save-dir refuses to reuse it
        os.makedirs(save_dir, exist_ok=True)
        run = (["--save-dir", save_dir, "--resume", "--quiet"] if state == "unfinished" else
               cmd[2:] + ["--save-dir", save_dir, "--checkpoint-every",
                          str(args.checkpoint_every)])
        print("$ " + " ".join(["python", "scripts/train.py"] + run), flush=True)
        output, code = _train(["python", "scripts/train.py"] + run, save_dir)
        print(output, end="", flush=True)
        if code != 0:
            raise RuntimeError("%s exited %d: %s" % (net, code,
                                                     " ".join(output.strip().splitlines()[-1:])))
    elif state == "none":
        raise RuntimeError("%s has no run in %s" % (net, save_dir))
    return row_from_run(net, save_dir, " ".join(cmd), args.docs_dir)


def row_from_run(net, save_dir, command, docs_dir):
    """The result record of the run in ``save_dir``, from its files alone."""
    from gluon_cnns.training.rundir import RunDir
    run_dir = RunDir(save_dir)
    config, log = run_dir.read_config(), run_dir.read_log() or []
    if not log:
        raise RuntimeError("%s: the run in %s has no finished epoch yet" % (net, save_dir))
    key = result_key(net, config.get("seed") or 0)
    plot = os.path.join(docs_dir, "results", key.replace("@", "-") + ".png")
    os.makedirs(os.path.dirname(plot), exist_ok=True)
    shutil.copyfile(run_dir.file("curves.png"), plot)
    last = log[-1]
    progress = "" if last["epoch"] >= config["epochs"] else (
        "in progress: %d of %d epochs" % (last["epoch"], config["epochs"]))
    return {"net": net, "command": command, "dataset": config["dataset"],
            "epochs": config["epochs"], "batch_size": config["batch_size"], "lr": config["lr"],
            "optimizer": config["optimizer"], "momentum": config.get("momentum"),
            "resize": config.get("resize"), "seed": config.get("seed"),
            "train_loss": last["loss"], "train_acc": last["train_acc"],
            "test_acc": last["test_acc"], "best_test_acc": max(r["test_acc"] for r in log),
            "sec_per_epoch": _median([r["time"] for r in log]),
            "epoch_seconds": [r["time"] for r in log],
            "threads": sorted({r["threads"] for r in log if "threads" in r}),
            "peak_rss_mib": max([r["peak_rss_mib"] for r in log if "peak_rss_mib" in r],
                                default=None),
            "resumed": any(r.get("resumed") for r in log),
            "reduced": ", ".join(filter(None, [_reductions(net, config), progress])),
            "machine": config.get("machine") or machine_description(),
            "context": ", ".join(config["contexts"]),
            "epoch_test_acc": [r["test_acc"] for r in log],
            "epoch_loss": [r["loss"] for r in log],
            "date": last.get("date", time.strftime("%Y-%m-%d"))[:10],
            "plot": os.path.relpath(plot, docs_dir)}


def _median(values):
    """The median: one epoch slowed by a paused process or a busy machine does not move it."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _book(net):
    """The reference's test accuracy of ``net`` as a table cell."""
    if net in BOOK_TEST_ACC:
        return "%.3f" % BOOK_TEST_ACC[net]
    return BOOK_NOTES.get(net, "-")


def render_markdown(results, notes=""):
    """RESULTS.md from the accumulated results (registry order), then ``notes``."""
    from gluon_cnns.models import list_models
    order = {name: i for i, name in enumerate(list_models())}
    ranked = sorted(results.values(), key=lambda r: (order.get(r["net"], len(order)),
                                                       r.get("seed") or 0))
    rows = [r for r in ranked if not r.get("seed")]
    lines = ["# Reproduced results", "",
             "Every row was trained by `scripts/reproduce.py`, through `scripts/train.py` with "
             "the net's tutorial recipe, on real data; the command column is the exact run. "
             "Rows marked *reduced* ran fewer epochs or a subset because the machine could not "
             "run the full recipe in the time available; their figures are not comparable "
             "with the book's. Regenerate a row with `python scripts/reproduce.py --net NAME`.",
             "", "| net | recipe | train loss | train acc | test acc | book test acc | "
             "sec/epoch (median, as run) | run | machine / context |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        recipe = "%s, %d epoch%s, batch %d, %s lr %g%s%s" % (
            r["dataset"], r["epochs"], "" if r["epochs"] == 1 else "s", r["batch_size"],
            r["optimizer"], r["lr"],
            ", momentum %g" % r["momentum"] if r.get("momentum") else "",
            ", resize %d" % r["resize"] if r.get("resize") else "")
        run = "**reduced**: %s" % r["reduced"] if r["reduced"] else "full"
        lines.append("| `%s` | %s | %.4f | %.3f | %.3f | %s | %.1f | %s | %s / %s, %s |" % (
            r["net"], recipe, r["train_loss"], r["train_acc"], r["test_acc"], _book(r["net"]),
            r["sec_per_epoch"], run, r["machine"], r["context"], r["date"]))
    lines += ["", "## Commands", ""]
    for r in rows:
        lines.append("- `%s`: `%s`; %s" % (r["net"], r["command"], _conditions(r)))
    lines += _seed_section(ranked)
    lines += ["", "## Curves", ""]
    for r in rows:
        lines.append("`%s`:" % r["net"])
        lines.append("")
        lines.append("![%s](%s)" % (r["net"], r["plot"]))
        lines.append("")
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def _seed_section(ranked):
    """"Other seeds": every net that has runs beyond seed 0, all its seeds side by side."""
    nets = [r["net"] for r in ranked if r.get("seed")]
    if not nets:
        return []
    lines = ["", "## Other seeds", "",
             "The same recipe with other seeds, from their own run folders "
             "(`python scripts/reproduce.py --net NAME --seed S --runs-dir DIR`).", "",
             "| net | seed | test acc per epoch | final test acc | run |", "|---|---|---|---|---|"]
    for r in ranked:
        if r["net"] in nets:
            lines.append("| `%s` | %d | %s | %.3f | %s |" % (
                r["net"], r.get("seed") or 0, ", ".join("%.3f" % a for a in r["epoch_test_acc"]),
                r["test_acc"], "**reduced**: %s" % r["reduced"] if r["reduced"] else "full"))
    return lines


def _conditions(r):
    """How a run ran, for its line under "Commands"."""
    parts = ["test acc per epoch %s" % ", ".join("%.3f" % a for a in r["epoch_test_acc"])]
    if r.get("epoch_loss"):
        parts.append("train loss per epoch %s" % ", ".join("%.4f" % l for l in r["epoch_loss"]))
    if r.get("epoch_seconds"):
        parts.append("seconds per epoch %s" % ", ".join("%.0f" % t for t in r["epoch_seconds"]))
    if r.get("threads"):
        parts.append("%s OpenMP thread(s)" % "/".join(map(str, r["threads"])))
    if r.get("peak_rss_mib"):
        parts.append("peak memory %.0f MiB" % r["peak_rss_mib"])
    parts.append("resumed after an interruption" if r.get("resumed") else "one uninterrupted run")
    return "; ".join(parts)


def _read_notes(docs_dir):
    """Hand-written analysis kept in docs/RESULTS_NOTES.md, appended to the table."""
    path = os.path.join(docs_dir, "RESULTS_NOTES.md")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def main(argv=None):
    """Entry point; returns the exit code (1 if any net's run failed)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return e.code
    from gluon_cnns.io import read_json, write_json, write_text
    from gluon_cnns.models import list_models
    nets = [n.strip() for n in args.net.split(",") if n.strip()]
    unknown = [n for n in nets if n not in list_models()]
    if unknown:
        return _usage_error("unknown net(s) %s; see python scripts/train.py --list"
                            % ", ".join(unknown))
    for flag in ("epochs", "limit_train", "limit_test"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            return _usage_error("--%s must be positive" % flag.replace("_", "-"))
    results_path = os.path.join(args.docs_dir, "results.json")
    results = read_json(results_path) if os.path.exists(results_path) else {}
    failed = 0
    for net in nets:
        try:
            results[result_key(net, args.seed)] = run_one(net, args)
        except (RuntimeError, GluonCNNsError) as e:  # one line: a failed or unreadable run
            print("%s: error: %s" % (PROG, e), file=sys.stderr)
            failed += 1
            continue
        write_json(results_path, results)
        write_text(os.path.join(args.docs_dir, "RESULTS.md"),
                   render_markdown(results, _read_notes(args.docs_dir)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

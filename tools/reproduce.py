"""``scripts/reproduce.py``: train nets with their tutorial recipes and publish the results.

Each net is trained by ``scripts/train.py`` in a subprocess (the package's own
training path, exactly the command printed in the table), with ``--save-dir``
so that its per-epoch log and loss/accuracy plot come from the run itself.
Results accumulate in ``docs/results.json``; ``docs/RESULTS.md`` is rewritten
from it after every run, so the table can be filled one net at a time.

    python scripts/reproduce.py --net lenet,lenet_bn
    python scripts/reproduce.py --net googlenet --epochs 1 --limit-train 6000   # reduced run
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

from gluon_cnns.cpu import cpu_model
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


def machine_description():
    """CPU model and core count, e.g. "AMD EPYC, 2 cores"."""
    return "%s, %d cores" % (cpu_model(), os.cpu_count() or 0)


def _train(cmd, save_dir):
    """Run the train.py command ``cmd`` into ``save_dir``; returns (output, exit code,
    peak memory in MiB, wall seconds). The output is also kept in save_dir/train.out."""
    out_path = os.path.join(save_dir, "train.out")
    start = time.time()
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable] + cmd[1:], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
        # wait4 gives this child's own peak memory (RUSAGE_CHILDREN would be the
        # maximum over every run so far).
        _, status, usage = os.wait4(proc.pid, 0)
        # Told to Popen too, which would otherwise think the child still runs.
        proc.returncode = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                           else -os.WTERMSIG(status))
    wall = time.time() - start
    with open(out_path) as f:
        return f.read(), proc.returncode, usage.ru_maxrss / 1024.0, wall


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


def run_one(net, args):
    """Train ``net``; return its result record (or raise RuntimeError with the log tail)."""
    from gluon_cnns.io import read_jsonl
    from gluon_cnns.training.rundir import RunDir
    save_dir = os.path.join(args.runs_dir, net)
    if os.path.isdir(save_dir):
        shutil.rmtree(save_dir)  # a fresh run each time: --save-dir refuses to overwrite
    cmd = train_command(net, args) + ["--save-dir", save_dir]
    print("$ " + " ".join(cmd[:-2]), flush=True)
    os.makedirs(save_dir)
    output, code, peak_rss_mib, wall = _train(cmd, save_dir)
    print(output, end="", flush=True)
    if code != 0:
        raise RuntimeError("%s exited %d: %s" % (net, code,
                                                 " ".join(output.strip().splitlines()[-1:])))
    config = RunDir(save_dir).read_config()
    log = read_jsonl(os.path.join(save_dir, "log.jsonl"))
    plot = os.path.join(args.docs_dir, "results", net + ".png")
    os.makedirs(os.path.dirname(plot), exist_ok=True)
    shutil.copyfile(os.path.join(save_dir, "curves.png"), plot)
    last = log[-1]
    return {"net": net, "command": " ".join(cmd[:-2]), "dataset": config["dataset"],
            "epochs": config["epochs"], "batch_size": config["batch_size"], "lr": config["lr"],
            "optimizer": config["optimizer"], "momentum": config.get("momentum"),
            "resize": config.get("resize"), "seed": args.seed, "train_loss": last["loss"],
            "train_acc": last["train_acc"], "test_acc": last["test_acc"],
            "best_test_acc": max(r["test_acc"] for r in log),
            "sec_per_epoch": sum(r["time"] for r in log) / len(log), "wall_sec": wall,
            "peak_rss_mib": peak_rss_mib, "reduced": _reductions(net, config),
            "machine": machine_description(), "context": ", ".join(config["contexts"]),
            "epoch_test_acc": [r["test_acc"] for r in log],
            "date": time.strftime("%Y-%m-%d"), "plot": os.path.relpath(plot, args.docs_dir)}


def _book(net):
    """The reference's test accuracy of ``net`` as a table cell."""
    if net in BOOK_TEST_ACC:
        return "%.3f" % BOOK_TEST_ACC[net]
    return BOOK_NOTES.get(net, "-")


def render_markdown(results, notes=""):
    """RESULTS.md from the accumulated results (registry order), then ``notes``."""
    from gluon_cnns.models import list_models
    order = {name: i for i, name in enumerate(list_models())}
    rows = sorted(results.values(), key=lambda r: order.get(r["net"], len(order)))
    lines = ["# Reproduced results", "",
             "Every row was trained by `scripts/reproduce.py`, through `scripts/train.py` with "
             "the net's tutorial recipe, on real data; the command column is the exact run. "
             "Rows marked *reduced* ran fewer epochs or a subset because the machine could not "
             "run the full recipe in the time available; their figures are not comparable "
             "with the book's. Regenerate a row with `python scripts/reproduce.py --net NAME`.",
             "", "| net | recipe | train loss | train acc | test acc | book test acc | "
             "sec/epoch (as run) | run | machine / context |",
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
        lines.append("- `%s`: `%s` (peak memory %.0f MiB, test acc per epoch %s)" % (
            r["net"], r["command"], r["peak_rss_mib"],
            ", ".join("%.3f" % a for a in r["epoch_test_acc"])))
    lines += ["", "## Curves", ""]
    for r in rows:
        lines.append("`%s`:" % r["net"])
        lines.append("")
        lines.append("![%s](%s)" % (r["net"], r["plot"]))
        lines.append("")
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


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
            results[net] = run_one(net, args)
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

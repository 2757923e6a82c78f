"""The reproduction table: result rows read from run folders, and docs/RESULTS.md.

A row is built from a run folder's files alone (config.json, log.jsonl, curves.png) and
checked before anything is written; results.json is checked when it is read, so a damaged
or hand-edited file is one clear line, never a traceback after hours of training.
"""
import math
import numbers
import os
import shutil
import time

from tools.beyond_table import beyond_section

# Test accuracy the reference reports for each net. Fashion-MNIST: d2l, MXNet edition,
# 5 epochs, SGD, Xavier, on a GPU. CIFAR-10: GluonCV's model zoo (200+ epochs).
BOOK_TEST_ACC = {"lenet_bn": 0.881, "alexnet": 0.867, "vgg11_small": 0.909, "nin": 0.812,
                 "googlenet": 0.883, "resnet18": 0.913, "densenet": 0.879,
                 "resnet20_cifar": 0.921, "resnet56_cifar": 0.936, "resnet110_cifar": 0.930}
# d2l's LeNet figure (0.754) is for its sigmoid LeNet with lr 0.9; `lenet` is the MXNet
# article's ReLU LeNet, so the figure is shown for reference only.
BOOK_NOTES = {"lenet": "d2l sigmoid LeNet: 0.754 (a different net)"}

_NUMBER, _INT, _TEXT, _NUMBERS = "a number", "a whole number", "a string", "a list of numbers"
# What every row of results.json holds (None allowed for the keys in _OPTIONAL).
ROW_KEYS = {"net": _TEXT, "command": _TEXT, "dataset": _TEXT, "epochs": _INT,
            "batch_size": _INT, "lr": _NUMBER, "optimizer": _TEXT, "momentum": _NUMBER,
            "resize": _INT, "seed": _INT, "train_loss": _NUMBER, "train_acc": _NUMBER,
            "test_acc": _NUMBER, "sec_per_epoch": _NUMBER, "reduced": _TEXT,
            "machine": _TEXT, "context": _TEXT, "epoch_test_acc": _NUMBERS, "date": _TEXT,
            "plot": _TEXT}
_EXTRA_KEYS = {"epoch_loss": _NUMBERS, "epoch_seconds": _NUMBERS, "peak_rss_mib": _NUMBER,
               "best_test_acc": _NUMBER, "threads": "a list of whole numbers",
               "resumed": "true or false", "recipe": _TEXT, "epoch_cpu_seconds": _NUMBERS}
_OPTIONAL = {"momentum", "resize", "seed", "peak_rss_mib"} | set(_EXTRA_KEYS)
# What each epoch's log record must hold for a row, beyond the epoch number.
_LOG_KEYS = {"loss": _NUMBER, "train_acc": _NUMBER, "test_acc": _NUMBER, "time": _NUMBER}
_LOG_EXTRA = {"threads": _INT, "epoch_threads": "a list of whole numbers",
              "peak_rss_mib": _NUMBER, "date": _TEXT, "resumed": "true or false"}


def _fits(value, kind):
    """Whether ``value`` is of ``kind`` (one of the phrases above)."""
    number = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value))
    return {_NUMBER: number, _INT: number and isinstance(value, int), _TEXT: isinstance(value, str),
            _NUMBERS: isinstance(value, list) and all(_fits(v, _NUMBER) for v in value),
            "a list of whole numbers": isinstance(value, list) and all(
                _fits(v, _INT) for v in value),
            "true or false": isinstance(value, bool)}[kind]


def _problem(record, required, extra, optional=()):
    """The first key of ``record`` that is missing or of the wrong kind, in words, or None."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    for key, kind in list(required.items()) + list(extra.items()):
        if key not in record:
            if key in required and key not in optional:
                return "it has no %r" % key
        elif not (record[key] is None and key in optional) and not _fits(record[key], kind):
            return "its %r is %r, not %s" % (key, record[key], kind)
    return None


def row_problem(row):
    """The first thing wrong with a results.json row, or None."""
    return _problem(row, ROW_KEYS, _EXTRA_KEYS, _OPTIONAL)


def results_problem(results):
    """The first thing wrong with results.json as a whole, or None."""
    if not isinstance(results, dict):
        return "it is not a JSON object of rows"
    for key, row in sorted(results.items()):
        problem = row_problem(row)
        own = None if problem else result_key(row["net"], row.get("seed"), row.get("recipe"))
        if own is not None and key != own:
            problem = "it is the row of %s" % own
        if problem:
            return "its row %r is damaged: %s" % (key, problem)
    return None


def result_key(net, seed, recipe=None):
    """The run's key in results.json: the net for the table's seed 0, else ``NET@seedS``;
    ``NET+RECIPE`` (and ``@seedS``) for a recipe other than the book's."""
    name = "%s+%s" % (net, recipe) if recipe else net
    return name if not seed else "%s@seed%d" % (name, seed)


def plot_name(key):
    """Where a row's plot goes under the docs folder."""
    return "results/%s.png" % key.replace("@", "-").replace("+", "-")


def _median(values):
    """The median: one epoch slowed by a paused process or a busy machine does not move it."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _threads(log):
    """Every OpenMP thread count that trained a part of the run. A record's
    ``epoch_threads`` includes processes stopped inside its epoch; logs written
    before it existed name only the process that finished each epoch."""
    return sorted({t for r in log for t in r.get("epoch_threads", [r["threads"]]
                                                  if "threads" in r else [])})


def check_log(records, where):
    """Raise RuntimeError naming the first epoch record of ``where`` a row cannot use:
    one with a missing or odd figure, or out of the order 1, 2, 3, ..."""
    for number, record in enumerate(records, 1):
        problem = _problem(record, _LOG_KEYS, _LOG_EXTRA)
        if not problem and record.get("epoch") != number:
            problem = "it is not epoch %d: the epochs must run 1, 2, 3, ..." % number
        if not problem and not all(0 <= record[k] <= 1 for k in ("train_acc", "test_acc")):
            problem = "an accuracy outside 0..1"
        if problem:
            raise RuntimeError("%s: the record of epoch %s is damaged: %s"
                               % (where, record.get("epoch"), problem))


def _recipe(net, config):
    """The run's recipe name, None for the net's first (the book's): its rows keep their keys."""
    from gluon_cnns.models import model_spec
    name = config.get("recipe")
    return None if name in (None, model_spec(net).recipe_name) else name


def build_row(net, config, log, command, reduced):
    """The result row of one run from its config.json and its epochs' records (checked)."""
    last = log[-1]
    recipe = _recipe(net, config)
    progress = "" if last["epoch"] >= config["epochs"] else (
        "in progress: %d of %d epochs" % (last["epoch"], config["epochs"]))
    contexts = config.get("contexts")
    row = {"net": net, "command": command, "dataset": config.get("dataset"),
           "epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
           "lr": config.get("lr"), "optimizer": config.get("optimizer"),
           "momentum": config.get("momentum"), "resize": config.get("resize"),
           "seed": config.get("seed"), "train_loss": last["loss"],
           "train_acc": last["train_acc"], "test_acc": last["test_acc"],
           "best_test_acc": max(r["test_acc"] for r in log),
           "sec_per_epoch": _median([r["time"] for r in log]),
           "epoch_seconds": [r["time"] for r in log],
           # CPU seconds (all threads): what a recipe costs; logs from before they were
           # kept have none.
           "epoch_cpu_seconds": ([r["cpu_time"] for r in log]
                                 if all(_fits(r.get("cpu_time"), _NUMBER) for r in log) else None),
           "recipe": recipe,
           "threads": _threads(log),
           "peak_rss_mib": max([r["peak_rss_mib"] for r in log if "peak_rss_mib" in r],
                               default=None),
           "resumed": any(r.get("resumed") for r in log),
           "reduced": ", ".join(filter(None, [reduced, progress])),
           "machine": config.get("machine"),
           "context": ", ".join(contexts) if isinstance(contexts, list) and all(
               isinstance(c, str) for c in contexts) else contexts,
           "epoch_test_acc": [r["test_acc"] for r in log],
           "epoch_loss": [r["loss"] for r in log],
           "date": last.get("date", time.strftime("%Y-%m-%d"))[:10],
           "plot": plot_name(result_key(net, config.get("seed"), recipe))}
    problem = row_problem(row)
    if problem:
        raise RuntimeError("%s: config.json cannot make a result row: %s" % (net, problem))
    return row


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def copy_plot(source, docs_dir, row):
    """Copy the run's curves.png to the row's plot, atomically: a regular file of the run
    (not a link) that is a PNG, else RuntimeError."""
    from gluon_cnns.io import atomic_write, open_regular
    if os.path.islink(source):
        raise RuntimeError("%s is a link, not the run's own plot; move it away" % source)
    with open_regular(source) as src:
        if src.read(8) != PNG_SIGNATURE:
            raise RuntimeError("%s is not a PNG image; move it away" % source)
        src.seek(0)

        def write(tmp):
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        atomic_write(os.path.join(docs_dir, row["plot"]), write)


def _book(net):
    """The reference's test accuracy of ``net`` as a table cell."""
    if net in BOOK_TEST_ACC:
        return "%.3f" % BOOK_TEST_ACC[net]
    return BOOK_NOTES.get(net, "-")


_INTRO = ("Every row was trained by `scripts/reproduce.py`, through `scripts/train.py` with "
          "the net's tutorial recipe, on real data; the command column is the exact run. "
          "%sRegenerate a row with `python scripts/reproduce.py --net NAME`.")
_REDUCED = ("Rows marked *reduced* ran fewer epochs or a subset because the machine could not "
            "run the full recipe in the time available; their figures are not comparable "
            "with the book's. ")


def render_markdown(results, notes=""):
    """RESULTS.md from the accumulated results (registry order), then ``notes``."""
    from gluon_cnns.models import list_models
    order = {name: i for i, name in enumerate(list_models())}
    ranked = sorted(results.values(), key=lambda r: (order.get(r["net"], len(order)),
                                                       r.get("seed") or 0))
    beyond = [r for r in ranked if r.get("recipe")]
    ranked = [r for r in ranked if not r.get("recipe")]
    rows = [r for r in ranked if not r.get("seed")]
    reduced = any(r["reduced"] for r in ranked)
    lines = ["# Reproduced results", "", _INTRO % (_REDUCED if reduced else ""), "",
             "| net | recipe | train loss | train acc | test acc | book test acc | "
             "sec/epoch (median, as run) | run | machine / context |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        recipe = "%s, %d epoch%s, batch %d, %s lr %g%s%s" % (
            r["dataset"], r["epochs"], "" if r["epochs"] == 1 else "s", r["batch_size"],
            r["optimizer"], r["lr"],
            ", momentum %g" % r["momentum"] if r.get("momentum") else "",
            ", resize %d" % r["resize"] if r.get("resize") else "")
        lines.append("| `%s` | %s | %.4f | %.3f | %.3f | %s | %.1f | %s | %s / %s, %s |" % (
            r["net"], recipe, r["train_loss"], r["train_acc"], r["test_acc"], _book(r["net"]),
            r["sec_per_epoch"], _run(r), r["machine"], r["context"], r["date"]))
    lines += ["", "## Commands", ""]
    lines += ["- `%s`: `%s`; %s" % (r["net"], r["command"], _conditions(r)) for r in rows]
    lines += _seed_section(ranked)
    lines += beyond_section(ranked, beyond, _conditions, BOOK_TEST_ACC)
    lines += ["", "## Curves", ""]
    for r in rows:
        lines += ["`%s`:" % r["net"], "", "![%s](%s)" % (r["net"], r["plot"]), ""]
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
    for net in sorted(set(nets), key=nets.index):
        runs = [r for r in ranked if r["net"] == net]
        for r in runs:
            lines.append("| `%s` | %d | %s | %.3f | %s |" % (
                net, r.get("seed") or 0, ", ".join("%.3f" % a for a in r["epoch_test_acc"]),
                r["test_acc"], _run(r)))
        finals = [r["test_acc"] for r in runs if not r["reduced"]]
        if len(finals) > 1:
            lines.append("| `%s` | %d full runs | | mean %.3f, range %.3f-%.3f | |" % (
                net, len(finals), sum(finals) / len(finals), min(finals), max(finals)))
    return lines


def _run(r):
    """The "run" cell: full, or what a reduced run left out."""
    return "**reduced**: %s" % r["reduced"] if r["reduced"] else "full"


def _conditions(r):
    """How a run ran, for its line under "Commands"."""
    parts = ["test acc per epoch %s" % ", ".join("%.3f" % a for a in r["epoch_test_acc"])]
    if r.get("epoch_loss"):
        parts.append("train loss per epoch %s" % ", ".join("%.4f" % l for l in r["epoch_loss"]))
    if r.get("epoch_seconds"):
        parts.append("seconds per epoch %s" % ", ".join("%.0f" % t for t in r["epoch_seconds"]))
    if r.get("epoch_cpu_seconds"):
        parts.append("CPU seconds per epoch %s" % ", ".join(
            "%.0f" % t for t in r["epoch_cpu_seconds"]))
    if r.get("threads"):
        parts.append("%s OpenMP thread(s)" % "/".join(map(str, r["threads"])))
    if r.get("peak_rss_mib"):
        parts.append("peak memory %.0f MiB" % r["peak_rss_mib"])
    parts.append("resumed after an interruption" if r.get("resumed") else "one uninterrupted run")
    return "; ".join(parts)

"""docs/RESULTS.md's "Beyond the book": the book's recipe against the nets' "fast" and
"tricks" recipes (gluon_cnns/models/registry.py), one row per net, from results.json.

Every figure comes from a run folder's row: accuracy is the last epoch's test accuracy,
CPU minutes the sum of the epochs' CPU seconds (every thread of the training process,
test evaluation included). A book row trained before CPU seconds were logged has none:
its cell says so rather than guessing from wall time.
"""

_HEAD = ["", "## Beyond the book", "",
         "The book's recipe against two more recipes per net (`scripts/train.py --recipe fast` "
         "or `--recipe tricks`; `train.py --help` lists each one's settings and "
         "`gluon_cnns/models/registry.py` their sources). *fast*: the book's accuracy in the "
         "least CPU time, the goal being at most a third of the book recipe's. *tricks*: the "
         "book's epochs, resolution, batch and optimizer plus the cosine schedule and label "
         "smoothing (He et al. 2019). CPU minutes: the training process's CPU time, every "
         "thread, test evaluation included, as run (the machine may have been shared: "
         "compare within a row). Regenerate a row with `python scripts/reproduce.py --net "
         "NAME --recipe fast` (or `tricks`, with `--seed S` for another seed).", "",
         "| net | target | book recipe: test acc | CPU min | fast recipe: test acc | "
         "CPU min | fast / book CPU | fast reaches the target | tricks, book budget: test acc "
         "| threads / machine |",
         "|---|---|---|---|---|---|---|---|---|---|"]


def beyond_section(book_rows, beyond_rows, conditions, targets):
    """The section's lines (none without a fast or tricks row); ``conditions(row)``
    describes how a run ran, for its line under the table; ``targets`` maps nets to the
    book's test accuracy."""
    if not beyond_rows:
        return []
    nets = list(dict.fromkeys(r["net"] for r in beyond_rows))
    lines = list(_HEAD)
    for net in nets:
        book = _full([r for r in book_rows if r["net"] == net])
        fast = _full([r for r in beyond_rows if r["net"] == net and r["recipe"] == "fast"])
        tricks = _full([r for r in beyond_rows if r["net"] == net and r["recipe"] == "tricks"])
        book_cpu, fast_cpu = _cpu_minutes(book), _cpu_minutes(fast)
        ratio = ("%.2f" % (fast_cpu / book_cpu)) if book_cpu and fast_cpu else "-"
        target, where = targets.get(net), "the book's"
        if target is None and book:   # no book figure: the book recipe's, as run here
            target, where = _mean(book), "the book recipe's mean"
        reached = "-" if not (fast and target) else "%s (mean %.4f vs %.4f)" % (
            "yes" if _mean(fast) >= target else "no", _mean(fast), target)
        lines.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            net, "%.3f (%s)" % (target, where) if target else "-", _accuracy(book),
            _minutes(book_cpu), _accuracy(fast), _minutes(fast_cpu), ratio, reached,
            _accuracy(tricks, book), _where(fast or tricks)))
    lines += ["", "Runs:", ""]
    for r in beyond_rows:
        lines.append("- `%s` (%s, seed %d): `%s`; %s; [curves](%s)" % (
            r["net"], r["recipe"], r.get("seed") or 0, r["command"], conditions(r), r["plot"]))
    return lines


def _full(rows):
    """The full runs among ``rows`` by seed, or, if none is full, the reduced ones (their
    cells say so)."""
    full = [r for r in rows if not r["reduced"]]
    return sorted(full or rows, key=lambda r: r.get("seed") or 0)


def _mean(rows):
    return sum(r["test_acc"] for r in rows) / len(rows)


def _cpu_minutes(rows):
    """The mean CPU minutes of the runs that logged CPU seconds, or None."""
    minutes = [sum(r["epoch_cpu_seconds"]) / 60 for r in rows if r.get("epoch_cpu_seconds")]
    return sum(minutes) / len(minutes) if minutes else None


def _minutes(value):
    return "%.1f" % value if value is not None else "not logged"


def _accuracy(rows, against=None):
    """Seed 0's test accuracy, or the mean over seeds with each seed's; with ``against``
    (the book's runs), the difference in points over the seeds both have."""
    if not rows:
        return "-"
    accs = [r["test_acc"] for r in rows]
    cell = "%.3f" % accs[0] if len(rows) == 1 else "mean %.3f (seeds %s: %s)" % (
        sum(accs) / len(accs), ", ".join(str(r.get("seed") or 0) for r in rows),
        ", ".join("%.3f" % a for a in accs))
    if any(r["reduced"] for r in rows):
        cell += " (reduced)"
    if against:
        seeds = {r.get("seed") or 0: r["test_acc"] for r in against}
        pairs = [(r["test_acc"], seeds[r.get("seed") or 0]) for r in rows
                 if (r.get("seed") or 0) in seeds]
        if pairs:
            gain = 100 * sum(a - b for a, b in pairs) / len(pairs)
            cell += "; %+.1f points vs the book recipe, same seed%s" % (
                gain, "s" if len(pairs) > 1 else "")
    return cell


def _where(rows):
    if not rows:
        return "-"
    r = rows[0]
    return "%s thread(s) / %s" % ("/".join(map(str, r.get("threads") or [])) or "?",
                                  r["machine"])

"""Type checks for what a run folder's JSON files hold, so that a hand-edited or damaged
file is one clear error instead of a traceback deep inside a resumed run.

Each check returns the first problem as a phrase ("'epoch' must be ...") or None.
"""
import numbers
import re

from ..settings import EPOCHS, NAMES, NUMBERS, kept

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^epoch-\d{4,}(-batch-\d{6,})?\.(params|states|rng\.npz|ema\.params)$")


def is_int(value, low=0, high=None):
    """An int (not a bool) in low..high."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _numbers(value):
    return isinstance(value, list) and all(_is_number(v) for v in value)


def _thread_counts(value):
    return isinstance(value, list) and all(is_int(v, 1) for v in value)


# Checkpoint files an entry may leave out: the random state (an old index: resumable, not
# exactly) and the weight EMA (a run without one).
OPTIONAL_FILES = ("rng", "ema")

_PROGRESS = {"batch": is_int, "examples": is_int, "nan_skips": is_int,
             "skipped_examples": is_int, "loss_sum": _numbers, "correct": _numbers,
             "time": _is_number, "cpu_time": _is_number}


def entry_problem(entry, keys):
    """The first thing wrong with a checkpoint entry whose file keys are ``keys``, or None."""
    if not isinstance(entry, dict):
        return "an entry must be a JSON object"
    if not is_int(entry.get("epoch")) or not is_int(entry.get("batch", 0)):
        return "'epoch' and 'batch' must be whole numbers >= 0"
    sha = entry.get("sha256", {})
    if not isinstance(sha, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            and _HEX64.match(v) for k, v in sha.items()):
        return "'sha256' must map file names to 64 hex digits"
    for key in keys:
        name = entry.get(key)
        if not (name is None and key in OPTIONAL_FILES) and not (isinstance(name, str)
                                                        and _FILE_NAME.match(name)):
            return "%r must name a checkpoint file of this folder" % key
    progress = entry.get("progress")
    if progress is not None and not (isinstance(progress, dict) and all(
            check(progress.get(k, 0)) for k, check in _PROGRESS.items())):
        return "'progress' must hold the epoch's counts and sums as numbers"
    if progress is not None and not _thread_counts(progress.get("threads", [])):
        return "'progress' 'threads' must be a list of whole numbers >= 1"
    if not _is_number(entry.get("best_test_acc", -1.0)) or not (
            entry.get("best_epoch") is None or is_int(entry.get("best_epoch"))):
        return "'best_test_acc' must be a number and 'best_epoch' a whole number"
    records = entry.get("records", [])
    if not isinstance(records, list) or not all(record_problem(r) is None for r in records):
        return "'records' must be a list of epoch records"
    return None


def record_problem(record):
    """The first thing wrong with a log record (one epoch's figures), or None."""
    if not isinstance(record, dict) or not is_int(record.get("epoch"), 1):
        return "a record must be a JSON object with a whole 'epoch' >= 1"
    for key in ("loss", "train_acc", "test_acc", "time", "cpu_time"):
        if key in record and not _is_number(record[key]):
            return "record %r must be a number" % key
    return None


# The words of each type of the settings config.json keeps (gluon_cnns.settings).
_KIND_NAMES = {int: "a positive whole number", float: "a number", str: "a string",
               EPOCHS: "a list of epochs", bool: "true or false",
               NAMES: "a list of non-empty strings", NUMBERS: "a list of numbers"}


def _has_kind(value, spec):
    kind = spec.kind
    if kind is int:
        return is_int(value, spec.low)
    if kind is float:
        return _is_number(value)
    if kind == EPOCHS:
        return isinstance(value, list) and all(is_int(v, 1) for v in value)
    if kind == NAMES:
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == NUMBERS:
        return isinstance(value, list) and all(_is_number(v) for v in value)
    return isinstance(value, kind)  # str, bool


def config_problem(config):
    """The first setting of config.json with the wrong type, or None."""
    if not isinstance(config, dict):
        return "it must be a JSON object"
    for spec in kept():
        key = spec.name
        if key not in config or (config[key] is None and spec.may_be_none):
            continue
        if not _has_kind(config[key], spec):
            return "%r is %r, not %s" % (key, config[key], _KIND_NAMES[spec.kind])
    return None

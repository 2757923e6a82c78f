"""The names of a run folder's files, and which folders ``--save-dir`` may take over: a
run folder of a version that wrote no marker.

Runs mark their folders (gluon_cnns.ownership); a folder written before they did
is recognised from its files, so that it still resumes: it holds a checkpoint
index (checkpoint.json) or a checkpoint entry (epoch-NNNN.json), a config.json
that is a valid run config, and nothing but a run's own files. A folder that
holds only a run's lock (a run killed as it started) is taken too. A user's
folder with a config.json, best.params and log.jsonl of their own is not.
"""
import os
import re

from ..io import read_json
from .records import config_problem

CONFIG, CHECKPOINT, LOG, BEST, CURVES, LOCK = ("config.json", "checkpoint.json", "log.jsonl",
                                               "best.params", "curves.png", ".lock")
# Written beside them: scripts/train.py's TensorBoard events, scripts/report.py's page.
TENSORBOARD, REPORT = "tensorboard", "report.html"
# The checkpoint files: what remove_unreferenced may delete.
_OURS = re.compile(r"^epoch-\d{4,}(-batch-\d{6,})?"
                   r"(\.params|\.states|\.rng\.npz|\.ema\.params|\.json)$")
_EPOCH_PARAMS = re.compile(r"^epoch-(\d+)\.params$")
# What atomic_write leaves behind when a run is killed: ".NAME.RANDOM.tmp".
_TEMPORARY = re.compile(r"^\.(epoch-\d{4,}\S*|%s)\.[^.]+\.tmp$"
                        % "|".join(re.escape(n) for n in (CHECKPOINT, CONFIG, LOG, BEST, CURVES)))

_LOG_ASIDE = re.compile(r"^log\.jsonl\.\d+$")  # a log kept aside by reconcile_log


def is_run_folder(path):
    """Whether ``path`` is a run folder written before runs marked theirs (see ownership):
    it holds a checkpoint index or entry and a valid config.json, and only a run's files."""
    names = os.listdir(path)
    ours = (CONFIG, CHECKPOINT, LOG, BEST, CURVES, LOCK, TENSORBOARD, REPORT)
    if not all(n in ours or _OURS.match(n) or _TEMPORARY.match(n) or _LOG_ASIDE.match(n)
               for n in names):
        return False
    if all(n == LOCK or _TEMPORARY.match(n) for n in names):
        return True  # what a run killed at its start left: nothing else to keep
    if CHECKPOINT not in names and not any(_OURS.match(n) and n.endswith(".json") for n in names):
        return False
    try:
        config = read_json(os.path.join(path, CONFIG))
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and isinstance(config.get("net"), str)
            and not config_problem(config))

"""Which folders ``--save-dir`` may take over: a run folder of a version that wrote no marker.

Runs mark their folders (gluon_cnns.ownership); a folder written before they did
is recognised from its files, so that it still resumes: it holds a checkpoint
index (checkpoint.json) or a checkpoint entry (epoch-NNNN.json), a config.json
that is a valid run config, and nothing but a run's own files. A folder that
holds only a run's lock (a run killed as it started) is taken too. A user's
folder with a config.json, best.params and log.jsonl of their own is not.
"""
import os
import re

from ..errors import CheckpointError
from .rundir import (_OURS, _TEMPORARY, BEST, CHECKPOINT, CONFIG, CURVES, LOCK, LOG,
                     RunDir)

_LOG_ASIDE = re.compile(r"^log\.jsonl\.\d+$")  # a log kept aside by reconcile_log


def is_run_folder(path):
    """Whether ``path`` is a run folder written before runs marked theirs (see ownership):
    it holds a checkpoint index or entry and a valid config.json, and only a run's files."""
    names = os.listdir(path)
    ours = (CONFIG, CHECKPOINT, LOG, BEST, CURVES, LOCK)
    if not all(n in ours or _OURS.match(n) or _TEMPORARY.match(n) or _LOG_ASIDE.match(n)
               for n in names):
        return False
    if all(n == LOCK or _TEMPORARY.match(n) for n in names):
        return True  # what a run killed at its start left: nothing else to keep
    if CHECKPOINT not in names and not any(_OURS.match(n) and n.endswith(".json") for n in names):
        return False
    try:
        RunDir(path).read_config()
    except CheckpointError:
        return False
    return True

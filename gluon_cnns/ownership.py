"""Which folders a tool of this package may write into: the ones it owns.

A run folder (``--save-dir``), an export's folder (``--export`` / ``--out``) and
a pack's folder (``scripts/pack.py --out``) are written file by file, and some
of those files have common names (config.json, best.params, log.jsonl). So a
tool writes only into a folder that

* does not exist yet, or is empty; or
* holds the marker :data:`MARKER` (a run folder: written atomically before
  anything else); or
* the caller's ``recognise(folder)`` says holds only its own kind of files: a
  run folder of a version that wrote no marker (artifacts.run_owner: a valid
  config.json and checkpoint index), a folder of exports (artifacts.export_owner:
  sidecars of ours, their files, marked run folders), a pack (data.pack_writer:
  pack.json, which a pack renames into place first). Export and pack folders get no marker file, so that
  they hold only what users load from them.

Anything else -- a folder of the user's own files, ``/``, a home folder -- is
refused with one line naming it and the way out, before anything in it changes.
"""
import os

from .errors import UsageError
from .io import path_kind, read_json, write_json

MARKER = ".gluon_cnns"


def has_marker(folder):
    """Whether ``folder`` holds a marker written by this package."""
    try:
        return read_json(os.path.join(folder, MARKER)).get("made_by") == "gluon_cnns"
    except (OSError, ValueError):
        return False


def _listing(names, limit=3):
    shown = sorted(names)[:limit]
    return ", ".join(shown) + (", ..." if len(names) > limit else "")


def check_owned(folder, what, recognise=None):
    """UsageError unless ``folder`` may be written by this package (see the module
    docstring); ``what`` names it in the message ("--save-dir"). Changes nothing."""
    folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise UsageError("%s %s is %s, not a folder; choose a new folder"
                         % (what, folder, path_kind(folder)))
    if not os.path.isdir(folder):
        return folder
    try:
        names = os.listdir(folder)
    except OSError as e:
        raise UsageError("%s %s cannot be read (%s); choose another folder"
                         % (what, folder, e.strerror or e)) from None
    if names and not has_marker(folder) and not (recognise and recognise(folder)):
        raise UsageError("%s %s holds files that gluon_cnns did not write (%s); it writes only "
                         "into a new or empty folder, or one it made: choose another folder"
                         % (what, folder, _listing(names)))
    return folder


def claim(folder, what, kind, recognise=None):
    """Make (or take) ``folder`` for writing, after :func:`check_owned`: it is created if
    needed and marked as made by a ``kind`` (e.g. "run") of this package.
    Returns its absolute path; OSError if it cannot be created or marked."""
    return mark(check_owned(folder, what, recognise), kind)


def mark(folder, kind):
    """Create ``folder`` if needed and mark it as made by a ``kind`` of this package, for a
    caller that has vetted it itself (:func:`claim` does that). Returns it."""
    os.makedirs(folder, exist_ok=True)
    if not has_marker(folder):
        write_json(os.path.join(folder, MARKER), {"made_by": "gluon_cnns", "kind": kind})
    return folder


def check_stream_target(path, what):
    """UsageError for ``-`` as a file prefix: the files would be named ``-.json`` etc."""
    if os.path.basename(os.fspath(path).rstrip("/")) == "-":
        raise UsageError("%s %s: an export is several files, not a stream; give a prefix such "
                         "as exports/lenet" % (what, path))


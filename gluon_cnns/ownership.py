"""Which folders a tool of this package may write into: the ones it owns.

A run folder (``--save-dir``), an export's folder (``--export`` / ``--out``) and
a pack's folder (``scripts/pack.py --out``) are written file by file, and some
of those files have common names (config.json, best.params, log.jsonl). So a
tool writes only into a folder that

* does not exist yet, or is empty: it is made, or taken, and marked; or
* holds the marker :data:`MARKER`, which a tool of this package wrote into it
  (atomically, before anything else); or
* was written by an earlier version of the package, which wrote no marker: the
  caller's ``recognise(folder)`` says so from the files themselves (a run's
  valid config.json and checkpoint index, a valid export sidecar, a pack.json),
  and the marker is added.

Anything else -- a folder of the user's own files, ``/``, a home folder -- is
refused with one line naming it and the way out, before anything in it changes.

A run folder gets the marker file. An export's folder and a pack's are recognised
by their own first files instead -- an export's sidecar (and its hidden staging
folder, made first), a pack's pack.json (renamed into place first) and lock --
so that they hold only what users load from them.
"""
import os

from .errors import UsageError
from .io import read_json, write_json

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
        raise UsageError("%s %s is a file, not a folder; choose a new folder" % (what, folder))
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
    needed and marked as made by a ``kind`` ("run", "export", "pack") of this package.
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


def _is_sidecar(path):
    try:
        meta = read_json(path)
    except (OSError, ValueError):
        return False
    return "gluon_cnns_version" in meta and "input_shape" in meta


def is_export_folder(folder):
    """Whether ``folder`` holds only exports of this package, written before exports marked
    their folders: each file is PATH-symbol.json, PATH-0000.params, PATH.onnx or the sidecar
    PATH.json of an export whose sidecar is one of ours, or a hidden staging folder."""
    from .inference.layout import SUFFIXES
    names = os.listdir(folder)
    prefixes = {n[:-len(".json")] for n in names
                if n.endswith(".json") and _is_sidecar(os.path.join(folder, n))}
    files = {prefix + suffix for prefix in prefixes for suffix in SUFFIXES.values()}
    return bool(prefixes) and all(n in files or (n.startswith(".") and ".export-" in n)
                                  for n in names)


def export_folder(path):
    """The folder that an export to ``path`` (a prefix, or a folder ending in /) writes into."""
    from .inference.layout import export_target
    return os.path.dirname(export_target(path, "net"))


def claim_export_folder(path, what):
    """Check an export target ``path`` (not ``-``, a folder new, empty, holding only
    exports of ours, or marked) and make its folder; returns the folder. UsageError,
    or OSError when it cannot be made."""
    check_stream_target(path, what)
    folder = check_owned(export_folder(path), what, recognise=is_export_folder)
    os.makedirs(folder, exist_ok=True)
    return folder

"""Which folders an export may write into (see gluon_cnns.ownership).

An export's folder gets no marker file, so that it holds only what users load
from it: it is recognised by its exports' own files instead -- each sidecar
PATH.json of ours and the files it goes with, and the hidden staging folders an
export makes first (``artifacts.layout``) -- and may hold marked run folders too.
"""
import os

from ..io import read_json
from ..ownership import check_owned, check_stream_target, has_marker
from .layout import SUFFIXES, export_target


def _is_sidecar(path):
    try:
        meta = read_json(path)
    except (OSError, ValueError):
        return False
    return "gluon_cnns_version" in meta and "input_shape" in meta


def is_export_folder(folder):
    """Whether ``folder`` holds only what this package made: exports (PATH-symbol.json,
    PATH-0000.params, PATH.onnx and the sidecar PATH.json of an export whose sidecar is one
    of ours), their hidden staging folders (what an export makes first, or a killed one
    left), and marked run folders (an export beside the run it came from)."""
    names = os.listdir(folder)
    prefixes = {n[:-len(".json")] for n in names
                if n.endswith(".json") and _is_sidecar(os.path.join(folder, n))}
    files = {prefix + suffix for prefix in prefixes for suffix in SUFFIXES.values()}
    return all(n in files or (n.startswith(".") and ".export-" in n)
               or has_marker(os.path.join(folder, n)) for n in names)


def export_folder(path):
    """The folder that an export to ``path`` (a prefix, or a folder ending in /) writes into."""
    return os.path.dirname(export_target(path, "net"))


def claim_export_folder(path, what):
    """Check an export target ``path`` (not ``-``, a folder new, empty, holding only
    exports of ours, or marked) and make its folder; returns the folder. UsageError,
    or OSError when it cannot be made."""
    check_stream_target(path, what)
    folder = check_owned(export_folder(path), what, recognise=is_export_folder)
    os.makedirs(folder, exist_ok=True)
    return folder

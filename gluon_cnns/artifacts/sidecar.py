"""The export sidecar (``PATH.json``): read, and every field checked before use.

A program that has only the exported files learns from it how to feed the net:
the input shape and channels, the normalization it was trained with
(``ToTensor`` divides by 255, then optionally ``(x - mean) / std`` per channel),
the class names and, for nets trained on your own images, the evaluation crop
(``center_crop``). Its keys are listed in :mod:`gluon_cnns.inference.export`.
"""
import math
import os
import stat

import numpy as np

from ..errors import ExportError, error_line
from ..io import read_json
from .records import is_int
from .layout import (_STAGED_FILE, FILE_KINDS, MAX_SIDECAR_BYTES, SUFFIXES, export_paths,
                     export_prefix)

INPUT_NAME = "data"          # what HybridBlock.export calls the input
SIDECAR_VERSION = 1
PIXEL_SCALE = 255            # ToTensor: uint8 pixels / 255 -> [0, 1]
MAX_INPUT_SIDE = 4096


def read_export_meta(path):
    """The sidecar (a dict, see the module docstring) of the export with prefix ``path``.

    Every field a reader uses is checked for its type and range: a damaged or
    hand-edited sidecar raises one ExportError naming the field.
    """
    prefix = export_prefix(path)
    meta_file = export_paths(prefix)["meta"]
    try:
        info = os.stat(meta_file)
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read forever
            raise ValueError("not a regular file")
        if info.st_size > MAX_SIDECAR_BYTES:
            raise ValueError("%d bytes; a sidecar is a few kilobytes" % info.st_size)
        meta = read_json(meta_file)
    except FileNotFoundError:
        raise ExportError("%s: no such file; pass the prefix given to export_model (the path "
                          "without -symbol.json or .onnx)" % meta_file) from None
    except (OSError, ValueError) as err:
        raise ExportError("%s: unreadable export sidecar (%s)" % (meta_file, error_line(err))) \
            from None
    required = ("input_shape", "channels", "input_size", "normalization", "class_names")
    missing = [key for key in required if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ExportError("%s: not an export sidecar of gluon_cnns (missing %s)"
                          % (meta_file, ", ".join(missing)))
    problem = _sidecar_problem(meta)
    if problem:
        raise ExportError("%s: %s; export the net again, or correct the file"
                          % (meta_file, problem))
    return meta


def _positive_int(value, high=None):
    return is_int(value, 1, high)


def is_number(value):
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_number_list(value, lengths):
    """A list of ``len(value) in lengths`` finite numbers."""
    return isinstance(value, list) and len(value) in lengths and all(map(is_number, value))


def is_fraction(value):
    """A number in (0, 1]: what a center crop keeps of the shorter side."""
    return is_number(value) and 0 < value <= 1


def normalization_entry(normalization, channels):
    """The sidecar's normalization entry for ``None``, ``(mean, std)`` or ``{"mean", "std"}``;
    one mean and std per channel (a single value applies to every channel)."""
    if normalization is None:
        return {"divide_by": PIXEL_SCALE, "mean": None, "std": None}
    if isinstance(normalization, dict):
        mean, std = normalization.get("mean"), normalization.get("std")
        if mean is None and std is None:
            return {"divide_by": PIXEL_SCALE, "mean": None, "std": None}
    else:
        mean, std = normalization
    try:
        mean = [float(m) for m in np.broadcast_to(np.asarray(mean, dtype=float), (channels,))]
        std = [float(s) for s in np.broadcast_to(np.asarray(std, dtype=float), (channels,))]
    except (TypeError, ValueError):
        raise ExportError("normalization must give one mean and one std per channel (%d), "
                          "e.g. ((0.5,), (0.25,)); got %r" % (channels, normalization)) from None
    if min(std) <= 0:
        raise ExportError("normalization std must be positive, got %s" % std)
    return {"divide_by": PIXEL_SCALE, "mean": mean, "std": std}


def _sidecar_problem(meta):
    """What is wrong with the sidecar ``meta`` (a dict with the required keys), or None."""
    version = meta.get("format_version", SIDECAR_VERSION)
    if not _positive_int(version):
        return '"format_version" must be a positive integer, got %r' % (version,)
    if version > SIDECAR_VERSION:
        return ("it has format_version %d, newer than the %d this gluon_cnns reads; upgrade "
                "gluon_cnns" % (version, SIDECAR_VERSION))
    for key in ("net", "input_name"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            return '"%s" must be a non-empty string, got %r' % (key, meta[key])
    shape, size, channels = meta["input_shape"], meta["input_size"], meta["channels"]
    if not (isinstance(shape, list) and len(shape) == 4 and all(_positive_int(d) for d in shape)):
        return '"input_shape" must be [N, C, H, W] of positive integers, got %r' % (shape,)
    if not _positive_int(channels):
        return '"channels" must be a positive integer, got %r' % (channels,)
    if not (isinstance(size, list) and len(size) == 2
            and all(_positive_int(d, MAX_INPUT_SIDE) for d in size)):
        return ('"input_size" must be [height, width], integers in 1..%d, got %r'
                % (MAX_INPUT_SIDE, size))
    problem = (_normalization_problem(meta["normalization"], channels)
               or _center_crop_problem(meta.get("center_crop"), size))
    if problem:
        return problem
    names = meta["class_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return '"class_names" must be a non-empty list of strings, got %r' % (names,)
    return _files_problem(meta.get("files"))


def _normalization_problem(norm, channels):
    """What is wrong with a sidecar's "normalization" entry, or None."""
    expected = ('"normalization" must be {"divide_by": 255, "mean": null or one number per '
                'channel, "std": the same, positive}')
    if not isinstance(norm, dict):
        return "%s, got %r" % (expected, norm)
    if norm.get("divide_by", PIXEL_SCALE) != PIXEL_SCALE:
        return "%s; divide_by %r is not supported" % (expected, norm.get("divide_by"))
    mean, std = norm.get("mean"), norm.get("std")
    if mean is None and std is None:
        return None
    lengths = {1, channels}
    if not (is_number_list(mean, lengths) and is_number_list(std, lengths)
            and min(std) > 0):
        return "%s, got mean %r and std %r" % (expected, mean, std)
    return None


def _center_crop_problem(crop, size):
    """What is wrong with a sidecar's optional "center_crop" entry, or None."""
    if crop is None:
        return None
    if not is_fraction(crop):
        return '"center_crop" must be a number in (0, 1] (e.g. 0.875), got %r' % (crop,)
    if size[0] != size[1]:  # the crop is a square of the input's side
        return '"center_crop" needs a square "input_size", got %r' % (size,)
    return None


def _files_problem(files):
    """What is wrong with a sidecar's "files" entry (what its export consists of), or None."""
    if files is None:
        return None
    if not (isinstance(files, dict) and set(files) <= set(FILE_KINDS)
            and all(isinstance(v, str) for v in files.values())):
        return '"files" must map some of %s to file names, got %r' % (", ".join(FILE_KINDS),
                                                                      files)
    for kind, name in files.items():
        match = _STAGED_FILE.match(name)
        if ("/" in name or os.sep in name) and not (match and match.group(2) == SUFFIXES[kind]):
            return '"files" names %r for %s: not a file of this export' % (name, kind)
    return None

"""Use a trained net outside this package: MXNet symbol files, ONNX, and a JSON sidecar.

    export_model(net, "out/lenet", (1, 1, 28, 28), net_name="lenet")
    # -> out/lenet-symbol.json + out/lenet-0000.params   (gluon.SymbolBlock / MXNet Module)
    #    out/lenet.onnx                                  (onnxruntime, TensorRT, ...)
    #    out/lenet.json                                  (the sidecar: what the net expects)
    block = load_exported("out/lenet")    # a gluon.SymbolBlock; block.meta is the sidecar
    probs = mx.nd.softmax(block(x))

The sidecar tells a program that has only the exported files how to feed the
net: the input shape and channels, the normalization it was trained with
(``ToTensor`` divides by 255, then optionally ``(x - mean) / std`` per channel)
and the class names. Its keys (``format_version`` 1):

    net             name of the network, e.g. "lenet"
    input_name      name of the input in both formats ("data")
    input_shape     [N, C, H, W] the net was exported with; the batch size N is free
    channels        C; input_size: [H, W]
    normalization   {"divide_by": 255, "mean": [...] or null, "std": [...] or null}
    class_names     one name per output of the net
    files           {"symbol": ..., "params": ..., "onnx": ...}: the files written, by format
                    (bare names: PATH's own files; while an export is being published,
                    "<staging folder>/model-symbol.json", ...)
    onnx_opset, mxnet_version, gluon_cnns_version

A trained run of ``scripts/train.py --save-dir DIR`` is exported with
:func:`export_checkpoint`; :func:`load_checkpoint_net` rebuilds its net.

An export is published atomically as a whole. Its files are made in a hidden
staging folder beside the target (``.<name>.export-XXXX``), so a failing
export leaves an existing good one untouched; then the sidecar, which is the
export's pointer, is swapped (by a rename) for one naming the staged files;
then each file is renamed into its place, and last the sidecar is swapped for
one naming those. :func:`load_exported` and :func:`read_export_meta` follow
the sidecar, so a kill at any moment leaves either the previous export or the
new, complete one -- never a mix -- and the next export removes what a killed
one left behind. Nothing in an export is code: the sidecar is JSON and every
field of it is checked before use, the symbol is JSON and the parameters are
MXNet's array format (no pickle).
"""
import contextlib
import json
import math
import os
import re
import shutil
import stat
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX: exports are not guarded against concurrent writers
    fcntl = None

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..data.datasets import DATASETS, FASHION_MNIST_CLASSES, dataset_info
from ..errors import CheckpointError, DataError, ExportError, GluonCNNsError, error_line
from ..io import _current_umask, _fsync_folder, read_json
from ..models.base import as_pooling

__all__ = ["ExportError", "FORMATS", "export_model", "export_trained", "export_paths",
           "load_exported", "read_export_meta", "load_checkpoint_net", "checkpoint_meta",
           "export_checkpoint"]

FORMATS = ("symbol", "onnx")
INPUT_NAME = "data"          # what HybridBlock.export calls the input
SIDECAR_VERSION = 1
PIXEL_SCALE = 255            # ToTensor: uint8 pixels / 255 -> [0, 1]
# The files of an export with prefix PATH: PATH + suffix, by kind ("meta" is the sidecar).
SUFFIXES = {"symbol": "-symbol.json", "params": "-0000.params", "onnx": ".onnx",
            "meta": ".json"}
FILE_KINDS = ("symbol", "params", "onnx")
STAGED = "model"             # the files' prefix inside a staging folder
# What a sidecar may ask of a reader: a sane size and a sane input side.
MAX_SIDECAR_BYTES = 16 << 20
MAX_INPUT_SIDE = 4096


# ---------------------------------------------------------------- paths

def export_paths(path):
    """The files of the export with prefix ``path``: symbol, params, onnx and the sidecar (meta).

    These are where a published export's files are (``SymbolBlock.imports``
    takes the first two). Only while an export is being published -- or
    after a kill in the middle of it -- does the sidecar name the copies in
    its staging folder instead; :func:`load_exported` follows the sidecar.
    """
    return {kind: path + suffix for kind, suffix in SUFFIXES.items()}


def _export_target(path, net_name):
    """The absolute prefix ``export_model`` writes to; a folder (``dir/``, ``.``) gets the net's name."""
    path = os.fsdecode(os.fspath(path))
    if not path.strip():
        raise ExportError("the export path is empty; give a prefix such as exports/lenet "
                          "(or a folder ending in /, e.g. exports/)")
    if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        path = os.path.join(path, net_name.replace(os.sep, "_").replace("/", "_"))
    return os.path.abspath(path)


def _export_prefix(path):
    """The export prefix of ``path``, which may also name one of the export's files."""
    path = os.fspath(path)
    if os.path.exists(path + ".json"):
        return path
    for suffix in ("-symbol.json", "-0000.params", ".onnx", ".json"):
        if path.endswith(suffix) and os.path.exists(path[:-len(suffix)] + ".json"):
            return path[:-len(suffix)]
    return path


# ---------------------------------------------------------------- checking arguments

def _check_formats(formats):
    """``formats`` as a tuple of known format names, or ExportError."""
    if isinstance(formats, str):
        formats = formats.split(",")
    formats = tuple(f.strip() for f in formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError("unknown export format(s) %s; choose from %s"
                          % (", ".join(map(repr, unknown)) or "(none given)", ", ".join(FORMATS)))
    return tuple(dict.fromkeys(formats))  # drop repeats, keep the order


def _check_input_shape(input_shape):
    """An NCHW shape as a tuple of ints; a CHW shape gets batch size 1."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise ExportError("input_shape must be (N, C, H, W) or (C, H, W) with positive sizes, "
                          "e.g. (1, 1, 28, 28); got %s" % (tuple(input_shape),))
    return shape


def _check_normalization(normalization, channels):
    """The sidecar's normalization entry for ``None``, ``(mean, std)`` or ``{"mean", "std"}``."""
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


def _check_class_names(class_names, classes, net_name):
    """Class names as a list of strings, one per output of the net."""
    names = list(FASHION_MNIST_CLASSES if class_names is None else class_names)
    if len(names) != classes:
        raise ExportError("%s has %d outputs but %d class names were given; pass "
                          "class_names with one name per output" % (net_name, classes, len(names)))
    return [str(n) for n in names]


# ---------------------------------------------------------------- export

def _param_context(net):
    """The context of the net's parameters (the first one, if it lives on several)."""
    for param in net.collect_params().values():
        try:
            return param.list_ctx()[0]
        except RuntimeError:  # not initialized yet: the forward below says so clearly
            break
    return mx.cpu()


def _inference_forward(net, shape, net_name):
    """Run ``net`` once in inference mode on zeros of ``shape``; return the number of outputs.

    ``HybridBlock.export`` needs the graph that a hybridized forward builds.
    Inference mode (``train_mode=False``) matters for what the forward
    computes, not for the graph: BatchNorm and Dropout are exported as
    operators that run in inference mode wherever the graph is later used for
    prediction (running statistics, no dropout).
    """
    if not getattr(net, "_active", False):  # keep the user's hybridize flags if already set
        net.hybridize()
    x = mx.nd.zeros(shape, ctx=_param_context(net))
    try:
        with mx.autograd.pause(train_mode=False):
            out = net(x)
    except GluonCNNsError:
        raise  # e.g. InputTooSmallError, already one clear line
    except (RuntimeError, mx.base.MXNetError) as err:
        raise ExportError("cannot run %s on an input of shape %s (%s); initialize or load its "
                          "parameters first, and give the shape it was trained with"
                          % (net_name, shape, error_line(err))) from None
    if not isinstance(out, mx.nd.NDArray) or out.ndim != 2:
        raise ExportError("%s must return one (batch, classes) array to be exported" % net_name)
    return out.shape[1]


def _global_pooling_for_inference(symbol_file):
    """Rewrite the exported graph's GlobalAvgPool operators as the equal global Pooling.

    GlobalAvgPool is there for a faster training step (see models.base); for
    inference Pooling is as fast, ONNX has it (GlobalAveragePool), and so do
    oneDNN's fused and int8 graphs.
    """
    with open(symbol_file, encoding="utf-8") as f:
        graph = json.load(f)
    with open(symbol_file, "w", encoding="utf-8") as f:  # a staging file: no atomic write needed
        json.dump(as_pooling(graph), f)


def _onnx_modules():
    """``(onnx, mxnet.onnx)``, or ExportError saying what to install."""
    try:
        import onnx
        from mxnet import onnx as mx_onnx
        from onnx import mapping  # noqa: F401  (MXNet 1.9.1's exporter needs it)
    except ImportError as err:
        raise ExportError("ONNX export needs the onnx package that MXNet 1.9.1's exporter "
                          "works with: pip install 'gluon_cnns[onnx]' (onnx 1.14.1), or export "
                          "only the symbol format (%s)" % error_line(err)) from None
    return onnx, mx_onnx


def _export_onnx(symbol_file, params_file, onnx_file, shape, net_name, meta):
    """Convert the exported symbol + params to ONNX with MXNet's own exporter."""
    onnx, mx_onnx = _onnx_modules()
    try:
        # dynamic: the batch axis is left free, as in the symbol format.
        mx_onnx.export_model(symbol_file, params_file, [shape], np.float32, onnx_file,
                             dynamic=True, dynamic_input_shapes=[(None,) + shape[1:]])
        model = onnx.load(onnx_file)
        _drop_weight_inputs(model)
        # The sidecar inside the model too, for ONNX users who get only the .onnx file.
        onnx.helper.set_model_props(model, {"gluon_cnns.meta": json.dumps(meta, sort_keys=True)})
        onnx.checker.check_model(model)
        onnx.save(model, onnx_file)
    except Exception as err:  # the exporter raises anything (AttributeError for unknown ops...)
        raise ExportError("cannot export %s to ONNX: %s" % (net_name, error_line(err))) from None
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _drop_weight_inputs(model):
    """Remove the weights from the ONNX graph's inputs; they stay as initializers.

    MXNet's exporter lists every weight as a graph input as well (the style of
    ONNX IR < 4). onnxruntime then warns once per weight, cannot constant-fold
    them, and would let a caller replace the weights by feeding them as inputs.
    """
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)


# ---------------------------------------------------------------- publishing atomically

def _staging_pattern(base):
    """Names of the staging folders of exports to prefix ``base`` (this version's and older)."""
    return re.compile(r"^\.%s\.export-[A-Za-z0-9_]+$" % re.escape(base))


# A staged file as a sidecar names it: "<staging folder>/model<suffix>".
_STAGED_FILE = re.compile(r"^(\.[^/\\]+\.export-[A-Za-z0-9_]+)/%s(%s)$"
                          % (STAGED, "|".join(re.escape(SUFFIXES[k]) for k in FILE_KINDS)))


def _flock(path, exclusive, blocking=True):
    """A descriptor of ``path`` (a folder) holding a ``flock``, to be closed to release it.

    None where locking is unavailable (not POSIX, a file system without
    flock). A held lock raises BlockingIOError when not ``blocking``; a
    folder that cannot be opened raises OSError.
    """
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                    | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _folder_lock(folder, exclusive):
    """Hold ``folder``'s lock: exclusive while an export is published, shared while one is read.

    A reader so never sees the sidecar of one export with the files of
    another, even while an export is being published. Where the folder
    cannot be locked, readers and writers go on unguarded.
    """
    try:
        fd = _flock(folder, exclusive)
    except OSError:
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _named_staging(meta_file):
    """The staging folders that the sidecar ``meta_file`` names (an unfinished publication)."""
    try:
        if not os.path.isfile(meta_file) or os.path.getsize(meta_file) > MAX_SIDECAR_BYTES:
            return set()  # (a named pipe would block the read)
        files = read_json(meta_file).get("files") or {}
        return {m.group(1) for m in map(_STAGED_FILE.match, files.values()) if m}
    except Exception:  # no sidecar, a damaged one: it names nothing
        return set()


def _remove_stale(folder, base, keep=()):
    """Delete what killed exports to prefix ``base`` left in ``folder``.

    That is the staging folders that no export in progress holds (each export
    locks its own) and that are not in ``keep`` (the one the sidecar names),
    and the temporary files of older versions of this module.
    """
    staging = _staging_pattern(base)
    temporary = re.compile(r"^\.%s(%s)\.[^.]+\.tmp$"
                           % (re.escape(base), "|".join(map(re.escape, SUFFIXES.values()))))
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if staging.match(name) and name not in keep and not os.path.islink(path) \
                and os.path.isdir(path):
            try:
                fd = _flock(path, exclusive=True, blocking=False)
            except OSError:  # BlockingIOError: an export is using it
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                if fd is not None:
                    os.close(fd)
        elif temporary.match(name) and os.path.isfile(path):
            with contextlib.suppress(OSError):
                os.remove(path)


def _make_staging(folder, base):
    """``(path, lock)``: a new staging folder beside the target, locked against clean-ups."""
    staging = tempfile.mkdtemp(dir=folder, prefix=".%s.export-" % base)
    # mkdtemp makes it private; while the sidecar names it, readers of the export need it.
    os.chmod(staging, 0o777 & ~_current_umask())
    try:
        return staging, _flock(staging, exclusive=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _replace_json(staging, target, obj):
    """Write ``obj`` as JSON in the staging folder, to disk, then rename it onto ``target``."""
    tmp = os.path.join(staging, "sidecar.json")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _link_or_copy(source, link):
    """``link`` as a hard link to ``source`` (a copy where the file system has no links)."""
    try:
        os.link(source, link)
    except OSError:
        shutil.copyfile(source, link)
        _fsync_file(link)


def _publish(folder, base, staging, kinds, meta, progress):
    """Make the export staged in ``staging`` the export at ``folder/base``, atomically as a whole.

    1. the sidecar is replaced by one that names the staged files (the
       commit: from here on, readers get the new export, complete);
    2. each file is linked into its final name by a rename, and files of the
       previous export's other formats are removed;
    3. the sidecar is replaced by one that names the final files.

    ``progress["committed"]`` is set after step 1: from then on the staging
    folder must stay until the publication ends (or the next export).
    """
    final = export_paths(os.path.join(folder, base))
    staged = export_paths(os.path.join(staging, STAGED))
    for kind in kinds + ["meta"]:
        if os.path.isdir(final[kind]):
            raise ExportError("%s is a folder; choose another export path" % final[kind])
    for kind in kinds:  # on disk before the sidecar names them
        _fsync_file(staged[kind])
    _fsync_folder(staging)
    name = os.path.basename(staging)
    with _folder_lock(folder, exclusive=True):
        _replace_json(staging, final["meta"],
                      dict(meta, files={k: "%s/%s%s" % (name, STAGED, SUFFIXES[k]) for k in kinds}))
        progress["committed"] = True
        for kind in kinds:
            link = os.path.join(staging, "publish" + SUFFIXES[kind])
            _link_or_copy(staged[kind], link)
            os.replace(link, final[kind])
        for kind in FILE_KINDS:
            if kind not in kinds and os.path.isfile(final[kind]):
                os.remove(final[kind])  # the previous export's: no sidecar names it now
        _replace_json(staging, final["meta"],
                      dict(meta, files={k: os.path.basename(final[k]) for k in kinds}))
        progress["done"] = True
        _fsync_folder(folder)
        _remove_stale(folder, base)  # e.g. the staging folder of an export killed after step 1


def export_model(net, path, input_shape, formats=FORMATS, net_name=None, class_names=None,
                 normalization=None):
    """Export a trained Gluon ``net`` to the files of prefix ``path``; return their paths.

    ``input_shape`` is (N, C, H, W) or (C, H, W): the size the net was trained
    on (the batch size is free in the exported files). ``formats`` is any of
    ``"symbol"`` (``<path>-symbol.json`` + ``<path>-0000.params``) and
    ``"onnx"`` (``<path>.onnx``); the sidecar ``<path>.json`` is always written.
    ``net_name`` defaults to the net's class name, ``class_names`` to
    Fashion-MNIST's, and ``normalization`` (``(mean, std)`` per channel,
    applied after dividing by 255) to none.

    The net is hybridized if it is not already. A net that ONNX cannot
    represent raises :class:`ExportError` naming the net and the reason; so
    does any other failure, and then no file at ``path`` has changed.
    Returns ``{"symbol": ..., "params": ..., "onnx": ..., "meta": ...}`` for
    the files written.
    """
    if not isinstance(net, gluon.HybridBlock):
        raise ExportError("only HybridBlocks can be exported, got a %s" % type(net).__name__)
    formats = _check_formats(formats)
    shape = _check_input_shape(input_shape)
    net_name = str(net_name or type(net).__name__)
    classes = _inference_forward(net, shape, net_name)
    meta = {"format_version": SIDECAR_VERSION, "net": net_name, "input_name": INPUT_NAME,
            "input_shape": list(shape), "channels": shape[1], "input_size": list(shape[2:]),
            "normalization": _check_normalization(normalization, shape[1]),
            "class_names": _check_class_names(class_names, classes, net_name),
            "mxnet_version": mx.__version__, "gluon_cnns_version": _package_version()}

    path = _export_target(path, net_name)
    folder, base = os.path.split(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ExportError("cannot create the export folder %s: %s" % (folder, err.strerror or err))
    final = export_paths(path)
    # What killed exports left, except the staging folder the sidecar may still name.
    _remove_stale(folder, base, keep=_named_staging(final["meta"]))
    # Make everything in a hidden folder beside the target, on the same file system,
    # so that the renames below are atomic and a failure touches nothing at `path`.
    staging, lock = _make_staging(folder, base)
    progress = {"committed": False, "done": False}
    try:
        staged = export_paths(os.path.join(staging, STAGED))
        net.export(os.path.join(staging, STAGED), epoch=0)  # the ONNX exporter reads these
        _global_pooling_for_inference(staged["symbol"])
        if "onnx" in formats:
            meta["onnx_opset"] = _export_onnx(staged["symbol"], staged["params"], staged["onnx"],
                                              shape, net_name, meta)
        kinds = (["symbol", "params"] if "symbol" in formats else []) + \
                (["onnx"] if "onnx" in formats else [])
        _publish(folder, base, staging, kinds, meta, progress)
    finally:
        # Interrupted after the commit, the sidecar names the staged files: they stay
        # (a complete export) until the next export to this path replaces them.
        if progress["done"] or not progress["committed"]:
            shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            os.close(lock)
    return {kind: final[kind] for kind in kinds + ["meta"]}


def _package_version():
    from .. import __version__
    return __version__


# ---------------------------------------------------------------- loading an export

def read_export_meta(path):
    """The sidecar (a dict, see the module docstring) of the export with prefix ``path``.

    Every field a reader uses is checked for its type and range: a damaged or
    hand-edited sidecar raises one ExportError naming the field.
    """
    prefix = _export_prefix(path)
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


def _is_int(value, low=1, high=None):
    """An int (not a bool) in low..high."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _is_number_list(value, lengths):
    return (isinstance(value, list) and len(value) in lengths
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value))


def _sidecar_problem(meta):
    """What is wrong with the sidecar ``meta`` (a dict with the required keys), or None."""
    version = meta.get("format_version", SIDECAR_VERSION)
    if not _is_int(version):
        return '"format_version" must be a positive integer, got %r' % (version,)
    if version > SIDECAR_VERSION:
        return ("it has format_version %d, newer than the %d this gluon_cnns reads; upgrade "
                "gluon_cnns" % (version, SIDECAR_VERSION))
    for key in ("net", "input_name"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            return '"%s" must be a non-empty string, got %r' % (key, meta[key])
    shape, size, channels = meta["input_shape"], meta["input_size"], meta["channels"]
    if not (isinstance(shape, list) and len(shape) == 4 and all(_is_int(d) for d in shape)):
        return '"input_shape" must be [N, C, H, W] of positive integers, got %r' % (shape,)
    if not _is_int(channels):
        return '"channels" must be a positive integer, got %r' % (channels,)
    if not (isinstance(size, list) and len(size) == 2
            and all(_is_int(d, high=MAX_INPUT_SIDE) for d in size)):
        return ('"input_size" must be [height, width], integers in 1..%d, got %r'
                % (MAX_INPUT_SIDE, size))
    problem = _normalization_problem(meta["normalization"], channels)
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
    if not (_is_number_list(mean, lengths) and _is_number_list(std, lengths)
            and min(std) > 0):
        return "%s, got mean %r and std %r" % (expected, mean, std)
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


def _export_files(prefix, meta):
    """``{kind: path}`` of the files of the export, as its sidecar lists them.

    A file listed by its bare name is the prefix's own (``PATH-symbol.json``,
    ...), whatever the name recorded: an export may be renamed. A file listed
    in a staging folder is that copy (a publication in progress, or killed).
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    flat = export_paths(prefix)
    files = meta.get("files")
    if files is None:  # written by hand: every format, at the prefix
        return {kind: flat[kind] for kind in FILE_KINDS}
    return {kind: os.path.join(folder, *name.split("/")) if "/" in name else flat[kind]
            for kind, name in files.items()}


def _symbol_block(symbol_file, input_name, params_file, ctx):
    """``SymbolBlock.imports`` with a float32 input.

    ``imports`` declares the input without a type when it also loads
    parameters, and then warns "Cannot decide type for the following
    arguments" on every load; the exported nets all take float32.
    """
    inputs = mx.sym.var(input_name, dtype="float32")
    block = gluon.SymbolBlock(mx.sym.load(symbol_file), inputs)
    block.collect_params().load(params_file, ctx, cast_dtype=True, dtype_source="saved")
    return block


def load_exported(path, ctx=None):
    """Load the export with prefix ``path`` as a ``gluon.SymbolBlock`` on ``ctx`` (default CPU).

    The block computes what the exported net computed (logits); its ``.meta``
    attribute is the sidecar dict: input shape, normalization, class names.
    ``path`` may also be one of the export's files (``<path>.json``, ...).
    """
    prefix = _export_prefix(path)
    # Shared: an export being published meanwhile waits, so the sidecar and the files
    # read are of one export.
    with _folder_lock(os.path.dirname(os.path.abspath(prefix)), exclusive=False):
        meta = read_export_meta(prefix)
        files = _export_files(prefix, meta)
        missing = [files.get(k, export_paths(prefix)[k]) for k in ("symbol", "params")
                   if not (k in files and os.path.isfile(files[k]))]
        if missing:
            raise ExportError("%s: no such file; this export has no symbol format (re-export "
                              "with formats including 'symbol', or run the .onnx with "
                              "onnxruntime)" % missing[0])
        try:
            block = _symbol_block(files["symbol"], meta.get("input_name", INPUT_NAME),
                                  files["params"], ctx or mx.cpu())
        except Exception as err:  # MXNetError, AssertionError, ...: all mean "damaged files"
            raise ExportError("cannot load the export %s (%s); export it again"
                              % (prefix, error_line(err))) from None
    block.meta = meta
    return block


# ---------------------------------------------------------------- training checkpoints

def load_checkpoint_net(save_dir, ctx=None):
    """Rebuild the net of a training run's ``--save-dir``: returns ``(net, config)``.

    The net is built with ``get_model(config["net"])`` and gets ``best.params``
    (or the newest ``epoch-NNNN.params``) on ``ctx`` (default CPU); ``config``
    is the run's ``config.json`` as a dict.
    """
    from ..models import get_model
    from ..training.rundir import RunDir
    run_dir = RunDir(save_dir)
    try:
        config, params = run_dir.read_config(), run_dir.trained_params()
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    classes = config.get("classes", 10)
    if not _is_int(classes):
        raise ExportError('%s: "classes" must be a positive integer, got %r; correct the file'
                          % (run_dir.file("config.json"), classes))
    net = get_model(config["net"], classes=classes)
    try:
        net.load_parameters(params, ctx=ctx or mx.cpu())
    except Exception as err:  # MXNetError, AssertionError: damaged or from another net
        raise ExportError("cannot load %s into %s (%s)"
                          % (params, config["net"], error_line(err))) from None
    return net, config


def checkpoint_meta(config):
    """What a run's config.json says about the net's input, as in an export sidecar.

    Keys: net, dataset, input_shape, channels, input_size, normalization, class_names.
    """
    dataset, resize = config.get("dataset") or "fashion-mnist", config.get("resize")
    try:
        info = dataset_info(dataset if isinstance(dataset, str) else repr(dataset))
    except DataError:
        raise ExportError("the run's config.json names dataset %r; known: %s"
                          % (config.get("dataset"), ", ".join(DATASETS))) from None
    if resize is not None and not _is_int(resize, high=MAX_INPUT_SIDE):
        raise ExportError('the run\'s config.json has "resize": %r; it must be null or a side '
                          'in pixels, 1..%d (e.g. 224); correct the file'
                          % (resize, MAX_INPUT_SIDE))
    channels, side, _ = info.image_shape(resize)
    norm = None if info.mean is None else (info.mean, info.std)
    return {"net": config["net"], "dataset": info.name, "input_name": INPUT_NAME,
            "input_shape": [1, channels, side, side], "channels": channels,
            "input_size": [side, side], "normalization": _check_normalization(norm, channels),
            "class_names": list(info.class_names)}


def export_checkpoint(save_dir, path, formats=FORMATS, ctx=None):
    """Export the net of a training run's ``--save-dir`` to prefix ``path`` (see export_model)."""
    net, config = load_checkpoint_net(save_dir, ctx)
    return export_trained(net, config, path, formats)


def export_trained(net, config, path, formats=FORMATS):
    """Export a trained ``net`` with the input size, normalization and class names that its
    run's settings ``config`` (net, dataset, resize: as in config.json) imply."""
    meta = checkpoint_meta(config)
    norm = meta["normalization"]
    return export_model(net, path, meta["input_shape"], formats, net_name=meta["net"],
                        class_names=meta["class_names"],
                        normalization=None if norm["mean"] is None else (norm["mean"], norm["std"]))

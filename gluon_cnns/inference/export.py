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
    center_crop     (only for nets trained on your own images) the evaluation crop: the
                    shorter side is scaled to side / center_crop and the centre side x side
                    cut out (gluon_cnns.data.transforms.eval_pixels); without it, an image
                    is resized to input_size
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
import json
import os
import shutil

try:
    import fcntl
except ImportError:  # not POSIX: exports are not guarded against concurrent writers
    fcntl = None

import mxnet as mx
import numpy as np
from mxnet import gluon

from .._version import __version__
from ..artifacts.layout import (STAGED, export_files, export_paths, export_prefix,
                                export_target, folder_lock, make_staging, named_staging,
                                publish, remove_stale)
from ..artifacts.run_meta import checkpoint_meta
from ..artifacts.sidecar import (INPUT_NAME, SIDECAR_VERSION, is_fraction, normalization_entry,
                                 read_export_meta)
from ..artifacts.source import load_checkpoint_net
from ..data.datasets import FASHION_MNIST_CLASSES
from ..errors import ExportError, GluonCNNsError, error_line
from ..io import read_json
from ..models.base import as_pooling, param_contexts

__all__ = ["ExportError", "FORMATS", "export_model", "export_trained", "export_paths",
           "load_exported", "read_export_meta", "load_checkpoint_net", "checkpoint_meta",
           "export_checkpoint"]

FORMATS = ("symbol", "onnx")


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


def _check_center_crop(center_crop, shape):
    """``center_crop`` as a float in (0, 1], or None."""
    if center_crop is None:
        return None
    if not is_fraction(center_crop):
        raise ExportError("center_crop must be a fraction in (0, 1] (e.g. 0.875) or None, "
                          "got %r" % (center_crop,))
    if shape[2] != shape[3]:
        raise ExportError("center_crop needs a square input (H == W), got input_shape %s"
                          % (shape,))
    return float(center_crop)


def _check_class_names(class_names, classes, net_name):
    """Class names as a list of strings, one per output of the net."""
    names = list(FASHION_MNIST_CLASSES if class_names is None else class_names)
    if len(names) != classes:
        raise ExportError("%s has %d outputs but %d class names were given; pass "
                          "class_names with one name per output" % (net_name, classes, len(names)))
    return [str(n) for n in names]


# ---------------------------------------------------------------- export

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
    x = mx.nd.zeros(shape, ctx=param_contexts(net)[0])
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
    graph = read_json(symbol_file)
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


def export_model(net, path, input_shape, formats=FORMATS, net_name=None, class_names=None,
                 normalization=None, center_crop=None):
    """Export a trained Gluon ``net`` to the files of prefix ``path``; return their paths.

    ``input_shape`` is (N, C, H, W) or (C, H, W): the size the net was trained
    on (the batch size is free in the exported files). ``formats`` is any of
    ``"symbol"`` (``<path>-symbol.json`` + ``<path>-0000.params``) and
    ``"onnx"`` (``<path>.onnx``); the sidecar ``<path>.json`` is always written.
    ``net_name`` defaults to the net's class name, ``class_names`` to
    Fashion-MNIST's, and ``normalization`` (``(mean, std)`` per channel,
    applied after dividing by 255) to none; ``center_crop`` (a fraction in
    (0, 1]), the training's evaluation crop (see the sidecar's keys), to none.

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
    center_crop = _check_center_crop(center_crop, shape)
    net_name = str(net_name or type(net).__name__)
    classes = _inference_forward(net, shape, net_name)
    meta = _sidecar(shape, net_name, _check_class_names(class_names, classes, net_name),
                    normalization, center_crop)

    path = export_target(path, net_name)
    folder, base = os.path.split(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ExportError("cannot create the export folder %s: %s" % (folder, err.strerror or err))
    final = export_paths(path)
    # What killed exports left, except the staging folder the sidecar may still name.
    remove_stale(folder, base, keep=named_staging(final["meta"]))
    # Make everything in a hidden folder beside the target, on the same file system,
    # so that the renames below are atomic and a failure touches nothing at `path`.
    staging, lock = make_staging(folder, base)
    progress = {"committed": False, "done": False}
    try:
        staged = export_paths(os.path.join(staging, STAGED))
        try:
            net.export(os.path.join(staging, STAGED), epoch=0)  # the ONNX exporter reads these
        except mx.base.MXNetError as err:  # a full disk, a file-size limit
            raise ExportError("cannot write the symbol and parameters of %s (%s)"
                              % (path, error_line(err))) from None
        _global_pooling_for_inference(staged["symbol"])
        if "onnx" in formats:
            meta["onnx_opset"] = _export_onnx(staged["symbol"], staged["params"], staged["onnx"],
                                              shape, net_name, meta)
        kinds = (["symbol", "params"] if "symbol" in formats else []) + \
                (["onnx"] if "onnx" in formats else [])
        publish(folder, base, staging, kinds, meta, progress)
    finally:
        # Interrupted after the commit, the sidecar names the staged files: they stay
        # (a complete export) until the next export to this path replaces them.
        if progress["done"] or not progress["committed"]:
            shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            os.close(lock)
    return {kind: final[kind] for kind in kinds + ["meta"]}


def _sidecar(shape, net_name, class_names, normalization, center_crop):
    """The export's sidecar, but for the "files" that publishing adds."""
    meta = {"format_version": SIDECAR_VERSION, "net": net_name, "input_name": INPUT_NAME,
            "input_shape": list(shape), "channels": shape[1], "input_size": list(shape[2:]),
            "normalization": normalization_entry(normalization, shape[1]),
            "class_names": class_names,
            "mxnet_version": mx.__version__, "gluon_cnns_version": __version__}
    if center_crop is not None:
        meta["center_crop"] = center_crop
    return meta


# ---------------------------------------------------------------- loading an export

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
    prefix = export_prefix(path)
    # Shared: an export being published meanwhile waits, so the sidecar and the files
    # read are of one export.
    with folder_lock(os.path.dirname(os.path.abspath(prefix)), exclusive=False):
        meta = read_export_meta(prefix)
        files = export_files(prefix, meta)
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

def export_checkpoint(save_dir, path, formats=FORMATS, ctx=None):
    """Export the net of a training run's ``--save-dir`` to prefix ``path`` (see export_model)."""
    net, config = load_checkpoint_net(save_dir, ctx)
    return export_trained(net, config, path, formats)


def export_trained(net, config, path, formats=FORMATS):
    """Export a trained ``net`` with the input size, normalization, class names and center
    crop that its run's settings ``config`` (as in config.json) imply."""
    meta = checkpoint_meta(config)
    norm = meta["normalization"]
    return export_model(net, path, meta["input_shape"], formats, net_name=meta["net"],
                        class_names=meta["class_names"],
                        normalization=None if norm["mean"] is None else (norm["mean"], norm["std"]),
                        center_crop=meta.get("center_crop"))

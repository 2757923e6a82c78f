"""Reading a trained net back from what a run left: its run folder or an export.

:func:`load_checkpoint_net` rebuilds the net of a training run's ``--save-dir``
(its best.params, or the newest epoch's). :func:`read_source` reads the source
of a fine-tuning run (``--finetune``): a run folder or an export prefix, as the
trained net, its input as an export sidecar describes it, and the record that
config.json keeps of it. What fine-tuning then does with the net is
:mod:`gluon_cnns.training.finetune`'s.
"""
import os

from ..errors import CheckpointError, ExportError, GluonCNNsError, UsageError, error_line
from .records import is_int
from .layout import export_files, export_prefix
from .run_meta import checkpoint_meta
from .rundir import RunDir
from .sidecar import read_export_meta
from .state import sha256_file


def _is_run(path):
    return os.path.isdir(path) and RunDir(path).has_config()


def source_net_name(path):
    """The net of the fine-tuning source ``path``, or None when it cannot be read (yet)."""
    try:
        if _is_run(path):
            return RunDir(path).read_config()["net"]
        return read_export_meta(path).get("net")
    except (GluonCNNsError, OSError, KeyError):
        return None  # read_source says what is wrong, in its own words


def _load_export(path):
    """``(net, meta, params file)`` of an export: the zoo net rebuilt, its weights loaded."""
    from ..models import get_model
    prefix = export_prefix(path)
    meta = read_export_meta(prefix)
    if "net" not in meta:
        raise UsageError("--finetune %s: the export does not name its net (exported by "
                         "export_model without net_name); fine-tune from its training run"
                         % path)
    params = export_files(prefix, meta).get("params")
    if not params or not os.path.isfile(params):
        raise UsageError("--finetune %s: the export has no parameter file (%s); export the "
                         "net again with the symbol format" % (path, params or "none listed"))
    classes = len(meta["class_names"])
    net = get_model(meta["net"], classes=classes)
    try:
        net.load_parameters(params)
    except Exception as err:  # MXNetError, OSError, AssertionError: not this net's weights
        raise UsageError("--finetune %s: %s does not hold the weights of a %s with %d classes "
                         "(the sidecar's class_names); export the net again (%s)"
                         % (path, params, meta["net"], classes, error_line(err)[:120])) from None
    return net, meta, params


def load_checkpoint_net(save_dir, ctx=None):
    """Rebuild the net of a training run's ``--save-dir``: returns ``(net, config)``.

    The net is built with ``get_model(config["net"])`` and gets ``best.params`` (or the
    newest ``epoch-NNNN.params``; with ``--ema``, its ``.ema.params`` average) on ``ctx``
    (default CPU); ``config`` is the run's ``config.json`` as a dict.
    """
    import mxnet as mx
    from ..models import get_model
    run_dir = RunDir(save_dir)
    try:
        config, params = run_dir.read_config(), run_dir.trained_params()
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    classes = config.get("classes", 10)
    if not is_int(classes, 1):
        raise ExportError('%s: "classes" must be a positive integer, got %r; correct the file'
                          % (run_dir.file("config.json"), classes))
    net = get_model(config["net"], classes=classes)
    try:
        net.load_parameters(params, ctx=ctx or mx.cpu())
    except Exception as err:  # MXNetError, AssertionError: damaged or from another net
        raise ExportError("cannot load %s into %s (%s)"
                          % (params, config["net"], error_line(err))) from None
    return net, config


def read_source(path):
    """``(net, meta, record)`` of the source: the trained net (on the CPU), its input as an
    export sidecar describes it, and what config.json keeps of where the run started."""
    if not os.path.exists(path) and not os.path.exists(path + ".json"):
        raise UsageError("--finetune %s: no such run folder or export; pass a training run's "
                         "--save-dir or an export prefix" % path)
    try:
        if _is_run(path):
            net, config = load_checkpoint_net(path)
            meta, kind = checkpoint_meta(config), "run"
            params = RunDir(path).trained_params()
        else:
            (net, meta, params), kind = _load_export(path), "export"
    except UsageError:
        raise
    except GluonCNNsError as err:
        raise UsageError("--finetune %s: %s" % (path, error_line(err))) from None
    record = {"from": os.path.abspath(path), "kind": kind, "net": meta["net"],
              "params": os.path.abspath(params), "params_sha256": sha256_file(params),
              "class_names": list(meta["class_names"])}
    return net, meta, record

"""Fine-tuning: a new run that starts from a trained net's features.

The source is a training run's ``--save-dir`` (its best.params) or an export
prefix. The new net is the same architecture built for the new data's classes:
every parameter of its ``features`` (all blocks before the classifier, see
:class:`~gluon_cnns.models.base.ClassicNet`) is copied from the source, in
order and checked by shape; its classifier keeps its fresh initialization --
the recipe of d2l's fine-tuning section (MXNet edition, 13.2: "the output layer
... is randomly initialized"). With ``freeze`` only the classifier trains:
the features get no gradients and their BatchNorm layers use their running
statistics (``use_global_stats``), so the features are a fixed function and
stay bit-identical.
"""
import os

from ..errors import GluonCNNsError, UsageError, error_line
from .state import sha256_file


def _is_run(path):
    from .rundir import RunDir
    return os.path.isdir(path) and RunDir(path).has_config()


def source_net_name(path):
    """The net of the fine-tuning source ``path``, or None when it cannot be read (yet)."""
    try:
        if _is_run(path):
            from .rundir import RunDir
            return RunDir(path).read_config()["net"]
        from ..inference.sidecar import read_export_meta
        return read_export_meta(path).get("net")
    except (GluonCNNsError, OSError, KeyError):
        return None  # read_source says what is wrong, in its own words


def _load_export(path):
    """``(net, meta, params file)`` of an export: the zoo net rebuilt, its weights loaded."""
    from ..inference.layout import export_files, export_prefix
    from ..inference.sidecar import read_export_meta
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


def read_source(path):
    """``(net, meta, record)`` of the source: the trained net (on the CPU), its input as an
    export sidecar describes it, and what config.json keeps of where the run started."""
    from ..inference.export import checkpoint_meta, load_checkpoint_net
    if not os.path.exists(path) and not os.path.exists(path + ".json"):
        raise UsageError("--finetune %s: no such run folder or export; pass a training run's "
                         "--save-dir or an export prefix" % path)
    try:
        if _is_run(path):
            from .rundir import RunDir
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


def transfer_features(source, net, sample_shape, ctxs):
    """Copy ``source.features``' parameters into ``net.features`` (same architecture)."""
    import mxnet as mx
    with mx.autograd.pause():  # materialize the deferred shapes of the new net
        net(mx.nd.zeros(sample_shape, ctx=ctxs[0]))
    theirs = list(source.features.collect_params().values())
    ours = list(net.features.collect_params().values())
    if len(theirs) != len(ours):
        raise UsageError("the --finetune net has %d feature parameters, this one %d: not the "
                         "same architecture" % (len(theirs), len(ours)))
    for mine, src in zip(ours, theirs):
        if mine.shape != src.shape:
            raise UsageError("--finetune: the source's %s has shape %s, this net's %s; train "
                             "at the source's input size and channels (--resize, --channels)"
                             % (src.name, src.shape, mine.shape))
        mine.set_data(src.data())


def freeze_features(net):
    """Train only the classifier: no gradients for the features, and their BatchNorm layers
    normalize with the source's running statistics instead of updating them (before
    hybridizing: the flag is read when the graph is built)."""
    from mxnet.gluon import nn
    for param in net.features.collect_params().values():
        param.grad_req = "null"

    def use_global_stats(block):
        if isinstance(block, nn.BatchNorm):
            block._kwargs["use_global_stats"] = True
    net.features.apply(use_global_stats)

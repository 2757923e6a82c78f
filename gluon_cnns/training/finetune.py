"""Fine-tuning: a new run that starts from a trained net's features.

The source is a training run's ``--save-dir`` (its best.params) or an export
prefix, read by :func:`gluon_cnns.artifacts.source.read_source`. The new net is
the same architecture built for the new data's classes: every parameter of its
``features`` (all blocks before the classifier, see
:class:`~gluon_cnns.models.base.ClassicNet`) is copied from the source, in
order and checked by shape; its classifier keeps its fresh initialization --
the recipe of d2l's fine-tuning section (MXNet edition, 13.2: "the output layer
... is randomly initialized"). With ``freeze`` only the classifier trains:
the features get no gradients and their BatchNorm layers use their running
statistics (``use_global_stats``), so the features are a fixed function and
stay bit-identical.
"""
from ..errors import UsageError


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

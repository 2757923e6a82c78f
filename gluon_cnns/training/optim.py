"""The optimizer and learning-rate schedule a run's settings describe.

The schedules are GluonCV's (``LRScheduler``, chained by ``LRSequential`` for a
warm-up), given to the optimizer, which calls them with the number of the
update it is about to make -- counted from 1, as MXNet's optimizers count.
"""
from ..gluoncv_import import import_gluoncv
from .cluster import Cluster


def _gluoncv_schedulers():
    return import_gluoncv("gluoncv.utils.lr_scheduler")


def make_lr_scheduler(settings, batches_per_epoch):
    """The schedule for the settings, or None for a constant rate.

    ``step`` multiplies the rate by ``lr_factor`` after each epoch in ``lr_steps``
    (update ``e * batches_per_epoch + 1`` is the first at the lower rate, as MXNet's
    ``MultiFactorScheduler`` has it) or after each number of updates in
    ``lr_step_iters``; ``cosine`` decays it to 0 over all ``epochs`` (at update u,
    ``lr (1 + cos(pi u / total)) / 2``). A warm-up comes first (GluonCV's
    ``LRSequential``): ``warmup_iters`` updates at ``warmup_lr``, or the W updates of
    ``warmup_epochs``, update u of them at ``lr u / W`` (linear from 0, Goyal et al.
    2017 sec. 2.2); the main schedule then starts at ``lr`` and the steps keep their
    update numbers.
    """
    gcv = _gluoncv_schedulers()
    lr, schedule = settings["lr"], settings["lr_schedule"]
    total = settings["epochs"] * batches_per_epoch
    linear = (settings.get("warmup_epochs") or 0) * batches_per_epoch
    warmup = linear or settings.get("warmup_iters") or 0
    offset = warmup + 1 if warmup else 0  # LRSequential counts the main schedule from here
    if schedule == "step":
        firsts = ([i + 1 for i in settings.get("lr_step_iters") or ()] or
                  [e * batches_per_epoch + 1 for e in settings["lr_steps"]])
        main = gcv.LRScheduler("step", base_lr=lr, niters=total - offset + 1,
                               step_iter=[u - offset for u in firsts],
                               step_factor=settings["lr_factor"])
    elif schedule == "cosine":
        main = gcv.LRScheduler("cosine", base_lr=lr, target_lr=0, niters=total - offset + 1)
    elif warmup:
        main = gcv.LRScheduler("constant", base_lr=lr, niters=total - offset + 1)
    else:
        return None
    if not warmup:
        return main
    if linear:  # update u in 0..W: lr u / W
        first = gcv.LRScheduler("linear", base_lr=0.0, target_lr=lr, niters=offset)
    else:
        first = gcv.LRScheduler("constant", base_lr=settings["warmup_lr"], niters=offset)
    sequence = gcv.LRSequential([first, main])
    # Unused by the sequence; MXNet's Optimizer prints "learning rate from lr_scheduler has
    # been overwritten" when it differs from --lr, which the schedule is not.
    sequence.base_lr = lr
    return sequence


def make_trainer(net, settings, batches_per_epoch, cluster=None):
    """The gluon.Trainer the settings describe.

    It sums gradients with a ``device`` kvstore over several contexts, or with
    the distributed kvstore of ``cluster`` (see ``training.distributed``).
    """
    if settings.get("no_wd"):
        from .tricks import no_weight_decay
        no_weight_decay(net)
    params = {"learning_rate": settings["lr"], "wd": settings["wd"]}
    if settings["optimizer"] in ("sgd", "nag"):
        params["momentum"] = settings["momentum"]
    cluster = cluster or Cluster()
    # The schedule counts optimizer updates: with dist_async every worker's push is one.
    scheduler = make_lr_scheduler(settings, batches_per_epoch * cluster.updates_per_batch)
    if scheduler is not None:
        params["lr_scheduler"] = scheduler
    trainer = cluster.trainer(net.collect_params(), settings["optimizer"], params)
    if settings.get("no_wd"):
        from .tricks import copy_wd_mult
        copy_wd_mult(trainer)
    return trainer

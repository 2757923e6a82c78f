"""The optimizer and learning-rate schedule a run's settings describe.

The schedules are GluonCV's (``LRScheduler``, chained by ``LRSequential`` for a
warm-up), given to the optimizer, which calls them with the number of the
update it is about to make -- counted from 1, as MXNet's optimizers count.
"""
from ..gluoncv_import import import_gluoncv
from .distributed import Cluster


def _gluoncv_schedulers():
    return import_gluoncv("gluoncv.utils.lr_scheduler")


def _step_schedule(base_lr, first_updates, factor, total):
    """``base_lr``, times ``factor`` from each update number in ``first_updates`` on."""
    LRScheduler = _gluoncv_schedulers().LRScheduler
    return LRScheduler("step", base_lr=base_lr, niters=total + 1, step_iter=list(first_updates),
                       step_factor=factor)


def make_lr_scheduler(settings, batches_per_epoch):
    """The schedule for the settings, or None for a constant rate.

    ``step`` multiplies the rate by ``lr_factor`` after each epoch in
    ``lr_steps`` (update ``e * batches_per_epoch + 1`` is the first at the lower
    rate, as MXNet's ``MultiFactorScheduler`` has it); ``cosine`` decays it to 0
    over all ``epochs`` (at update u, ``lr (1 + cos(pi u / total)) / 2``).
    """
    LRScheduler = _gluoncv_schedulers().LRScheduler
    lr, schedule = settings["lr"], settings["lr_schedule"]
    total = settings["epochs"] * batches_per_epoch
    if schedule == "step":
        return _step_schedule(lr, [e * batches_per_epoch + 1 for e in settings["lr_steps"]],
                              settings["lr_factor"], total)
    if schedule == "cosine":
        return LRScheduler("cosine", base_lr=lr, target_lr=0, niters=total + 1)
    return None


def make_trainer(net, settings, batches_per_epoch, cluster=None):
    """The gluon.Trainer the settings describe.

    It sums gradients with a ``device`` kvstore over several contexts, or with
    the distributed kvstore of ``cluster`` (see ``training.distributed``).
    """
    params = {"learning_rate": settings["lr"], "wd": settings["wd"]}
    if settings["optimizer"] in ("sgd", "nag"):
        params["momentum"] = settings["momentum"]
    cluster = cluster or Cluster()
    # The schedule counts optimizer updates: with dist_async every worker's push is one.
    scheduler = make_lr_scheduler(settings, batches_per_epoch * cluster.updates_per_batch)
    if scheduler is not None:
        params["lr_scheduler"] = scheduler
    return cluster.trainer(net.collect_params(), settings["optimizer"], params)

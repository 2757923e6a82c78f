"""Training: the d2l-facing loop (``train``, ``evaluate_accuracy``), the engine below it,
devices, the optimizer and schedule, the run folder, checkpoints and distributed jobs.

Importing this package does not import MXNet; its parts do, when first used.
"""
from .._lazy import lazy_exports

_LAZY = {"train": ".loop", "train_ch5": ".loop", "evaluate_accuracy": ".loop", "try_gpu": ".devices",
         "try_all_gpus": ".devices", "training_contexts": ".devices", "RunDir": "..artifacts.rundir",
         "make_trainer": ".optim", "make_lr_scheduler": ".optim", "Cluster": ".distributed"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)

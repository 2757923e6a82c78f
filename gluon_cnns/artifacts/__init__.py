"""What a run leaves on disk, read and written by training and inference alike: the run
folder (``rundir``) and its records (``records``, ``state``), the export's files
(``layout``, ``sidecar``), the run's input as an export describes it (``run_meta``), and
a trained net read back from either (``source``).

This layer sits below training and inference and above data and models; importing
it does not import MXNet.
"""
from .._lazy import lazy_exports

_LAZY = {"RunDir": ".rundir", "read_export_meta": ".sidecar", "checkpoint_meta": ".run_meta",
         "load_checkpoint_net": ".source", "read_source": ".source"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)

"""``gluon_cnns.distributed`` is :mod:`gluon_cnns.training.distributed` (the same module)."""
import sys

from .training import distributed as _module

sys.modules[__name__] = _module

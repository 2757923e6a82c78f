"""``gluon_cnns.export`` is :mod:`gluon_cnns.inference.export` (the same module object)."""
import sys

from .inference import export as _module

sys.modules[__name__] = _module

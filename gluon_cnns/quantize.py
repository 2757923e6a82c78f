"""``gluon_cnns.quantize`` is :mod:`gluon_cnns.inference.quantize` (the same module object)."""
import sys

from .inference import quantize as _module

sys.modules[__name__] = _module

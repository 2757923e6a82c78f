"""``gluon_cnns.utils.training`` is :mod:`gluon_cnns.training` (the same module object)."""
import sys

from .. import training as _module

sys.modules[__name__] = _module

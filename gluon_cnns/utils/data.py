"""``gluon_cnns.utils.data`` is :mod:`gluon_cnns.data` (the same module object)."""
import sys

from .. import data as _module

sys.modules[__name__] = _module

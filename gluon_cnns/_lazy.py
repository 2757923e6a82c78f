"""Package attributes imported on first use (PEP 562).

``import gluon_cnns.cli.train`` runs every ``__init__`` on the way; importing
MXNet there would make ``--help`` and the launcher pay about a second for a
library they do not use. A package lists what it exports and from where;
the module is imported when one of its names is first read.
"""
import importlib
import sys


def lazy_exports(package, table):
    """``(__getattr__, __dir__)`` for ``package`` exporting ``{name: relative module}``."""
    def __getattr__(name):
        if name not in table:
            raise AttributeError("module %r has no attribute %r" % (package, name))
        module = importlib.import_module(table[name], package)
        value = module if table[name] == "." + name else getattr(module, name)
        setattr(sys.modules[package], name, value)  # later reads skip this function
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__

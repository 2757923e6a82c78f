"""The package's version: one home, read by ``gluon_cnns.__version__`` and the exports'
sidecars (``gluon_cnns_version``), and by setup.py."""
__version__ = "0.1.0"

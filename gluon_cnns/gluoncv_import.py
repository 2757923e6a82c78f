"""Importing GluonCV in an environment that also has PyTorch 2.

GluonCV 0.10.5 (the last release for MXNet 1.x) checks at import time that any
installed ``torch`` is older than 2.0 and raises RuntimeError ("Legacy torch==2.x
detected") otherwise -- even for its MXNet half, which never touches torch. A
user with a current PyTorch in the same virtualenv could then not train here.
So GluonCV is imported with ``torch`` hidden for the length of its check.
"""
import importlib
import sys


def import_gluoncv(module="gluoncv"):
    """``importlib.import_module(module)`` for a GluonCV module, whatever torch is installed."""
    if "gluoncv" in sys.modules:
        return importlib.import_module(module)
    had_torch = "torch" in sys.modules
    torch = sys.modules.get("torch")
    sys.modules["torch"] = None  # `import torch` raises ImportError: GluonCV's MXNet-only path
    try:
        return importlib.import_module(module)
    finally:
        if had_torch:
            sys.modules["torch"] = torch
        else:
            del sys.modules["torch"]

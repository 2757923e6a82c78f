"""Shared pytest setup: the repo root on sys.path, so tests run from a plain clone too, and
the real Fashion-MNIST files, whose absence fails a test rather than skipping it."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def fashion_mnist_dir():
    """The Debian Fashion-MNIST folder; a missing one is a failure, not a skip."""
    assert os.path.isfile(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")), (
        "%s is missing: apt-get install dataset-fashion-mnist" % FASHION_MNIST)
    return FASHION_MNIST

"""What is known about each dataset, in one record apiece (no MXNet import).

The loaders, the training command, export and predict all read these records:
image shape, class names, the normalization the recipes train with, the file
layout, where a system package installs the files and how to get them.
"""
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(digit) for digit in range(10)]
# The names as the d2l book (``get_fashion_mnist_labels``) and the MXNet tutorials print them.
FASHION_MNIST_TEXT_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
                             "sandal", "shirt", "sneaker", "bag", "ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

# Per-channel statistics of the CIFAR-10 training set (the GluonCV recipe).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

# The four IDX files of (Fashion-)MNIST, each stored gzipped (.gz) or raw.
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The six CIFAR-10 batches; the binary format adds ".bin" to each name.
CIFAR10_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3",
                 "data_batch_4", "data_batch_5", "test_batch")


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's facts.

    ``layout`` is "idx" (the four IDX files of LeCun's MNIST format) or "cifar"
    (the six batches, python pickle or binary); ``mean``/``std`` (per channel,
    after ``ToTensor``'s division by 255) are None where the recipes do not
    normalize; ``system_folders`` are where an OS package installs the files.
    """
    name: str
    title: str
    channels: int
    side: int
    class_names: tuple
    layout: str
    mxnet_class: str
    mean: tuple = None
    std: tuple = None
    system_folders: tuple = ()
    how_to_get: str = ""

    @property
    def classes(self):
        return len(self.class_names)

    def image_shape(self, resize=None):
        """``(channels, side, side)`` of the images the loaders yield, after ``resize``."""
        side = int(resize or self.side)
        return (self.channels, side, side)


_IDX_HOW = "put the four IDX files (%s, .gz or raw) in one of those folders" % ", ".join(IDX_NAMES)

INFO = OrderedDict((info.name, info) for info in (
    DatasetInfo("fashion-mnist", "Fashion-MNIST", 1, 28, tuple(FASHION_MNIST_CLASSES), "idx",
                "FashionMNIST", system_folders=("/usr/share/datasets/fashion-mnist",),
                how_to_get="run `apt-get install dataset-fashion-mnist`, or " + _IDX_HOW),
    DatasetInfo("mnist", "MNIST", 1, 28, tuple(MNIST_CLASSES), "idx", "MNIST",
                system_folders=("/usr/share/datasets/mnist",), how_to_get=_IDX_HOW),
    DatasetInfo("cifar10", "CIFAR-10", 3, 32, tuple(CIFAR10_CLASSES), "cifar", "CIFAR10",
                mean=CIFAR10_MEAN, std=CIFAR10_STD,
                how_to_get="extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/"
                           "cifar.html) into one of those folders"),
))
DATASETS = tuple(INFO)


def dataset_info(name):
    """The :class:`DatasetInfo` of ``name`` ("fashion-mnist", "Fashion_MNIST", ...)."""
    key = str(name).lower().replace("_", "-")
    if key not in INFO:
        raise DataError("unknown dataset %r; choose one of %s" % (name, ", ".join(DATASETS)))
    return INFO[key]


def image_shape(dataset, resize=None):
    """``(channels, side, side)`` of the images ``load_data(dataset, ..., resize)`` yields."""
    return dataset_info(dataset).image_shape(resize)


def get_text_labels(labels, classes=None):
    """Turn numeric labels into class names; Fashion-MNIST's as d2l writes them by default
    (``'ankle boot'``; pass ``classes=FASHION_MNIST_CLASSES`` for ``'Ankle boot'``)."""
    classes = FASHION_MNIST_TEXT_LABELS if classes is None else classes
    if hasattr(labels, "asnumpy"):  # an NDArray: one copy instead of one per label
        labels = labels.asnumpy()
    names = []
    for label in np.asarray(labels).reshape(-1):
        index = int(label)
        if not 0 <= index < len(classes):
            raise DataError("label %s is outside 0..%d; pass the matching class list "
                            "as classes=" % (label, len(classes) - 1))
        names.append(classes[index])
    return names


def get_fashion_mnist_labels(labels):
    """d2l's name for :func:`get_text_labels` with the Fashion-MNIST classes."""
    return get_text_labels(labels, FASHION_MNIST_TEXT_LABELS)

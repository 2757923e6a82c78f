"""The datasets: one record of facts each (``datasets``), file readers, the search for
the files, in-memory batch iterators and the d2l-style loaders.

Importing this package does not import MXNet; the loaders do, when first used.
"""
from .._lazy import lazy_exports
from .datasets import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_NAMES, CIFAR10_STD, DATASETS,
                       FASHION_MNIST_CLASSES, FASHION_MNIST_TEXT_LABELS, IDX_NAMES,
                       MNIST_CLASSES, DatasetInfo, dataset_info, get_fashion_mnist_labels,
                       get_text_labels, image_shape)
from .locate import find_data, mxnet_cache_dir, mxnet_download, search_folders
from .readers import read_cifar10, read_idx

_LAZY = {"BatchIterator": ".batches", "random_crop_flip": ".batches", "to_tensor": ".batches",
         "load_data": ".loaders", "load_data_cifar10": ".loaders",
         "load_data_fashion_mnist": ".loaders", "load_data_mnist": ".loaders",
         "load_data_images": ".loaders", "ImageBatches": ".image_batches",
         "scan_images": ".images"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(list(_LAZY) + [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_NAMES", "CIFAR10_STD", "DATASETS", "DatasetInfo",
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_TEXT_LABELS", "IDX_NAMES", "MNIST_CLASSES",
    "dataset_info", "find_data", "get_fashion_mnist_labels", "get_text_labels",
    "image_shape", "mxnet_cache_dir", "mxnet_download", "read_cifar10", "read_idx",
    "search_folders"])

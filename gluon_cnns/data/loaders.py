"""The d2l loaders: ``load_data_fashion_mnist(batch_size, resize)`` and friends.

Usage, as in d2l::

    train_iter, test_iter = load_data_fashion_mnist(batch_size=256, resize=96)
    for X, y in train_iter:     # X: (256, 1, 96, 96) float32 in [0, 1], y: (256,)
        ...
"""
import functools

import mxnet as mx

from ..errors import DataError

from .batches import BatchIterator, check_positive_int, random_crop_flip, to_tensor
from .datasets import dataset_info
from .locate import find_data
from .quick import cap_examples
from .readers import read_cifar10, read_idx_pair


def _check_args(batch_size, resize, ctx, limit_train, limit_test):
    """Validate the shared loader arguments; return them cleaned up."""
    batch_size = check_positive_int(batch_size, "batch_size", "e.g. batch_size=256",
                                    allow_none=False)
    resize = check_positive_int(resize, "resize", "e.g. resize=224, or None to keep the size")
    limit_train = check_positive_int(limit_train, "limit_train",
                                     "e.g. limit_train=1000, or None for all examples")
    limit_test = check_positive_int(limit_test, "limit_test",
                                    "e.g. limit_test=1000, or None for all examples")
    if ctx is None:
        ctx = mx.cpu()
    if not isinstance(ctx, mx.Context):
        raise DataError("ctx must be one mx.Context, e.g. mx.cpu() or mx.gpu(0), got %r" % (ctx,))
    return batch_size, resize, ctx, limit_train, limit_test


def _read(info, files):
    """``(train, test)``, each (NHWC uint8 images, labels), of the files ``find_data`` found."""
    if info.layout == "cifar":
        return (read_cifar10(files["train"], files["binary"]),
                read_cifar10(files["test"], files["binary"]))
    return tuple(read_idx_pair(files[prefix + "-images-idx3-ubyte"],
                               files[prefix + "-labels-idx1-ubyte"], info.classes, info.title)
                 for prefix in ("train", "t10k"))


def _load(name, batch_size, resize, root, ctx, limit_train, limit_test, augment=None):
    """(train_iter, test_iter) of dataset ``name``; ``augment`` applies to training only."""
    info = dataset_info(name)
    batch_size, resize, ctx, limit_train, limit_test = _check_args(
        batch_size, resize, ctx, limit_train, limit_test)
    train, test = _read(info, find_data(info.name, root))
    limit_train, limit_test = cap_examples(limit_train), cap_examples(limit_test)
    convert = functools.partial(to_tensor, resize=resize, mean=info.mean, std=info.std)
    # The first N examples (all when the limit is None): slices, no copies.
    train_iter = BatchIterator(train[0][:limit_train], train[1][:limit_train], batch_size,
                               shuffle=True, ctx=ctx, convert=convert, augment=augment)
    test_iter = BatchIterator(test[0][:limit_test], test[1][:limit_test], batch_size,
                              shuffle=False, ctx=ctx, convert=convert)
    return train_iter, test_iter


def load_data_fashion_mnist(batch_size, resize=None, root=None, ctx=None,
                            limit_train=None, limit_test=None):
    """Fashion-MNIST as (train_iter, test_iter) of (X, y) batches on `ctx`.

    X is float32 (batch, 1, 28, 28) in [0, 1] - or (batch, 1, resize, resize) -
    exactly what ``Compose([Resize(resize), ToTensor()])`` gives per image;
    y holds float32 labels.  Training batches are reshuffled every pass
    (np.random), test batches come in file order.  `limit_train`/`limit_test`
    keep only the first N examples, for quick runs.
    """
    return _load("fashion-mnist", batch_size, resize, root, ctx, limit_train, limit_test)


def load_data_mnist(batch_size, resize=None, root=None, ctx=None,
                    limit_train=None, limit_test=None):
    """MNIST digits, with the same batches and arguments as load_data_fashion_mnist."""
    return _load("mnist", batch_size, resize, root, ctx, limit_train, limit_test)


def load_data_cifar10(batch_size, augment=True, root=None, ctx=None,
                      limit_train=None, limit_test=None, resize=None):
    """CIFAR-10 as (train_iter, test_iter) of (X, y) batches on `ctx`.

    X is float32 (batch, 3, 32, 32), normalized per channel with CIFAR10_MEAN
    and CIFAR10_STD.  With `augment`, training images are padded by 4 black
    pixels, randomly cropped back to 32x32 and randomly mirrored (the GluonCV
    recipe); test images are only normalized.  `resize`, if given, scales the
    (augmented) uint8 images before they are normalized, the order of
    ``Compose([..., Resize, ToTensor, Normalize])``.
    """
    return _load("cifar10", batch_size, resize, root, ctx, limit_train, limit_test,
                 augment=random_crop_flip if augment else None)


def load_data(dataset, batch_size, resize=None, root=None, ctx=None,
              limit_train=None, limit_test=None, augment=True, num_parts=1, part_index=0):
    """Load 'fashion-mnist', 'mnist' or 'cifar10' by name (augment: CIFAR-10 only).

    `num_parts` > 1 keeps only part `part_index` of the training set, cut after
    `limit_train` and before shuffling (BatchIterator.shard): one disjoint shard
    per distributed worker. The test set stays whole.
    """
    info = dataset_info(dataset)
    crop_flip = random_crop_flip if augment and info.name == "cifar10" else None
    train_iter, test_iter = _load(info.name, batch_size, resize, root, ctx, limit_train,
                                  limit_test, augment=crop_flip)
    if num_parts != 1 or part_index != 0:
        train_iter = train_iter.shard(num_parts, part_index)
    return train_iter, test_iter


def load_data_images(root, batch_size, resize, kind="folder", channels=None, mean=None,
                     std=None, val_split=None, ctx=None, **options):
    """Your own images -- an image folder (``root/train/<class>/*.jpg``, ``root/val/...``)
    or its RecordIO pack (``kind="rec"``) -- as (train_iter, test_iter) of (X, y) batches.

    X is float32 (batch, channels, resize, resize): training images randomly
    cropped and mirrored, test images centre-cropped (see
    :mod:`gluon_cnns.data.transforms`), divided by 255 and, for RGB, normalized
    with ImageNet's mean and std unless ``mean``/``std`` are given. ``channels``
    defaults to 1 if every image is grey, else 3. Both iterators carry
    ``class_names``; ``options``: augment, center_crop, workers, bad_images.
    """
    from .image_batches import image_iterators
    from .images import scan_images
    from .transforms import default_normalization
    batch_size = check_positive_int(batch_size, "batch_size", "e.g. batch_size=64",
                                    allow_none=False)
    resize = check_positive_int(resize, "resize", "e.g. resize=96", allow_none=False)
    data = scan_images(kind, root, val_split, options.get("bad_images", "skip"))
    channels = channels or data.default_channels
    if mean is None:
        mean, std = default_normalization(channels)
    return image_iterators(data, batch_size, resize, channels, ctx or mx.cpu(), mean, std,
                           **options)

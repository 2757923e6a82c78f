"""Reading the dataset files into uint8 arrays: IDX (MNIST, Fashion-MNIST) and CIFAR-10.

Decoded arrays are cached in-process, keyed by (path, mtime, size), so a second
load of an unchanged file costs nothing.
"""
import functools
import gzip
import os
import struct
import zlib

import numpy as np

from ..errors import DataError
from ..io import RestrictedUnpickler


def _file_key(path):
    """(path, mtime, size): a cache key that changes when the file is rewritten."""
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_mtime_ns, stat.st_size


def _read_bytes(path):
    """The file's bytes, un-gzipped if it is a gzip file (told by its first bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError("%s: broken gzip file (%s); download it again" % (path, err)) from None


def _decode_idx(path, raw):
    """Parse IDX bytes: 0, 0, type code, number of dims, big-endian int32 dims, data."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DataError("%s: not an IDX file (bad magic number %r)" % (path, raw[:4]))
    type_code, ndim = raw[2], raw[3]
    if type_code != 0x08:
        raise DataError("%s: IDX type code 0x%02x is not supported, only unsigned "
                        "bytes (0x08)" % (path, type_code))
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_size:
        raise DataError("%s: IDX header is truncated or has no dimensions" % path)
    shape = struct.unpack(">%dI" % ndim, raw[4:header_size])
    expected = int(np.prod(shape))
    if len(raw) - header_size != expected:
        raise DataError("%s: IDX header says shape %s (%d bytes of data) but the file "
                        "holds %d; the file is damaged" % (path, shape, expected,
                                                          len(raw) - header_size))
    # frombuffer shares memory with the bytes: read-only, and no copy.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(key):
    return _decode_idx(key[0], _read_bytes(key[0]))


def read_idx(path):
    """Read a gzipped or raw IDX file into a read-only uint8 numpy array.

    Decoded arrays are cached in-process, so reading the same unchanged file
    again costs nothing.  Copy the result before modifying it.
    """
    if not os.path.isfile(path):
        raise DataError("%s: no such file" % path)
    return _read_idx_cached(_file_key(path))


def read_idx_pair(images_path, labels_path, classes=None, title="the data set"):
    """Images as (N, H, W, 1) uint8 plus their (N,) labels, checked against each other.

    There must be at least one image and, given the number of ``classes``
    (of the data set named ``title``), every label must be in 0..classes-1.
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError("%s: expected images of shape (N, H, W), got %s"
                        % (images_path, images.shape))
    if labels.ndim != 1:
        raise DataError("%s: expected labels of shape (N,), got %s"
                        % (labels_path, labels.shape))
    if len(images) != len(labels):
        raise DataError("%s holds %d images but %s holds %d labels; the files do not "
                        "belong together" % (images_path, len(images), labels_path,
                                             len(labels)))
    _check_examples(images_path, labels, classes, title)
    return images[..., np.newaxis], labels  # NHWC, as mx.nd.image expects


def _check_examples(path, labels, classes, title):
    """DataError unless there are examples and their labels are classes of the data set.

    An empty set would train to a nan loss, and labels beyond the net's
    outputs to an accuracy of 0, both without an error.
    """
    if len(labels) == 0:
        raise DataError("%s holds no examples; the file is empty or cut short: get the "
                        "data set again" % path)
    if classes is not None and (labels.min() < 0 or labels.max() >= classes):
        raise DataError("%s: labels span %d..%d, but %s has classes 0..%d; the files are "
                        "damaged or of another data set" % (path, labels.min(), labels.max(),
                                                           title, classes - 1))


# What a CIFAR-10 python batch needs: plain containers and numpy's array constructors.
_ARRAY_GLOBALS = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer"),
                  ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer")}


def _read_cifar_pickle(path):
    """One python-format CIFAR batch: a dict with b'data' (N, 3072) and b'labels'."""
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(f, lambda module, name: (module, name) in _ARRAY_GLOBALS,
                                        encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:  # pickle raises many types; all mean "not a CIFAR batch"
        raise DataError("%s: not a CIFAR-10 python batch (%s: %s)"
                        % (path, type(err).__name__, err)) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError("%s: expected b'data' of shape (N, 3072) and N labels, got %s "
                        "and %d labels" % (path, data.shape, len(labels)))
    return data, labels


def _read_cifar_bin(path):
    """One binary-format CIFAR batch: records of 1 label byte + 3072 pixel bytes."""
    raw = _read_bytes(path)
    if len(raw) == 0 or len(raw) % 3073:
        raise DataError("%s: size %d is not a multiple of 3073 (1 label byte + 3072 "
                        "pixels); the file is damaged" % (path, len(raw)))
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    return records[:, 1:], records[:, 0]


@functools.lru_cache(maxsize=4)
def _read_cifar_cached(keys, binary):
    read = _read_cifar_bin if binary else _read_cifar_pickle
    parts = [read(key[0]) for key in keys]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([l for _, l in parts])
    _check_examples(keys[0][0] + ("..." if len(keys) > 1 else ""), labels, 10, "CIFAR-10")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): make them NHWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    images.flags.writeable = False  # shared by every caller through the cache
    return images, labels


def read_cifar10(paths, binary=False):
    """Read and join CIFAR-10 batch files: (N, 32, 32, 3) uint8 images, (N,) labels."""
    return _read_cifar_cached(tuple(_file_key(p) for p in paths), binary)

"""Fashion-MNIST, MNIST and CIFAR-10 as fast mini-batch iterators.

The d2l tutorials load data with ``gluon.data.DataLoader`` and a per-sample
``transforms.Compose([Resize, ToTensor])``: every image goes through Python on
its own, every epoch.  This module gives the same batches much faster:

1. the files are decoded once into uint8 numpy arrays (and kept in memory, so
   a second call is instant);
2. a batch is a slice of those arrays (a shuffled index for training);
3. the uint8 batch is copied to ``ctx`` and converted there, all at once, with
   the very operators the transforms use (``mx.nd.image.resize``,
   ``mx.nd.image.to_tensor``, ``mx.nd.image.normalize``), so the numbers are
   identical to the tutorial pipeline.

Usage, as in d2l::

    train_iter, test_iter = load_data_fashion_mnist(batch_size=256, resize=96)
    for X, y in train_iter:     # X: (256, 1, 96, 96) float32 in [0, 1], y: (256,)
        ...

Where the data comes from (first folder that has all files wins):
``root`` (if given, nothing else is tried), ``$GLUON_CNNS_DATA`` (and its
``<name>`` subfolder), MXNet's cache ``$MXNET_HOME/datasets/<name>`` (default
``~/.mxnet``), Debian's ``/usr/share/datasets/fashion-mnist`` (package
``dataset-fashion-mnist``) or ``/usr/share/datasets/mnist``; only then MXNet's
downloader is asked to fetch the files into its cache.
"""
import copy
import functools
import gzip
import os
import pickle
import socket
import struct
import time
import urllib.parse
import urllib.request
import zlib

import mxnet as mx
import numpy as np

from ..errors import DataError

__all__ = [
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES",
    "CIFAR10_MEAN", "CIFAR10_STD", "DATASETS",
    "get_text_labels", "read_idx", "read_cifar10", "find_data", "search_folders",
    "mxnet_cache_dir", "mxnet_download", "random_crop_flip", "BatchIterator",
    "load_data_fashion_mnist", "load_data_mnist", "load_data_cifar10", "load_data",
]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(digit) for digit in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

# Per-channel statistics of the CIFAR-10 training set (the GluonCV recipe).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

DATASETS = ("fashion-mnist", "mnist", "cifar10")
# (channels, side) of each dataset's images as stored, before any resize.
NATIVE_SHAPE = {"fashion-mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32)}


def image_shape(dataset, resize=None):
    """``(channels, side, side)`` of the images ``load_data(dataset, ..., resize)`` yields."""
    channels, side = NATIVE_SHAPE[dataset]
    side = int(resize or side)
    return (channels, side, side)

# System-wide copies (Debian's dataset-fashion-mnist package installs the first).
# Module constants, read at call time, so tests can point them elsewhere.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_MNIST_DIR = "/usr/share/datasets/mnist"

# The four IDX files of (Fashion-)MNIST, each stored gzipped (.gz) or raw.
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The six CIFAR-10 batches; the binary format adds ".bin" to each name.
CIFAR10_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3",
                 "data_batch_4", "data_batch_5", "test_batch")

_PRETTY_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}
_MXNET_CLASSES = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}


# ---------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------

def get_text_labels(labels, classes=None):
    """Turn numeric labels into class names (Fashion-MNIST names by default)."""
    classes = FASHION_MNIST_CLASSES if classes is None else classes
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


# ---------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------

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


def _read_idx_pair(images_path, labels_path):
    """Images as (N, H, W, 1) uint8 plus their (N,) labels, checked against each other."""
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
    return images[..., np.newaxis], labels  # NHWC, as mx.nd.image expects


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays.

    A pickle may call any function while loading; the CIFAR files only need
    numpy's array constructors, so everything else is refused.
    """
    _ALLOWED = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))
        return super().find_class(module, name)


def _read_cifar_pickle(path):
    """One python-format CIFAR batch: a dict with b'data' (N, 3072) and b'labels'."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
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
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError("%s...: labels span %d..%d, but CIFAR-10 has classes 0..9"
                        % (keys[0][0], labels.min(), labels.max()))
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): make them NHWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    images.flags.writeable = False  # shared by every caller through the cache
    return images, labels


def read_cifar10(paths, binary=False):
    """Read and join CIFAR-10 batch files: (N, 32, 32, 3) uint8 images, (N,) labels."""
    return _read_cifar_cached(tuple(_file_key(p) for p in paths), binary)


# ---------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------

def _idx_files(folder):
    """{name: path} of the four IDX files in `folder` (.gz or raw), or None."""
    found = {}
    for name in IDX_NAMES:
        for candidate in (name + ".gz", name):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                found[name] = path
                break
    return found if len(found) == len(IDX_NAMES) else None


def _cifar_files(folder):
    """The six CIFAR-10 batches in `folder` or its cifar-10-batches-* subfolder, or None."""
    layouts = ((folder, "", False),
               (os.path.join(folder, "cifar-10-batches-py"), "", False),
               (folder, ".bin", True),
               (os.path.join(folder, "cifar-10-batches-bin"), ".bin", True))
    for where, suffix, binary in layouts:
        paths = [os.path.join(where, name + suffix) for name in CIFAR10_NAMES]
        if all(os.path.isfile(p) for p in paths):
            return {"train": paths[:5], "test": paths[5:], "binary": binary}
    return None


def _locate(name, folder):
    """What `folder` holds of dataset `name` (a dict of paths), or None."""
    return _cifar_files(folder) if name == "cifar10" else _idx_files(folder)


def _missing_files(name, folder):
    """A short description of the files `folder` lacks, for error messages."""
    if name == "cifar10":
        return ("data_batch_1..5 and test_batch (python format, also accepted in a "
                "cifar-10-batches-py subfolder) or data_batch_1..5.bin and test_batch.bin")
    missing = [n + "[.gz]" for n in IDX_NAMES
               if not any(os.path.isfile(os.path.join(folder, n + ext)) for ext in (".gz", ""))]
    return ", ".join(missing)


def mxnet_cache_dir(name):
    """MXNet's own download folder for dataset `name` ($MXNET_HOME/datasets/<name>)."""
    # mx.base.data_dir() reads $MXNET_HOME (default ~/.mxnet) at call time.
    return os.path.join(mx.base.data_dir(), "datasets", name)


def _system_folders(name):
    if name == "fashion-mnist":
        return [DEBIAN_FASHION_MNIST_DIR]
    if name == "mnist":
        return [DEBIAN_MNIST_DIR]
    return []


def search_folders(name):
    """The folders searched for dataset `name` when no root is given, in order."""
    folders = []
    env = os.environ.get("GLUON_CNNS_DATA")
    if env:
        env = os.path.expanduser(env)
        folders += [env, os.path.join(env, name)]
    folders.append(mxnet_cache_dir(name))
    folders += _system_folders(name)
    return list(dict.fromkeys(folders))  # drop repeats, keep the order


def _check_reachable(url, timeout):
    """Raise OSError within about `timeout` seconds when `url`'s host cannot be reached.

    MXNet's downloader calls requests without a timeout and retries five
    times; behind a firewall that drops packets that can hang for minutes.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.getproxies().get(parts.scheme):
        return  # a local mirror, or a proxy we cannot probe through: let MXNet try
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    problem = "no address"
    try:
        # One deadline for all addresses of the host (a CDN name has several).
        for family, kind, proto, _, address in socket.getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM):
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    sock.connect(address)
                    return
                except OSError as err:
                    problem = err
            if time.monotonic() >= deadline:
                break
    except OSError as err:  # the name does not resolve
        problem = err
    raise OSError("cannot reach %s:%d (%s)" % (parts.hostname, port, problem))


def mxnet_download(name, folder, timeout=5.0):
    """Let MXNet's downloader fetch dataset `name` (train and test) into `folder`.

    Tests replace this function; it raises (OSError, requests errors, ...) when
    the download fails.
    """
    # _get_repo_url honours $MXNET_GLUON_REPO, exactly like the download itself.
    _check_reachable(mx.gluon.utils._get_repo_url(), timeout)
    dataset_class = getattr(mx.gluon.data.vision, _MXNET_CLASSES[name])
    for train in (True, False):
        dataset_class(root=folder, train=train)


def _not_found_message(name, folders, err):
    """One line: what was searched, why the download failed, how to get the data."""
    cause = " ".join(("%s: %s" % (type(err).__name__, err)).split())  # one line
    if len(cause) > 200:
        cause = cause[:197] + "..."
    if name == "cifar10":
        how = ("extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) "
               "into one of those folders")
    else:
        how = ("put the four IDX files (%s, .gz or raw) in one of those folders"
               % ", ".join(IDX_NAMES))
        if name == "fashion-mnist":
            how = "run `apt-get install dataset-fashion-mnist`, or " + how
    return ("%s not found in %s, and MXNet's download into %s failed (%s); to get it, %s, "
            "or pass the folder as --data-dir (root=)"
            % (_PRETTY_NAMES[name], ", ".join(folders), mxnet_cache_dir(name), cause, how))


def find_data(name, root=None):
    """Locate dataset `name` ('fashion-mnist', 'mnist' or 'cifar10'); return its paths.

    An explicit `root` (or its `<name>` subfolder) must hold the files.  Without
    it the search folders are tried in order and, when none has the data,
    MXNet's downloader fetches it into MXNet's cache.
    """
    if root is not None:
        root = os.path.expanduser(str(root))
        found = _locate(name, root) or _locate(name, os.path.join(root, name))
        if found is None:
            raise DataError("%s not found in the data folder %s: missing %s"
                            % (_PRETTY_NAMES[name], root, _missing_files(name, root)))
        return found
    folders = search_folders(name)
    for folder in folders:
        found = _locate(name, folder)
        if found is not None:
            return found
    cache = mxnet_cache_dir(name)
    try:
        mxnet_download(name, cache)
    except Exception as err:  # any failure means "no data"; say so in one line
        raise DataError(_not_found_message(name, folders, err)) from None
    found = _locate(name, cache)
    if found is None:
        raise DataError("MXNet's download of %s finished but %s still lacks %s"
                        % (_PRETTY_NAMES[name], cache, _missing_files(name, cache)))
    return found


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------

def random_crop_flip(images, pad=4):
    """CIFAR training augmentation for a whole uint8 NHWC batch at once.

    Each image is padded with `pad` black pixels on every side, a window of the
    original size is cut at a random position, and half of the images are
    mirrored left-right.  One fancy-indexing gather does all of it, no Python
    loop over images; numpy's global RNG makes it repeatable with np.random.seed.
    """
    n, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = np.random.randint(0, 2 * pad + 1, size=n)
    left = np.random.randint(0, 2 * pad + 1, size=n)
    rows = top[:, None] + np.arange(height)       # (n, height): source row of each output row
    cols = left[:, None] + np.arange(width)       # (n, width): source column of each output column
    flip = np.random.rand(n) < 0.5
    cols[flip] = cols[flip, ::-1]                 # mirroring = reading the columns backwards
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _to_tensor(X, resize=None):
    """uint8 NHWC batch -> float32 NCHW in [0, 1], resized first (Resize, then ToTensor)."""
    if resize is not None:
        X = mx.nd.image.resize(X, size=(resize, resize), interp=1)
    return mx.nd.image.to_tensor(X)


def _to_normalized_tensor(X, resize=None, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """As _to_tensor, then (x - mean) / std per channel (ToTensor, then Normalize)."""
    return mx.nd.image.normalize(_to_tensor(X, resize), mean=mean, std=std)


class BatchIterator:
    """Mini-batches of in-memory uint8 images, converted on `ctx`.

    Re-iterable: every ``for X, y in it`` is a fresh pass, reshuffled when
    `shuffle` is set.  ``len(it)`` is the number of batches (the last, partial
    batch included) and ``it.num_examples`` the number of images.

    Per batch, only the slicing (and `augment`, a numpy function on the uint8
    batch) runs on the host; the uint8 batch - a quarter of the float32 size -
    is copied to `ctx` and `convert` turns it into float32 there.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, ctx=None,
                 convert=_to_tensor, augment=None):
        self.images = images                           # (N, H, W, C) uint8, stays on the host
        self.labels = labels.astype(np.float32)        # converted once, not per batch
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.ctx = mx.cpu() if ctx is None else ctx
        self.convert = convert
        self.augment = augment
        # Where the current pass stands (see state()): its order and batches handed out.
        self._order, self._batch = None, 0
        self._resume_at = None  # a state() to continue from, set by set_state()

    @property
    def num_examples(self):
        return len(self.images)

    def __len__(self):
        return -(-self.num_examples // self.batch_size)  # ceiling division

    def __iter__(self):
        if self._resume_at is not None:
            order, first = self._resume_at["order"], self._resume_at["batch"]
            self._resume_at = None
        else:
            order = np.random.permutation(self.num_examples) if self.shuffle else None
            first = 0
        self._order, self._batch = order, first
        for start in range(first * self.batch_size, self.num_examples, self.batch_size):
            if order is None:
                index = slice(start, start + self.batch_size)   # a view, no copy
            else:
                index = order[start:start + self.batch_size]
            images, labels = self.images[index], self.labels[index]
            if self.augment is not None:
                images = self.augment(images)
            X = mx.nd.array(images, ctx=self.ctx, dtype=np.uint8)
            y = mx.nd.array(labels, ctx=self.ctx, dtype=np.float32)
            # Counted before the yield: while the caller trains on batch b, state() says b.
            self._batch += 1
            yield self.convert(X), y
        self._order, self._batch = None, 0  # a finished pass: the next one starts afresh

    def state(self):
        """Where the pass in progress stands: ``{"order": permutation or None, "batch": n}``.

        ``batch`` batches of ``order`` have been handed out. Together with
        NumPy's random state (which `augment` and the next shuffle draw from),
        this is all a checkpoint needs to continue the pass exactly; after a
        finished pass it is ``{"order": None, "batch": 0}``.
        """
        return {"order": self._order, "batch": self._batch}

    def set_state(self, state):
        """Make the next pass continue from ``state`` (what ``state()`` returned)."""
        order, batch = state.get("order"), state.get("batch", 0)
        if order is not None:
            order = np.asarray(order)
            if (order.shape != (self.num_examples,)
                    or not np.array_equal(np.sort(order), np.arange(self.num_examples))):
                raise DataError("the saved shuffle order is not a permutation of the %d "
                                "examples of this data set; was it saved for another data set "
                                "or --limit-train?" % self.num_examples)
        elif self.shuffle and batch:
            raise DataError("a shuffled pass cannot continue at batch %d without its order"
                            % batch)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
                or not 0 <= batch <= len(self):
            raise DataError("saved batch position %r is outside 0..%d" % (batch, len(self)))
        # Nothing handed out and no order: an ordinary fresh pass (it shuffles).
        fresh = order is None and batch == 0
        self._resume_at = None if fresh else {"order": order, "batch": int(batch)}

    def shard(self, num_parts, index):
        """Part `index` of `num_parts` contiguous, disjoint parts (one per distributed worker).

        The parts differ in size by at most one example and together are the
        whole set. A part is cut before any shuffling, so it always holds the
        same examples and a shuffled pass only reorders them.
        """
        num_parts = _check_positive_int(num_parts, "num_parts", "e.g. num_parts=2",
                                        allow_none=False)
        if not isinstance(index, (int, np.integer)) or not 0 <= index < num_parts:
            raise DataError("part index must be in 0..%d, got %r" % (num_parts - 1, index))
        if num_parts > self.num_examples:
            raise DataError("cannot split %d examples into %d parts; use fewer parts or more "
                            "examples" % (self.num_examples, num_parts))
        start = self.num_examples * index // num_parts
        stop = self.num_examples * (index + 1) // num_parts
        part = copy.copy(self)  # same batch size, device, conversion and augmentation
        part.images, part.labels = self.images[start:stop], self.labels[start:stop]
        return part

    def __repr__(self):
        return ("BatchIterator(%d examples, batch_size=%d, %d batches, shuffle=%s, ctx=%s)"
                % (self.num_examples, self.batch_size, len(self), self.shuffle, self.ctx))


# ---------------------------------------------------------------------------
# The loaders
# ---------------------------------------------------------------------------

def _check_positive_int(value, what, fix, allow_none=True):
    """Return `value` as an int, or raise DataError saying how to fix it."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value <= 0:
        raise DataError("%s must be a positive integer%s, got %r; %s"
                        % (what, " or None" if allow_none else "", value, fix))
    return int(value)


def _check_args(batch_size, resize, ctx, limit_train, limit_test):
    """Validate the shared loader arguments; return them cleaned up."""
    batch_size = _check_positive_int(batch_size, "batch_size", "e.g. batch_size=256",
                                     allow_none=False)
    resize = _check_positive_int(resize, "resize", "e.g. resize=224, or None to keep the size")
    limit_train = _check_positive_int(limit_train, "limit_train",
                                      "e.g. limit_train=1000, or None for all examples")
    limit_test = _check_positive_int(limit_test, "limit_test",
                                     "e.g. limit_test=1000, or None for all examples")
    if ctx is None:
        ctx = mx.cpu()
    if not isinstance(ctx, mx.Context):
        raise DataError("ctx must be one mx.Context, e.g. mx.cpu() or mx.gpu(0), got %r" % (ctx,))
    return batch_size, resize, ctx, limit_train, limit_test


def _first(images, labels, limit):
    """The first `limit` examples (all of them when limit is None); slices, no copies."""
    return images[:limit], labels[:limit]


def _load_idx_dataset(name, batch_size, resize, root, ctx, limit_train, limit_test):
    """Shared body of the Fashion-MNIST and MNIST loaders."""
    batch_size, resize, ctx, limit_train, limit_test = _check_args(
        batch_size, resize, ctx, limit_train, limit_test)
    files = find_data(name, root)
    train = _read_idx_pair(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    test = _read_idx_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    convert = functools.partial(_to_tensor, resize=resize)
    train_iter = BatchIterator(*_first(*train, limit_train), batch_size, shuffle=True,
                               ctx=ctx, convert=convert)
    test_iter = BatchIterator(*_first(*test, limit_test), batch_size, shuffle=False,
                              ctx=ctx, convert=convert)
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
    return _load_idx_dataset("fashion-mnist", batch_size, resize, root, ctx,
                             limit_train, limit_test)


def load_data_mnist(batch_size, resize=None, root=None, ctx=None,
                    limit_train=None, limit_test=None):
    """MNIST digits, with the same batches and arguments as load_data_fashion_mnist."""
    return _load_idx_dataset("mnist", batch_size, resize, root, ctx,
                             limit_train, limit_test)


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
    batch_size, resize, ctx, limit_train, limit_test = _check_args(
        batch_size, resize, ctx, limit_train, limit_test)
    files = find_data("cifar10", root)
    train = read_cifar10(files["train"], files["binary"])
    test = read_cifar10(files["test"], files["binary"])
    convert = functools.partial(_to_normalized_tensor, resize=resize)
    train_iter = BatchIterator(*_first(*train, limit_train), batch_size, shuffle=True,
                               ctx=ctx, convert=convert,
                               augment=random_crop_flip if augment else None)
    test_iter = BatchIterator(*_first(*test, limit_test), batch_size, shuffle=False,
                              ctx=ctx, convert=convert)
    return train_iter, test_iter


def load_data(dataset, batch_size, resize=None, root=None, ctx=None,
              limit_train=None, limit_test=None, augment=True, num_parts=1, part_index=0):
    """Load 'fashion-mnist', 'mnist' or 'cifar10' by name (augment: CIFAR-10 only).

    `num_parts` > 1 keeps only part `part_index` of the training set, cut after
    `limit_train` and before shuffling (BatchIterator.shard): one disjoint shard
    per distributed worker. The test set stays whole.
    """
    key = str(dataset).lower().replace("_", "-")
    if key == "fashion-mnist":
        iters = load_data_fashion_mnist(batch_size, resize, root, ctx, limit_train, limit_test)
    elif key == "mnist":
        iters = load_data_mnist(batch_size, resize, root, ctx, limit_train, limit_test)
    elif key == "cifar10":
        iters = load_data_cifar10(batch_size, augment, root, ctx, limit_train, limit_test,
                                  resize=resize)
    else:
        raise DataError("unknown dataset %r; choose one of %s" % (dataset, ", ".join(DATASETS)))
    train_iter, test_iter = iters
    if num_parts != 1 or part_index != 0:
        train_iter = train_iter.shard(num_parts, part_index)
    return train_iter, test_iter

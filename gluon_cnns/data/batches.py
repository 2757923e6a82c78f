"""Mini-batches of in-memory uint8 images, converted on the device.

The d2l tutorials load data with ``gluon.data.DataLoader`` and a per-sample
``transforms.Compose([Resize, ToTensor])``: every image goes through Python on
its own, every epoch. Here a batch is a slice of the decoded arrays (a
shuffled index for training), copied to ``ctx`` as uint8 and converted there,
all at once, with the very operators the transforms use
(``mx.nd.image.resize``, ``to_tensor``, ``normalize``): the same numbers, much faster.
"""
import copy

import mxnet as mx
import numpy as np

from ..errors import DataError


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


def to_tensor(X, resize=None, mean=None, std=None):
    """uint8 NHWC batch -> float32 NCHW in [0, 1], resized first (Resize, then ToTensor),
    then ``(x - mean) / std`` per channel where a mean is given (Normalize)."""
    if resize is not None:
        X = mx.nd.image.resize(X, size=(resize, resize), interp=1)
    X = mx.nd.image.to_tensor(X)
    if mean is not None:
        X = mx.nd.image.normalize(X, mean=mean, std=std)
    return X


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
                 convert=to_tensor, augment=None):
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
        order, first = self._plan()
        for index in self._indices(order, first):
            images, labels = self._gather(index)
            # Counted before the yield: while the caller trains on batch b, state() says b.
            self._batch += 1
            yield self._to_device(images, labels)
        self._order, self._batch = None, 0  # a finished pass: the next one starts afresh

    def _plan(self):
        """Start a pass: ``(order, first batch)``, a resumed pass's or a fresh one."""
        if self._resume_at is not None:
            order, first = self._resume_at["order"], self._resume_at["batch"]
            self._resume_at = None
        else:
            order = np.random.permutation(self.num_examples) if self.shuffle else None
            first = 0
        self._order, self._batch = order, first
        return order, first

    def _indices(self, order, first):
        """The index of each batch of the pass, from batch ``first`` on."""
        for start in range(first * self.batch_size, self.num_examples, self.batch_size):
            if order is None:
                yield slice(start, start + self.batch_size)   # a view, no copy
            else:
                yield order[start:start + self.batch_size]

    def _gather(self, index):
        """The uint8 images (augmented) and labels of one batch, on the host."""
        images, labels = self.images[index], self.labels[index]
        if self.augment is not None:
            images = self.augment(images)
        return images, labels

    def _to_device(self, images, labels):
        X = mx.nd.array(images, ctx=self.ctx, dtype=np.uint8)
        y = mx.nd.array(labels, ctx=self.ctx, dtype=np.float32)
        return self.convert(X), y

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
        """Part `index` of `num_parts` disjoint parts (one per distributed worker; see `_part`).

        The parts differ in size by at most one example and together are the
        whole set. A part is cut before any shuffling, so it always holds the
        same examples and a shuffled pass only reorders them.
        """
        num_parts = check_positive_int(num_parts, "num_parts", "e.g. num_parts=2",
                                        allow_none=False)
        if not isinstance(index, (int, np.integer)) or not 0 <= index < num_parts:
            raise DataError("part index must be in 0..%d, got %r" % (num_parts - 1, index))
        if num_parts > self.num_examples:
            raise DataError("cannot split %d examples into %d parts; use fewer parts or more "
                            "examples" % (self.num_examples, num_parts))
        return self._subset(self._part(num_parts, index))

    def _part(self, num_parts, index):
        """Where part ``index`` of ``num_parts`` is: a contiguous slice."""
        start = self.num_examples * index // num_parts
        stop = self.num_examples * (index + 1) // num_parts
        return slice(start, stop)

    def take(self, count):
        """The first ``count`` examples, with the same batch size, device and conversion."""
        return self._subset(slice(0, count))

    def _subset(self, where):
        part = copy.copy(self)  # same batch size, device, conversion and augmentation
        part.images, part.labels = self.images[where], self.labels[where]
        return part

    def __repr__(self):
        return ("BatchIterator(%d examples, batch_size=%d, %d batches, shuffle=%s, ctx=%s)"
                % (self.num_examples, self.batch_size, len(self), self.shuffle, self.ctx))


# ---------------------------------------------------------------------------
# The loaders
# ---------------------------------------------------------------------------

def check_positive_int(value, what, fix, allow_none=True):
    """Return `value` as an int, or raise DataError saying how to fix it."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value <= 0:
        raise DataError("%s must be a positive integer%s, got %r; %s"
                        % (what, " or None" if allow_none else "", value, fix))
    return int(value)



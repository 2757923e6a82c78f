"""Mini-batches of your own images, decoded by a pool of threads while the net trains.

An :class:`ImageBatches` is a :class:`BatchIterator` whose images are files (or
the records of a pack) rather than arrays: the same shuffling, checkpointable
position (``state``/``set_state``) and conversion on the device. While the net
trains on one batch, the next ``prefetch`` batches are decoded and augmented by
``workers`` threads (Pillow releases the GIL while it decodes and scales).

Augmentation is random but repeatable: each example draws from its own
generator, seeded by the pass's seed and the example's index, so a batch is
the same whatever the thread timing, the number of workers, or whether the
examples come from a folder or from its pack; a checkpoint keeps the pass's
seed, so a resumed pass is the same too.

A file that cannot be decoded during a pass is left out of its batch and
counted (``bad_images="skip"``; one line per pass through ``warn``) or stops
the run with its name (``"stop"``).
"""
import collections
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import DataError
from .batches import BatchIterator, to_tensor
from .decode import ImageError, load_image
from .transforms import CENTER_CROP, draft_size, eval_pixels, train_pixels


def _prepare(fetched, name, side, channels, training, seed, augment, crop):
    """Decode and transform one example: uint8 (side, side, channels), or the ImageError."""
    if isinstance(fetched, ImageError):
        return ImageError("%s: %s" % (name, fetched))
    try:
        image = load_image(fetched, draft=draft_size(side, training, crop))
        if not training:
            return eval_pixels(image, side, channels, crop)
        return train_pixels(image, side, channels, np.random.default_rng(seed), augment, crop)
    except ImageError as err:
        return ImageError("%s: %s" % (name, err))


class ImageBatches(BatchIterator):
    """Batches of (X, y) from an :class:`~gluon_cnns.data.image_data.ImageSplit`.

    ``side``/``channels``: the input the net takes; ``training``: augment
    (``augment``, see :mod:`~gluon_cnns.data.transforms`) or take the centre
    crop; ``mean``/``std``: per-channel normalization after ``ToTensor``.
    """

    def __init__(self, split, batch_size, side, channels, training=False, ctx=None,
                 mean=None, std=None, augment="crop-flip", center_crop=CENTER_CROP,
                 workers=None, prefetch=2, bad_images="skip", warn=None):
        super().__init__(np.arange(len(split)), np.asarray(split.labels), batch_size,
                         shuffle=training, ctx=ctx,
                         convert=functools.partial(to_tensor, mean=mean, std=std))
        self.split, self.reader = split, split.reader()
        self.side, self.channels, self.training = side, channels, training
        self.augment_kind, self.center_crop = augment, center_crop
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.prefetch, self.bad_images, self.warn = max(1, prefetch), bad_images, warn
        self._seed = None          # the pass's augmentation seed
        self._resume_seed = None

    # ``images`` holds example indices into the split: shard/take/_subset slice them.

    def _plan(self):
        resuming = self._resume_at is not None
        order, first = super()._plan()
        if resuming and self._resume_seed is not None:
            self._seed = self._resume_seed
        elif self.training:  # drawn after the shuffle, from the same seeded generator
            self._seed = int(np.random.randint(2 ** 31 - 1))
        self._resume_seed = None
        return order, first

    def state(self):
        state = super().state()
        state["seed"] = self._seed if self._order is not None or self._batch else None
        return state

    def set_state(self, state):
        super().set_state(state)
        seed = state.get("seed")
        self._resume_seed = None if seed is None else int(seed)

    def _submit(self, pool, index):
        """Start decoding one batch; returns its pending parts."""
        examples = self.images[index]
        jobs = [pool.submit(_prepare, self.reader.fetch(int(i)), self.split.name(int(i)),
                            self.side, self.channels, self.training,
                            (self._seed or 0, int(i)), self.augment_kind, self.center_crop)
                for i in examples]
        return jobs, self.labels[index]

    def _collect(self, pending, skipped):
        """The decoded batch: uint8 NHWC images and labels, bad images left out."""
        jobs, labels = pending
        images, keep = [], []
        for k, job in enumerate(jobs):
            result = job.result()
            if isinstance(result, ImageError):
                if self.bad_images == "stop":
                    raise DataError("%s; pass --bad-images skip to leave such files out (a run "
                                    "with --save-dir continues with --resume --bad-images skip)"
                                    % result)
                skipped.append(str(result))
                continue
            images.append(result)
            keep.append(k)
        return (np.stack(images) if images else None), labels[keep]

    def __iter__(self):
        order, first = self._plan()
        indices = list(self._indices(order, first))
        skipped, yielded = [], 0
        with ThreadPoolExecutor(self.workers) as pool:
            pending = collections.deque(self._submit(pool, index)
                                        for index in indices[:self.prefetch])
            for k in range(len(indices)):
                images, labels = self._collect(pending.popleft(), skipped)
                if k + self.prefetch < len(indices):
                    pending.append(self._submit(pool, indices[k + self.prefetch]))
                self._batch += 1
                if images is not None:
                    yielded += 1
                    yield self._to_device(images, labels)
        self._order, self._batch = None, 0
        if indices and not yielded:
            raise DataError("none of the %d %s images could be read in this pass (first: %s); "
                            "are the files still there?" % (len(skipped), "training" if
                                                            self.training else "test",
                                                            skipped[0]))
        reported = self.__dict__.setdefault("_reported", set())  # each bad image once
        new = [name for name in skipped if name not in reported]
        if new and self.warn is not None:
            reported.update(new)
            self.warn("skipped %d image%s that cannot be decoded in this pass (first: %s); "
                      "later passes skip %s without another word"
                      % (len(new), "" if len(new) == 1 else "s", new[0],
                         "it" if len(new) == 1 else "them"))

    def _part(self, num_parts, index):
        """Every num_parts-th example, from ``index`` on: a folder is sorted by class, so a
        contiguous part would hold only some classes."""
        return slice(index, None, num_parts)

    def take(self, count):
        """``count`` examples spread evenly over the split (every class, not the first ones)."""
        where = (np.arange(min(count, self.num_examples)) * self.num_examples) // max(count, 1)
        return self._subset(np.unique(where))

    def __repr__(self):
        return ("ImageBatches(%d examples of %s, batch_size=%d, %dx%dx%d, %s)"
                % (self.num_examples, self.split.describe(), self.batch_size, self.side, self.side, self.channels,
                   "training" if self.training else "evaluation"))


def image_iterators(data, batch_size, side, channels, ctx=None, mean=None, std=None, **options):
    """``(train_iter, test_iter)`` of a scanned :class:`~gluon_cnns.data.image_data.ImageData`:
    augmented, shuffled training batches and centre-cropped val batches; ``options`` are
    ImageBatches' (augment, center_crop, workers, bad_images, warn). Both carry the
    ``class_names``."""
    common = dict(side=side, channels=channels, ctx=ctx, mean=mean, std=std, **options)
    train = ImageBatches(data.train, batch_size, training=True, **common)
    test = ImageBatches(data.val, batch_size, **common)
    train.class_names = test.class_names = list(data.class_names)
    return train, test

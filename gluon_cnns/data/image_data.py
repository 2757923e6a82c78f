"""Your own images, scanned: class names and a training and a val split of labelled examples.

Each kind of source (the table in :mod:`~gluon_cnns.data.images`) scans into an
:class:`ImageData`; its splits say how an example is read (:meth:`ImageSplit.reader`)
and named. A folder's split holds file paths (:class:`ImageSplit`), a pack's the keys
of its records (:class:`RecordSplit`). A pack keeps its folder's order, so both give
the same examples at the same indices (and so the same batches for a seed).
"""
import hashlib
import os
import struct
from dataclasses import dataclass, field

from ..errors import DataError, error_line

SPLITS = ("train", "val")
# A pack without pack.json names its classes 0..K-1 after its largest label; a label
# beyond this is a mistake, not a class (and would need K names in memory).
MAX_CLASSES = 100_000


@dataclass
class ImageSplit:
    """One split of image files: ``sources[i]`` is a file's path, ``labels[i]`` its class
    index; ``skipped`` lists ``(name, reason)`` of files left out."""
    sources: list
    labels: list
    skipped: list = field(default_factory=list)

    def __len__(self):
        return len(self.sources)

    def name(self, i):
        """How example ``i`` is named in messages."""
        return self.sources[i]

    def fingerprint_name(self, i, root):
        """Example ``i``'s name in the data's fingerprint: relative, so that the same
        images moved to another folder are the same data."""
        return os.path.relpath(self.sources[i], root)

    def reader(self):
        """An object whose ``fetch(i)`` gives what ``load_image`` decodes for example ``i``
        (its bytes or path), or an ImageError; one per iterator, used by one thread."""
        return _FileReader(self.sources)

    def describe(self):
        return "a folder"


class _FileReader:
    def __init__(self, paths):
        self.fetch = paths.__getitem__


@dataclass
class RecordSplit(ImageSplit):
    """One split of a RecordIO pack: ``sources[i]`` is a record's key in ``rec``/``idx``."""
    rec: str = None
    idx: str = None

    def name(self, i):
        return "%s record %s" % (self.rec, self.sources[i])

    def fingerprint_name(self, i, root):
        return str(self.sources[i])

    def reader(self):
        return _RecordReader(self.rec, self.idx, self.sources)

    def describe(self):
        return self.rec


class _RecordReader:
    """Records by example index; the pack is opened on first use (in each process)."""

    def __init__(self, rec, idx, keys):
        self.rec, self.idx, self.keys, self._record = rec, idx, keys, None

    def fetch(self, i):
        """The bytes of example ``i``'s image, or an ImageError when its record cannot be
        read. Records are read in the calling thread: MXNet's reader is one file handle,
        not to be shared between threads."""
        import mxnet as mx
        from .decode import ImageError
        try:
            if self._record is None:
                self._record = mx.recordio.MXIndexedRecordIO(self.idx, self.rec, "r")
            return mx.recordio.unpack(self._record.read_idx(self.keys[i]))[1]
        except (mx.base.MXNetError, OSError, TypeError, struct.error) as err:
            # The pack changed since it was scanned (TypeError: nothing at that offset).
            return ImageError("cannot read the record (%s)" % error_line(err))


@dataclass
class ImageData:
    """A scanned image folder or pack: class names, splits, and what the scan noticed."""
    kind: str                    # the --dataset value: "folder" or "rec"
    root: str
    class_names: list
    train: ImageSplit
    val: ImageSplit
    grey: bool                   # every image read is grey: 1 channel by default
    notes: list = field(default_factory=list)   # one line each, for the user

    @property
    def default_channels(self):
        return 1 if self.grey else 3

    def fingerprint(self):
        """A digest of both splits' examples and labels: the data a run trained on, to
        recognize it again on --resume."""
        digest = hashlib.sha256()
        for split in (self.train, self.val):
            for i, label in enumerate(split.labels):
                name = split.fingerprint_name(i, self.root)
                digest.update(("%s\t%d\n" % (name, label)).encode("utf-8", "surrogateescape"))
            digest.update(b"--\n")
        return digest.hexdigest()[:16]


def check_classes(class_names, root):
    """Refuse fewer than two classes."""
    if len(class_names) < 2:
        found = "only the class %r" % class_names[0] if class_names else "no class folders"
        raise DataError("%s has %s; an image folder needs one sub-folder per class, at least "
                        "two (DIR/train/<class>/*.jpg)" % (root, found))


def finish(data):
    """Refuse splits that cannot train or test; the checked ImageData."""
    for what, split in (("training", data.train), ("val", data.val)):
        if not len(split):
            raise DataError("the %s split of %s holds no usable images; add images%s"
                            % (what, data.root, " or raise --val-split" if what == "val" else ""))
    return data


def check_bad_images(data, policy="skip"):
    """Apply the bad-image policy to what the scan found: a note, or DataError for "stop"."""
    bad = data.train.skipped
    if not bad:
        return data
    first = "%s: %s" % bad[0]
    if policy == "stop":
        raise DataError("%d image file%s cannot be read (first: %s); remove %s, or pass "
                        "--bad-images skip to train without %s"
                        % (len(bad), "" if len(bad) == 1 else "s", first,
                           "it" if len(bad) == 1 else "them", "it" if len(bad) == 1 else "them"))
    data.notes.append("skipped %d image file%s that cannot be read (first: %s); --bad-images "
                      "stop to stop instead" % (len(bad), "" if len(bad) == 1 else "s", first))
    return data

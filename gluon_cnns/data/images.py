"""Your own images: an image folder or a RecordIO pack, scanned into labelled splits.

:mod:`~gluon_cnns.data.image_folder` scans a folder, :mod:`~gluon_cnns.data.image_pack`
a pack; both give an :class:`ImageData`: class names, a training and a val
:class:`ImageSplit`, and what the scan noticed. A pack keeps its folder's order,
so both give the same examples at the same indices (and so the same batches
for a seed).
"""
import hashlib
import os
from dataclasses import dataclass, field

from ..errors import DataError

SPLITS = ("train", "val")
# ``--dataset`` values of your own images: an image folder, a RecordIO pack.
IMAGE_DATASETS = ("folder", "rec")
# A pack without pack.json names its classes 0..K-1 after its largest label; a label
# beyond this is a mistake, not a class (and would need K names in memory).
MAX_CLASSES = 100_000


@dataclass
class ImageSplit:
    """One split: ``sources[i]`` is a path (folder) or a record key (pack), ``labels[i]``
    its class index; ``skipped`` lists ``(name, reason)`` of files left out."""
    sources: list
    labels: list
    rec: tuple = None            # (rec path, idx path) of a pack, else None
    skipped: list = field(default_factory=list)

    def __len__(self):
        return len(self.sources)

    def name(self, i):
        """How example ``i`` is named in messages."""
        return self.sources[i] if self.rec is None else "%s record %s" % (self.rec[0],
                                                                          self.sources[i])


@dataclass
class ImageData:
    """A scanned image folder or pack: class names, splits, and what the scan noticed."""
    kind: str                    # "folder" or "rec"
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
            for source, label in zip(split.sources, split.labels):
                # Relative: the same images moved to another folder are the same data.
                name = source if split.rec else os.path.relpath(source, self.root)
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



def scan_images(kind, root, val_split=None, bad_images="skip"):
    """The :class:`ImageData` of ``--dataset folder`` or ``--dataset rec`` in ``root``."""
    if kind == "rec":
        if val_split is not None:
            raise DataError("--val-split applies to an image folder; a pack has its own val.rec")
        from .image_pack import scan_pack
        return scan_pack(root)
    from .image_folder import scan_folder
    return check_bad_images(scan_folder(root, val_split), bad_images)

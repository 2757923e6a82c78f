"""Your own images: the kinds of source they come in, and the scan of one into labelled splits.

Each kind is one class with the same small interface: ``dataset`` (the
``--dataset`` value it serves), ``recognizes(root)`` (whether ``--data-dir``
holds this kind) and ``scan(root, val_split, bad_images)`` (an
:class:`~gluon_cnns.data.image_data.ImageData`, whose splits read their own
examples). Adding a kind is one class and one line of :data:`IMAGE_KINDS`.
"""
import os

from ..errors import DataError
from .image_folder import ImageFolder
from .image_pack import GluonPack, Im2recPack

# Tried in this order for a --dataset value; the first kind of it is its default.
IMAGE_KINDS = (
    ImageFolder,     # DIR/train/<class>/*.jpg (+ DIR/val/), or DIR/<class>/*.jpg
    GluonPack,       # scripts/pack.py: train.rec/.idx, val.rec/.idx, pack.json
    Im2recPack,      # MXNet's tools/im2rec.py: PREFIX_train.rec/.idx, PREFIX_val.rec/.idx
)
# ``--dataset`` values of your own images.
IMAGE_DATASETS = tuple(dict.fromkeys(kind.dataset for kind in IMAGE_KINDS))


def image_kind(dataset, root):
    """The kind of source that ``--dataset dataset --data-dir root`` names."""
    kinds = [kind for kind in IMAGE_KINDS if kind.dataset == dataset]
    if not kinds:
        raise DataError("no kind of image source serves --dataset %r; choose from %s"
                         % (dataset, ", ".join(IMAGE_DATASETS)))
    root = str(root)
    return next((kind for kind in kinds if kind.recognizes(root)), kinds[0])


def scan_images(kind, root, val_split=None, bad_images="skip"):
    """The :class:`ImageData` of ``--dataset folder`` or ``--dataset rec`` in ``root``."""
    root = os.path.expanduser(str(root))
    return image_kind(kind, root).scan(root, val_split, bad_images)

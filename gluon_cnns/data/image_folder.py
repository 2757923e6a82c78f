"""Scanning an image folder: one sub-folder per class (the layout of Gluon's
``ImageFolderDataset``, GluonCV and torchvision)::

    DIR/train/<class>/*.jpg     DIR/val/<class>/*.jpg      (or DIR/<class>/*.jpg)

Images in sub-folders of a class folder belong to that class (as torchvision's
``ImageFolder`` reads them). Without ``val/`` a ``val_split`` fraction of each
class is held out, chosen by a hash of the file's name: the same files whatever
the seed, and a file keeps its split when others are added; every class keeps
at least one training image. Classes are the sorted folder names.

Scanning reads every image's header (not its pixels): files that are not
images are found before training; ``bad_images`` says whether they are skipped
(with a count) or stop the run.
"""
import hashlib
import os

from ..errors import DataError
from ..io import path_kind
from .decode import GREY_MODES, IMAGE_EXTENSIONS, ImageError, open_image
from .image_data import ImageData, ImageSplit, check_bad_images, check_classes, finish

DEFAULT_VAL_SPLIT = 0.1


def _listdir(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError as err:
        raise DataError("cannot read the image folder %s (%s)" % (folder, err.strerror or err))


def _class_folders(folder):
    """``(sorted (name, path) of the class sub-folders, count of loose images)`` of
    ``folder`` (hidden ones ignored; an image beside the class folders has no class)."""
    names = [n for n in _listdir(folder) if not n.startswith(".")]
    folders = [(n, os.path.join(folder, n)) for n in names
               if os.path.isdir(os.path.join(folder, n))]
    loose = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)
             and not os.path.isdir(os.path.join(folder, n))]
    return folders, len(loose)


def image_files(folder):
    """``(image paths, count of other files)`` of ``folder`` and its sub-folders at any
    depth (a class folder; predict's folder arguments), in name order, hidden ones left
    out; a folder reached twice through links is read once."""
    images, others, seen = [], 0, set()
    for here, subfolders, names in os.walk(folder, followlinks=True, onerror=_walk_error):
        real = os.path.realpath(here)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(os.path.join(here, name))
            else:
                others += 1
    return images, others


def _walk_error(err):
    raise DataError("cannot read the image folder %s (%s)" % (err.filename, err.strerror or err))


def header_mode(path):
    """Pillow's mode of the image file ``path``, from its header; ImageError if unusable."""
    with open_image(path) as image:
        return image.mode


def _scan_classes(folder, class_names, what):
    """``(paths, labels, grey flags, skipped, ignored count)`` of one split's class folders."""
    paths, labels, grey, skipped = [], [], [], []
    index = {name: i for i, name in enumerate(class_names)}
    folders, ignored = _class_folders(folder)
    for name, path in folders:
        images, others = image_files(path)
        ignored += others
        if not images:
            raise DataError("the class folder %s holds no images (%s); add images or remove "
                            "the folder" % (path, ", ".join(e[1:] for e in IMAGE_EXTENSIONS[:4])))
        if name not in index:
            raise DataError("class %r is in the %s folder but not in %s; add it to the "
                            "training folder or remove it" % (name, what, os.path.dirname(path)))
        for image in images:
            try:
                grey.append(header_mode(image) in GREY_MODES)
            except ImageError as err:
                skipped.append((image, str(err)))
                continue
            paths.append(image)
            labels.append(index[name])
    return paths, labels, grey, skipped, ignored


def _held_out(path, fraction):
    """Whether ``path`` falls in the held-out part: a hash of its name, stable across runs."""
    digest = hashlib.sha256(os.path.basename(path).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < fraction


def _split_off(paths, labels, fraction):
    """Split one scanned folder into (train, val) lists, each class on its own; a class
    whose every image would be held out keeps its first one for training."""
    held = [_held_out(path, fraction) for path in paths]
    for label in set(labels):
        mine = [i for i, lab in enumerate(labels) if lab == label]
        if all(held[i] for i in mine):
            held[mine[0]] = False
    train, val = ([], []), ([], [])
    for path, label, out in zip(paths, labels, held):
        part = val if out else train
        part[0].append(path)
        part[1].append(label)
    return train, val


def _train_folder(root):
    """``(the folder of the training classes, whether it is DIR/train)``."""
    if not os.path.isdir(root):
        kind = path_kind(root)
        raise DataError("the image folder %s %s; pass the folder holding train/<class>/ (or "
                        "<class>/) sub-folders as --data-dir"
                        % (root, "is %s, not a folder" % kind if kind else "does not exist"))
    train_dir = os.path.join(root, "train")
    if os.path.isdir(train_dir):
        return train_dir, True
    if os.path.isdir(os.path.join(root, "val")):
        raise DataError("%s has a val/ folder but no train/; put the training images in "
                        "%s/<class>/" % (root, train_dir))
    return root, False


def scan_folder(root, val_split=None):
    """Scan the image folder ``root`` into an :class:`ImageData` (kind "folder")."""
    root = os.path.expanduser(str(root))
    train_dir, has_train = _train_folder(root)
    class_names = [name for name, _ in _class_folders(train_dir)[0]]
    check_classes(class_names, train_dir)
    paths, labels, grey, skipped, ignored = _scan_classes(train_dir, class_names, "training")
    notes = []
    val_dir = os.path.join(root, "val")
    if has_train and os.path.isdir(val_dir):
        if val_split is not None:
            raise DataError("%s has its own val/ folder; drop --val-split" % root)
        train = (paths, labels)
        vp, vl, vgrey, vskipped, vignored = _scan_classes(val_dir, class_names, "val")
        val, grey, skipped, ignored = (vp, vl), grey + vgrey, skipped + vskipped, ignored + vignored
    else:
        fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
        train, val = _split_off(paths, labels, fraction)
        notes.append("no val/ folder in %s: %d of %d images (%.0f%%, chosen by file name) are "
                     "held out for testing" % (root, len(val[0]), len(paths), 100 * fraction))
    if ignored:
        notes.append("ignored %d files without an image extension, or images outside the "
                     "class folders" % ignored)
    if grey and 0 < sum(grey) < len(grey):
        notes.append("%d grey and %d colour images: all are read as RGB unless --channels 1"
                     % (sum(grey), len(grey) - sum(grey)))
    return finish(ImageData("folder", root, class_names, ImageSplit(*train, skipped=skipped),
                             ImageSplit(*val), grey=bool(grey) and all(grey), notes=notes))


class ImageFolder:
    """``--dataset folder``: a folder of class sub-folders (see the module's text)."""
    dataset = "folder"

    @staticmethod
    def recognizes(root):
        return True

    @staticmethod
    def scan(root, val_split=None, bad_images="skip"):
        return check_bad_images(scan_folder(root, val_split), bad_images)

"""Your own images: an image folder or a RecordIO pack, scanned into labelled splits.

An image folder has one sub-folder per class (the layout of Gluon's
``ImageFolderDataset``, GluonCV and torchvision)::

    DIR/train/<class>/*.jpg     DIR/val/<class>/*.jpg      (or DIR/<class>/*.jpg)

Without ``val/`` a ``val_split`` fraction of each class is held out, chosen by
a hash of the file's name: the same files whatever the seed, and a file keeps
its split when others are added. A RecordIO pack is what ``scripts/pack.py``
writes: ``train.rec``/``train.idx`` (and ``val.*``), each record an
``mx.recordio`` header whose label is the class index followed by the image
file's own bytes, plus ``pack.json`` with the class names. Classes are the
sorted folder names; a pack keeps the folder's order, so both give the same
examples at the same indices (and so the same batches for a seed).

Scanning reads every folder image's header (not its pixels): files that are
not images are found before training; ``bad_images`` says whether they are
skipped (with a count) or stop the run.
"""
import hashlib
import os
import struct
from dataclasses import dataclass, field

from ..errors import DataError, error_line
from .decode import GREY_MODES, IMAGE_EXTENSIONS, MAX_PIXELS, ImageError, open_regular

PACK_META = "pack.json"
PACK_FORMAT = 1
SPLITS = ("train", "val")
DEFAULT_VAL_SPLIT = 0.1


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


# ---------------------------------------------------------------- folders

def _class_folders(folder):
    """Sorted ``(name, path)`` of the sub-folders of ``folder`` (hidden ones ignored)."""
    try:
        names = sorted(n for n in os.listdir(folder)
                       if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))
    except OSError as err:
        raise DataError("cannot read the image folder %s (%s)" % (folder, err.strerror or err))
    return [(n, os.path.join(folder, n)) for n in names]


def _image_files(folder):
    """``(image paths sorted by name, count of other files)`` in one class folder."""
    images, others = [], 0
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        if name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(os.path.join(folder, name))
        elif not os.path.isdir(os.path.join(folder, name)):
            others += 1
    return images, others


def header_mode(path):
    """Pillow's mode of the image file ``path``, from its header; ImageError if unusable."""
    from PIL import Image, UnidentifiedImageError
    try:
        with open_regular(path) as f, Image.open(f) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError("the image is %dx%d, more than %d megapixels"
                                 % (image.width, image.height, MAX_PIXELS // 10 ** 6))
            return image.mode
    except UnidentifiedImageError:
        raise ImageError("not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError("cannot read the image (%s)" % " ".join(str(err).split())) from None


def _scan_classes(folder, class_names, what):
    """``(paths, labels, grey flags, skipped, ignored count)`` of one split's class folders."""
    paths, labels, grey, skipped, ignored = [], [], [], [], 0
    index = {name: i for i, name in enumerate(class_names)}
    for name, path in _class_folders(folder):
        images, others = _image_files(path)
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
    """Split one scanned folder into (train, val) lists, each class on its own."""
    train, val = ([], []), ([], [])
    for path, label in zip(paths, labels):
        part = val if _held_out(path, fraction) else train
        part[0].append(path)
        part[1].append(label)
    return train, val


def _check_classes(class_names, root):
    if len(class_names) < 2:
        found = "only the class %r" % class_names[0] if class_names else "no class folders"
        raise DataError("%s has %s; an image folder needs one sub-folder per class, at least "
                        "two (DIR/train/<class>/*.jpg)" % (root, found))


def scan_folder(root, val_split=None):
    """Scan the image folder ``root`` into an :class:`ImageData` (kind "folder")."""
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise DataError("the image folder %s does not exist; pass the folder holding "
                        "train/<class>/ (or <class>/) sub-folders as --data-dir" % root)
    train_dir = os.path.join(root, "train")
    has_train = os.path.isdir(train_dir)
    train_dir = train_dir if has_train else root
    class_names = [name for name, _ in _class_folders(train_dir)]
    _check_classes(class_names, train_dir)
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
        notes.append("ignored %d files without an image extension" % ignored)
    if grey and 0 < sum(grey) < len(grey):
        notes.append("%d grey and %d colour images: all are read as RGB unless --channels 1"
                     % (sum(grey), len(grey) - sum(grey)))
    return _finish(ImageData("folder", root, class_names, ImageSplit(*train, skipped=skipped),
                             ImageSplit(*val), grey=bool(grey) and all(grey), notes=notes))


def _finish(data):
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


# ---------------------------------------------------------------- RecordIO packs

def pack_paths(root, split):
    """``(rec, idx)`` paths of one split of the pack in ``root``."""
    return os.path.join(root, split + ".rec"), os.path.join(root, split + ".idx")


def _read_pack_meta(root):
    """pack.json's class names and grey flag, or (None, False) when there is none."""
    from ..io import read_json
    path = os.path.join(root, PACK_META)
    if not os.path.exists(path):
        return None, False
    try:
        meta = read_json(path)
    except (OSError, ValueError) as err:
        raise DataError("%s is unreadable (%s); pack the folder again" % (path, err)) from None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)
            and len(set(names)) == len(names)):
        raise DataError("%s has no valid \"class_names\" list; pack the folder again" % path)
    files = meta.get("files")  # sizes of the .rec/.idx files (scripts/pack.py writes them)
    for name, info in sorted(files.items()) if isinstance(files, dict) else ():
        file = os.path.join(root, os.path.basename(name))
        size = info.get("size") if isinstance(info, dict) else None
        if os.path.isfile(file) and os.path.getsize(file) != size:
            raise DataError("%s is %d bytes, but %s says %s: the pack was only partly written "
                            "or replaced; pack the folder again"
                            % (file, os.path.getsize(file), path, size))
    return names, meta.get("grey") is True


# dmlc-core's record framing (recordio.h): a magic word, then the length (low 29 bits)
# and a continuation flag; the payload starts with mx.recordio's IRHeader ('IfQQ').
_MAGIC, _FRAME, _HEADER = 0xCED7230A, struct.Struct("<II"), struct.Struct("<IfQQ")


def _read_index(idx):
    """``[(key, byte offset)]`` of a ``.idx`` file (``key<TAB>offset`` lines)."""
    entries = []
    with open(idx) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ValueError("%s line %d is not 'key<TAB>offset'" % (idx, number))
            entries.append((int(parts[0]), int(parts[1])))
    return entries


def _record_labels(rec, entries):
    """The label of each record: its header alone is read, not the image after it."""
    labels, size = [], os.path.getsize(rec)
    with open(rec, "rb") as f:
        for key, offset in entries:
            f.seek(offset)
            head = f.read(_FRAME.size + _HEADER.size)
            if offset + len(head) > size or len(head) < _FRAME.size + _HEADER.size:
                raise ValueError("record %d is past the end of the file" % key)
            magic, length = _FRAME.unpack_from(head)
            flag, label, _, _ = _HEADER.unpack_from(head, _FRAME.size)
            if magic != _MAGIC or (length & ((1 << 29) - 1)) < _HEADER.size:
                raise ValueError("no record starts where the index puts record %d" % key)
            labels.append(label if flag == 0 else ("%d labels" % flag))
    return labels


def read_pack_split(root, split, classes=None):
    """One split of a pack: its record keys and labels, read from the records' headers."""
    rec, idx = pack_paths(root, split)
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise DataError("%s not found; a RecordIO pack needs train.rec, train.idx, val.rec "
                            "and val.idx (scripts/pack.py writes them)" % path)
    try:
        entries = _read_index(idx)
        labels = _record_labels(rec, entries)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DataError("cannot read the RecordIO pack %s (%s); pack the folder again"
                        % (rec, error_line(err)[:200])) from None
    return ImageSplit([key for key, _ in entries], _class_labels(labels, rec, classes),
                      rec=(rec, idx))


def _class_labels(labels, rec, classes):
    """Record labels as class indices 0..classes-1, or DataError."""
    out = []
    for label in labels:
        try:
            value = float(label)
        except ValueError:  # a multi-label record
            value = float("nan")
        if not (value.is_integer() and 0 <= value < (classes or float("inf"))):
            raise DataError("%s holds label %r; each record needs one class index in 0..%s"
                            % (rec, label, "K-1" if classes is None else classes - 1))
        out.append(int(value))
    return out


def scan_pack(root):
    """Scan the RecordIO pack in ``root`` into an :class:`ImageData` (kind "rec")."""
    root = os.path.expanduser(str(root))
    names, grey = _read_pack_meta(root)
    train = read_pack_split(root, "train", len(names) if names else None)
    val = read_pack_split(root, "val", len(names) if names else None)
    notes = []
    if names is None:  # e.g. a pack made by MXNet's im2rec: classes are numbers
        count = max(train.labels + val.labels) + 1
        names = [str(i) for i in range(count)]
        notes.append("%s has no %s: the %d classes are named 0..%d" % (root, PACK_META, count,
                                                                     count - 1))
    missing = sorted(set(val.labels) - set(train.labels))
    if missing:
        raise DataError("class %r is in val.rec but not in train.rec; pack the folder again"
                        % names[missing[0]])
    _check_classes(names, root)
    return _finish(ImageData("rec", root, names, train, val, grey=grey, notes=notes))


def scan_images(kind, root, val_split=None, bad_images="skip"):
    """The :class:`ImageData` of ``--dataset folder`` or ``--dataset rec`` in ``root``."""
    if kind == "rec":
        if val_split is not None:
            raise DataError("--val-split applies to an image folder; a pack has its own val.rec")
        return scan_pack(root)
    return check_bad_images(scan_folder(root, val_split), bad_images)

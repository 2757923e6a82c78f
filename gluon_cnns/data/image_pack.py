"""Reading a RecordIO pack: what ``scripts/pack.py`` writes, or MXNet's ``im2rec.py``.

``train.rec``/``train.idx`` (and ``val.*``): each record an ``mx.recordio``
header whose label is the class index, followed by the image file's bytes;
``pack.json`` holds the class names (and the files' sizes, to recognize a pack
only partly replaced). MXNet's ``tools/im2rec.py`` writes the same records as
``PREFIX_train.rec``/``.idx`` and ``PREFIX_val.rec``/``.idx`` (with
``--list --train-ratio``); such a pack has no pack.json and names its classes
0..K-1. Scanning reads only each record's header, not its image.
"""
import os
import struct

from ..errors import DataError, error_line
from ..io import open_regular, read_json
from .image_data import MAX_CLASSES, ImageData, RecordSplit, check_classes, finish
from .pack_verify import verify_pack_files

PACK_META = "pack.json"
PACK_FORMAT = 1


def pack_paths(root, split, prefix=None):
    """``(rec, idx)`` paths of one split of the pack in ``root``; with ``prefix``, of the
    pack that im2rec.py wrote as ``prefix_<split>.rec``."""
    stem = os.path.join(root, split) if prefix is None else "%s_%s" % (prefix, split)
    return stem + ".rec", stem + ".idx"


def _read_pack_meta(root):
    """pack.json's class names and grey flag, or (None, False) when there is none."""
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
    if isinstance(files, dict):
        verify_pack_files(root, path, files)
    return names, meta.get("grey") is True


# dmlc-core's record framing (recordio.h): a magic word, then the length (low 29 bits)
# and a continuation flag; the payload starts with mx.recordio's IRHeader ('IfQQ').
_MAGIC, _FRAME, _HEADER = 0xCED7230A, struct.Struct("<II"), struct.Struct("<IfQQ")


def _read_index(idx):
    """``[(key, byte offset)]`` of a ``.idx`` file (``key<TAB>offset`` lines)."""
    entries, keys = [], set()
    with open_regular(idx, text=True) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ValueError("%s line %d is not 'key<TAB>offset'" % (idx, number))
            if int(parts[0]) in keys:
                raise ValueError("%s names record %s twice" % (idx, parts[0]))
            keys.add(int(parts[0]))
            entries.append((int(parts[0]), int(parts[1])))
    if not entries:
        raise ValueError("%s holds no records" % idx)
    return entries


def _record_labels(rec, entries):
    """The label of each record: its header alone is read, not the image after it."""
    labels, size = [], os.path.getsize(rec)
    with open_regular(rec) as f:
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


def read_pack_split(root, split, classes=None, prefix=None):
    """One split of a pack: its record keys and labels, read from the records' headers."""
    rec, idx = pack_paths(root, split, prefix)
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise DataError("%s not found; a RecordIO pack needs train.rec, train.idx, val.rec "
                            "and val.idx (scripts/pack.py writes them), or im2rec.py's "
                            "PREFIX_train.rec, .idx and PREFIX_val.rec, .idx" % path)
    try:
        entries = _read_index(idx)
        labels = _record_labels(rec, entries)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DataError("cannot read the RecordIO pack %s (%s); pack the folder again"
                        % (rec, error_line(err)[:200])) from None
    return RecordSplit([key for key, _ in entries], _class_labels(labels, rec, classes),
                       rec=rec, idx=idx)


def _class_labels(labels, rec, classes):
    """Record labels as class indices 0..classes-1, or DataError."""
    out = []
    for label in labels:
        try:
            value = float(label)
        except ValueError:  # a multi-label record
            value = float("nan")
        if not (value.is_integer() and 0 <= value < (classes or MAX_CLASSES)):
            raise DataError("%s holds label %r; each record needs one class index in 0..%s"
                            % (rec, label, (classes or MAX_CLASSES) - 1))
        out.append(int(value))
    return out


def scan_pack(root, prefix=None):
    """Scan the RecordIO pack in ``root`` (im2rec's ``prefix_*`` files with ``prefix``) into
    an :class:`ImageData` (kind "rec")."""
    root = os.path.expanduser(str(root))
    names, grey = _read_pack_meta(root) if prefix is None else (None, False)
    train = read_pack_split(root, "train", len(names) if names else None, prefix)
    val = read_pack_split(root, "val", len(names) if names else None, prefix)
    notes = []
    if names is None:  # e.g. a pack made by MXNet's im2rec
        count = max(train.labels + val.labels) + 1
        names = listed_class_names(prefix, count) if prefix else None
        if names is None:
            names = [str(i) for i in range(count)]
            notes.append("%s has no %s: the %d classes are named 0..%d"
                         % (prefix or root, PACK_META, count, count - 1))
    missing = sorted(set(range(len(names))) - set(train.labels))
    if missing:
        train_rec, val_rec = os.path.basename(train.rec), os.path.basename(val.rec)
        where = "%s but not in %s" % (val_rec, train_rec) if missing[0] in val.labels else \
            "the pack's classes but has no record in %s" % train_rec
        raise DataError("class %r is in %s; pack the folder again"
                        % (names[missing[0]], where))
    check_classes(names, root)
    return finish(ImageData("rec", root, names, train, val, grey=grey, notes=notes))


def listed_class_names(prefix, count):
    """The class names of an im2rec.py pack: the folder each label's images are in, as
    ``im2rec.py --list --recursive`` wrote them to PREFIX_train.lst and PREFIX_val.lst
    (``index<TAB>label<TAB>class/file``); None unless the lists name one folder per label."""
    folders = {}
    try:
        for split in ("train", "val"):
            with open_regular("%s_%s.lst" % (prefix, split), text=True) as f:
                for line in f:
                    parts = line.rstrip("\n").split("\t")
                    path = parts[-1].replace(os.sep, "/")
                    folder = path.split("/")[0] if "/" in path and len(parts) == 3 else None
                    folders.setdefault(float(parts[1]), set()).add(folder)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None  # no lists, or not im2rec's: the classes are numbered
    names = [folders.get(float(label), {None}) for label in range(count)]
    if len(folders) != count or any(len(n) != 1 or None in n for n in names):
        return None
    names = [n.pop() for n in names]
    return names if len(set(names)) == count else None


def im2rec_prefix(root):
    """The PREFIX of the pack im2rec.py wrote as ``PREFIX_train.rec`` that ``root`` names
    (the prefix itself, or the folder holding one such pack), or None."""
    root = os.path.expanduser(str(root))
    if os.path.isfile(root + "_train.rec"):
        return root
    found = sorted(name[:-len("_train.rec")] for name in _listdir(root)
                   if name.endswith("_train.rec"))
    if len(found) > 1:
        raise DataError("%s holds %d im2rec packs (%s); pass one as --data-dir %s"
                        % (root, len(found), ", ".join(n + "_train.rec" for n in found),
                           os.path.join(root, found[0])))
    return os.path.join(root, found[0]) if found else None


def _listdir(folder):
    try:
        return os.listdir(folder)
    except OSError:  # not a folder: the scan says what is missing
        return []


class GluonPack:
    """``--dataset rec``: ``train.rec``/``.idx``, ``val.rec``/``.idx`` and pack.json, as
    ``scripts/pack.py`` writes them."""
    dataset = "rec"

    @staticmethod
    def recognizes(root):
        names = ("train.rec", "train.idx", "val.rec", "val.idx", PACK_META)
        return any(os.path.lexists(os.path.join(root, name)) for name in names)

    @staticmethod
    def scan(root, val_split=None, bad_images="skip"):
        _no_val_split(val_split)
        return scan_pack(root)


class Im2recPack:
    """``--dataset rec``: ``PREFIX_train.rec``/``.idx`` and ``PREFIX_val.rec``/``.idx``, as
    MXNet's ``tools/im2rec.py`` writes them; ``--data-dir`` is PREFIX or its folder."""
    dataset = "rec"

    @staticmethod
    def recognizes(root):
        return im2rec_prefix(root) is not None

    @staticmethod
    def scan(root, val_split=None, bad_images="skip"):
        _no_val_split(val_split)
        prefix = im2rec_prefix(root)
        return scan_pack(os.path.dirname(prefix), prefix)


def _no_val_split(val_split):
    if val_split is not None:
        raise DataError("--val-split applies to an image folder; a pack has its own val.rec")

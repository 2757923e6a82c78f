"""Reading a RecordIO pack: what ``scripts/pack.py`` writes (or MXNet's ``im2rec``).

``train.rec``/``train.idx`` (and ``val.*``): each record an ``mx.recordio``
header whose label is the class index, followed by the image file's own bytes;
``pack.json`` holds the class names (and the files' sizes, to recognize a pack
only partly replaced). A pack without it -- made by ``im2rec`` -- names its
classes 0..K-1. Scanning reads only each record's header, not its image.
"""
import os
import struct

from ..errors import DataError, error_line
from ..io import open_regular, read_json
from .images import MAX_CLASSES, ImageData, ImageSplit, check_classes, finish
from .pack_verify import verify_pack_files

PACK_META = "pack.json"
PACK_FORMAT = 1


def pack_paths(root, split):
    """``(rec, idx)`` paths of one split of the pack in ``root``."""
    return os.path.join(root, split + ".rec"), os.path.join(root, split + ".idx")


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
        if not (value.is_integer() and 0 <= value < (classes or MAX_CLASSES)):
            raise DataError("%s holds label %r; each record needs one class index in 0..%s"
                            % (rec, label, (classes or MAX_CLASSES) - 1))
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
    missing = sorted(set(range(len(names))) - set(train.labels))
    if missing:
        where = "val.rec but not in train.rec" if missing[0] in val.labels else \
            "the pack's classes but has no record in train.rec"
        raise DataError("class %r is in %s; pack the folder again"
                        % (names[missing[0]], where))
    check_classes(names, root)
    return finish(ImageData("rec", root, names, train, val, grey=grey, notes=notes))

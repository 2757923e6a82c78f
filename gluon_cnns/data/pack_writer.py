"""Writing a RecordIO pack of an image folder, read back by ``--dataset rec``.

Record ``i`` of a split is example ``i`` of ``scan_folder``'s split: its class
index and the image file's own bytes (not re-encoded), so folder and pack give
the same pixels and batches. Each image is fully decoded once first; one that
cannot be read is left out (later keys then shift relative to the folder) or,
with ``bad_images="stop"``, stops the pack. The five files are written under
temporary names in OUT, fsynced, then renamed into place, pack.json (sizes,
SHA-256 of the others) first: see :func:`commit`. ``scripts/pack.py`` is the
command line over :func:`pack_folder`.
"""
import hashlib
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from ..errors import GluonCNNsError, UsageError, error_line
from ..io import (_FILE_MODE, LockHeld, NotRegularFile, _fsync_folder, read_json,
                  release_lock, take_lock)
from ..ownership import check_owned
from .decode import ImageError, load_image, open_regular
from .image_data import SPLITS
from .image_folder import scan_folder
from .image_pack import PACK_FORMAT, PACK_META

LOCK = ".pack.lock"
PACK_FILES = ("train.rec", "train.idx", "val.rec", "val.idx")
CHUNK = 256  # images read (and held in memory) at a time
WORKERS = min(4, os.cpu_count() or 1)  # Pillow decodes without the GIL
# What a killed pack leaves in OUT: ".NAME.RANDOM.tmp" (new files), ".NAME.PID.old" (backups).
_LEFTOVER = re.compile(r"^\.(train\.rec|train\.idx|val\.rec|val\.idx|pack\.json)\..+\.(tmp|old)$")


def check_out(root, out):
    """UsageError unless OUT can hold the pack without becoming part of the folder DIR."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError("--out %s is a file, not a folder" % out)
    rel = os.path.relpath(os.path.realpath(out), os.path.realpath(root))
    if rel in (os.curdir, os.pardir) or rel.startswith(os.pardir + os.sep):
        return  # DIR itself (its files are not scanned), or outside DIR
    top = rel.split(os.sep)[0]
    if top in ("train", "val") or not (top.startswith(".")
                                       or os.path.isdir(os.path.join(root, "train"))):
        raise UsageError("--out %s is inside the image folder %s, where it would be read as a "
                         "class or split folder; choose a folder outside it, or DIR itself"
                         % (out, root))


def is_pack_folder(out):
    """Whether OUT holds a pack of this package and nothing else, or what a killed pack left:
    a pack's marker (gluon_cnns.ownership) is its pack.json, renamed into place first."""
    names = os.listdir(out)
    if all(n == LOCK or _LEFTOVER.match(n) for n in names):
        return True  # what a pack killed at its start left
    if PACK_META not in names or not all(n in PACK_FILES + (PACK_META, LOCK) or
                                         _LEFTOVER.match(n) for n in names):
        return False
    try:
        return "class_names" in read_json(os.path.join(out, PACK_META))
    except (OSError, ValueError):
        return False


def refuse_existing(out, overwrite):
    """UsageError if OUT holds (part of) a pack and ``overwrite`` is not set."""
    found = [n for n in PACK_FILES + (PACK_META,) if os.path.lexists(os.path.join(out, n))]
    if found and not overwrite:
        raise UsageError("%s already holds a pack (%s); pass --overwrite to replace it"
                         % (out, ", ".join(found)))


def lock(out):
    """An exclusive lock on OUT/.pack.lock (released when the process ends); its fd.
    Holding it, the leftovers of a killed pack are removed."""
    try:
        fd = take_lock(os.path.join(out, LOCK))
    except LockHeld as held:
        raise GluonCNNsError("%s is being packed by another process (pid %s); wait for it "
                             "to end or choose another --out" % (out, held.holder)) from None
    except NotRegularFile as e:
        raise GluonCNNsError("cannot lock %s (%s); remove it"
                             % (os.path.join(out, LOCK), error_line(e))) from None
    for name in os.listdir(out):  # we hold the lock: these are a killed pack's leftovers
        if _LEFTOVER.match(name):
            os.remove(os.path.join(out, name))
    return fd


def unlock(out, fd):
    release_lock(os.path.join(out, LOCK), fd)


def check_space(out, data):
    """GluonCNNsError if OUT's file system clearly lacks room for the pack."""
    import shutil
    paths = [p for p in data.train.sources + data.val.sources if os.path.exists(p)]
    need, free = sum(os.stat(p).st_size + 48 for p in paths), shutil.disk_usage(out).free
    if free < need:  # 48: a record's header and padding, an index line
        raise GluonCNNsError("%s has %s free; the pack needs about %s"
                             % (out, size_text(free), size_text(need)))


def read_checked(path):
    """``(file bytes, None)`` once the image fully decodes, else ``(None, reason)``."""
    try:
        with open_regular(path) as f:
            raw = f.read()
        load_image(raw)
        return raw, None
    except (ImageError, OSError) as err:  # ImageError: the reason in a few words
        return None, str(err)


def bad_images_error(bad):
    s, them = ("s", "them") if len(bad) > 1 else ("", "it")
    return GluonCNNsError("%d image file%s cannot be read (first: %s: %s); remove %s, or pass "
                          "--bad-images skip to pack without %s"
                          % (len(bad), s, bad[0][0], bad[0][1], them, them))


def write_split(split, rec, idx, bad, policy, pool):
    """Write ``split``'s readable images as records 0..n-1 of ``rec``/``idx``; returns
    ``(n, rec info, idx info)``, each info the file's {"size", "sha256"}."""
    import mxnet as mx
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    key = 0
    try:
        for start in range(0, len(split), CHUNK):
            paths = split.sources[start:start + CHUNK]
            labels = split.labels[start:start + CHUNK]
            for path, label, (raw, reason) in zip(paths, labels, pool.map(read_checked, paths)):
                if reason is not None:
                    bad.append((path, reason))
                    if policy == "stop":
                        raise bad_images_error(bad)
                    continue
                header = mx.recordio.IRHeader(0, float(label), key, 0)
                writer.write_idx(key, mx.recordio.pack(header, raw))
                key += 1
        end = writer.tell()
    finally:
        writer.close()
    return key, sync(rec, end), sync(idx)


def sync(path, size=None):
    """fsync ``path``, check it holds ``size`` bytes (else a write failed): {"size", "sha256"}."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        actual = f.tell()
    if size is not None and actual != size:
        raise GluonCNNsError("writing %s stopped at %d of %d bytes; is the disk full?"
                             % (path, actual, size))
    os.chmod(path, _FILE_MODE)
    return {"size": actual, "sha256": digest.hexdigest()}


def commit(out, temps):
    """Rename ``temps`` [(name, temp path)] into place; a failed rename puts the old back.
    pack.json goes first: its sizes then name the new files, so a kill before the last
    rename leaves files that disagree with it, never a pack that reads as valid (a first
    pack without pack.json would read as one made by im2rec)."""
    existed = {name for name, _ in temps if os.path.lexists(os.path.join(out, name))}
    backups, done = {}, []
    try:
        for name in existed:
            backup = os.path.join(out, ".%s.%d.old" % (name, os.getpid()))
            with suppress(OSError):  # no hard links: a failed rename leaves a mix pack.json rejects
                os.link(os.path.join(out, name), backup)
                backups[name] = backup
        for name, tmp in temps:
            os.replace(tmp, os.path.join(out, name))
            done.append(name)
    except BaseException:
        for name in reversed(done):
            if name in backups:
                os.replace(backups.pop(name), os.path.join(out, name))
            elif name not in existed:
                os.remove(os.path.join(out, name))
        raise
    finally:
        for backup in backups.values():
            os.remove(backup)
    _fsync_folder(out)


def write_pack(data, out, policy):
    """Write the pack of ``data`` into OUT; ``(counts, file infos, bad images)``."""
    names = (PACK_META,) + PACK_FILES  # the order of the renames
    temps = {}
    bad, counts, files = list(data.train.skipped), {}, {}
    try:
        for name in names:
            fd, temps[name] = tempfile.mkstemp(dir=out, prefix="." + name + ".", suffix=".tmp")
            os.close(fd)
        with ThreadPoolExecutor(WORKERS) as pool:
            for split in SPLITS:
                rec, idx = split + ".rec", split + ".idx"
                counts[split], files[rec], files[idx] = write_split(
                    getattr(data, split), temps[rec], temps[idx], bad, policy, pool)
                if not counts[split]:
                    raise GluonCNNsError("no image of the %s split of %s can be read; nothing "
                                         "to pack" % (split, data.root))
        meta = {"format": PACK_FORMAT, "class_names": data.class_names, "grey": data.grey,
                "counts": counts, "source": os.path.abspath(data.root), "files": files}
        with open(temps[PACK_META], "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        sync(temps[PACK_META])
        commit(out, [(name, temps[name]) for name in names])
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
    return counts, files, bad


def size_text(size):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return "%.1f %s" % (size / scale, unit)
    return "%d bytes" % size


def pack_folder(root, out=None, val_split=None, bad_images="skip", overwrite=False,
                warn=None):
    """Pack the image folder ``root`` into the folder ``out`` (default: ``root``).

    ``val_split``: without ``root/val/``, the fraction of each class held out;
    ``bad_images``: "skip" or "stop" on an image that cannot be read;
    ``overwrite``: replace a pack already in ``out``; ``warn`` is called with
    each line of what the scan noticed. Returns ``{"out", "counts", "files",
    "bad", "classes", "seconds"}``; a mistake or a failure raises
    GluonCNNsError (or OSError, MXNetError) and replaces no pack.
    """
    root = os.path.abspath(os.path.expanduser(root))
    out = os.path.abspath(os.path.expanduser(out or root))
    check_out(root, out)
    if out != root:  # DIR itself, the default, is the user's choice
        check_owned(out, "--out", recognise=is_pack_folder)  # pack.json, written first, marks it
    refuse_existing(out, overwrite)  # before the scan: refuse fast
    data = scan_folder(root, val_split)
    if bad_images == "stop" and data.train.skipped:
        raise bad_images_error(data.train.skipped)
    for note in data.notes:
        if warn is not None:
            warn(note)
    os.makedirs(out, exist_ok=True)
    fd = lock(out)
    try:
        refuse_existing(out, overwrite)  # again, now that OUT is ours
        check_space(out, data)
        start = time.time()
        counts, files, bad = write_pack(data, out, bad_images)
    finally:
        unlock(out, fd)
    return {"out": out, "counts": counts, "files": files, "bad": bad,
            "classes": len(data.class_names), "seconds": max(time.time() - start, 1e-6)}

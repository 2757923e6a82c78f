"""Crash-safe file writes, small JSON helpers and a restricted unpickler.

A training run can be killed at any moment (Ctrl-C, a preempted machine, a
full disk). If a checkpoint were written in place, a kill halfway through
would leave a truncated file and ``--resume`` would have nothing to resume
from. So every file is written to a temporary file in the same folder,
flushed to disk, and then renamed over the old one: a rename within one
folder is atomic, so readers see either the old file or the new one, never
half of each.
"""
import json
import os
import pickle
import re
import stat
import tempfile


def _current_umask():
    """The process umask (os.umask can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; give the final file the
# permissions an ordinary open() would have given it.
_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(path, write_fn):
    """Write ``path`` atomically: ``write_fn(tmp_path)`` writes a temporary file, which replaces ``path``.

    ``write_fn`` gets a *path* rather than an open file because the writers we
    need (``net.save_parameters``, ``trainer.save_states``, ``fig.savefig``)
    take file names. The temporary file lives in the same folder as ``path``
    because ``os.replace`` is only atomic within one file system.
    """
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write_fn(tmp)
        # Force the bytes to disk before the rename, else a power cut could
        # leave the new name pointing at an empty file.
        with open(tmp, "ab") as f:
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        # Also on Ctrl-C: never leave temporary files behind.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX only; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path, text):
    """Atomically write the string ``text`` (UTF-8) to ``path``."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def write_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


_FILE_TYPES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def file_kind(mode):
    """What a non-regular file is, in words ("a named pipe"), from its ``st_mode``."""
    return next((name for test, name in _FILE_TYPES if test(mode)), "not a file")


def path_kind(path):
    """``path`` in words: None (nothing there), "a folder", "a file", "a named pipe", ...,
    or "a symbolic link to TARGET, which does not exist"."""
    if not os.path.lexists(path):
        return None
    if not os.path.exists(path):
        return "a symbolic link to %s, which does not exist" % os.readlink(path)
    mode = os.stat(path).st_mode
    return "a file" if stat.S_ISREG(mode) else file_kind(mode)


class NotRegularFile(ValueError):
    """A path that is a folder, a named pipe, a device or a socket; ``kind`` says which."""

    def __init__(self, path, kind):
        super().__init__("%s is not a regular file (%s)" % (path, kind))
        self.kind = kind


def open_regular(path, text=False):
    """``path`` opened for reading, or :class:`NotRegularFile` unless it is a regular file.

    The open does not block (O_NONBLOCK): a named pipe without a writer would
    otherwise wait forever, and a device would never end.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, file_kind(mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "r", encoding="utf-8") if text else os.fdopen(fd, "rb")


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is its pid as it wrote it (or "unknown")."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


def take_lock(path):
    """An exclusive ``flock`` on ``path`` (created if needed), holding this process's pid;
    returns its fd, to keep open: the OS releases the lock when the process ends, however
    it ends (kill -9 included). Raises :class:`LockHeld` when another process has it, and
    :class:`NotRegularFile` when ``path`` is a symbolic link, a folder, a pipe or a device,
    rather than writing through it."""
    import errno
    import fcntl
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0), 0o644)
        except OSError as e:
            kinds = {errno.ELOOP: "a symbolic link", errno.EISDIR: "a folder"}
            if e.errno not in kinds:
                raise
            raise NotRegularFile(path, kinds[e.errno]) from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise NotRegularFile(path, file_kind(mode))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(holder) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # else the holder removed the file while we waited: try again
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def release_lock(path, fd):
    """Give up a :func:`take_lock` lock: the file is removed before the fd is closed, so a
    waiter never locks a file that is already gone."""
    try:
        os.remove(path)
    except OSError:
        pass
    os.close(fd)


# What a JSON file of this package may hold: its files are kilobytes (an exported
# symbol, the largest, is a few megabytes) and a few levels deep. Python's json
# recurses once per level: a file nested 100,000 deep would end in RecursionError.
MAX_JSON_BYTES = 64 << 20
MAX_JSON_DEPTH = 100
_JSON_TYPES = {dict: "a JSON object", list: "a JSON list", str: "a JSON string",
               int: "a JSON number", float: "a JSON number", bool: "true or false",
               type(None): "null"}
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


class JSONShapeError(ValueError):
    """A JSON file too large, nested too deeply, or of another top-level type than expected."""


def json_depth(text):
    """How deeply the arrays and objects of the JSON ``text`` nest (brackets inside strings
    do not count)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_json(text, name, expect=dict, max_depth=MAX_JSON_DEPTH):
    """``text`` parsed as JSON, checked for depth and for being an ``expect`` (a type,
    or None for any); ``name`` says what it is in the error (a ValueError)."""
    if json_depth(text) > max_depth:
        raise JSONShapeError("%s is nested more than %d levels deep" % (name, max_depth))
    value = json.loads(text)
    if expect is not None and (not isinstance(value, expect) or isinstance(value, bool)
                               and expect is not bool):
        raise JSONShapeError("%s holds %s, not %s" % (name, _JSON_TYPES.get(type(value), "?"),
                                                      _JSON_TYPES.get(expect, expect.__name__)))
    return value


def _read_bounded(path, max_bytes):
    """The text of the regular file ``path``; JSONShapeError if it is over ``max_bytes``."""
    with open_regular(path, text=True) as f:
        text = f.read(max_bytes + 1)
    if len(text) > max_bytes:
        raise JSONShapeError("%s is larger than %d MB, more than such a file ever holds"
                             % (path, max_bytes >> 20))
    return text


def read_json(path, expect=dict, max_bytes=MAX_JSON_BYTES):
    """Read a JSON file that must hold an ``expect`` (default: an object; None: anything);
    raises ``OSError`` or ``ValueError`` if it is missing, not a regular file, corrupt,
    over ``max_bytes``, nested over :data:`MAX_JSON_DEPTH` levels or of another type.
    Every JSON file the package reads is read here."""
    return parse_json(_read_bounded(path, max_bytes), path, expect)


def write_jsonl(path, records):
    """Atomically write ``records`` as JSON Lines: one compact JSON object per line.

    Appending in place is not atomic, so "append" means rewriting the whole
    (small) log with the new record at the end.
    """
    return write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_jsonl(path, max_bytes=MAX_JSON_BYTES):
    """Read a JSON Lines file of objects into a list (blank lines are skipped); bounded
    like :func:`read_json`."""
    return [parse_json(line, "%s line %d" % (path, number), dict)
            for number, line in enumerate(_read_bounded(path, max_bytes).split("\n"), 1)
            if line.strip()]


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads only the globals ``allow(module, name)`` accepts.

    A pickle can call any function while it loads ("pickle is not secure", Python
    docs); the files this package reads need a handful of known classes, and
    every other global is refused before anything runs.
    """

    def __init__(self, file, allow, **kwargs):
        super().__init__(file, **kwargs)
        self._allow = allow

    def find_class(self, module, name):
        if not self._allow(module, name):
            raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))
        return super().find_class(module, name)

"""Where an export's files are, and how an export is published atomically as a whole.

An export with prefix PATH is ``PATH-symbol.json`` + ``PATH-0000.params``
(``HybridBlock.export``; ``SymbolBlock.imports`` takes them), ``PATH.onnx`` and
the sidecar ``PATH.json``, which names the files of its export. The files are
made in a hidden staging folder beside the target (``.<name>.export-XXXX``), so
a failing export leaves an existing good one untouched; then the sidecar, the
export's pointer, is swapped (by a rename) for one naming the staged files;
then each file is renamed into its place, and last the sidecar is swapped for
one naming those. Readers follow the sidecar, holding the folder's shared lock,
so a kill at any moment leaves either the previous export or the new, complete
one -- never a mix -- and the next export removes what a killed one left.
"""
import contextlib
import json
import os
import re
import shutil
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX: exports are not guarded against concurrent writers
    fcntl = None

from ..errors import ExportError
from ..io import _current_umask, _fsync_folder, read_json

# The files of an export with prefix PATH: PATH + suffix, by kind ("meta" is the sidecar).
SUFFIXES = {"symbol": "-symbol.json", "params": "-0000.params", "onnx": ".onnx",
            "meta": ".json"}
FILE_KINDS = ("symbol", "params", "onnx")
STAGED = "model"             # the files' prefix inside a staging folder
# What a sidecar may ask of a reader: a sane size.
MAX_SIDECAR_BYTES = 16 << 20


def export_paths(path):
    """The files of the export with prefix ``path``: symbol, params, onnx and the sidecar (meta).

    These are where a published export's files are (``SymbolBlock.imports``
    takes the first two). Only while an export is being published -- or
    after a kill in the middle of it -- does the sidecar name the copies in
    its staging folder instead; :func:`load_exported` follows the sidecar.
    """
    return {kind: path + suffix for kind, suffix in SUFFIXES.items()}


def export_target(path, net_name):
    """The absolute prefix ``export_model`` writes to; a folder (``dir/``, ``.``) gets the net's name."""
    path = os.fsdecode(os.fspath(path))
    if not path.strip():
        raise ExportError("the export path is empty; give a prefix such as exports/lenet "
                          "(or a folder ending in /, e.g. exports/)")
    if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        path = os.path.join(path, net_name.replace(os.sep, "_").replace("/", "_"))
    return os.path.abspath(path)


def export_prefix(path):
    """The export prefix of ``path``, which may also name one of the export's files."""
    path = os.fspath(path)
    if os.path.exists(path + ".json"):
        return path
    for suffix in ("-symbol.json", "-0000.params", ".onnx", ".json"):
        if path.endswith(suffix) and os.path.exists(path[:-len(suffix)] + ".json"):
            return path[:-len(suffix)]
    return path


def _staging_pattern(base):
    """Names of the staging folders of exports to prefix ``base`` (this version's and older)."""
    return re.compile(r"^\.%s\.export-[A-Za-z0-9_]+$" % re.escape(base))


# A staged file as a sidecar names it: "<staging folder>/model<suffix>".
_STAGED_FILE = re.compile(r"^(\.[^/\\]+\.export-[A-Za-z0-9_]+)/%s(%s)$"
                          % (STAGED, "|".join(re.escape(SUFFIXES[k]) for k in FILE_KINDS)))


def _flock(path, exclusive, blocking=True):
    """A descriptor of ``path`` (a folder) holding a ``flock``, to be closed to release it.

    None where locking is unavailable (not POSIX, a file system without
    flock). A held lock raises BlockingIOError when not ``blocking``; a
    folder that cannot be opened raises OSError.
    """
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                    | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def folder_lock(folder, exclusive):
    """Hold ``folder``'s lock: exclusive while an export is published, shared while one is read.

    A reader so never sees the sidecar of one export with the files of
    another, even while an export is being published. Where the folder
    cannot be locked, readers and writers go on unguarded.
    """
    try:
        fd = _flock(folder, exclusive)
    except OSError:
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def named_staging(meta_file):
    """The staging folders that the sidecar ``meta_file`` names (an unfinished publication)."""
    try:
        if not os.path.isfile(meta_file) or os.path.getsize(meta_file) > MAX_SIDECAR_BYTES:
            return set()  # (a named pipe would block the read)
        files = read_json(meta_file).get("files") or {}
        return {m.group(1) for m in map(_STAGED_FILE.match, files.values()) if m}
    except Exception:  # no sidecar, a damaged one: it names nothing
        return set()


def remove_stale(folder, base, keep=()):
    """Delete what killed exports to prefix ``base`` left in ``folder``.

    That is the staging folders that no export in progress holds (each export
    locks its own) and that are not in ``keep`` (the one the sidecar names),
    and the temporary files of older versions of this module.
    """
    staging = _staging_pattern(base)
    temporary = re.compile(r"^\.%s(%s)\.[^.]+\.tmp$"
                           % (re.escape(base), "|".join(map(re.escape, SUFFIXES.values()))))
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if staging.match(name) and name not in keep and not os.path.islink(path) \
                and os.path.isdir(path):
            try:
                fd = _flock(path, exclusive=True, blocking=False)
            except OSError:  # BlockingIOError: an export is using it
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                if fd is not None:
                    os.close(fd)
        elif temporary.match(name) and os.path.isfile(path):
            with contextlib.suppress(OSError):
                os.remove(path)


def make_staging(folder, base):
    """``(path, lock)``: a new staging folder beside the target, locked against clean-ups."""
    staging = tempfile.mkdtemp(dir=folder, prefix=".%s.export-" % base)
    # mkdtemp makes it private; while the sidecar names it, readers of the export need it.
    os.chmod(staging, 0o777 & ~_current_umask())
    try:
        return staging, _flock(staging, exclusive=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _replace_json(staging, target, obj):
    """Write ``obj`` as JSON in the staging folder, to disk, then rename it onto ``target``."""
    tmp = os.path.join(staging, "sidecar.json")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _link_or_copy(source, link):
    """``link`` as a hard link to ``source`` (a copy where the file system has no links)."""
    try:
        os.link(source, link)
    except OSError:
        shutil.copyfile(source, link)
        _fsync_file(link)


def publish(folder, base, staging, kinds, meta, progress):
    """Make the export staged in ``staging`` the export at ``folder/base``, atomically as a whole.

    1. the sidecar is replaced by one that names the staged files (the
       commit: from here on, readers get the new export, complete);
    2. each file is linked into its final name by a rename, and files of the
       previous export's other formats are removed;
    3. the sidecar is replaced by one that names the final files.

    ``progress["committed"]`` is set after step 1: from then on the staging
    folder must stay until the publication ends (or the next export).
    """
    final = export_paths(os.path.join(folder, base))
    staged = export_paths(os.path.join(staging, STAGED))
    for kind in kinds + ["meta"]:
        if os.path.isdir(final[kind]):
            raise ExportError("%s is a folder; choose another export path" % final[kind])
    for kind in kinds:  # on disk before the sidecar names them
        _fsync_file(staged[kind])
    _fsync_folder(staging)
    name = os.path.basename(staging)
    with folder_lock(folder, exclusive=True):
        _replace_json(staging, final["meta"],
                      dict(meta, files={k: "%s/%s%s" % (name, STAGED, SUFFIXES[k]) for k in kinds}))
        progress["committed"] = True
        for kind in kinds:
            link = os.path.join(staging, "publish" + SUFFIXES[kind])
            _link_or_copy(staged[kind], link)
            os.replace(link, final[kind])
        for kind in FILE_KINDS:
            if kind not in kinds and os.path.isfile(final[kind]):
                os.remove(final[kind])  # the previous export's: no sidecar names it now
        _replace_json(staging, final["meta"],
                      dict(meta, files={k: os.path.basename(final[k]) for k in kinds}))
        progress["done"] = True
        _fsync_folder(folder)
        remove_stale(folder, base)  # e.g. the staging folder of an export killed after step 1


def export_files(prefix, meta):
    """``{kind: path}`` of the files of the export, as its sidecar lists them.

    A file listed by its bare name is the prefix's own (``PATH-symbol.json``,
    ...), whatever the name recorded: an export may be renamed. A file listed
    in a staging folder is that copy (a publication in progress, or killed).
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    flat = export_paths(prefix)
    files = meta.get("files")
    if files is None:  # written by hand: every format, at the prefix
        return {kind: flat[kind] for kind in FILE_KINDS}
    return {kind: os.path.join(folder, *name.split("/")) if "/" in name else flat[kind]
            for kind, name in files.items()}

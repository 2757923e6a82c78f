"""A pack is checked against what ``pack.json`` records before it is used.

``scripts/pack.py`` records each file's size and SHA-256 in pack.json. A pack
changed afterwards -- a record's label edited in place, a flipped byte in an
image -- would otherwise train without a word: an in-range label reads as any
other. Hashing the files is one sequential read of the pack before the first epoch:
on the real Fashion-MNIST pack (70,000 PNGs, 38.7 MB; OMP_NUM_THREADS=1, warm page
cache, a shared 2-core machine) SHA-256 ran at 220-290 MB/s, 0.13-0.18 s once per
run. A CRC-32 of each record read through MXIndexedRecordIO took longer (0.59 s for
the 60,000 training records) and would need a new pack.json field; so the files are
hashed, and the RecordIO files stay as MXNet's own tools read them.
"""
import hashlib
import os

from ..errors import DataError
from ..io import open_regular

CHUNK = 1 << 20


def sha256_of(path):
    """The SHA-256 (hex) of the regular file ``path``."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_pack_files(root, meta_path, files):
    """DataError unless each file ``files`` (pack.json's {"name": {"size", "sha256"}}) names
    in ``root`` has the recorded SHA-256; files without a recorded SHA-256 are not checked."""
    for name, info in sorted(files.items()):
        expected = info.get("sha256") if isinstance(info, dict) else None
        path = os.path.join(root, os.path.basename(name))
        if not isinstance(expected, str) or not os.path.isfile(path):
            continue
        if sha256_of(path) != expected:
            raise DataError("%s was changed after it was packed (its SHA-256 differs from the one "
                            "%s records); pack the folder again" % (path, meta_path))

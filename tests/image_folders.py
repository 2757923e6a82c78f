"""Image folders of real pictures for the tests: the Fashion-MNIST test set written out as
PNG and JPEG files, one sub-folder per class (the layout ``--dataset folder`` reads)."""
import os
import shutil

import numpy as np

from gluon_cnns.data import datasets
from gluon_cnns.data.readers import read_idx_pair

FASHION_DIR = datasets.INFO["fashion-mnist"].system_folders[0]
# Folder-safe class names: "T-shirt/top" has a slash.
CLASS_FOLDERS = [name.replace("/", "-") for name in datasets.FASHION_MNIST_CLASSES]


def fashion_test_images():
    """Fashion-MNIST's 10,000 test images (N, 28, 28, 1) uint8 and labels, from Debian's files."""
    path = os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz")
    assert os.path.isfile(path), "%s is missing: apt-get install dataset-fashion-mnist" % path
    return read_idx_pair(path, os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"), 10)


def write_image_folder(root, per_class=20, val_per_class=6, classes=None, start=0,
                       with_val=True):
    """Write ``per_class`` training (and ``val_per_class`` val) images of each class under
    ``root`` (train/<class>/, val/<class>/; or <class>/ when not ``with_val``), alternating
    PNG and JPEG; returns ``root``. ``start`` skips that many images of each class first."""
    from PIL import Image
    images, labels = fashion_test_images()
    classes = range(10) if classes is None else classes
    for label in classes:
        index = np.flatnonzero(labels == label)[start:start + per_class + val_per_class]
        for n, i in enumerate(index):
            split = ("train" if n < per_class else "val") if with_val else ""
            if not with_val and n >= per_class:
                break
            folder = os.path.join(root, split, CLASS_FOLDERS[label])
            os.makedirs(folder, exist_ok=True)
            ext = ".png" if n % 2 == 0 else ".jpg"
            Image.fromarray(images[i, :, :, 0], "L").save(
                os.path.join(folder, "%05d%s" % (i, ext)), quality=95)
    return str(root)


def copy_folder(src, tmp_path, name="copy"):
    """A copy of the folder ``src`` as ``tmp_path/name``, to damage without touching it."""
    dst = str(tmp_path / name)
    shutil.copytree(src, dst)
    return dst


def png_header_only(path, width, height):
    """A PNG that says it is width x height, with one empty row of data: a huge image for
    the pixel bounds, never decoded (refused from its header)."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))

"""Image folders of real pictures for the tests: the Fashion-MNIST test set written out as
PNG and JPEG files, one sub-folder per class (the layout ``--dataset folder`` reads)."""
import os

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

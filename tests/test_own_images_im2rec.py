"""A RecordIO pack made by MXNet's own ``tools/im2rec.py`` (shipped in the pip wheel) trains
under the names im2rec gives it: ``PREFIX_train.rec``/``.idx`` and ``PREFIX_val.rec``/``.idx``.

The images are real: Fashion-MNIST test images written out as PNG and JPEG class folders.
"""
import json
import os
import subprocess
import sys

import mxnet as mx
import pytest

from gluon_cnns.data.images import scan_images
from image_folders import CLASS_FOLDERS, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
IM2REC = os.path.join(os.path.dirname(mx.__file__), "tools", "im2rec.py")


def _im2rec(*args):
    proc = subprocess.run([sys.executable, IM2REC] + list(args), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """``(folder of the pack, PREFIX)``: im2rec.py's two steps, as its --help describes
    them: list the class folders (80% train, 20% val), then pack the lists."""
    images = write_image_folder(str(tmp_path_factory.mktemp("images") / "fashion"),
                                per_class=10, val_per_class=0, with_val=False)
    out = str(tmp_path_factory.mktemp("im2rec"))
    prefix = os.path.join(out, "fashion")
    _im2rec("--list", "--recursive", "--train-ratio", "0.8", prefix, images)
    _im2rec("--num-thread", "1", prefix, images)
    return out, prefix


def _listed(lst):
    """``{record key: label}`` of an im2rec ``.lst`` file (index, label, path)."""
    with open(lst) as f:
        return {int(line.split("\t")[0]): int(float(line.split("\t")[1])) for line in f}


def test_im2rec_wrote_the_names_it_documents(packed):
    out, _ = packed
    assert sorted(os.listdir(out)) == ["fashion_train.idx", "fashion_train.lst",
                                       "fashion_train.rec", "fashion_val.idx",
                                       "fashion_val.lst", "fashion_val.rec"]


@pytest.mark.parametrize("where", ["prefix", "folder"])
def test_the_scan_reads_im2recs_records_and_labels(packed, where):
    out, prefix = packed
    data = scan_images("rec", prefix if where == "prefix" else out)
    for split, name in ((data.train, "train"), (data.val, "val")):
        assert split.rec == "%s_%s.rec" % (prefix, name)
        assert dict(zip(split.sources, split.labels)) == _listed("%s_%s.lst" % (prefix, name))
    assert len(data.train) == 80 and len(data.val) == 20
    # Named after the class folders that im2rec.py --list --recursive wrote to its lists.
    assert data.class_names == sorted(CLASS_FOLDERS) and not data.notes


def test_without_its_lists_the_classes_are_numbered(packed, tmp_path):
    out, prefix = packed
    for name in os.listdir(out):
        if not name.endswith(".lst"):
            os.symlink(os.path.join(out, name), str(tmp_path / name))
    data = scan_images("rec", str(tmp_path))
    assert data.class_names == [str(i) for i in range(10)]
    assert data.notes == ["%s has no pack.json: the 10 classes are named 0..9"
                          % (tmp_path / "fashion")]


def test_one_epoch_trains_on_the_pack_as_im2rec_named_it(packed, tmp_path):
    _, prefix = packed
    run_dir = str(tmp_path / "run")
    proc = subprocess.run([sys.executable, TRAIN, "--net", "lenet", "--dataset", "rec",
                           "--data-dir", prefix, "--epochs", "1", "--batch-size", "16",
                           "--save-dir", run_dir, "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["dataset"] == "rec" and config["class_names"] == sorted(CLASS_FOLDERS)
    assert config["channels"] == 3  # im2rec stores colour JPEGs (--color 1)
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        epochs = [json.loads(line) for line in f]
    assert [e["epoch"] for e in epochs] == [1] and 0 <= epochs[0]["test_acc"] <= 1

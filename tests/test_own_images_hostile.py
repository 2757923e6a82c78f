"""Your own images against a hostile user: files that block, labels that explode, data that
changes under a run, folders laid out in unexpected ways. Each case: one line, exit 2, or
the documented behaviour -- never a hang, a traceback or silently different data."""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import pytest

from gluon_cnns.cli.pack import main as pack_main
from gluon_cnns.cli.train import main
from gluon_cnns.data.image_folder import scan_folder
from image_folders import copy_folder, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["--net", "lenet_bn", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp("images") / "small"), per_class=6,
                              val_per_class=2, classes=range(3))


@pytest.fixture(scope="module")
def pack(folder, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pack") / "p")
    assert pack_main([folder, "--out", out]) == 0
    return out


def one_line(capsys, args):
    code = main(TRAIN + args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("where", ["pack.json", "config.json", "checkpoint.json"])
def test_a_named_pipe_in_place_of_a_json_file_does_not_block(where, pack, folder, tmp_path):
    if where == "pack.json":
        target = copy_folder(pack, tmp_path)
        args = ["--dataset", "rec", "--data-dir", target]
    else:
        target = str(tmp_path / "run")
        assert main(TRAIN + ["--dataset", "folder", "--data-dir", folder,
                             "--save-dir", target]) == 0
        args = ["--save-dir", target, "--resume"] if where == "checkpoint.json" else \
            ["--dataset", "folder", "--data-dir", folder, "--finetune", target]
    os.remove(os.path.join(target, where))
    os.mkfifo(os.path.join(target, where))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py")] + TRAIN
                          + args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not a regular file (a named pipe)" in proc.stderr


def _im2rec_pack(folder, out, labels):
    """A pack as MXNet's im2rec writes it: records, no pack.json."""
    os.makedirs(out)
    images = sorted(os.path.join(d, f) for d, _, files in os.walk(os.path.join(folder, "train"))
                    for f in files)
    for split in ("train", "val"):
        record = mx.recordio.MXIndexedRecordIO(os.path.join(out, split + ".idx"),
                                               os.path.join(out, split + ".rec"), "w")
        for key, label in enumerate(labels):
            with open(images[key], "rb") as f:
                record.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0),
                                                       f.read()))
        record.close()
    return out


def test_an_im2rec_pack_with_a_huge_label_is_refused(folder, tmp_path, capsys):
    out = _im2rec_pack(folder, str(tmp_path / "big"), [0, 1, 1e9, 0])
    err = one_line(capsys, ["--dataset", "rec", "--data-dir", out])
    assert "holds label 1000000000.0" in err and "0..99999" in err
    out = _im2rec_pack(folder, str(tmp_path / "fine"), [0, 1, 1, 0])
    assert main(TRAIN + ["--dataset", "rec", "--data-dir", out]) == 0
    assert "the 2 classes are named 0..1" in capsys.readouterr().err


def test_resume_refuses_other_images_and_finds_the_folder_from_anywhere(folder, tmp_path,
                                                                         capsys, monkeypatch):
    images = copy_folder(folder, tmp_path, "photos")
    run_dir = str(tmp_path / "run")
    monkeypatch.chdir(str(tmp_path))
    assert main(TRAIN + ["--dataset", "folder", "--data-dir", "photos", "--save-dir",
                         run_dir, "--epochs", "1"]) == 0
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["data_dir"] == images  # absolute: --resume works from anywhere
    monkeypatch.chdir("/")
    assert main(["--save-dir", run_dir, "--resume", "--epochs", "2", "--quiet"]) == 0
    capsys.readouterr()
    bag = os.path.join(images, "train", os.listdir(os.path.join(images, "train"))[0])
    shutil.copy(os.path.join(bag, os.listdir(bag)[0]), os.path.join(bag, "added.png"))
    err = one_line(capsys, ["--save-dir", run_dir, "--resume", "--epochs", "3"])
    assert "are not those the run in --save-dir trained on" in err and "--finetune" in err


def test_every_class_keeps_a_training_image(tmp_path):
    root = write_image_folder(str(tmp_path / "flat"), per_class=2, val_per_class=0,
                              with_val=False)
    # Two images a class and 90% held out: by the hash alone most classes would have
    # nothing left to train on.
    data = scan_folder(root, val_split=0.9)
    assert set(data.train.labels) == set(range(10))
    assert len(data.val) >= 5


def test_images_that_all_vanish_stop_the_run(folder, tmp_path, capsys):
    from gluon_cnns.data.image_batches import ImageBatches
    from gluon_cnns.data.images import scan_images
    from gluon_cnns.errors import DataError
    images = copy_folder(folder, tmp_path)
    data = scan_images("folder", images)
    for path in data.train.sources:
        os.remove(path)
    with pytest.raises(DataError, match="none of the 18 training images could be read"):
        list(ImageBatches(data.train, 4, 28, 1, training=True))


def test_images_in_sub_folders_of_a_class_belong_to_it(folder, tmp_path):
    images = copy_folder(folder, tmp_path)
    trouser = os.path.join(images, "train", "Trouser")
    os.makedirs(os.path.join(trouser, "2019"))
    for name in os.listdir(trouser):
        if name.endswith(".png"):
            shutil.copy(os.path.join(trouser, name), os.path.join(trouser, "2019", "x" + name))
    os.symlink(trouser, os.path.join(trouser, "2019", "loop"))  # read once, not forever
    before, after = scan_folder(folder), scan_folder(images)
    assert len(after.train) == len(before.train) + 3


@pytest.mark.parametrize("damage, message", [
    (lambda p: open(os.path.join(p, "train.idx"), "w").close(), "train.idx holds no records"),
    (lambda p: open(os.path.join(p, "train.idx"), "a").write("0\t0\n"), "names record 0 twice"),
])
def test_damaged_indexes(damage, message, pack, tmp_path, capsys):
    target = copy_folder(pack, tmp_path)
    os.remove(os.path.join(target, "pack.json"))  # an im2rec pack: nothing to compare with
    damage(target)
    assert message in one_line(capsys, ["--dataset", "rec", "--data-dir", target])


def test_pack_json_naming_a_class_without_records(pack, tmp_path, capsys):
    target = copy_folder(pack, tmp_path)
    meta_file = os.path.join(target, "pack.json")
    with open(meta_file) as f:
        meta = json.load(f)
    meta["class_names"].append("Unicorn")
    with open(meta_file, "w") as f:
        json.dump(meta, f)
    err = one_line(capsys, ["--dataset", "rec", "--data-dir", target])
    assert "class 'Unicorn' is in the pack's classes but has no record in train.rec" in err


@pytest.mark.parametrize("layout, message", [
    ("val-only", "has a val/ folder but no train/"),
    ("file", "is a file, not a folder"),
])
def test_odd_layouts(layout, message, folder, tmp_path, capsys):
    target = str(tmp_path / "odd")
    if layout == "val-only":
        shutil.copytree(os.path.join(folder, "val"), os.path.join(target, "val"))
    else:
        open(target, "w").close()
    assert message in one_line(capsys, ["--dataset", "folder", "--data-dir", target])


def test_mean_for_the_wrong_channel_count_says_why(folder, capsys):
    err = one_line(capsys, ["--dataset", "folder", "--data-dir", folder, "--mean",
                            "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"])
    assert "the images are read with 1 channel" in err and "--channels 3" in err

"""scripts/pack.py: an image folder of real Fashion-MNIST PNGs and JPEGs into a RecordIO pack."""
import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import pytest

from gluon_cnns.cli import pack
from gluon_cnns.data import pack_writer
from gluon_cnns.data.decode import load_image, read_image, to_pixels
from gluon_cnns.data.image_folder import scan_folder
from gluon_cnns.data.image_pack import (GluonPack, Im2recPack, im2rec_prefix, listed_class_names,
                                        pack_paths, scan_pack)
from gluon_cnns.errors import DataError
from image_folders import CLASS_FOLDERS, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAMES = ["pack.json", "train.idx", "train.rec", "val.idx", "val.rec"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train/<class>/ (6 a class) and val/<class>/ (2 a class): 60 + 20 images."""
    return write_image_folder(str(tmp_path_factory.mktemp("photos")), per_class=6,
                              val_per_class=2)


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory):
    """``folder`` packed once; tests that damage it work on a copy."""
    out = str(tmp_path_factory.mktemp("packed"))
    assert pack.main([folder, "--out", out]) == 0
    return out


def _pack(capsys, *argv):
    code = pack.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _records(out, split):
    """``[(header, raw bytes)]`` of one split of the pack in ``out``, by key."""
    rec, idx = pack_paths(out, split)
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    try:
        return [mx.recordio.unpack(reader.read_idx(key)) for key in reader.keys]
    finally:
        reader.close()


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _snapshot(out):
    """Every file in ``out`` with its bytes: what must not change."""
    return {name: _read_bytes(os.path.join(out, name)) for name in sorted(os.listdir(out))}


def _assert_pack_is(out, data, sources=None):
    """The pack in ``out`` holds exactly ``data``'s classes, labels and file bytes, in order."""
    packed = scan_pack(out)
    assert packed.class_names == data.class_names
    for split in ("train", "val"):
        folder_split, pack_split = getattr(data, split), getattr(packed, split)
        paths = (sources or {}).get(split, folder_split.sources)
        assert pack_split.labels == [folder_split.labels[folder_split.sources.index(p)]
                                     for p in paths]
        records = _records(out, split)
        assert [int(h.id) for h, _ in records] == list(range(len(paths)))
        assert [h.label for h, _ in records] == pack_split.labels
        assert [raw for _, raw in records] == [_read_bytes(p) for p in paths]


def test_round_trip_gives_the_folders_classes_labels_and_pixels(folder, capsys, tmp_path):
    out = str(tmp_path / "packed")
    code, stdout, stderr = _pack(capsys, folder, "--out", out)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("packed 60 train + 20 val images of 10 classes into %s (train.rec "
                             % out) and stdout.endswith(" images/s\n")
    data = scan_folder(folder)
    _assert_pack_is(out, data)
    assert sorted(os.listdir(out)) == PACK_NAMES  # no temporary files, no lock left
    for (_, raw), path in zip(_records(out, "val"), data.val.sources):  # decoded: same pixels
        assert (to_pixels(load_image(raw), 1) == read_image(path, 1)).all()
    meta = json.loads(_read_bytes(os.path.join(out, "pack.json")))
    assert {k: meta[k] for k in ("format", "class_names", "grey", "counts", "source")} == {
        "format": 1, "class_names": sorted(CLASS_FOLDERS), "grey": True,
        "counts": {"train": 60, "val": 20}, "source": os.path.abspath(folder)}
    for name in ("train.rec", "train.idx", "val.rec", "val.idx"):
        raw = _read_bytes(os.path.join(out, name))
        assert meta["files"][name] == {"size": len(raw),
                                       "sha256": hashlib.sha256(raw).hexdigest()}


def test_without_val_folder_the_pack_holds_out_what_the_folder_does(capsys, tmp_path):
    root = write_image_folder(str(tmp_path / "flat"), per_class=8, with_val=False)
    before = scan_folder(root, 0.25)
    code, stdout, stderr = _pack(capsys, root, "--val-split", "0.25")  # OUT = DIR
    assert code == 0 and stderr.startswith("pack: no val/ folder in %s:" % root)
    assert "%d train + %d val" % (len(before.train), len(before.val)) in stdout
    _assert_pack_is(root, before)
    after = scan_folder(root, 0.25)  # the pack beside the class folders changes nothing
    assert (after.train.sources, after.val.sources, after.notes) == \
        (before.train.sources, before.val.sources, before.notes)


def _with_bad_files(folder, root):
    """A copy of ``folder`` with a text .jpg, a FIFO .png (both found by the scan) and a
    truncated PNG (its header reads: found when decoded); returns (root, [text, fifo, cut])."""
    shutil.copytree(folder, root)
    classes = sorted(CLASS_FOLDERS)
    text = os.path.join(root, "train", classes[0], "00000-text.jpg")
    with open(text, "w") as f:
        f.write("not a picture\n")
    fifo = os.path.join(root, "train", classes[1], "x.png")
    os.mkfifo(fifo)
    val_dir = os.path.join(root, "val", classes[2])
    good = next(n for n in sorted(os.listdir(val_dir)) if n.endswith(".png"))
    raw = _read_bytes(os.path.join(val_dir, good))
    cut = os.path.join(val_dir, "00000-cut.png")
    with open(cut, "wb") as f:
        f.write(raw[:len(raw) // 2])
    return root, [text, fifo, cut]


def test_bad_files_are_skipped_with_one_count_line(folder, capsys, tmp_path):
    root, (text, _, cut) = _with_bad_files(folder, str(tmp_path / "bad"))
    out = str(tmp_path / "packed")
    code, stdout, stderr = _pack(capsys, root, "--out", out)
    assert code == 0
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "pack: skipped 3 image files that cannot be read (first: %s: not an image" % text), stderr
    assert "packed 60 train + 20 val images" in stdout
    data = scan_folder(root)
    assert len(data.train.skipped) == 2 and cut in data.val.sources  # the scan passes it
    _assert_pack_is(out, data, {"train": data.train.sources,
                                "val": [p for p in data.val.sources if p != cut]})


@pytest.mark.parametrize("found_by", ["scan", "decoding"])
def test_bad_images_stop_is_one_line_and_writes_nothing(folder, capsys, tmp_path, found_by):
    root, (text, fifo, cut) = _with_bad_files(folder, str(tmp_path / "bad"))
    if found_by == "decoding":  # only the truncated PNG: the scan passes, decoding stops
        os.remove(text)
        os.remove(fifo)
    out = str(tmp_path / "packed")
    code, stdout, stderr = _pack(capsys, root, "--out", out, "--bad-images", "stop")
    assert (code, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1 and stderr.startswith("pack: error: ")
    assert "cannot be read" in stderr and "--bad-images skip" in stderr
    if found_by == "decoding":
        assert "1 image file cannot be read (first: %s: cannot decode" % cut in stderr
    assert not os.path.exists(out) or os.listdir(out) == []


def test_an_existing_pack_is_replaced_only_with_overwrite(folder, capsys, tmp_path):
    out = str(tmp_path / "packed")
    assert _pack(capsys, folder, "--out", out)[0] == 0
    before = _snapshot(out)
    other = write_image_folder(str(tmp_path / "other"), per_class=3, val_per_class=1, start=50)
    code, stdout, stderr = _pack(capsys, other, "--out", out)
    assert (code, stdout) == (2, "")
    assert stderr == ("pack: error: %s already holds a pack (train.rec, train.idx, val.rec, "
                      "val.idx, pack.json); pass --overwrite to replace it\n" % out)
    assert _snapshot(out) == before
    code, stdout, _ = _pack(capsys, other, "--out", out, "--overwrite")
    assert code == 0 and "packed 30 train + 10 val" in stdout
    _assert_pack_is(out, scan_folder(other))


def _failing_at(real, call, error):
    """``real``, raising ``error`` instead at its call number ``call`` (only that one)."""
    count = [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            raise error
        return real(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("crash", ["rename", "disk full", "interrupt"])
def test_a_crash_leaves_the_old_pack_intact(folder, capsys, tmp_path, monkeypatch, crash):
    out = str(tmp_path / "packed")
    assert _pack(capsys, folder, "--out", out)[0] == 0
    before = _snapshot(out)
    other = write_image_folder(str(tmp_path / "other"), per_class=3, val_per_class=1, start=50)
    if crash == "rename":  # pack.json and train.rec renamed, then train.idx fails
        monkeypatch.setattr(os, "replace", _failing_at(
            os.replace, 3, OSError(errno.EIO, "Input/output error")))
    else:
        error = OSError(errno.ENOSPC, "No space left on device") if crash == "disk full" \
            else KeyboardInterrupt()
        monkeypatch.setattr(mx.recordio.MXIndexedRecordIO, "write_idx", _failing_at(
            mx.recordio.MXIndexedRecordIO.write_idx, 36, error))  # in val.rec
    code, stdout, stderr = _pack(capsys, other, "--out", out, "--overwrite")
    monkeypatch.undo()
    assert stdout == "" and len(stderr.splitlines()) == 1
    if crash == "interrupt":
        assert code == 130 and stderr.startswith("pack: interrupted")
    else:
        assert code == 2 and stderr.startswith("pack: error: cannot pack (")
        assert ("Input/output error" if crash == "rename" else "No space left") in stderr
    assert _snapshot(out) == before  # no temporary file or backup left either
    _assert_pack_is(out, scan_folder(folder))


@pytest.mark.parametrize("renamed", [["pack.json"], ["pack.json", "train.rec", "train.idx"]])
def test_a_half_replaced_pack_is_refused(folder, capsys, tmp_path, renamed):
    """A kill between the renames: the new pack.json (renamed first) with old .rec files."""
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    other = write_image_folder(str(tmp_path / "other"), per_class=3, val_per_class=1, start=50)
    assert _pack(capsys, folder, "--out", old)[0] == 0
    assert _pack(capsys, other, "--out", new)[0] == 0
    for name in renamed:
        shutil.copy(os.path.join(new, name), os.path.join(old, name))
    with pytest.raises(DataError, match="only partly written or replaced; pack the folder again"):
        scan_pack(old)
    with open(os.path.join(old, ".val.rec.x1y2.tmp"), "w") as f:  # what a kill -9 leaves
        f.write("half a pack")
    code, _, stderr = _pack(capsys, other, "--out", old, "--overwrite")  # packing again mends it
    assert (code, stderr) == (0, "")
    _assert_pack_is(old, scan_folder(other))
    assert sorted(os.listdir(old)) == PACK_NAMES


def test_a_second_pack_into_the_same_out_is_refused(folder, capsys, tmp_path):
    out = str(tmp_path / "packed")
    os.makedirs(out)
    fd = os.open(os.path.join(out, pack_writer.LOCK), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242")
        code, _, stderr = _pack(capsys, folder, "--out", out)
    finally:
        os.close(fd)
    assert code == 2 and stderr == ("pack: error: %s is being packed by another process (pid "
                                    "4242); wait for it to end or choose another --out\n" % out)
    assert os.listdir(out) == [pack_writer.LOCK]


def _touch(root, name):
    open(os.path.join(root, name), "w").close()
    return root


@pytest.mark.parametrize("make, argv, message", [
    (lambda t: str(t / "missing"), [], "the image folder %s/missing does not exist"),
    (lambda t: str(t), [], "has no class folders"),
    (lambda t: write_image_folder(str(t / "one"), 2, 1, classes=[3]), [], "only the class"),
    (lambda t: write_image_folder(str(t / "f"), 2, 1), ["--out", "{}/train/packed"],
     "is inside the image folder"),
    (lambda t: write_image_folder(str(t / "f"), 2, with_val=False), ["--out", "{}/sub"],
     "is inside the image folder"),
    (lambda t: _touch(write_image_folder(str(t / "f"), 2, 1), "notes.txt"),
     ["--out", "{}/notes.txt"], "is a file, not a folder"),
    (lambda t: write_image_folder(str(t / "f"), 2, 1), ["--val-split", "0.2"],
     "has its own val/ folder; drop --val-split"),
    (lambda t: str(t), ["--val-split", "1"], "argument --val-split: must be a fraction"),
    (lambda t: str(t), ["--bad-images", "keep"], "argument --bad-images: invalid choice"),
])
def test_mistakes_are_one_line(capsys, tmp_path, make, argv, message):
    root = make(tmp_path)
    argv = [a.format(root) for a in argv]
    code, stdout, stderr = _pack(capsys, root, *argv)
    assert (code, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1 and stderr.startswith("pack: error: "), stderr
    assert (message % tmp_path if "%s" in message else message) in stderr


def test_the_script_runs_from_a_clone_with_one_line_and_exit_2(capsys, tmp_path):
    root = write_image_folder(str(tmp_path / "f"), per_class=2, val_per_class=1)
    assert _pack(capsys, root)[0] == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pack.py"), root],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [
        "pack: error: %s already holds a pack (train.rec, train.idx, val.rec, val.idx, "
        "pack.json); pass --overwrite to replace it" % root]


def test_a_truncated_pack_file_is_named_as_partly_written(packed, tmp_path):
    target = shutil.copytree(packed, str(tmp_path / "copy"))
    rec = os.path.join(target, "val.rec")
    size = os.path.getsize(rec)
    with open(rec, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(DataError) as info:
        scan_pack(target)
    assert str(info.value).startswith("%s is %d bytes, but %s says %d: the pack was only partly "
                                      "written" % (rec, size - 100,
                                                   os.path.join(target, "pack.json"), size))


def test_an_index_naming_a_key_twice_is_refused_whatever_the_offsets(packed, tmp_path):
    """An im2rec pack (no pack.json): key 1 listed at record 1's and at record 2's offset
    (no key equals an offset, so a check of the offsets would not notice)."""
    target = shutil.copytree(packed, str(tmp_path / "copy"))
    os.remove(os.path.join(target, "pack.json"))
    idx = os.path.join(target, "train.idx")
    with open(idx) as f:
        lines = f.read().splitlines()
    lines[2] = "1\t" + lines[2].split("\t")[1]
    with open(idx, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="train.idx names record 1 twice"):
        scan_pack(target)


def test_a_label_beyond_the_named_classes_names_their_range(packed, tmp_path):
    target = shutil.copytree(packed, str(tmp_path / "copy"))
    meta_file = os.path.join(target, "pack.json")
    with open(meta_file) as f:
        meta = json.load(f)
    meta["class_names"] = meta["class_names"][:-1]  # 9 names for labels 0..9
    with open(meta_file, "w") as f:
        json.dump(meta, f)
    with pytest.raises(DataError, match=r"holds label 9.0; each record needs one class index "
                                        r"in 0\.\.8$"):
        scan_pack(target)


def test_an_im2rec_prefix_is_named_or_found_in_its_folder_and_two_packs_are_one_line(tmp_path):
    root = str(tmp_path)
    _touch(_touch(root, "mine_train.rec"), "notes.txt")
    mine = os.path.join(root, "mine")
    assert im2rec_prefix(mine) == mine and im2rec_prefix(root) == mine
    assert Im2recPack.recognizes(root) and not Im2recPack.recognizes(str(tmp_path / "none"))
    _touch(root, "other_train.rec")
    with pytest.raises(DataError) as info:
        im2rec_prefix(root)
    assert str(info.value) == ("%s holds 2 im2rec packs (mine_train.rec, other_train.rec); "
                               "pass one as --data-dir %s" % (root, mine))


def test_val_split_is_refused_for_a_pack_which_has_its_own(packed):
    assert GluonPack.scan(packed).class_names == scan_pack(packed).class_names
    with pytest.raises(DataError, match="^--val-split applies to an image folder; a pack has "
                                        "its own val.rec$"):
        GluonPack.scan(packed, val_split=0.2)


def test_im2rec_lists_name_the_classes_after_their_folders(tmp_path):
    """``index<TAB>label<TAB>class/file`` lines, as ``im2rec.py --list --recursive`` writes;
    numbered classes unless each label has one folder of its own."""
    prefix = str(tmp_path / "mine")

    def lists(train, val):
        for split, rows in (("train", train), ("val", val)):
            with open(prefix + "_%s.lst" % split, "w") as f:
                f.writelines("%d\t%d.000000\t%s\n" % (i, label, path)
                             for i, (label, path) in enumerate(rows))

    lists([(0, "Bag/a.png"), (1, "Coat/b.png"), (0, "Bag/c.png")], [(1, "Coat/d.png")])
    assert listed_class_names(prefix, 2) == ["Bag", "Coat"]
    assert listed_class_names(prefix, 3) is None  # a label no list names
    lists([(0, "Bag/a.png"), (1, "Bag/b.png")], [(1, "Bag/d.png")])  # two labels, one folder
    assert listed_class_names(prefix, 2) is None

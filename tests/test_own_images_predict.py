"""A net trained on your own images, exported and used by scripts/predict.py: the folder's class
names, the training's evaluation crop, and the val folder's accuracy reproduced exactly.

The images are real pictures (the Fashion-MNIST test set written as PNG and JPEG class
folders); the run is ``scripts/train.py --dataset folder`` itself, as a user runs it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from gluon_cnns.cli import predict
from gluon_cnns.errors import ExportError
from gluon_cnns.inference.export import checkpoint_meta, export_model, read_export_meta
from image_folders import CLASS_FOLDERS, png_header_only, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
PREDICT = os.path.join(ROOT, "scripts", "predict.py")
# One short epoch that already tells the classes apart (~40% on the 60 val images): a net
# that predicts one class for everything would match any preprocessing.
TRAIN_FLAGS = ["--net", "lenet_bn", "--dataset", "folder", "--epochs", "1", "--batch-size", "8",
               "--lr", "0.1", "--augment", "flip", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The image folder, the run trained on it and the export its --export wrote."""
    base = tmp_path_factory.mktemp("own_predict")
    data = write_image_folder(str(base / "fashion"), per_class=20, val_per_class=6)
    run, export = str(base / "run"), str(base / "exports" / "lenet_bn")
    proc = subprocess.run([sys.executable, TRAIN] + TRAIN_FLAGS
                          + ["--data-dir", data, "--save-dir", run, "--export", export],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(run, "log.jsonl")) as f:
        test_acc = [json.loads(line) for line in f][-1]["test_acc"]
    return SimpleNamespace(data=data, val=os.path.join(data, "val"), run=run, export=export,
                           test_acc=test_acc, base=base)


def _run(capsys, *argv):
    """predict's main in this process: (exit code, stdout, stderr lines)."""
    code = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _top1(out):
    """``{file: top-1 class name}`` of predict's --json output."""
    return {r["file"]: r["top"][0]["class"] for r in json.loads(out)["results"]}


def _accuracy(top1):
    """The share of files whose top-1 class is the name of the folder they are in."""
    right = [os.path.basename(os.path.dirname(path)) == name for path, name in top1.items()]
    return sum(right) / len(right)


# ---------------------------------------------------------------- the export

def test_the_sidecar_has_the_folders_classes_and_the_evaluation_crop(trained):
    with open(trained.export + ".json") as f:
        meta = json.load(f)
    assert meta["class_names"] == sorted(CLASS_FOLDERS)
    assert meta["channels"] == 1 and meta["input_size"] == [28, 28]
    assert meta["input_shape"] == [1, 1, 28, 28]
    assert meta["center_crop"] == 0.875
    assert meta["normalization"] == {"divide_by": 255, "mean": None, "std": None}
    assert read_export_meta(trained.export)["center_crop"] == 0.875  # every field checks out
    # The run folder says the same, for predict --model RUN.
    with open(os.path.join(trained.run, "config.json")) as f:
        from_run = checkpoint_meta(json.load(f))
    for key in ("class_names", "channels", "input_shape", "normalization", "center_crop"):
        assert from_run[key] == meta[key], key
    assert from_run["dataset"] == "folder"


# ---------------------------------------------------------------- predict

def test_text_output_names_the_folders_classes(trained):
    proc = subprocess.run([sys.executable, PREDICT, trained.val, "--model", trained.export,
                           "--top-k", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    blocks = proc.stdout.strip().split("\n\n")
    assert len(blocks) == 60  # val/<class>/* : the sub-folders' images
    shown = set()
    for block in blocks:
        lines = block.splitlines()
        assert lines[0].startswith(trained.val + os.sep) and len(lines) == 4
        for line in lines[1:]:
            match = re.fullmatch(r"  \d\. (.+?) +\d+\.\d\d%", line)
            assert match, line
            shown.add(match.group(1))
    assert shown <= set(CLASS_FOLDERS) and len(shown) >= 5
    # The folder's name, not Fashion-MNIST's "T-shirt/top".
    assert "T-shirt-top" in shown and "T-shirt/top" not in proc.stdout


@pytest.mark.parametrize("model", ["export", "run"])
def test_predict_on_the_val_folder_gives_the_logged_accuracy(trained, capsys, model):
    code, out, err = _run(capsys, trained.val, "--model", getattr(trained, model), "--json")
    assert code == 0 and err == []
    top1 = _top1(out)
    assert len(top1) == 60
    names = sorted(CLASS_FOLDERS)
    assert all(p["class"] == names[p["index"]]
               for r in json.loads(out)["results"] for p in r["top"])
    assert len(set(top1.values())) >= 3  # not one class for everything
    assert _accuracy(top1) == pytest.approx(trained.test_acc, abs=1e-9)


def test_each_image_gets_the_training_evaluations_prediction(trained, capsys):
    """Not only the count: image by image, predict's top-1 is the argmax of the net on the
    batches the training evaluated (ImageBatches over the val split)."""
    from gluon_cnns.data.image_batches import ImageBatches
    from gluon_cnns.data.images import scan_images
    from gluon_cnns.inference.export import load_checkpoint_net
    net, config = load_checkpoint_net(trained.run)
    val = scan_images("folder", trained.data).val
    batches = ImageBatches(val, 16, side=28, channels=1, center_crop=config["center_crop"])
    evaluated = np.concatenate([net(X).argmax(axis=1).asnumpy() for X, _ in batches])
    expected = {os.path.abspath(p): config["class_names"][int(i)]
                for p, i in zip(val.sources, evaluated)}
    code, out, _ = _run(capsys, trained.val, "--model", trained.export, "--json")
    got = {os.path.abspath(p): name for p, name in _top1(out).items()}
    assert code == 0 and got == expected
    # Resized straight to 28x28 instead (a sidecar without the crop), a good part of the
    # predictions differ: the agreement above is the crop's doing.
    plain = str(trained.base / "plain" / "lenet_bn")
    shutil.copytree(os.path.dirname(trained.export), os.path.dirname(plain))
    meta = json.load(open(plain + ".json"))
    del meta["center_crop"]
    with open(plain + ".json", "w") as f:
        json.dump(meta, f)
    code, out, _ = _run(capsys, trained.val, "--model", plain, "--json")
    resized = {os.path.abspath(p): name for p, name in _top1(out).items()}
    assert code == 0 and sum(resized[p] != expected[p] for p in expected) >= 3


# ---------------------------------------------------------------- bad files

def _mixed_folder(trained, root):
    """A folder of good and bad files; returns (good paths, bad paths)."""
    source = os.path.join(trained.val, "Trouser")
    originals = sorted(os.path.join(source, n) for n in os.listdir(source) if n.endswith(".png"))
    grey = np.asarray(Image.open(originals[0]))
    os.makedirs(os.path.join(root, "sub"))
    good = [os.path.join(root, name) for name in ("a.png", "cmyk.jpg", "wide.png")]
    shutil.copy(originals[0], good[0])
    Image.fromarray(grey).convert("CMYK").save(good[1], quality=95)
    Image.fromarray(grey.astype(np.uint16) * 257).save(good[2])  # 16-bit grey
    good.append(os.path.join(root, "sub", "b.png"))
    shutil.copy(originals[1], good[3])
    bad = [os.path.join(root, name) for name in ("cut.png", "notes.jpg", "huge.png",
                                                 os.path.join("sub", "pipe.png"))]
    with open(originals[1], "rb") as f:
        open(bad[0], "wb").write(f.read()[:150])
    with open(bad[1], "w") as f:
        f.write("this is not a picture\n")
    png_header_only(bad[2], 30000, 30000)
    os.mkfifo(bad[3])
    return good, bad


def test_bad_files_are_one_line_each_and_the_rest_classified(trained, tmp_path):
    good, bad = _mixed_folder(trained, str(tmp_path / "mixed"))
    # A subprocess: were the named pipe waited for, the timeout would say so.
    proc = subprocess.run([sys.executable, PREDICT, str(tmp_path / "mixed"), "--model",
                           trained.export, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == len(bad), lines
    for path in bad:
        assert sum(line.startswith("predict: error: %s: " % path) for line in lines) == 1, path
    said = {path: next(line for line in lines if line.startswith("predict: error: %s: " % path))
            for path in bad}
    assert "truncated" in said[bad[0]] or "broken" in said[bad[0]]
    assert "not an image" in said[bad[1]]
    assert "30000x30000" in said[bad[2]] and "named pipe" in said[bad[3]]
    doc = json.loads(proc.stdout)
    top1 = {r["file"]: r["top"][0]["class"] for r in doc["results"]}
    assert sorted(top1) == sorted(good)
    assert sorted(e["file"] for e in doc["errors"]) == sorted(bad)
    # 16-bit grey is scaled to 8 bits, not clipped: the same pixels, the same answer.
    assert top1[good[2]] == top1[good[0]]


# ---------------------------------------------------------------- hand-edited files

@pytest.mark.parametrize("crop", [0, "x", 1.5, -0.5, True])
def test_a_sidecar_with_a_bad_center_crop_is_one_line(trained, capsys, tmp_path, crop):
    prefix = str(tmp_path / "edited" / "lenet_bn")
    shutil.copytree(os.path.dirname(trained.export), os.path.dirname(prefix))
    meta = json.load(open(prefix + ".json"))
    meta["center_crop"] = crop
    with open(prefix + ".json", "w") as f:
        json.dump(meta, f)
    image = os.path.join(trained.val, "Bag", sorted(os.listdir(os.path.join(trained.val,
                                                                            "Bag")))[0])
    code, out, err = _run(capsys, image, "--model", prefix)
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith("predict: error: --model %s: " % prefix)
    assert '"center_crop" must be a number in (0, 1]' in err[0] and repr(crop) in err[0]


def test_export_model_checks_center_crop():
    import gluon_cnns
    net = gluon_cnns.get_model("lenet_bn")
    for crop, fragment in ((0, "fraction in (0, 1]"), ("x", "fraction in (0, 1]")):
        with pytest.raises(ExportError, match=re.escape(fragment)):
            export_model(net, "unused/never-written", (1, 1, 28, 28), center_crop=crop)
    with pytest.raises(ExportError, match="square"):
        export_model(net, "unused/never-written", (1, 1, 28, 32), center_crop=0.875)
    assert not os.path.exists("unused")


def test_a_config_with_class_names_of_the_wrong_length_is_one_line(trained, capsys, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(trained.run, run)
    config = json.load(open(os.path.join(run, "config.json")))
    config["class_names"] = config["class_names"][:3]
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(config, f)
    code, out, err = _run(capsys, trained.val, "--model", run)
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith("predict: error: --model %s: " % run)
    assert 'config.json has 3 "class_names" but "classes": 10' in err[0]


_FOLDER_RUN = {"net": "lenet_bn", "dataset": "folder", "resize": 28, "channels": 1,
               "class_names": ["cat", "dog"], "classes": 2, "mean": None, "std": None,
               "center_crop": 0.875}


@pytest.mark.parametrize("changes, fragment", [
    ({"class_names": None}, '"class_names": None'),
    ({"class_names": []}, '"class_names": []'),
    ({"class_names": ["cat", 7]}, '"class_names": [\'cat\', 7]'),
    ({"class_names": ["c%d" % i for i in range(1000)] + [5], "classes": 1001},
     '"class_names": [\'c0\', \'c1\''),
    ({"classes": "two"}, '"classes": \'two\''),
    ({"channels": 2}, '"channels": 2'),
    ({"channels": None}, '"channels": None'),
    ({"resize": None}, '"resize": None'),
    ({"resize": 0}, '"resize": 0'),
    ({"mean": "x", "std": [0.5]}, '"mean": \'x\''),
    ({"mean": [0.5], "std": None}, '"std": None'),
    ({"mean": [0.5], "std": [0]}, '"std": [0]'),
    ({"mean": [0.1, 0.2], "std": [0.5]}, '"mean": [0.1, 0.2]'),
    ({"center_crop": 0}, '"center_crop": 0'),
    ({"center_crop": "x"}, '"center_crop": \'x\''),
])
def test_checkpoint_meta_names_the_bad_field(changes, fragment):
    config = dict(_FOLDER_RUN, **changes)
    with pytest.raises(ExportError) as info:
        checkpoint_meta(config)
    line = str(info.value)
    assert fragment in line and "config.json" in line and "\n" not in line
    assert len(line) < 300  # a long list is cut, the line stays readable


def test_checkpoint_meta_of_runs_with_and_without_the_new_keys():
    meta = checkpoint_meta(dict(_FOLDER_RUN, mean=[0.5], std=[0.25], center_crop=None,
                                channels=3, resize=64))
    assert meta["input_shape"] == [1, 3, 64, 64] and meta["class_names"] == ["cat", "dog"]
    assert meta["normalization"]["mean"] == [0.5] * 3 and meta["center_crop"] == 0.875
    # A built-in dataset: its own facts; the class names config.json keeps, where it has them.
    old = checkpoint_meta({"net": "lenet", "dataset": "fashion-mnist", "resize": None})
    new = checkpoint_meta({"net": "lenet", "dataset": "fashion-mnist", "resize": None,
                           "class_names": old["class_names"], "classes": 10, "channels": 1,
                           "mean": None, "std": None})
    assert old == new and "center_crop" not in old

"""gluon_cnns.load_predictor: the same answers as scripts/predict.py and as the run's own
evaluation, for paths, PIL images and array batches; predict's folders at any depth.

Two runs of scripts/train.py, as a user trains them: LeNet-BN on a little Fashion-MNIST, and
LeNet-BN on an image folder of real pictures (the Fashion-MNIST test set as PNG and JPEG
files) read as RGB, so that the evaluation's centre crop and ImageNet normalization matter.
"""
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

import gluon_cnns
from gluon_cnns.cli import predict as predict_cli
from gluon_cnns.cli import train as train_cli
from gluon_cnns.data import load_data_fashion_mnist
from gluon_cnns.data.image_batches import ImageBatches
from gluon_cnns.data.images import scan_images
from gluon_cnns.errors import GluonCNNsError
from image_folders import fashion_test_images, write_image_folder

N_IMAGES = 24  # Fashion-MNIST test images written as PNG files


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """A LeNet-BN run on Fashion-MNIST (its folder and export) and PNGs of test images."""
    base = tmp_path_factory.mktemp("predictor_fashion")
    run, export = str(base / "run"), str(base / "export" / "lenet_bn")
    assert train_cli.main(["--net", "lenet_bn", "--epochs", "1", "--limit-train", "2048",
                           "--limit-test", "256", "--batch-size", "64", "--lr", "0.1",
                           "--seed", "0",
                           "--save-dir", run, "--export", export, "--quiet"]) == 0
    images, _ = fashion_test_images()
    os.makedirs(str(base / "images"))
    pngs = [str(base / "images" / ("%03d.png" % i)) for i in range(N_IMAGES)]
    for path, pixels in zip(pngs, images):
        Image.fromarray(pixels[:, :, 0], "L").save(path)
    return SimpleNamespace(run=run, export=export, pngs=pngs, base=base)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A LeNet-BN run on an image folder (train/<class>, val/<class>), read as RGB."""
    base = tmp_path_factory.mktemp("predictor_own")
    data = write_image_folder(str(base / "photos"), per_class=20, val_per_class=3)
    run, export = str(base / "run"), str(base / "export" / "lenet_bn")
    assert train_cli.main(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", data,
                           "--channels", "3", "--center-crop", "0.75", "--epochs", "1",
                           "--batch-size", "8", "--lr", "0.1", "--augment", "flip", "--seed",
                           "0", "--save-dir", run, "--export", export, "--quiet"]) == 0
    return SimpleNamespace(data=data, run=run, export=export, base=base)


def _cli_top(capsys, files, model, k):
    """scripts/predict.py's answer: ``{file: [(class, probability)]}`` of its --json output."""
    code = predict_cli.main([str(f) for f in files] + ["--model", model, "--json",
                                                       "--top-k", str(k)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    return {r["file"]: [(p["class"], p["probability"]) for p in r["top"]]
            for r in json.loads(out)["results"]}


def _val_files(own):
    return scan_images("folder", own.data).val.sources


# ---------------------------------------------------------------- the same as predict.py

@pytest.mark.parametrize("run_kind", ["fashion", "own"])
@pytest.mark.parametrize("model", ["run", "export"])
def test_the_same_top_k_as_predict_py(fashion, own, capsys, run_kind, model):
    trained = fashion if run_kind == "fashion" else own
    files = fashion.pngs if run_kind == "fashion" else _val_files(own)
    path = getattr(trained, model)
    expected = _cli_top(capsys, files, path, 3)
    predictor = gluon_cnns.load_predictor(path)
    got = predictor.predict(files, top_k=3)
    assert [expected[f] for f in files] == got
    assert all(len(top) == 3 for top in got)
    assert len({top[0][0] for top in got}) >= 2  # not one class for everything
    assert predictor.classes == json.load(open(trained.export + ".json"))["class_names"]


def test_the_own_image_runs_classes_are_its_folders(own):
    predictor = gluon_cnns.load_predictor(own.run)
    assert predictor.classes == sorted(os.listdir(os.path.join(own.data, "train")))
    assert predictor.input_shape == (3, 28, 28)
    assert predictor.meta["center_crop"] == 0.75


# ---------------------------------------------------------------- as the run evaluated

def test_fashion_paths_pil_images_and_the_evaluation_batch_agree(fashion):
    """The batch is what the run's evaluation fed the net: the test loader's own batch."""
    _, test_iter = load_data_fashion_mnist(N_IMAGES, limit_test=N_IMAGES)
    batch = next(iter(test_iter))[0]
    for model in (fashion.run, fashion.export):
        predictor = gluon_cnns.load_predictor(model)
        from_paths = predictor.probabilities(fashion.pngs)
        pil = [Image.open(p) for p in fashion.pngs]
        assert np.array_equal(predictor.probabilities(pil), from_paths)
        assert np.allclose(predictor.probabilities(batch.asnumpy()), from_paths, atol=1e-6)
        assert np.allclose(predictor.probabilities(batch), from_paths, atol=1e-6)
        # ... and what the net itself says of that batch, as plain Gluon.
        net_probs = mx.nd.softmax(predictor.block(batch)).asnumpy()
        assert np.allclose(from_paths, net_probs, atol=1e-6)


def test_own_image_paths_pil_images_and_the_evaluation_batches_agree(own):
    """Image by image, the probabilities of the val batches that the training evaluated
    (ImageBatches: the centre crop of 0.75, RGB, ImageNet's mean and std)."""
    config = json.load(open(os.path.join(own.run, "config.json")))
    val = scan_images("folder", own.data).val
    batches = ImageBatches(val, 16, side=28, channels=3, center_crop=config["center_crop"],
                           mean=config["mean"], std=config["std"])
    evaluated = np.concatenate([X.asnumpy() for X, _ in batches])
    predictor = gluon_cnns.load_predictor(own.export)
    from_paths = predictor.probabilities(val.sources)
    from_batch = predictor.probabilities(evaluated)
    assert np.allclose(from_paths, from_batch, atol=1e-5)
    assert (from_paths.argmax(1) == from_batch.argmax(1)).all()
    pil = [Image.open(p) for p in val.sources]
    assert np.allclose(predictor.probabilities(pil), from_paths, atol=1e-6)
    # onnxruntime, on the export's .onnx and the evaluation's batches, says the same.
    import onnxruntime as ort
    session = ort.InferenceSession(own.export + ".onnx", providers=["CPUExecutionProvider"])
    logits = session.run(None, {"data": evaluated.astype(np.float32)})[0]
    assert np.allclose(mx.nd.softmax(mx.nd.array(logits)).asnumpy(), from_paths, atol=1e-4)
    assert [top[0][0] for top in predictor.predict([Path(p) for p in val.sources], 1)] == \
        [predictor.classes[i] for i in from_batch.argmax(1)]
    # The normalization matters: the same crops only divided by 255 give other answers.
    raw = np.stack([predictor.read(p) for p in val.sources]).transpose(0, 3, 1, 2) / 255.0
    assert not np.allclose(predictor.probabilities(raw), from_paths, atol=1e-3)


def test_without_the_evaluation_crop_the_answers_differ(own, tmp_path):
    """The agreement above is the crop's doing: the same export resized straight to 28x28."""
    plain = str(tmp_path / "plain" / "lenet_bn")
    shutil.copytree(os.path.dirname(own.export), os.path.dirname(plain))
    meta = json.load(open(plain + ".json"))
    del meta["center_crop"]
    with open(plain + ".json", "w") as f:
        json.dump(meta, f)
    files = _val_files(own)
    cropped = gluon_cnns.load_predictor(own.export).probabilities(files)
    resized = gluon_cnns.load_predictor(plain).probabilities(files)
    assert not np.allclose(cropped, resized, atol=1e-3)


def test_a_pil_image_stands_upright_as_its_file_does(fashion, tmp_path):
    """A photo taken sideways (EXIF orientation 6): its file and its PIL image are turned
    upright alike."""
    sideways = str(tmp_path / "sideways.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: to be shown turned 90 degrees clockwise
    Image.open(fashion.pngs[0]).rotate(90, expand=True).save(sideways, exif=exif)
    predictor = gluon_cnns.load_predictor(fashion.export)
    upright = predictor.probabilities(fashion.pngs[:1])
    assert np.array_equal(predictor.probabilities([sideways]), upright)
    assert np.array_equal(predictor.probabilities([Image.open(sideways)]), upright)


# ---------------------------------------------------------------- predict.py's folders

def test_a_folder_argument_covers_the_train_val_layout_at_any_depth(own, capsys, tmp_path):
    """photos/ holds train/<class>/ and val/<class>/ (and deeper folders): predict lists what
    training reads, in the same order; a named pipe is one line, a link loop read once."""
    photos = shutil.copytree(own.data, str(tmp_path / "photos"))
    bag = os.path.join(photos, "val", "Bag")
    deeper = os.path.join(bag, "more", "deeper")
    os.makedirs(deeper)
    first_bag = sorted(os.listdir(os.path.join(photos, "train", "Bag")))[0]
    shutil.copy(os.path.join(photos, "train", "Bag", first_bag), os.path.join(deeper, "x.png"))
    os.symlink("..", os.path.join(deeper, "loop"))          # back up to val/Bag/more
    os.mkfifo(os.path.join(bag, "more", "pipe.png"))
    (Path(bag) / "notes.txt").write_text("not an image")
    shutil.copy(os.path.join(deeper, "x.png"), os.path.join(bag, ".hidden.png"))
    data = scan_images("folder", photos)
    expected = data.train.sources + data.val.sources
    assert os.path.join(deeper, "x.png") in expected
    single = os.path.join(photos, "train", "Coat", sorted(os.listdir(
        os.path.join(photos, "train", "Coat")))[0])
    code = predict_cli.main([single, photos, "--model", own.export, "--json", "--top-k", "1"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [r["file"] for r in doc["results"]] == [single] + expected
    pipe = os.path.join(bag, "more", "pipe.png")
    assert code == 2 and [e["file"] for e in doc["errors"]] == [pipe]
    assert err.splitlines() == ["predict: error: %s: not a regular file (a named pipe); "
                                "skipped" % pipe]


def test_a_folder_without_images_at_any_depth_is_still_one_line(own, capsys, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "notes.txt").write_text("no pictures")
    code = predict_cli.main([str(tmp_path), "--model", own.export])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == ["predict: error: %s: folder holds no png/jpg/jpeg/bmp/gif/ppm/"
                                "pgm/tif/tiff/webp images" % tmp_path]


# ---------------------------------------------------------------- mistakes

def _one_line(call, error=GluonCNNsError):
    with pytest.raises(error) as info:
        call()
    line = str(info.value)
    assert line and "\n" not in line
    return line


def test_load_predictor_mistakes_are_one_line(tmp_path, fashion):
    assert "neither an export" in _one_line(
        lambda: gluon_cnns.load_predictor(tmp_path / "nothing"))
    assert "has no config.json" in _one_line(lambda: gluon_cnns.load_predictor(tmp_path))
    assert "no such file" in _one_line(lambda: gluon_cnns.load_predictor(fashion.pngs[0]))
    assert "got 7" in _one_line(lambda: gluon_cnns.load_predictor(7))


def test_predict_mistakes_are_one_line(fashion, tmp_path):
    predictor = gluon_cnns.load_predictor(fashion.export)
    line = _one_line(lambda: predictor.predict(np.zeros((2, 1, 32, 32), np.float32)))
    assert "(2, 1, 32, 32)" in line and "(N, 1, 28, 28)" in line
    assert "(1, 28, 28)" in _one_line(lambda: predictor.predict(np.zeros((1, 28, 28), "f")))
    assert "uint8" in _one_line(lambda: predictor.predict(np.zeros((2, 1, 28, 28), np.uint8)))
    for k in (0, -1, 2.5, True, "3"):
        assert "top_k" in _one_line(lambda: predictor.predict(fashion.pngs[:1], top_k=k))
    assert "input 1 is a int" in _one_line(lambda: predictor.predict([fashion.pngs[0], 5]))
    missing = str(tmp_path / "missing.png")
    assert _one_line(lambda: predictor.predict([fashion.pngs[0], missing]),
                     gluon_cnns.DataError) == "%s: no such file" % missing
    cut = tmp_path / "cut.png"
    cut.write_bytes(open(fashion.pngs[0], "rb").read()[:150])
    line = _one_line(lambda: predictor.predict([str(cut)]), gluon_cnns.DataError)
    assert line.startswith("%s: cannot decode the image" % cut)
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    assert "not an image" in _one_line(lambda: predictor.predict([notes]))
    assert "pass the image files in it" in _one_line(lambda: predictor.predict([tmp_path]))


def test_one_path_and_an_empty_list(fashion):
    predictor = gluon_cnns.load_predictor(fashion.export)
    assert predictor.predict(fashion.pngs[0], top_k=20) == \
        predictor.predict([fashion.pngs[0]], top_k=20)
    top = predictor.predict(fashion.pngs[0], top_k=20)[0]
    assert len(top) == 10 and sum(p for _, p in top) == pytest.approx(1, abs=1e-5)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert predictor.predict([]) == []
    assert "at least one image" in _one_line(lambda: predictor.batch([]))


def test_importing_gluon_cnns_does_not_import_mxnet():
    import subprocess
    import sys
    code = ("import sys, gluon_cnns; gluon_cnns.load_predictor; import gluon_cnns.cli.predict; "
            "sys.exit('mxnet' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0

"""scripts/predict.py and scripts/export.py: real Fashion-MNIST images, a briefly trained LeNet."""
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from PIL import Image

import gluon_cnns
from gluon_cnns.cli import export as export_cli
from gluon_cnns.cli import predict
from gluon_cnns.inference.export import export_model
from gluon_cnns.data import FASHION_MNIST_CLASSES, find_data, load_data_fashion_mnist, \
    read_idx
from gluon_cnns.io import write_json
from image_folders import png_header_only
from reference_loop import plain_gluon_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 40  # test images written as PNGs


def _train_lenet(num_train=3000):
    """LeNet after one short epoch of plain Gluon training: far from random, far from done."""
    mx.random.seed(0)
    np.random.seed(0)
    train_iter, test_iter = load_data_fashion_mnist(64, limit_train=num_train, limit_test=N_IMAGES)
    net = gluon_cnns.get_model("lenet")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.3})
    plain_gluon_epoch(net, trainer, train_iter)
    # What evaluate_accuracy counts: the argmax of the net's output on the test batches.
    predicted = np.concatenate([net(X).argmax(axis=1).asnumpy() for X, _ in test_iter])
    labels = np.concatenate([y.asnumpy() for _, y in test_iter])
    return net, predicted.astype(int), labels.astype(int)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained LeNet, exported and as a --save-dir, plus PNGs of the first test images."""
    # No skip: the real data is part of the suite (CI installs dataset-fashion-mnist).
    test_images = read_idx(find_data("fashion-mnist")["t10k-images-idx3-ubyte"])
    net, predicted, labels = _train_lenet()
    base = tmp_path_factory.mktemp("predict")
    export = str(base / "export" / "lenet")
    export_model(net, export, (1, 1, 28, 28), net_name="lenet")
    run = str(base / "run")
    os.makedirs(run)
    write_json(os.path.join(run, "config.json"),
               {"net": "lenet", "dataset": "fashion-mnist", "resize": None})
    net.save_parameters(os.path.join(run, "best.params"))
    images = str(base / "images")
    os.makedirs(images)
    pngs = []
    for i in range(N_IMAGES):
        pngs.append(os.path.join(images, "img%03d.png" % i))
        Image.fromarray(test_images[i]).save(pngs[-1])
    return SimpleNamespace(net=net, predicted=predicted, labels=labels, export=export, run=run,
                           images=images, pngs=pngs, raw=test_images[:N_IMAGES], base=base)


def _run(capsys, *argv):
    """Run predict's main; returns (exit code, stdout, stderr lines)."""
    code = predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _top1_from_json(out):
    doc = json.loads(out)
    return {r["file"]: r["top"][0]["index"] for r in doc["results"]}, doc


# ---------------------------------------------------------------- agreement

def test_the_trained_net_is_not_trivial(trained):
    assert (trained.predicted == trained.labels).mean() > 0.5
    assert len(set(trained.predicted)) >= 4


@pytest.mark.parametrize("model", ["export", "run"])
def test_predictions_agree_with_the_nets_argmax(trained, capsys, monkeypatch, model):
    monkeypatch.setattr(predict, "BATCH_SIZE", 7)  # several batches, the last one short
    code, out, err = _run(capsys, trained.images, "--model", getattr(trained, model), "--json")
    assert code == 0 and err == []
    top1, doc = _top1_from_json(out)
    assert list(top1) == trained.pngs  # a folder gives its images, sorted
    assert [top1[p] for p in trained.pngs] == list(trained.predicted)
    assert doc["net"] == "lenet" and doc["errors"] == []
    for result in doc["results"]:
        probs = [p["probability"] for p in result["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert all(p["class"] == FASHION_MNIST_CLASSES[p["index"]] for p in result["top"])


def test_text_output_has_one_block_per_image(trained, capsys):
    files = trained.pngs[:4]
    code, out, err = _run(capsys, *files, "--model", trained.export)
    assert code == 0 and err == []
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 4
    for path, block, expected in zip(files, blocks, trained.predicted):
        lines = block.splitlines()
        assert lines[0] == path and len(lines) == 4
        assert lines[1].startswith("  1. " + FASHION_MNIST_CLASSES[expected] + " ")
        assert lines[1].endswith("%")


def test_other_modes_and_sizes(trained, capsys, tmp_path):
    rgb = str(tmp_path / "rgb.png")       # grey as RGB: converting back to L is exact
    Image.fromarray(trained.raw[0]).convert("RGB").save(rgb)
    rgba = str(tmp_path / "rgba.png")
    Image.fromarray(trained.raw[1]).convert("RGBA").save(rgba)
    wide = str(tmp_path / "wide.png")     # 16-bit grey: scaled to 8 bits, not clipped
    Image.fromarray(trained.raw[2].astype(np.uint16) * 257).save(wide)
    big = str(tmp_path / "big.JPG")       # any size: resized to 28x28
    Image.fromarray(trained.raw[3]).resize((90, 60), Image.BILINEAR).convert("RGB").save(big)
    gif = str(tmp_path / "small.gif")
    Image.fromarray(trained.raw[4]).resize((14, 14)).save(gif)
    code, out, err = _run(capsys, rgb, rgba, wide, big, gif, "--model", trained.export,
                          "--json", "--top-k", "1")
    assert code == 0 and err == []
    top1, doc = _top1_from_json(out)
    assert [top1[rgb], top1[rgba], top1[wide]] == list(trained.predicted[:3])
    assert len(doc["results"]) == 5 and all(len(r["top"]) == 1 for r in doc["results"])


def test_top_k(trained, capsys):
    code, out, _ = _run(capsys, trained.pngs[0], "--model", trained.export, "--json",
                        "--top-k", "20")
    assert code == 0
    top = json.loads(out)["results"][0]["top"]
    assert len(top) == 10 and sum(p["probability"] for p in top) == pytest.approx(1, abs=1e-5)
    code, _, err = _run(capsys, trained.pngs[0], "--model", trained.export, "--top-k", "0")
    assert code == 2 and len(err) == 1 and "--top-k" in err[0]


# ---------------------------------------------------------------- mistakes

def _bad_files(folder):
    missing = os.path.join(folder, "missing.png")
    truncated = os.path.join(folder, "truncated.png")
    with open(truncated, "wb") as f:
        f.write(open(os.path.join(folder, "..", "images", "img000.png"), "rb").read()[:150])
    text = os.path.join(folder, "notes.png")
    with open(text, "w") as f:
        f.write("this is not a picture\n")
    return [missing, truncated, text]


def test_bad_files_are_reported_and_the_rest_classified(trained, capsys):
    folder = str(trained.base / "bad")
    os.makedirs(folder, exist_ok=True)
    bad = _bad_files(folder)
    good = trained.pngs[:2]
    code, out, err = _run(capsys, good[0], *bad, good[1], "--model", trained.export)
    assert code == 2
    assert len(err) == 3
    for path, line in zip(bad, err):
        assert line.startswith("predict: error: %s: " % path)
    assert "no such file" in err[0] and "truncated" in err[1] and "not an image" in err[2]
    assert [block.splitlines()[0] for block in out.strip().split("\n\n")] == good
    # The same as JSON: the errors are listed too, and stderr still says them.
    code, out, err = _run(capsys, good[0], *bad, good[1], "--model", trained.export, "--json")
    assert code == 2 and len(err) == 3
    top1, doc = _top1_from_json(out)
    assert list(top1) == good and [e["file"] for e in doc["errors"]] == bad


def test_a_folder_without_images(trained, capsys, tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    code, out, err = _run(capsys, tmp_path, trained.pngs[0], "--model", trained.export)
    assert code == 2 and len(err) == 1 and "no png/jpg/jpeg/bmp/gif/" in err[0]
    assert out.startswith(trained.pngs[0])


def test_bad_model_is_one_line(trained, capsys, tmp_path):
    broken = tmp_path / "broken"
    (tmp_path / "broken.json").write_text("{not json")
    for model in (tmp_path / "nothing", tmp_path, broken):
        code, out, err = _run(capsys, trained.pngs[0], "--model", model)
        assert code == 2 and out == "" and len(err) == 1, (model, err)
        assert err[0].startswith("predict: error: --model %s: " % model)
    code, _, err = _run(capsys, trained.pngs[0])
    assert code == 2 and len(err) == 1 and "--model" in err[0]


def test_a_sidecar_that_does_not_fit_the_net_is_one_line(trained, capsys, tmp_path):
    prefix = str(tmp_path / "edited")
    for suffix in ("-symbol.json", "-0000.params"):
        shutil.copy(trained.export + suffix, prefix + suffix)
    meta = json.load(open(trained.export + ".json"))
    meta["channels"] = 3  # LeNet's first convolution takes 1 channel
    write_json(prefix + ".json", meta)
    code, out, err = _run(capsys, trained.pngs[0], "--model", prefix)
    assert code == 2 and out == "" and len(err) == 1
    assert err[0].startswith("predict: error: --model %s does not run on these images: " % prefix)


def test_script_runs_from_a_clone(trained, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "predict.py"),
                           trained.pngs[0], "--model", trained.export], cwd=str(tmp_path),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith(
        "  1. " + FASHION_MNIST_CLASSES[trained.predicted[0]])


# ---------------------------------------------------------------- scripts/export.py

def test_export_cli_from_a_save_dir(trained, capsys, tmp_path):
    out = str(tmp_path / "exported" / "lenet")
    assert export_cli.main(["--save-dir", trained.run, "--out", out, "--formats", "symbol"]) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(str(tmp_path / "exported"))) == [
        "lenet-0000.params", "lenet-symbol.json", "lenet.json"]
    assert "wrote %s.json" % out in printed
    code, stdout, _ = _run(capsys, trained.images, "--model", out, "--json")
    top1, _ = _top1_from_json(stdout)
    assert code == 0 and [top1[p] for p in trained.pngs] == list(trained.predicted)


def test_export_cli_mistakes_are_one_line(trained, capsys, tmp_path):
    for argv in (["--save-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x")],
                 ["--save-dir", str(tmp_path), "--out", str(tmp_path / "x")],
                 ["--save-dir", trained.run, "--out", str(tmp_path / "x"), "--formats", "tf"]):
        assert export_cli.main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("export: error: ")
    assert not os.path.exists(str(tmp_path / "x.json"))


def test_train_export_predict_end_to_end(trained, capsys, tmp_path):
    """The real training CLI's --save-dir goes through export and predict."""
    from gluon_cnns.cli import train as train_cli
    run = str(tmp_path / "run")
    assert train_cli.main(["--net", "lenet", "--epochs", "1", "--limit-train", "512",
                           "--limit-test", "256", "--save-dir", run, "--quiet"]) == 0
    out = str(tmp_path / "lenet")
    assert export_cli.main(["--save-dir", run, "--out", out]) == 0
    capsys.readouterr()
    for model in (run, out):
        code, stdout, err = _run(capsys, *trained.pngs[:3], "--model", model, "--json")
        assert code == 0 and err == []
        assert len(json.loads(stdout)["results"]) == 3


def test_truncated_png_is_refused_even_after_gluoncv_sets_pillow_lenient(tmp_path):
    from PIL import Image, ImageFile

    from gluon_cnns.cli.predict import ImageError, read_image
    path = tmp_path / "cut.png"
    Image.new("L", (28, 28), 128).save(str(path))
    path.write_bytes(path.read_bytes()[:-30])
    from gluon_cnns.gluoncv_import import import_gluoncv
    import_gluoncv("gluoncv.data")  # sets ImageFile.LOAD_TRUNCATED_IMAGES = True
    assert ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError):
        read_image(str(path), 1)
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # the process-wide setting is put back


# ---------------------------------------------------------------- issue 15: hostile files

def test_a_named_pipe_is_skipped_not_waited_for(trained, tmp_path):
    """Issue 15 case 12: predict f.png (a FIFO) hung forever; now one line, the rest classified."""
    fifo = str(tmp_path / "f.png")
    os.mkfifo(fifo)
    folder = tmp_path / "photos"
    folder.mkdir()
    os.mkfifo(str(folder / "a.png"))  # in a folder too
    shutil.copy(trained.pngs[1], str(folder / "b.png"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "predict.py"), fifo,
                           trained.pngs[0], str(folder), "--model", trained.export],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "predict: error: %s: not a regular file (a named pipe); skipped" % path
        for path in (fifo, str(folder / "a.png"))]
    assert [block.splitlines()[0] for block in proc.stdout.strip().split("\n\n")] == \
        [trained.pngs[0], str(folder / "b.png")]


def test_a_20000x20000_png_is_classified(trained, capsys, tmp_path):
    """Issue 15 case 12: refused as a "decompression bomb" although any size should work."""
    big = str(tmp_path / "big.png")
    image = Image.fromarray(trained.raw[0]).resize((20000, 20000), Image.NEAREST)
    image.save(big, compress_level=1)
    del image
    code, out, err = _run(capsys, big, trained.pngs[0], "--model", trained.export, "--json")
    assert code == 0 and err == []
    top1, _ = _top1_from_json(out)
    assert top1[big] == top1[trained.pngs[0]] == trained.predicted[0]


def test_an_image_above_the_pixel_bound_is_one_line_naming_it(trained, capsys, tmp_path):
    huge = str(tmp_path / "huge.png")
    png_header_only(huge, 30000, 30000)
    code, out, err = _run(capsys, huge, trained.pngs[0], "--model", trained.export)
    assert code == 2 and out.startswith(trained.pngs[0])
    assert err == ["predict: error: %s: the image is 30000x30000 (900 megapixels), more than "
                   "the 500 megapixels read here; scale it down first" % huge]


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    from gluon_cnns.cli.predict import LARGE_PIXELS, read_image
    path = str(tmp_path / "wide.jpg")
    Image.new("RGB", (6000, 4000), (200, 10, 10)).save(path, quality=80)
    assert 6000 * 4000 > LARGE_PIXELS
    pixels = read_image(path, 3, (28, 28))
    assert pixels.shape[2] == 3 and 112 <= pixels.shape[0] < 4000 // 4
    assert abs(int(pixels[..., 0].mean()) - 200) < 10


def test_cam_writes_one_overlay_per_image(trained, capsys, tmp_path):
    out = tmp_path / "cams"
    code, _, err = _run(capsys, *trained.pngs[:3], trained.pngs[0], "--model", trained.run,
                        "--cam", out)
    assert code == 0, err
    # Two images of one name keep two overlays; each is a PNG with the overlay's colours.
    assert sorted(os.listdir(out)) == ["img000-2.png", "img000.png", "img001.png", "img002.png"]
    for name in os.listdir(out):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            pixels = np.asarray(image.convert("RGB")).astype(int)
        assert (pixels[..., 0] - pixels[..., 2]).max() > 100  # red of the jet map: a hot spot


def test_cam_mistakes_are_one_line(trained, capsys, tmp_path):
    code, out, err = _run(capsys, trained.pngs[0], "--model", trained.export, "--cam", tmp_path)
    assert code == 2 and len(err) == 1 and "--save-dir" in err[0] and not out
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = _run(capsys, trained.pngs[0], "--model", trained.run, "--cam",
                          blocker / "cams")
    assert code == 2 and len(err) == 1 and "cannot make the folder" in err[0]

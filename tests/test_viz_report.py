"""scripts/report.py: a real (short) training run's page, opened in headless Chromium.

Chromium comes from Debian (``apt-get install chromium``; .ci/run installs it).
"""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from gluon_cnns.cli import report as report_cli
from image_folders import write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN, REPORT = (os.path.join(ROOT, "scripts", name) for name in ("train.py", "report.py"))
FLAGS = ["--net", "lenet_bn", "--epochs", "1", "--seed", "0", "--quiet"]
# Appended to a copy of the page for the browser: counts the images it could not draw.
CHECK = ("<script>window.addEventListener('load', function () {var bad = 0, n = 0;"
         "for (var img of document.images) {n++; if (!img.complete || img.naturalWidth === 0)"
         " bad++;} document.body.setAttribute('data-images', n + ' ' + bad);});</script>")


def _train(save_dir, *flags):
    proc = subprocess.run([sys.executable, TRAIN] + FLAGS + list(flags) + ["--save-dir", save_dir],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return save_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    fashion = _train(str(base / "fashion"), "--limit-train", "3000", "--limit-test", "300")
    data = write_image_folder(str(base / "images"), per_class=12, val_per_class=4,
                              classes=[0, 1, 5, 9])
    own = _train(str(base / "own"), "--dataset", "folder", "--data-dir", data,
                 "--batch-size", "8", "--lr", "0.1")
    return {"fashion": fashion, "own": own}


def _report(run):
    proc = subprocess.run([sys.executable, REPORT, run], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(run, "report.html"), encoding="utf-8") as f:
        return f.read()


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is missing: apt-get install chromium (see .ci/run)"
    return path


def _open_in_chromium(page, tmp_path):
    """``(DOM after load, stderr log)`` of ``page`` (plus CHECK) in headless Chromium, and a
    screenshot it took."""
    html_file = tmp_path / "page.html"
    html_file.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    common = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
              "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
              "--user-data-dir=%s" % (tmp_path / "profile")]
    dom = subprocess.run(common + ["--dump-dom", html_file.as_uri()], capture_output=True,
                         text=True, timeout=120)
    shot = tmp_path / "shot.png"
    subprocess.run(common + ["--screenshot=%s" % shot, "--window-size=1100,1400",
                             html_file.as_uri()], capture_output=True, text=True, timeout=120)
    return dom.stdout, dom.stderr, shot


def _per_class_rows(page):
    """(class, images) of the per-class table."""
    table = page.split("<h2>Accuracy per class</h2>")[1].split("<h2>")[0]
    return [(name, int(n)) for name, n in re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", table)]


def _images(page):
    """Every <img>'s src, decoded; each must be a data: URI of a PNG."""
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(sources) == page.count("<img ")
    images = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            assert image.format == "PNG"
            image.load()
            images.append(image.size)
    return images


@pytest.mark.parametrize("kind", ["fashion", "own"])
def test_report_renders_in_chromium(runs, kind, tmp_path):
    page = _report(runs[kind])
    assert len(_images(page)) == 3  # curves, confusion matrix, mistakes
    dom, log, shot = _open_in_chromium(page, tmp_path)
    assert 'data-images="3 0"' in dom, log[-2000:]  # 3 images, none broken
    assert "Uncaught" not in log and "CONSOLE" not in log, log[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1100, 1400)
        assert len(image.convert("L").getcolors(1 << 16)) > 50  # not a blank page


def test_the_page_says_what_the_run_measured(runs):
    page = _report(runs["fashion"])
    with open(os.path.join(runs["fashion"], "log.jsonl")) as f:
        test_acc = max(json.loads(line)["test_acc"] for line in f)
    # The net of best.params on the 300 images the run tested: the accuracy it logged.
    assert "accuracy %.2f%% on 300 test images" % (100 * test_acc) in page
    assert "Ankle boot" in page and "T-shirt/top" in page
    assert sum(n for _, n in _per_class_rows(page)) == 300


def test_own_images_use_the_folders_class_names(runs):
    page = _report(runs["own"])
    with open(os.path.join(runs["own"], "config.json")) as f:
        names = json.load(f)["class_names"]
    assert len(names) == 4
    assert _per_class_rows(page) == [(n, 4) for n in names]  # 4 val images each


def test_rewritten_atomically(runs):
    run = runs["fashion"]
    before = _report(run)
    assert _report(run) == before  # the same run, the same page
    assert [n for n in os.listdir(run) if n.endswith(".tmp")] == []


def test_a_folder_without_a_log_is_one_line(runs, tmp_path, capsys):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    shutil.copy(os.path.join(runs["fashion"], "config.json"), empty)
    for folder in (empty, tmp_path / "missing"):
        assert report_cli.main([str(folder)]) == 2
        out, err = capsys.readouterr()
        assert not out and len(err.splitlines()) == 1 and err.startswith("report: error: ")
    assert not os.path.exists(empty / "report.html")


def test_help_does_not_import_mxnet():
    code = ("import sys; from gluon_cnns.cli import report; "
            "assert report.main(['--help']) == 0; assert 'mxnet' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr

"""scripts/reproduce.py against damaged, foreign and concurrent inputs: one line and a
non-zero exit, nothing deleted, nothing published from a run it cannot vouch for."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from gluon_cnns.io import release_lock, take_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--epochs", "1", "--limit-train", "512", "--limit-test", "128"]


def reproduce(tmp, *extra, net="lenet", timeout=300):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "reproduce.py"), "--net", net,
           "--runs-dir", str(tmp / "runs"), "--docs-dir", str(tmp / "docs")] + SMALL
    return subprocess.run(cmd + list(extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(proc, code, *words):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small lenet run and its docs, made once; each test gets a copy."""
    base = tmp_path_factory.mktemp("base")
    proc = reproduce(base)
    assert proc.returncode == 0, proc.stderr
    return base


@pytest.fixture
def tmp(finished, tmp_path):
    shutil.copytree(finished / "runs", tmp_path / "runs")
    shutil.copytree(finished / "docs", tmp_path / "docs")
    return tmp_path


def test_a_folder_without_a_run_is_refused_and_kept(tmp):
    folder = tmp / "runs" / "lenet_bn"
    folder.mkdir()
    (folder / "NOTES.txt").write_text("mine")
    one_line_error(reproduce(tmp, net="lenet_bn"), 1, "NOTES.txt", "no config.json")
    assert (folder / "NOTES.txt").read_text() == "mine"


def test_a_second_reproduce_on_the_same_net_is_refused(tmp):
    lock = str(tmp / "runs" / ".lenet.reproduce.lock")
    fd = take_lock(lock)
    try:
        one_line_error(reproduce(tmp), 1, "in use by another reproduce.py (pid %d)" % os.getpid())
    finally:
        release_lock(lock, fd)


def test_publishing_waits_for_another_writer_of_the_docs(tmp):
    lock = str(tmp / "docs" / ".results.lock")
    fd = take_lock(lock)
    threading.Timer(2.0, release_lock, (lock, fd)).start()
    start = time.time()
    proc = reproduce(tmp)
    assert proc.returncode == 0, proc.stderr
    assert time.time() - start >= 2.0


@pytest.mark.parametrize("content, words", [
    ('{"lenet": {"net": "len', "cannot read"),
    ("[1, 2]", "not a JSON object"),
    ('{"lenet_bn": {"net": "lenet_bn"}}', "row 'lenet_bn' is damaged: it has no 'command'"),
    ("RENAMED", "row 'lenet_bn' is damaged: it is the row of lenet"),
])
def test_a_damaged_results_json_stops_before_any_training(tmp, content, words):
    results = tmp / "docs" / "results.json"
    if content == "RENAMED":                         # lenet's row filed under another key
        content = json.dumps({"lenet_bn": json.loads(results.read_text())["lenet"]})
    results.write_text(content)
    proc = reproduce(tmp, net="lenet_bn")
    one_line_error(proc, 2, words)
    assert not (tmp / "runs" / "lenet_bn").exists()


def test_a_log_record_without_its_time_publishes_nothing(tmp):
    before = (tmp / "docs" / "results.json").read_text()
    plot = (tmp / "docs" / "results" / "lenet.png").read_bytes()
    log = tmp / "runs" / "lenet" / "log.jsonl"
    record = json.loads(log.read_text())
    del record["time"]
    log.write_text(json.dumps(record) + "\n")
    one_line_error(reproduce(tmp, "--read-only"), 1, "epoch 1", "'time'")
    assert (tmp / "docs" / "results.json").read_text() == before
    assert (tmp / "docs" / "results" / "lenet.png").read_bytes() == plot


@pytest.mark.parametrize("key, value", [("net", "lenet_bn"), ("lr", 55.0),
                                        ("optimizer", "adam"), ("lr_schedule", "cosine"),
                                        ("dtype", "bf16"), ("finetune_source", "x.params")])
def test_a_run_of_another_net_or_recipe_is_refused(tmp, key, value):
    config = tmp / "runs" / "lenet" / "config.json"
    settings = json.loads(config.read_text())
    settings[key] = value
    config.write_text(json.dumps(settings))
    one_line_error(reproduce(tmp, "--read-only"), 1, "holds a run with %s %s" % (key, value))


def test_a_missing_plot_publishes_nothing(tmp):
    before = (tmp / "docs" / "results.json").read_text()
    os.remove(str(tmp / "runs" / "lenet" / "curves.png"))
    one_line_error(reproduce(tmp, "--read-only"), 1, "curves.png")
    assert (tmp / "docs" / "results.json").read_text() == before


def test_unusable_docs_are_usage_errors_before_training(tmp):
    (tmp / "docs-file").write_text("x")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "reproduce.py"), "--net", "lenet_bn",
         "--runs-dir", str(tmp / "runs"), "--docs-dir", str(tmp / "docs-file")] + SMALL,
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    one_line_error(proc, 2, "--docs-dir")
    assert not (tmp / "runs" / "lenet_bn").exists()
    os.mkfifo(str(tmp / "docs" / "RESULTS_NOTES.md"))       # a pipe must not hang the tool
    one_line_error(reproduce(tmp, "--read-only", timeout=60), 2, "named pipe")


def test_a_torn_log_is_replaced_by_the_checkpoints_records(tmp):
    log = tmp / "runs" / "lenet" / "log.jsonl"
    figures = json.loads(log.read_text())
    log.write_text(log.read_text()[:40])
    proc = reproduce(tmp, "--read-only")
    assert proc.returncode == 0, proc.stderr
    assert "damaged; the figures come from checkpoint.json" in proc.stderr
    assert proc.stderr.count("warning") == 1
    row = json.loads((tmp / "docs" / "results.json").read_text())["lenet"]
    assert row["epoch_test_acc"] == [figures["test_acc"]]
    os.remove(str(log))                              # a missing log: the same records
    proc = reproduce(tmp)
    assert proc.returncode == 0 and "$ python" not in proc.stdout, proc.stderr


def test_a_run_stopped_before_its_first_checkpoint_starts_afresh(tmp):
    run = tmp / "runs" / "lenet"
    for name in os.listdir(str(run)):
        # What a run stopped then keeps: its config, output, marker and TensorBoard events.
        if name not in ("config.json", "train.out", ".gluon_cnns", "tensorboard"):
            os.remove(str(run / name))
    proc = reproduce(tmp)
    assert proc.returncode == 0, proc.stderr
    assert "$ python scripts/train.py --net lenet" in proc.stdout and "--resume" not in proc.stdout


@pytest.mark.parametrize("argv, words", [(["--net", ",,"], "names no net"),
                                         (["--net", "lenet", "--checkpoint-every", "0"],
                                          "--checkpoint-every"),
                                         (["--net", "lenet", "--seed", "-1"], "--seed")])
def test_bad_arguments_are_usage_errors(tmp, argv, words):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "reproduce.py")] + argv
                          + ["--docs-dir", str(tmp / "docs")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_row_is_not_replaced_by_a_reduced_one(tmp):
    results = tmp / "docs" / "results.json"
    rows = json.loads(results.read_text())
    rows["lenet"]["reduced"] = ""                    # as if the published row were full
    results.write_text(json.dumps(rows))
    one_line_error(reproduce(tmp, "--read-only"), 2, "already has a full run of lenet")
    assert json.loads(results.read_text())["lenet"]["reduced"] == ""


@pytest.mark.parametrize("change", ["duplicate", "nan"])
def test_an_edited_log_is_refused(tmp, change):
    log = tmp / "runs" / "lenet" / "log.jsonl"
    record = json.loads(log.read_text())
    if change == "duplicate":
        log.write_text(json.dumps(dict(record, test_acc=0.99)) + "\n" + json.dumps(record) + "\n")
    else:
        log.write_text(json.dumps(record).replace(str(record["test_acc"]), "NaN") + "\n")
    one_line_error(reproduce(tmp, "--read-only"), 1, "epoch")


@pytest.mark.parametrize("kind", ["link", "text"])
def test_a_plot_that_is_a_link_or_no_png_is_not_published(tmp, kind):
    curves, secret = tmp / "runs" / "lenet" / "curves.png", tmp / "secret"
    secret.write_text("not for the docs")
    os.remove(str(curves))
    if kind == "link":
        os.symlink(str(secret), str(curves))
    else:
        curves.write_text("not a png")
    plot = (tmp / "docs" / "results" / "lenet.png").read_bytes()
    one_line_error(reproduce(tmp, "--read-only"), 1, "curves.png")
    assert (tmp / "docs" / "results" / "lenet.png").read_bytes() == plot


def test_a_lock_that_is_a_link_is_refused_and_its_target_kept(tmp):
    victim = tmp / "victim"
    victim.write_text("important")
    os.symlink(str(victim), str(tmp / "runs" / ".lenet.reproduce.lock"))
    one_line_error(reproduce(tmp), 1, "cannot lock")
    assert victim.read_text() == "important"


def test_what_would_stop_publishing_is_found_before_training(tmp):
    (tmp / "docs" / "RESULTS.md").unlink()
    (tmp / "docs" / "RESULTS.md").mkdir()
    one_line_error(reproduce(tmp, net="lenet_bn"), 2, "RESULTS.md is a folder")
    assert not (tmp / "runs" / "lenet_bn").exists()
    (tmp / "docs" / "RESULTS.md").rmdir()
    results = tmp / "docs" / "results.json"
    rows = json.loads(results.read_text())
    rows["lenet"]["reduced"] = ""                    # as if the published row were full
    results.write_text(json.dumps(rows))
    shutil.rmtree(str(tmp / "runs" / "lenet"))
    one_line_error(reproduce(tmp), 2, "already has a full run of lenet")
    assert not (tmp / "runs" / "lenet").exists()     # refused before training, not after


def test_a_pipe_for_train_out_does_not_hang(tmp):
    (tmp / "runs" / "lenet_bn").mkdir()
    os.mkfifo(str(tmp / "runs" / "lenet_bn" / "train.out"))
    one_line_error(reproduce(tmp, net="lenet_bn", timeout=60), 1, "named pipe")

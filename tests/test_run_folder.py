"""The run folder (--save-dir) against a careless or hostile user: two runs at once, a
damaged log, a lost or flipped best.params, a full disk, a forged trainer-state file,
malformed JSON, SIGTERM, and a --resume that changes what it must not."""
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time

import pytest

import gluon_cnns
from gluon_cnns.cli.train import main
from gluon_cnns.errors import ExportError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
DATA = "/usr/share/datasets/fashion-mnist"
BASE = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "1024", "--limit-test", "256",
        "--batch-size", "64", "--lr", "0.05", "--momentum", "0.9", "--seed", "11", "--quiet"]


def train(argv, **kwargs):
    return subprocess.run([sys.executable, SCRIPT] + argv, cwd=ROOT, capture_output=True,
                          text=True, timeout=300, **kwargs)


def one_error_line(proc, code=2):
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def epochs_in_log(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line)["epoch"] for line in f]


@pytest.fixture
def two_epochs(tmp_path):
    run_dir = str(tmp_path / "run")
    assert main(BASE + ["--save-dir", run_dir, "--epochs", "2"]) == 0
    return run_dir


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    run_dir = str(tmp_path / "run")
    first = subprocess.Popen([sys.executable, SCRIPT] + BASE + [
        "--save-dir", run_dir, "--epochs", "90", "--checkpoint-every", "4"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(run_dir, "checkpoint.json")):
            assert time.time() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.2)
        config = open(os.path.join(run_dir, "config.json")).read()
        for extra in ([], ["--resume"]):
            line = one_error_line(train(BASE + ["--save-dir", run_dir, "--epochs", "90"] + extra))
            assert "in use by another training run (pid %d)" % first.pid in line
        assert open(os.path.join(run_dir, "config.json")).read() == config
    finally:
        first.kill()
        first.wait()
    # Killed (kill -9), the holder's lock went with it: the folder can be taken over.
    from gluon_cnns.artifacts.rundir import RunDir
    taken = RunDir(run_dir)
    taken.lock()
    taken.unlock()


def test_a_truncated_log_is_rebuilt_from_the_checkpoints_and_kept_aside(two_epochs, capsys):
    log = os.path.join(two_epochs, "log.jsonl")
    with open(log, "r+") as f:
        f.truncate(10)  # a torn first line: epochs 1 and 2 gone
    capsys.readouterr()
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "did not match the checkpoint's records; kept it as %s.1" % log in err
    assert epochs_in_log(two_epochs) == [1, 2, 3]
    assert len(open(log + ".1").read()) == 10


def test_an_extra_log_line_after_the_checkpoint_is_not_doubled(two_epochs, capsys):
    # A crash between the log line and the index leaves a record the resumed run redoes.
    index = json.load(open(os.path.join(two_epochs, "checkpoint.json")))
    prev = index["previous"]
    with open(os.path.join(two_epochs, "checkpoint.json"), "w") as f:
        json.dump(dict(prev, format=2, previous=None), f)  # the index of epoch 1
    capsys.readouterr()
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "2", "--quiet"]) == 0
    assert epochs_in_log(two_epochs) == [1, 2]
    # A log that only ran ahead is kept aside without a warning: nothing was damaged.
    with open(os.path.join(two_epochs, "log.jsonl.1")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2]
    assert "did not match the checkpoint's records" not in capsys.readouterr().err


def test_a_lost_best_params_is_written_again(two_epochs, capsys):
    os.remove(os.path.join(two_epochs, "best.params"))
    capsys.readouterr()
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "3", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "best.params of epoch" in err and "missing or damaged" in err
    assert os.path.isfile(os.path.join(two_epochs, "best.params"))
    assert "best.params (test acc" in out and "epoch 3)" in out


def test_best_params_keeps_the_first_of_equally_good_epochs(tmp_path, capsys):
    """With lr 1e-30 no float32 weight moves, so the three epochs test alike: best.params is
    epoch 1's, as GluonCV's scripts keep a model only when it is strictly better."""
    run_dir = str(tmp_path / "run")
    assert main(BASE + ["--save-dir", run_dir, "--epochs", "3", "--lr", "1e-30"]) == 0
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        accs = [json.loads(line)["test_acc"] for line in f]
    assert accs[0] == accs[1] == accs[2]
    with open(os.path.join(run_dir, "checkpoint.json")) as f:
        entry = json.load(f)
    assert entry["best_epoch"] == 1
    assert "best.params (test acc %.3f, epoch 1)" % accs[0] in capsys.readouterr().out


def test_a_flipped_bit_in_best_params_is_refused_by_export_and_predict(two_epochs):
    best = os.path.join(two_epochs, "best.params")
    data = bytearray(open(best, "rb").read())
    data[-5] ^= 0x01
    open(best, "wb").write(bytes(data))
    with pytest.raises(ExportError, match="best.params is damaged"):
        gluon_cnns.load_checkpoint_net(two_epochs)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "predict.py"),
                           os.path.join(ROOT, "README.md"), "--model", two_epochs],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "best.params is damaged" in proc.stderr
    assert "Traceback" not in proc.stderr


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(two_epochs):
    index = open(os.path.join(two_epochs, "checkpoint.json")).read()
    # LeNet's parameters are 684 kB: no checkpoint file of epoch 3 fits in 300 kB.
    proc = train(["--save-dir", two_epochs, "--resume", "--epochs", "3"],
                 preexec_fn=_limit_file_size(300_000))
    line = one_error_line(proc)
    assert "cannot write" in line and "free some space" in line
    assert open(os.path.join(two_epochs, "checkpoint.json")).read() == index
    assert not [n for n in os.listdir(two_epochs) if n.endswith(".tmp")]
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "3", "--quiet"]) == 0
    assert epochs_in_log(two_epochs) == [1, 2, 3]


def test_resume_adopts_a_complete_checkpoint_the_index_does_not_name(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    assert main(BASE + ["--save-dir", run_dir, "--epochs", "1"]) == 0
    index_1 = open(os.path.join(run_dir, "checkpoint.json")).read()
    assert main(["--save-dir", run_dir, "--resume", "--epochs", "2", "--quiet"]) == 0
    entry_2 = json.load(open(os.path.join(run_dir, "checkpoint.json")))
    # As if the disk filled up between epoch 2's entry file and the index.
    for key in ("format", "previous", "best_params", "log"):
        entry_2.pop(key)
    json.dump(entry_2, open(os.path.join(run_dir, "epoch-0002.json"), "w"))
    open(os.path.join(run_dir, "checkpoint.json"), "w").write(index_1)
    capsys.readouterr()
    assert main(["--save-dir", run_dir, "--resume", "--epochs", "3", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "does not name the checkpoint at epoch 2" in err
    assert epochs_in_log(run_dir) == [1, 2, 3]


class _Command:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def test_a_forged_trainer_state_file_runs_no_code(two_epochs, tmp_path):
    from gluon_cnns.artifacts.state import sha256_file
    marker = tmp_path / "pwned"
    index_file = os.path.join(two_epochs, "checkpoint.json")
    index = json.load(open(index_file))
    states = os.path.join(two_epochs, index["trainer"])
    with open(states, "wb") as f:
        pickle.dump(({0: _Command(marker)}, None), f)
    index["sha256"][index["trainer"]] = sha256_file(states)  # the forger updates it too
    index["previous"] = None
    json.dump(index, open(index_file, "w"))
    line = one_error_line(train(["--save-dir", two_epochs, "--resume", "--epochs", "3"]))
    assert "refusing to load posix.system" in line
    assert not marker.exists()


def test_a_malformed_checksum_table_is_one_line(two_epochs):
    index_file = os.path.join(two_epochs, "checkpoint.json")
    index = json.load(open(index_file))
    json.dump(dict(index, sha256=[1, 2], previous=None), open(index_file, "w"))
    line = one_error_line(train(["--save-dir", two_epochs, "--resume", "--epochs", "3"]))
    assert "'sha256' must map file names to 64 hex digits" in line


def test_a_malformed_thread_list_in_a_checkpoint_is_one_line(two_epochs):
    index_file = os.path.join(two_epochs, "checkpoint.json")
    index = json.load(open(index_file))
    progress = {"batch": 3, "examples": 192, "loss_sum": [1.0], "correct": [9.0],
                "threads": ["2; rm -rf /"]}
    json.dump(dict(index, progress=progress, previous=None), open(index_file, "w"))
    line = one_error_line(train(["--save-dir", two_epochs, "--resume", "--epochs", "3"]))
    assert "'threads' must be a list of whole numbers >= 1" in line


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    run_dir = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, SCRIPT] + BASE + [
        "--save-dir", run_dir, "--epochs", "40"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(run_dir, "checkpoint.json")):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted; saved a checkpoint at epoch" in err and "--resume" in err
    from gluon_cnns.artifacts.rundir import describe
    index = json.load(open(os.path.join(run_dir, "checkpoint.json")))
    assert "saved a checkpoint at %s in" % describe(index) in err


def test_resume_refuses_another_seed_and_a_failed_resume_keeps_the_config(two_epochs, capsys):
    config = open(os.path.join(two_epochs, "config.json")).read()
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "3", "--seed", "5"]) == 2
    assert "--seed cannot change on --resume" in capsys.readouterr().err
    index = json.load(open(os.path.join(two_epochs, "checkpoint.json")))
    for entry in (index, index["previous"]):
        with open(os.path.join(two_epochs, entry["params"]), "ab") as f:
            f.write(b"damage")
    assert main(["--save-dir", two_epochs, "--resume", "--epochs", "3", "--quiet"]) == 2
    assert open(os.path.join(two_epochs, "config.json")).read() == config


@pytest.mark.parametrize("kind", ["link", "pipe"])
def test_a_lock_file_that_is_a_link_or_pipe_is_refused_and_its_target_kept(tmp_path, kind):
    victim = tmp_path / "victim"
    victim.write_text("important")
    run = tmp_path / "run"
    run.mkdir()
    if kind == "link":
        os.symlink(str(victim), str(run / ".lock"))
    else:
        os.mkfifo(str(run / ".lock"))
    proc = train(["--net", "lenet", "--epochs", "1", "--limit-train", "256", "--limit-test",
                  "64", "--quiet", "--save-dir", str(run)])
    line = one_error_line(proc)
    assert "cannot lock" in line and ".lock" in line
    assert victim.read_text() == "important"


def test_a_checkpoint_is_named_by_the_epoch_it_is_in():
    """Epochs count from 1 in messages and file names alike: the checkpoint 3 batches into
    the first epoch is "epoch 1 batch 3" (docs/CHECKPOINTS.md's example), the end of the
    second is "epoch 2"."""
    from gluon_cnns.artifacts.rundir import describe, stem
    assert [(stem(e, b), describe({"epoch": e, "batch": b})) for e, b in ((0, 3), (2, 0))] == [
        ("epoch-0001-batch-000003", "epoch 1 batch 3"), ("epoch-0002", "epoch 2")]


def test_files_written_atomically_get_the_mode_open_gives(tmp_path):
    """mkstemp's temporary file is the owner's alone; the file a run leaves is not."""
    from gluon_cnns.io import atomic_write
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = atomic_write(str(tmp_path / "atomic.txt"), lambda tmp: open(tmp, "w").write("x"))
    assert oct(os.stat(written).st_mode & 0o777) == oct(plain.stat().st_mode & 0o777)

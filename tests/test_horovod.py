"""Tests of ``--kvstore horovod`` (gluon_cnns.training.horovod) under horovodrun on localhost.

CI builds Horovod (.ci/run): nothing here is skipped when it is missing. Every
job is bounded in time, runs in its own process group and is gone when its
test ends. horovodrun's own parser takes ``--net`` for an abbreviation of its
``--network-interface``, so the training command is given to ``sh -c``.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from gluon_cnns.cli.train import main as train_main
from test_distributed import (DATA, DIST_TRAIN, PY, SEED, TRAIN, TRICK_FLAGS, TRICKS, Launch,
                              lenet_with, load_params, mean_loss, single_process_on_the_union)

HOROVODRUN = os.path.join(os.path.dirname(PY), "horovodrun")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# lenet_bn, 2 ranks x 4 steps of 32 per epoch: BatchNorm statistics and resume.
BN_TRAIN = ["--net", "lenet_bn", "--data-dir", DATA, "--limit-train", "256", "--limit-test",
            "128", "--batch-size", "64", "--seed", "1", "--quiet", "--kvstore", "horovod"]


class Horovodrun(Launch):
    """``horovodrun -np N -H localhost:N --gloo sh -c 'exec python scripts/train.py ARGS'``
    in the background, its output (stderr included) collected line by line by a thread.
    ``shell_tail`` is added to the command unquoted, for the shell of each rank to expand
    (``$HOROVOD_RANK``, for example)."""

    # pylint: disable-next=super-init-not-called
    def __init__(self, ranks, args, env=None, shell_tail=""):
        command = "exec " + shlex.join([PY, TRAIN] + args) + shell_tail
        self.lines = []
        self.proc = subprocess.Popen(
            [HOROVODRUN, "-np", str(ranks), "-H", "localhost:%d" % ranks, "--gloo",
             "sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True, text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def finish(self, timeout=180):
        """The exit code, waiting at most ``timeout`` seconds; the group is killed after."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()
            self.reader.join(5)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def output(self):
        return "\n".join(self.lines)

    def rank_lines(self, rank):
        """What rank ``rank`` printed, without horovodrun's ``[rank]<stdout>:`` prefix."""
        prefix = re.compile(r"^\[%d\]<std(out|err)>:" % rank)
        return [prefix.sub("", l) for l in self.lines if prefix.match(l)]


def run(ranks, args, env=None, timeout=180, shell_tail=""):
    job = Horovodrun(ranks, args, env, shell_tail)
    code = job.finish(timeout)
    assert code == 0, job.output()
    return job


def assert_same_params(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---------------------------------------------------------------- training runs

def test_two_ranks_equal_one_process_on_the_union(tmp_path):
    """Each rank gets its own seed (SEED + rank), so the ranks draw different initial
    weights: only the broadcast of rank 0's makes them one process on the union."""
    dump = str(tmp_path / "rank{rank}.params")
    job = run(2, DIST_TRAIN + ["--kvstore", "horovod", "--save-dir", str(tmp_path / "run"),
                               "--dump-params", dump],
              shell_tail=" --seed $((%d + HOROVOD_RANK))" % SEED)
    for rank in (0, 1):
        lines = job.rank_lines(rank)
        assert ("horovod: rank %d of 2 (local rank %d on localhost); batch 32 of the global 64, "
                "training shard %d of 2" % (rank, rank, rank + 1)) in lines, job.output()
        assert any(l.startswith("epoch 1, loss ") for l in lines), job.output()
    # Only rank 0 wrote the run folder.
    assert [l for l in job.lines if "saved to" in l][0].startswith("[0]<stdout>:saved to")
    assert sum("saved to" in l for l in job.lines) == 1
    assert os.path.exists(str(tmp_path / "run" / "checkpoint.json"))
    # TensorBoard (on with --save-dir): one events file, rank 0's.
    assert len(os.listdir(str(tmp_path / "run" / "tensorboard"))) == 1

    w0, w1 = (load_params(dump.format(rank=r)) for r in (0, 1))
    assert_same_params(w0, w1)
    with open(str(tmp_path / "run" / "config.json")) as f:
        assert json.load(f)["seed"] == SEED  # rank 0's
    initial, reference, union = single_process_on_the_union((SEED, SEED + 1))
    assert sorted(reference) == sorted(w0)
    # dist_sync's tolerance: the ranks' gradients are allreduced, summed in another order
    # than the union batch's (float32 rounding over 8 momentum steps reaches 1.05e-4 with
    # these seeds' batches). Without the broadcast the ranks differ by 0.2.
    for name in w0:
        np.testing.assert_allclose(w0[name], reference[name], rtol=0, atol=2e-4, err_msg=name)
    assert mean_loss(lenet_with(w0), union) < mean_loss(lenet_with(initial), union) - 0.1


def test_two_ranks_with_mixup_and_smoothing_equal_one_process_on_the_union(tmp_path):
    """Each rank mixes its own part of the global batch, with the lam of its own seed
    (SEED + rank) and the position: one process on the union of the parts mixed alike."""
    dump = str(tmp_path / "rank{rank}.params")
    run(2, DIST_TRAIN + TRICK_FLAGS + ["--kvstore", "horovod", "--quiet", "--dump-params", dump],
        shell_tail=" --seed $((%d + HOROVOD_RANK))" % SEED)
    w0, w1 = (load_params(dump.format(rank=r)) for r in (0, 1))
    assert_same_params(w0, w1)
    _, reference, _ = single_process_on_the_union((SEED, SEED + 1), TRICKS)
    _, plain, _ = single_process_on_the_union((SEED, SEED + 1))
    for name in w0:
        np.testing.assert_allclose(w0[name], reference[name], rtol=0, atol=2e-4, err_msg=name)
    assert max(np.abs(w0[k] - plain[k]).max() for k in w0) > 1e-2


def _test_accs(job, rank):
    return [l.split("test acc ")[1].split(",")[0] for l in job.rank_lines(rank)
            if l.startswith("epoch ")]


def test_batchnorm_statistics_and_resume(tmp_path):
    """lenet_bn: the ranks end identical (averaged running statistics included) and agree
    on the test accuracy; 1 + 1 resumed epochs equal 2 epochs; another rank count warns."""
    run_dir, dump = tmp_path / "run", str(tmp_path / "{name}-rank{rank}.params")

    def dump_as(name):
        return ["--dump-params", dump.replace("{name}", name)]

    first = run(2, BN_TRAIN + ["--epochs", "1", "--save-dir", str(run_dir)] + dump_as("first"))
    assert _test_accs(first, 0) == _test_accs(first, 1)
    w0, w1 = (load_params(dump.format(name="first", rank=r)) for r in (0, 1))
    assert any(name.endswith("running_mean") for name in w0)
    assert_same_params(w0, w1)
    shutil.copytree(str(run_dir), str(tmp_path / "copy"))

    resumed = run(2, BN_TRAIN + ["--epochs", "2", "--save-dir", str(run_dir), "--resume"]
                  + dump_as("resumed"))
    assert "warning" not in resumed.output()
    whole = run(2, BN_TRAIN + ["--epochs", "2"] + dump_as("whole"))
    assert _test_accs(whole, 0) == _test_accs(whole, 1)
    for rank in (0, 1):
        assert_same_params(load_params(dump.format(name="resumed", rank=rank)),
                           load_params(dump.format(name="whole", rank=rank)))

    alone = run(1, BN_TRAIN + ["--epochs", "2", "--save-dir", str(tmp_path / "copy"),
                               "--resume"])
    assert ("horovod: warning: the checkpoint was trained by 2 Horovod ranks, this job has 1"
            in alone.output()), alone.output()
    assert "[0]<stdout>:epoch 2, loss " in alone.output()


def test_a_failing_rank_ends_the_job_fast(tmp_path):
    job = Horovodrun(2, ["--net", "lenet", "--data-dir", DATA, "--limit-train", "4096",
                         "--limit-test", "128", "--batch-size", "64", "--epochs", "20",
                         "--quiet", "--kvstore", "horovod", "--save-dir", str(tmp_path / "run")],
                     env={"GLUON_CNNS_FAIL_AT_BATCH": "3:1"})
    try:
        line = job.wait_for(r"injected failure at batch 3 on rank 1", timeout=120)
        failed_at = time.monotonic()
        assert line.startswith("[1]<stderr>:"), line
        code = job.proc.wait(30)
        assert time.monotonic() - failed_at < 30
    finally:
        job.finish(10)
    assert code != 0, job.output()
    assert not any("final test acc" in l for l in job.lines), job.output()


# ---------------------------------------------------------------- one-line errors

def test_missing_horovod_is_one_line():
    """Horovod hidden from the import system (None in sys.modules), not uninstalled."""
    code = ("import sys; sys.modules['horovod'] = None; sys.path.insert(0, %r); "
            "from gluon_cnns.cli.train import main; "
            "sys.exit(main(['--net', 'lenet', '--kvstore', 'horovod']))" % ROOT)
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HOROVOD_RANK="0", HOROVOD_SIZE="2"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gluon-cnns-train: error: --kvstore horovod needs Horovod built "
                               "with MXNet support")
    assert "HOROVOD_WITH_MXNET=1" in lines[0] and \
        "pip install --no-build-isolation horovod==0.28.1" in lines[0]


HVD_ENV = ("HOROVOD_RANK", "HOROVOD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
           "GLUON_CNNS_FAIL_AT_BATCH", "HOROVOD_GLOO_IFACE")


@pytest.mark.parametrize("argv, env, fragment", [
    ([], {}, "runs under horovodrun (no HOROVOD_RANK in the environment)"),
    (["--cpus", "2"], {"HOROVOD_RANK": "0"}, "one device per rank; drop --cpus"),
    (["--batch-size", "64"], {"HOROVOD_RANK": "0", "HOROVOD_SIZE": "3"},
     "does not split evenly across 3 workers"),
    ([], {"HOROVOD_RANK": "0", "GLUON_CNNS_FAIL_AT_BATCH": "x"}, "must be BATCH:RANK"),
    ([], {"HOROVOD_RANK": "0", "HOROVOD_GLOO_IFACE": "eth9"},
     "HOROVOD_GLOO_IFACE=eth9 names no network interface on "),
])
def test_horovod_mistakes_are_one_line(monkeypatch, capsys, argv, env, fragment):
    """All caught before hvd.init(): nothing joins a job."""
    for name in HVD_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert train_main(["--net", "lenet", "--kvstore", "horovod"] + argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and fragment in err[0], err

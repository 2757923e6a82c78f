"""Tests of data-parallel and distributed training (gluon_cnns.distributed, cli/launch.py).

Every process these tests start listens on 127.0.0.1 only, is bounded in time
and is gone when its test ends (the launcher runs in its own process group and
is stopped, with everything it started, in a ``finally``).
"""
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_cnns import get_model
from gluon_cnns.cli.launch import (Node, free_ports, parse_args, plan, read_hostfile,
                                   ssh_command, supervise)
from gluon_cnns.cli.train import main as train_main
from gluon_cnns.training.distributed import Cluster, DistributedError, local_batch_size
from gluon_cnns.data import BatchIterator, load_data
from gluon_cnns.training.engine import position_seed
from reference_loop import plain_gluon_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "scripts", "launch.py")
TRAIN = os.path.join(ROOT, "scripts", "train.py")
DATA = "/usr/share/datasets/fashion-mnist"
PY = sys.executable


# The distributed run and its single-process reference: 2 workers x 8 steps of 32.
SEED, LIMIT, BATCH, LR, MOMENTUM = 0, 512, 64, 0.05, 0.9
DIST_TRAIN = ["--net", "lenet", "--data-dir", DATA, "--limit-train", str(LIMIT),
              "--limit-test", "256", "--batch-size", str(BATCH), "--epochs", "1",
              "--lr", str(LR), "--momentum", str(MOMENTUM), "--wd", "0", "--seed", str(SEED)]


# ---------------------------------------------------------------- helpers

class Launch:
    """``scripts/launch.py ARGS`` (or ``launcher + ARGS``) in the background, its output
    collected by a thread."""

    def __init__(self, args, env=None, launcher=(PY, LAUNCH)):
        self.lines = []
        self.proc = subprocess.Popen(list(launcher) + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **(env or {})), cwd=ROOT,
                                     start_new_session=True, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, timeout):
        """The first output line matching ``pattern``, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError("no line matching %r in:\n%s" % (pattern, "\n".join(self.lines)))

    def pids(self):
        """{label: pid} of the processes the launcher reported."""
        found = (re.match(r"\[launch\] (.+): pid (\d+)$", l) for l in list(self.lines))
        return {m.group(1): int(m.group(2)) for m in found if m}

    def finish(self, timeout):
        """(exit code, stdout lines, stderr text), waiting at most ``timeout`` seconds."""
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code, self.lines, self.proc.stderr.read()

    def cleanup(self):
        """Stop the launcher (it stops its processes), then anything it left behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in self.pids().values():
            if _started_by_a_launcher(pid):  # not a later process that reuses the pid
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.proc.stdout.close()
        self.proc.stderr.close()


def _started_by_a_launcher(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return b"DMLC_PS_ROOT_PORT=" in f.read()
    except OSError:
        return False


def run_launch(args, timeout=150, env=None):
    job = Launch(args, env)
    try:
        return job.finish(timeout)
    finally:
        job.cleanup()


def seed_all(seed):
    """What ``--seed`` does in the training script."""
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def load_params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def lenet_with(params):
    net = get_model("lenet", classes=10)
    net.initialize(ctx=mx.cpu())
    net(mx.nd.zeros((1, 1, 28, 28)))
    for name, p in net._collect_params_with_prefix().items():
        p.set_data(mx.nd.array(params[name]))
    return net


def mean_loss(net, batches):
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    total = sum(loss(net(X), y).sum().asscalar() for X, y in batches)
    return total / sum(y.shape[0] for _, y in batches)


def mixed(X, y, seed, batch, alpha, eps, classes=10):
    """What a worker seeded ``seed`` trains on at batch ``batch`` of epoch 1 with --mixup
    ``alpha`` --label-smoothing ``eps`` (docs/TRAINING.md): its own part of the global batch
    mixed with its mirror, lam ~ Beta(alpha, alpha) drawn from the position's seed."""
    X, y = X.asnumpy(), y.asnumpy().astype(int)
    soft = np.full((len(y), classes), eps / classes)
    soft[np.arange(len(y)), y] += 1 - eps
    lam = np.random.RandomState(position_seed(seed, 1, batch)).beta(alpha, alpha)
    return (mx.nd.array(lam * X + (1 - lam) * X[::-1]),
            mx.nd.array(lam * soft + (1 - lam) * soft[::-1]))


def single_process_on_the_union(seeds=(SEED, SEED), tricks=None):
    """One process training on each step's two worker batches, concatenated.

    It starts from the weights the training script draws with rank 0's seed,
    ``seeds[0]``, and takes each worker's batches the way the worker does: the
    worker's shard, shuffled by a generator seeded as the worker seeds it; with
    ``tricks`` = (alpha, eps), each worker's part mixed and smoothed as the worker does.
    """
    seed_all(seeds[0])
    shards = [load_data("fashion-mnist", BATCH // 2, root=DATA, limit_train=LIMIT,
                        num_parts=2, part_index=k)[0] for k in (0, 1)]
    net = get_model("lenet", classes=10)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net.hybridize()
    net(mx.nd.zeros((1, 1, 28, 28)))
    initial = {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}
    per_worker = []
    for shard, seed in zip(shards, seeds):
        np.random.seed(seed)  # as the worker process seeded its own generator
        batches = list(shard)
        if tricks:
            batches = [mixed(X, y, seed, b, *tricks) for b, (X, y) in enumerate(batches, 1)]
        per_worker.append(batches)
    union = [(mx.nd.concat(X0, X1, dim=0), mx.nd.concat(y0, y1, dim=0))
             for (X0, y0), (X1, y1) in zip(*per_worker)]
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": LR, "momentum": MOMENTUM, "wd": 0.0})
    plain_gluon_epoch(net, trainer, union,
                      gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False) if tricks else None)
    final = {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}
    return initial, final, union


# ---------------------------------------------------------------- sharding

def test_shards_are_disjoint_contiguous_and_cover_the_set():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    data = BatchIterator(images, np.arange(10), batch_size=2, shuffle=True)
    parts = [data.shard(3, k) for k in range(3)]
    assert [p.num_examples for p in parts] == [3, 3, 4]
    assert np.concatenate([p.images.ravel() for p in parts]).tolist() == list(range(10))
    assert [p.labels.tolist() for p in parts][0] == [0, 1, 2]
    # The part is fixed before shuffling: a pass only reorders its own examples.
    seen = sorted(int(v) for X, _ in parts[1] for v in X.asnumpy().ravel() * 255)
    assert seen == [3, 4, 5]
    assert parts[2].batch_size == 2 and parts[2].shuffle and len(parts[2]) == 2
    assert data.num_examples == 10  # the original is untouched


@pytest.mark.parametrize("num_parts, index", [(0, 0), (2, 2), (2, -1), (11, 0)])
def test_bad_shards_are_data_errors(num_parts, index):
    data = BatchIterator(np.zeros((10, 1, 1, 1), np.uint8), np.zeros(10), batch_size=2)
    with pytest.raises(ValueError):
        data.shard(num_parts, index)


def test_load_data_shards_the_training_set_only():
    full, test_full = load_data("fashion-mnist", 64, root=DATA, limit_train=300, limit_test=50)
    part, test_part = load_data("fashion-mnist", 64, root=DATA, limit_train=300, limit_test=50,
                                num_parts=2, part_index=1)
    assert part.num_examples == 150 and test_part.num_examples == 50
    np.testing.assert_array_equal(part.images, full.images[150:])


def test_workers_make_the_same_number_of_steps():
    # 9 examples, 2 workers, batch 4: parts of 4 and 5 would be 1 and 2 batches.
    data = BatchIterator(np.arange(9, dtype=np.uint8).reshape(9, 1, 1, 1), np.zeros(9),
                         batch_size=4, shuffle=True)

    class FakeKV:
        num_workers = 2

        def __init__(self, rank):
            self.rank = rank

    parts = [Cluster("dist_sync", FakeKV(r), 4).shard(data) for r in (0, 1)]
    assert [len(p) for p in parts] == [1, 1]
    assert [p.images.ravel().tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert isinstance(parts[1], BatchIterator) and parts[1].shuffle
    assert Cluster().shard(data) is data


def test_global_batch_must_split_evenly():
    assert local_batch_size(256, 2) == 128
    with pytest.raises(DistributedError, match="multiple of 3, e.g. 63 or 66"):
        local_batch_size(64, 3)


# ---------------------------------------------------------------- training script

@pytest.mark.parametrize("tricks", [[], ["--mixup", "0.4", "--label-smoothing", "0.1",
                                           "--ema", "0.9"]])
def test_two_cpu_contexts_train_like_one(tmp_path, capsys, tricks):
    """--cpus 2 splits each batch over cpu(0) and cpu(1); lenet has no BatchNorm. Mixup
    mixes the process's whole batch before the split, so the split changes nothing."""
    common = DIST_TRAIN[:-2] + ["--seed", "3", "--quiet", "--kvstore", "device"] + tricks
    assert train_main(common + ["--dump-params", str(tmp_path / "one.params")]) == 0
    assert train_main(common + ["--cpus", "2", "--dump-params", str(tmp_path / "two.params")]) == 0
    assert "training on [cpu(0), cpu(1)]" in capsys.readouterr().out
    one, two = load_params(str(tmp_path / "one.params")), load_params(str(tmp_path / "two.params"))
    for name in one:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-5, atol=1e-5, err_msg=name)


FULL_ENV = {"DMLC_ROLE": "worker", "DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": "1",
            "DMLC_NUM_SERVER": "1", "DMLC_NUM_WORKER": "2"}


@pytest.mark.parametrize("argv, env, fragment", [
    (["--kvstore", "dist_sync"], {}, "needs the environment that scripts/launch.py sets"),
    (["--kvstore", "dist_sync", "--batch-size", "64"], dict(FULL_ENV, DMLC_NUM_WORKER="3"),
     "does not split evenly across 3 workers"),
    (["--kvstore", "dist_async", "--save-dir", "x"], FULL_ENV, "dist_async keeps"),
    ([], {"DMLC_ROLE": "worker"}, "add --kvstore dist_sync"),
    (["--cpus", "2", "--ctx", "gpu"], {}, "--cpus trains on CPU contexts"),
])
def test_distributed_mistakes_are_one_line(monkeypatch, capsys, argv, env, fragment):
    """All caught before joining a job (the environment here is fake: nothing connects)."""
    for name in FULL_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert train_main(["--net", "lenet"] + argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and fragment in err[0], err


# ---------------------------------------------------------------- distributed runs

def test_dist_sync_two_workers_equal_one_process_on_the_union(tmp_path):
    """1 scheduler + 1 server + 2 workers: identical workers, equal to the union batches.

    The workers are given different seeds (the first to start SEED, the other SEED + 1),
    so they draw different initial weights: only the initial synchronisation makes them
    start from rank 0's."""
    dump = str(tmp_path / "rank{rank}.params")
    command = shlex.join([PY, TRAIN] + DIST_TRAIN + [
        "--kvstore", "dist_sync", "--save-dir", str(tmp_path / "run"), "--dump-params", dump])
    first = shlex.quote(str(tmp_path / "first"))
    code, out, err = run_launch(
        ["-n", "2", "-s", "1", "--timeout", "150", "--", "sh", "-c",
         # (scheduler and server run the command too: they take no part in the choice)
         "if [ $DMLC_ROLE = worker ] && mkdir %s 2>/dev/null; then s=%d; else s=%d; fi; "
         "exec %s --seed $s"
         % (first, SEED, SEED + 1, command)])
    assert code == 0, "\n".join(out) + err
    with open(str(tmp_path / "run" / "config.json")) as f:
        seed0 = json.load(f)["seed"]  # rank 0 writes the run folder
    assert seed0 in (SEED, SEED + 1)
    # The launcher labels each line; worker i is kvstore rank i.
    for rank in (0, 1):
        assert "[worker %d] dist_sync: worker rank %d of 2, 1 server(s); batch 32 of the " \
               "global 64, training shard %d of 2" % (rank, rank, rank + 1) in out
        assert any(l.startswith("[worker %d] epoch 1, loss " % rank) for l in out), out
    assert any(l.startswith("[launch] scheduler: pid ") for l in out)
    assert any(l.startswith("[launch] server 0: pid ") for l in out)
    # Only rank 0 wrote the run folder.
    assert sum("saved to" in l for l in out) == 1 and any(
        l.startswith("[worker 0] saved to") for l in out)
    assert os.path.exists(str(tmp_path / "run" / "checkpoint.json"))
    # TensorBoard (on with --save-dir): one events file, rank 0's.
    assert len(os.listdir(str(tmp_path / "run" / "tensorboard"))) == 1

    assert_workers_equal_one_process_on_the_union(dump, seed0)


# Mixup and label smoothing (gluon_cnns.training.tricks) in the distributed runs.
TRICKS, TRICK_FLAGS = (0.4, 0.1), ["--mixup", "0.4", "--label-smoothing", "0.1"]


def test_dist_sync_with_mixup_and_smoothing_equals_one_process_on_the_union(tmp_path):
    """Each worker mixes its own part of the global batch with the lam of its seed and the
    position: one process on the union of the parts, mixed alike, is the same training."""
    dump = str(tmp_path / "rank{rank}.params")
    command = shlex.join([PY, TRAIN] + DIST_TRAIN + TRICK_FLAGS + [
        "--kvstore", "dist_sync", "--quiet", "--dump-params", dump])
    code, out, err = run_launch(["-n", "2", "-s", "1", "--timeout", "150", "--", "sh", "-c",
                                 "exec %s" % command])
    assert code == 0, "\n".join(out) + err
    assert_workers_equal_one_process_on_the_union(dump, SEED, TRICKS, seed1=SEED)


def assert_workers_equal_one_process_on_the_union(dump, seed0, tricks=None, seed1=None):
    """The two workers' dumped weights are identical, and equal to one process trained on
    the union of their batches from rank 0's seed ``seed0`` (the other worker had SEED's
    other value, or ``seed1``), and that training lowered the loss. With ``tricks`` =
    (alpha, eps) the union is of the workers' mixed and smoothed batches, and differs from
    the plain one."""
    w0, w1 = (load_params(dump.format(rank=r)) for r in (0, 1))
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    seeds = (seed0, 2 * SEED + 1 - seed0 if seed1 is None else seed1)
    initial, reference, union = single_process_on_the_union(seeds, tricks)
    assert sorted(reference) == sorted(w0)
    # The workers' gradients are summed on the server, in another order than the union
    # batch's: float32 rounding over 8 momentum steps reaches 1.05e-4 with one order of
    # the seeds' batches. Without the initial synchronisation the difference is 0.014.
    for name in w0:
        np.testing.assert_allclose(w0[name], reference[name], rtol=0, atol=2e-4, err_msg=name)
    if tricks:
        _, plain, union = single_process_on_the_union(seeds)
        assert max(np.abs(w0[k] - plain[k]).max() for k in w0) > 1e-2
    assert mean_loss(lenet_with(w0), union) < mean_loss(lenet_with(initial), union) - 0.1


def test_killing_a_worker_stops_the_job_fast(tmp_path):
    job = Launch(["-n", "2", "-s", "1", "--timeout", "170", "--", PY, TRAIN, "--net", "lenet",
                  "--data-dir", DATA, "--limit-train", "8192", "--limit-test", "256",
                  "--epochs", "50", "--kvstore", "dist_sync"])
    try:
        job.wait_for(r"^\[worker 1\] training on", timeout=100)
        time.sleep(1)  # well inside the first epoch
        killed_at = time.monotonic()
        os.kill(job.pids()["worker 1"], signal.SIGKILL)
        code, out, err = job.finish(timeout=60)
        assert time.monotonic() - killed_at < 60
        assert code == 128 + signal.SIGKILL, "\n".join(out) + err
        assert "worker 1 was killed by SIGKILL; stopped all processes" in err
        for label, pid in job.pids().items():  # nothing left running
            assert not os.path.exists("/proc/%d" % pid) or _is_zombie(pid), label
    finally:
        job.cleanup()


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ---------------------------------------------------------------- launcher

@pytest.mark.parametrize("argv, fragment", [
    (["-n", "2"], "give the command to run after --"),
    (["-n", "2", "--"], "no command after --"),
    (["-n", "0", "--", "true"], "-n must be at least 1"),
    (["-n", "1", "-s", "0", "--", "true"], "-s must be at least 1"),
    (["-H", "/no/such/hostfile", "-n", "1", "--", "true"], "cannot read --hostfile"),
    (["-n", "1", "--port", "70000", "--", "true"], "--port must be in 0..65535"),
    (["-n", "1", "--host-ip", "127.0.0.1", "--", "true"], "apply with --hostfile only"),
    (["-n", "x", "--", "true"], "invalid int value"),
])
def test_launcher_usage_errors_are_one_line(argv, fragment):
    code, out, err = run_launch(argv, timeout=30)
    assert code == 2
    assert out == []
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gluon-cnns-launch: error: ") and \
        fragment in lines[0], err


def test_empty_hostfile(tmp_path):
    (tmp_path / "hosts").write_text("# nothing\n\n")
    code, _, err = run_launch(["-n", "1", "-H", str(tmp_path / "hosts"), "--", "true"],
                              timeout=30)
    assert code == 2 and "lists no hosts" in err


def test_a_failing_process_sets_the_exit_code():
    code, out, err = run_launch(["-n", "2", "-s", "1", "--", PY, "-c",
                                 "import os, sys; print('hi'); "
                                 "sys.exit(3 if os.environ['DMLC_ROLE'] == 'worker' else 0)"],
                                timeout=60)
    assert code == 3
    assert "[worker 0] hi" in out or "[worker 1] hi" in out
    assert re.search(r"worker \d exited with code 3; stopped all processes", err), err


def test_timeout_stops_everything():
    start = time.monotonic()
    code, out, err = run_launch(["-n", "1", "-s", "1", "--timeout", "2", "--", PY, "-c",
                                 "import time; print('sleeping', flush=True); time.sleep(60)"],
                                timeout=40)
    assert code == 124
    assert time.monotonic() - start < 30
    assert "timed out after 2 s" in err


def test_sigterm_to_the_launcher_stops_every_process():
    job = Launch(["-n", "2", "-s", "1", "--timeout", "60", "--", PY, "-c",
                  "import time; print('up', flush=True); time.sleep(60)"])
    try:
        for label in ("scheduler", "server 0", "worker 0", "worker 1"):
            job.wait_for(r"^\[%s\] up$" % label, timeout=30)
        job.proc.send_signal(signal.SIGTERM)
        code, out, err = job.finish(timeout=30)
        assert code == 128 + signal.SIGTERM
        assert "got SIGTERM; stopped all processes" in err
        for label, pid in job.pids().items():
            assert not os.path.exists("/proc/%d" % pid) or _is_zombie(pid), label
    finally:
        job.cleanup()


def test_local_plan_uses_loopback_and_increasing_ports():
    args, command = parse_args(["-n", "2", "-s", "1", "--env", "OMP_NUM_THREADS=1", "--",
                                "python", "train.py"])
    nodes = plan(args, command)
    assert [n.label for n in nodes] == ["scheduler", "server 0", "worker 0", "worker 1"]
    for node in nodes:
        assert node.argv == ["python", "train.py"]
        assert node.env["DMLC_PS_ROOT_URI"] == node.env["DMLC_NODE_HOST"] == "127.0.0.1"
        assert node.env["DMLC_NUM_WORKER"] == "2" and node.env["DMLC_NUM_SERVER"] == "1"
        assert node.env["OMP_NUM_THREADS"] == "1"
    assert [n.env["DMLC_ROLE"] for n in nodes] == ["scheduler", "server", "worker", "worker"]
    ports = [int(n.env["PORT"]) for n in nodes[1:]]
    assert ports == sorted(ports) and len(set(ports)) == 3
    assert int(nodes[0].env["DMLC_PS_ROOT_PORT"]) not in ports


def test_local_workers_split_the_cores_unless_the_user_set_threads(monkeypatch):
    from gluon_cnns.threads import USER_THREAD_VARS, available_cores
    for name in USER_THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    nodes = plan(*parse_args(["-n", "2", "-s", "1", "--", "python", "train.py"]))
    share = str(max(1, available_cores() // 2))
    assert [n.env.get("OMP_NUM_THREADS") for n in nodes] == [None, None, share, share]
    nodes = plan(*parse_args(["-n", "2", "--env", "OMP_NUM_THREADS=3", "--", "python", "t.py"]))
    assert {n.env["OMP_NUM_THREADS"] for n in nodes} == {"3"}  # --env wins, for every process
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # set here: inherited, not replaced
    nodes = plan(*parse_args(["-n", "2", "--", "python", "train.py"]))
    assert all("OMP_NUM_THREADS" not in n.env for n in nodes)


def test_ssh_command_line_follows_dmlc():
    argv = ssh_command("10.0.0.2", "2222", "/work dir", {"DMLC_ROLE": "worker", "X": "a b"},
                       ["python", "train.py", "--note", "it's"])
    assert argv[:3] == ["ssh", "-o", "StrictHostKeyChecking=no"]
    assert argv[-4:-1] == ["-p", "2222", "10.0.0.2"]
    assert argv[-1].startswith("cd '/work dir'; export DMLC_ROLE=worker; export X='a b'; "
                               "exec bash -c ")
    assert argv[-1].endswith(" watchdog python train.py --note 'it'\"'\"'s'")
    # The remote command runs as given, under the watchdog, with the exported variables.
    remote = ssh_command("h", None, "/", {"X": "a b"}, ["sh", "-c", 'echo "$X" "$0"', "it's"])
    assert remote[-2] == "h" and "-p" not in remote
    proc = subprocess.Popen(["bash", "-c", remote[-1]], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.PIPE)
    try:
        assert proc.wait(10) == 0 and proc.stdout.read() == "a b it's\n"
    finally:
        proc.stdin.close()
        proc.stdout.close()
    # The session's end (stdin closed) stops the remote command.
    sleeper = ssh_command("h", None, "/", {}, ["sleep", "60"])[-1]
    started = time.monotonic()
    assert subprocess.run(["bash", "-c", sleeper], stdin=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=20).returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10


def test_the_host_check_asks_for_mxnet_and_for_the_package_where_the_command_needs_it(
        tmp_path):
    """The check a launcher runs on each host, run here with bash."""
    from gluon_cnns.cli.launch_hosts import probe_script
    (tmp_path / "loop.py").write_text("import mxnet\n")
    train = os.path.join(ROOT, "scripts", "train.py")

    def check(command, env=None):
        done = subprocess.run(["bash", "-c", probe_script(str(tmp_path), env or {}, command)],
                              capture_output=True, text=True, timeout=60, env={
                                  k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        return done.returncode, done.stdout.strip()

    assert check([PY, "loop.py"]) == (0, "")   # a plain MXNet script: no package needed
    assert check([PY, train]) == (0, "")
    assert check(["sh", "-c", "true"]) == (0, "")
    # Debian's Python has neither; the package's scripts find the package in the repository.
    assert check(["/usr/bin/python3", "loop.py"]) == (3, "gluon-cnns-probe: modules mxnet")
    assert check(["/usr/bin/python3", train]) == (3, "gluon-cnns-probe: modules mxnet")
    assert check(["/usr/bin/python3", "-m", "gluon_cnns.cli.train"]) == (
        3, "gluon-cnns-probe: modules mxnet gluon_cnns")
    assert check([PY, "gone.py"]) == (3, "gluon-cnns-probe: script")
    assert check(["/no/python", "loop.py"]) == (3, "gluon-cnns-probe: program")
    code, said = check([PY, "loop.py"], {"DMLC_INTERFACE": "eth9"})
    assert code == 3 and said.startswith("gluon-cnns-probe: interface ") and " lo" in said, said


def test_hostfile_parsing(tmp_path):
    (tmp_path / "hosts").write_bytes(b"10.0.0.1\n# a comment\n\n10.0.0.2:2222  # spare\r\n"
                                     b"alice@node_3.example\r\n")
    assert read_hostfile(str(tmp_path / "hosts")) == [("10.0.0.1", None), ("10.0.0.2", "2222"),
                                                      ("alice@node_3.example", None)]


FAKE_SSH = """#!%s
# Stands in for ssh in tests: logs its arguments, then runs the remote command here.
import json, os, sys
with open(os.environ["FAKE_SSH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
while args[0] in ("-o", "-p"):
    args = args[2:]
os.execvp("bash", ["bash", "-c", args[1]])
"""

PROBE = """
import os, sys
import mxnet as mx  # a scheduler or server serves here and exits
kv = mx.kv.create("dist_sync")
x = mx.nd.ones((2,)) * (kv.rank + 1)
kv.init(0, mx.nd.zeros((2,)))
kv.pushpull(0, x, out=x)
print("rank %d sum %s cwd %s host %s arg %s" % (kv.rank, x.asnumpy().tolist(), os.getcwd(),
      os.environ["DMLC_NODE_HOST"], sys.argv[1]))
"""


def test_hostfile_job_runs_over_ssh(tmp_path):
    """A real dist_sync job whose servers and workers start through a fake local ssh."""
    bin_dir, work = tmp_path / "bin", tmp_path / "work dir"
    bin_dir.mkdir()
    work.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH % PY)
    (bin_dir / "ssh").chmod(0o755)
    (work / "probe.py").write_text(PROBE)
    (tmp_path / "hosts").write_text("127.0.0.1\n127.0.0.1:2222\n")
    log = tmp_path / "ssh.log"
    env = {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"]), "FAKE_SSH_LOG": str(log)}
    # The scheduler runs here, in the launcher's folder: give it the probe's path.
    code, out, err = run_launch(
        ["-n", "2", "-s", "1", "-H", str(tmp_path / "hosts"), "--host-ip", "127.0.0.1",
         "--workdir", str(work), "--", PY, str(work / "probe.py"), "it's \"quoted\""],
        timeout=90, env=env)
    assert code == 0, "\n".join(out) + err
    calls = [json.loads(l) for l in log.read_text().splitlines()]
    # First the launcher's check of each host, then 1 server + 2 workers (the scheduler
    # runs locally).
    checks = [c for c in calls if "watchdog" not in c[-1]]
    assert sorted(c[c.index("BatchMode=yes") - 1:-1] for c in checks) == [
        ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", "2222", "127.0.0.1"],
        ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "127.0.0.1"]]
    calls = [c for c in calls if "watchdog" in c[-1]]
    assert len(calls) == 3
    hosts = [c[c.index("ServerAliveCountMax=3") + 1:] for c in calls]
    assert sorted(h[:3] if h[0] == "-p" else h[:1] for h in hosts) == [
        ["-p", "2222", "127.0.0.1"], ["127.0.0.1"], ["127.0.0.1"]]
    for call in calls:
        remote = call[-1]
        assert remote.startswith("cd '%s'; " % work)
        for name in ("DMLC_ROLE", "DMLC_PS_ROOT_URI=127.0.0.1", "DMLC_PS_ROOT_PORT",
                     "DMLC_NUM_SERVER=1", "DMLC_NUM_WORKER=2", "DMLC_NODE_HOST=127.0.0.1"):
            assert "export %s" % name in remote, remote
    for rank in (0, 1):
        assert any(re.match(r"\[worker \d\] rank %d sum \[3.0, 3.0\] cwd %s host 127.0.0.1 "
                            r"arg it's \"quoted\"$" % (rank, re.escape(str(work))), l)
                   for l in out), out


def test_supervise_notices_servers_that_stop_early(monkeypatch):
    monkeypatch.setattr("gluon_cnns.cli.launch.ORPHAN_GRACE_S", 0.5)
    nodes = [Node("server 0", [PY, "-c", "pass"], {}),
             Node("worker 0", [PY, "-c", "import time; time.sleep(20)"], {})]
    for node in nodes:
        node.proc = subprocess.Popen(node.argv, start_new_session=True)
    try:
        start = time.monotonic()
        code, reason = supervise(nodes, timeout=15)
        assert code == 1 and "ended while workers were still running" in reason
        assert time.monotonic() - start < 10
    finally:
        for node in nodes:
            node.proc.kill()
            node.proc.wait()


def test_free_ports_are_distinct_and_sorted():
    ports = free_ports("127.0.0.1", 5)
    assert ports == sorted(ports) and len(set(ports)) == 5


# ---------------------------------------------------------------- issue 15: hostile jobs

def test_a_job_too_big_to_follow_is_refused_up_front():
    """Issue 15 case 11: not "OSError: Too many open files" after starting thousands."""
    code, out, err = run_launch(["-n", "25000", "-s", "1", "--", "true"], timeout=60)
    assert code == 2 and out == [], err
    lines = err.splitlines()
    assert lines == ["gluon-cnns-launch: error: -n 25000 -s 1 is 25002 processes with the "
                     "scheduler; one launcher starts at most 4096 (see --help)"]


def test_a_job_beyond_the_open_file_limit_is_refused_up_front():
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
    proc = subprocess.run([PY, LAUNCH, "-n", "100", "-s", "1", "--", "true"],
                          capture_output=True, text=True, timeout=60, preexec_fn=low_limit)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "needs 166 open files, but the limit here is 100 (ulimit -n)" \
        in lines[0], lines


def test_ports_that_cannot_be_reserved_are_one_line(monkeypatch, capsys):
    from gluon_cnns.cli import launch

    def no_more_files(host, count):
        raise OSError(24, "Too many open files")
    monkeypatch.setattr(launch, "free_ports", no_more_files)
    assert launch.main(["-n", "2", "-s", "1", "--", "true"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["gluon-cnns-launch: error: cannot reserve 4 ports on 127.0.0.1: Too many "
                   "open files (see --help)"]


def test_a_process_that_cannot_be_spawned_stops_the_others(monkeypatch, capsys):
    from gluon_cnns.cli import launch
    real_popen, started = subprocess.Popen, []

    def popen(*args, **kwargs):
        if len(started) == 2:
            raise OSError(11, "Resource temporarily unavailable")
        started.append(real_popen(*args, **kwargs))
        return started[-1]
    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    code = launch.main(["-n", "2", "-s", "1", "--", PY, "-c", "import time; time.sleep(60)"])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["gluon-cnns-launch: error: cannot start the worker 0 (%s): Resource "
                   "temporarily unavailable (see --help)" % PY]
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_a_second_sigterm_while_stopping_kills_at_once_without_a_traceback():
    """Processes that ignore SIGTERM: the second SIGTERM kills them at once, every one is
    gone, and the launcher says so in one line (no traceback of its own)."""
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(900)")
    # The launcher with a grace period longer than the test's patience: only the second
    # SIGTERM's kill can end the job in time (no wall-clock bound to race against).
    launcher = (PY, "-c", "import sys; sys.path.insert(0, %r); import gluon_cnns.cli.launch as "
                "launch; launch.KILL_GRACE_S = 900.0; sys.exit(launch.main())" % ROOT)
    job = Launch(["-n", "2", "-s", "1", "--timeout", "900", "--", PY, "-c", stubborn],
                 launcher=launcher)
    try:
        for label in ("scheduler", "server 0", "worker 0", "worker 1"):
            job.wait_for(r"^\[%s\] up$" % label, timeout=30)
        job.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # stopping: the processes ignore SIGTERM, the grace period runs
        job.proc.send_signal(signal.SIGTERM)
        code, out, err = job.finish(timeout=120)  # raises if the job waits out the grace
        assert code == 128 + signal.SIGTERM
        assert err.splitlines() == ["gluon-cnns-launch: got SIGTERM; stopped all processes"]
        for label, pid in job.pids().items():
            assert not os.path.exists("/proc/%d" % pid) or _is_zombie(pid), label
    finally:
        job.cleanup()


# Runs scripts/train.py, making one ordinary Python error (or a DataError) happen in
# the trainer's step FAIL_AT of kvstore rank FAIL_RANK only: a worker that fails
# while the other goes on. Scheduler and server serve inside `import mxnet` and exit.
_FAILING_WORKER = r"""
import sys
sys.path.insert(0, %(root)r)
from mxnet import gluon
from gluon_cnns.errors import DataError
FAIL_RANK, FAIL_AT, ERROR = 1, 3, %(error)s
calls, real_step = [0], gluon.Trainer.step

def step(self, *args, **kwargs):
    calls[0] += 1
    kv = getattr(self, "_kvstore", None)
    if calls[0] == FAIL_AT and kv is not None and kv.rank == FAIL_RANK:
        raise ERROR("injected failure at batch %%d" %% FAIL_AT)
    return real_step(self, *args, **kwargs)

gluon.Trainer.step = step
from gluon_cnns.cli.train import main
sys.exit(main())
"""


@pytest.mark.parametrize("error, exit_code, line", [
    ("RuntimeError", 1, "[worker 1] RuntimeError: injected failure at batch 3"),
    ("DataError", 2, "[worker 1] gluon-cnns-train: error: injected failure at batch 3"),
])
def test_a_worker_that_fails_mid_training_ends_the_job_at_once(tmp_path, error, exit_code, line):
    """Issue 15 case 14: the failed worker hung in MXNet's exit barrier, and so the job."""
    script = tmp_path / "failing_train.py"
    script.write_text(_FAILING_WORKER % {"root": ROOT, "error": error})
    job = Launch(["-n", "2", "-s", "1", "--timeout", "100", "--", PY, str(script),
                  "--net", "lenet", "--data-dir", DATA, "--limit-train", "8192",
                  "--limit-test", "256", "--epochs", "50", "--kvstore", "dist_sync", "--quiet"])
    try:
        job.wait_for(re.escape(line) + "$", timeout=100)
        failed_at = time.monotonic()
        code, out, err = job.finish(timeout=100)
        assert time.monotonic() - failed_at < 15, "the job went on after the failure"
        assert code == exit_code, "\n".join(out) + err
        assert err.splitlines() == ["gluon-cnns-launch: worker 1 exited with code %d; stopped "
                                    "all processes" % exit_code]
        assert not any(l.startswith("[worker 0]") and "Traceback" in l for l in out)
        for label, pid in job.pids().items():  # nothing left running
            assert not os.path.exists("/proc/%d" % pid) or _is_zombie(pid), label
    finally:
        job.cleanup()


def test_a_test_batch_smaller_than_the_devices_is_evaluated_on_the_first():
    # MXNet cannot copy an empty part of a batch to a device: one example on two devices
    # goes to the first, and counts as on one device.
    from gluon_cnns.training.loop import evaluate_accuracy
    net = get_model("lenet")
    net.initialize(mx.init.Xavier(), ctx=[mx.cpu(0), mx.cpu(1)])
    X = mx.nd.random.uniform(shape=(1, 1, 28, 28))
    y = net(X.as_in_context(mx.cpu(0))).argmax(axis=1)  # the net's own answer: accuracy 1
    batches = [(X, y), (mx.nd.concat(X, X, X, dim=0), mx.nd.concat(y, y, y, dim=0))]
    assert evaluate_accuracy(batches, net, ctx=[mx.cpu(0), mx.cpu(1)]) == 1.0

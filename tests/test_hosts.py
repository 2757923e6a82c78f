"""Tests across real hosts: network namespaces with their own sshd (tools/netns_hosts.py).

The scheduler runs here on the bridge address; servers and workers start on the
namespace hosts through ssh, as ``scripts/launch.py -H hostfile`` does on a
cluster. Every host, process and key is gone when a test ends.
"""
import json
import os
import re
import shlex
import signal
import time

import numpy as np
import pytest

from test_distributed import (DATA, DIST_TRAIN, PY, SEED, TRAIN, Launch,
                              assert_workers_equal_one_process_on_the_union, load_params,
                              mean_loss, lenet_with, single_process_on_the_union)
from tools.netns_hosts import BRIDGE, PREFIX, HarnessError, _run, hosts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _job_processes(cluster):
    """{host index: [pids]} of processes other than sshd in each host's namespace."""
    left = {}
    for i in range(cluster.n):
        pids = [p for p in cluster.pids(i) if _comm(p) not in ("sshd", None)]
        if pids:
            left[i] = pids
    return left


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def test_hosts_have_their_own_address_name_and_sshd_and_vanish(netns_hosts):
    cluster = netns_hosts(2)
    for i in range(2):
        result = cluster.ssh(i, "hostname; cat /proc/net/fib_trie | grep -c %s; pwd -P; "
                                "getent hosts %s" % (cluster.addresses[i],
                                                     cluster.namespaces[1 - i]))
        assert result.returncode == 0, result.stdout
        name, _, cwd, peer = result.stdout.splitlines()[:4]
        assert name == cluster.namespaces[i]
        assert peer.split() == [cluster.addresses[1 - i], cluster.namespaces[1 - i]]
        # sshd listens on the host's address only, in its namespace.
        listening = _run("ip", "netns", "exec", cluster.namespaces[i], "ss", "-Hltn").stdout
        assert [l.split()[3] for l in listening.splitlines()] == [cluster.addresses[i] + ":22"]
    # The shared filesystem: a file written here is read there.
    marker = os.path.join(cluster.tmp, "shared")
    with open(marker, "w") as f:
        f.write("same disk")
    assert cluster.ssh(1, "cat %s" % marker).stdout == "same disk"
    assert not os.path.exists(os.path.expanduser("~/.ssh/known_hosts")) or \
        cluster.addresses[0] not in open(os.path.expanduser("~/.ssh/known_hosts")).read()


def test_everything_is_removed_even_when_the_block_fails():
    try:
        with hosts(2) as cluster:
            tmp, sshd = cluster.tmp, [p.pid for p in cluster.sshd]
            raise KeyError("a failing test")
    except KeyError:
        pass
    except HarnessError as e:
        pytest.fail("namespace hosts: %s" % e, pytrace=False)
    assert not [l for l in _run("ip", "netns", "list").stdout.splitlines()
                if l.startswith(PREFIX)]
    assert PREFIX not in _run("ip", "link", "show").stdout
    assert _run("ip", "link", "show", BRIDGE, check=False).returncode != 0
    assert not os.path.exists(tmp)
    assert not any(os.path.exists("/etc/netns/%s%d" % (PREFIX, i)) for i in range(2))
    assert not any(os.path.exists("/proc/%d" % pid) for pid in sshd)


def test_a_second_user_of_the_machine_waits_instead_of_tearing_hosts_down(netns_hosts):
    """The names are fixed, so a second harness (another test run, ``--clean``)
    must wait for the machine lock rather than remove the first one's hosts."""
    import subprocess
    import sys
    cluster = netns_hosts(1)
    second = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "netns_hosts.py"),
                               "--clean"], cwd=ROOT)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            second.wait(timeout=3)
        assert cluster.ssh(0, "hostname").stdout.strip() == cluster.namespaces[0]
    finally:
        second.kill()
        second.wait()


def test_dist_sync_across_two_hosts_equals_one_process_on_the_union(netns_hosts, tmp_path):
    """Scheduler here, server and workers on two hosts over ssh: equal to the union batches."""
    cluster = netns_hosts(2)
    dump = str(tmp_path / "rank{rank}.params")
    command = shlex.join([PY, TRAIN] + DIST_TRAIN + [
        "--kvstore", "dist_sync", "--save-dir", str(tmp_path / "run"), "--dump-params", dump])
    first = shlex.quote(str(tmp_path / "first"))
    job = Launch(["-n", "2", "-s", "1", "-H", cluster.hostfile(str(tmp_path / "hosts")),
                  "--host-ip", cluster.here, "--workdir", ROOT, "--timeout", "80", "--",
                  "sh", "-c",
                  "echo \"on $(hostname)\"; "
                  "if [ $DMLC_ROLE = worker ] && mkdir %s 2>/dev/null; then s=%d; else s=%d; "
                  "fi; exec %s --seed $s" % (first, SEED, SEED + 1, command)],
                 env=dict(cluster.env, OMP_NUM_THREADS="1"))
    try:
        code, out, err = job.finish(timeout=90)
    finally:
        job.cleanup()
    assert code == 0, "\n".join(out) + err
    # Round-robin over the hosts: server 0 and worker 1 on the first, worker 0 on the second.
    for label, host in (("server 0", 0), ("worker 0", 1), ("worker 1", 0)):
        assert "[%s] on %s" % (label, cluster.namespaces[host]) in out, out
    assert sum("dist_sync: worker rank" in l for l in out) == 2, out
    with open(str(tmp_path / "run" / "config.json")) as f:
        seed0 = json.load(f)["seed"]
    assert_workers_equal_one_process_on_the_union(dump, seed0)
    assert _job_processes(cluster) == {}


def _wait_until_gone(cluster, seconds):
    deadline = time.monotonic() + seconds
    while _job_processes(cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _job_processes(cluster)


def _kill_host(cluster, i):
    for pid in cluster.pids(i):  # sshd, the shells and the training processes
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cut_link(cluster, i):
    _run("ip", "link", "set", cluster.link(i), "down")


# Server 0 and worker 1 run on host 0, worker 0 on host 1 (round-robin).
@pytest.mark.parametrize("failure, host, first_lost", [
    (_kill_host, 1, "worker 0"),   # every process of the host killed
    (_cut_link, 0, None),          # the host's link cut: its ssh sessions time out
])
def test_a_failed_host_ends_the_job_in_seconds_leaving_nothing(netns_hosts, tmp_path,
                                                                 failure, host, first_lost):
    cluster = netns_hosts(2)
    job = Launch(["-n", "2", "-s", "1", "-H", cluster.hostfile(str(tmp_path / "hosts")),
                  "--host-ip", cluster.here, "--workdir", ROOT, "--timeout", "120", "--",
                  PY, TRAIN, "--net", "lenet", "--data-dir", DATA, "--limit-train", "8192",
                  "--limit-test", "256", "--epochs", "50", "--kvstore", "dist_sync"],
                 env=dict(cluster.env, OMP_NUM_THREADS="1"))
    try:
        job.wait_for(r"^\[worker 1\] training on", timeout=60)
        assert _job_processes(cluster).keys() == {0, 1}
        failed_at = time.monotonic()
        failure(cluster, host)
        code, out, err = job.finish(timeout=30)
        ended_after = time.monotonic() - failed_at
    finally:
        job.cleanup()
    print("%s on host %d: job ended %.1f s later" % (failure.__name__, host, ended_after))
    assert ended_after < 15, ended_after
    assert code == 255, "\n".join(out) + err
    # One line naming the host and what happened.
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("[")]
    assert len(lines) == 1, err
    match = re.match(r"gluon-cnns-launch: (worker|server) \d on (\S+): the ssh connection was "
                     r"lost \(host down, unreachable or its sshd gone\); stopped all processes$",
                     lines[0])
    assert match and match.group(2) == cluster.addresses[host], lines[0]
    if first_lost:
        assert lines[0].split(": ")[1].startswith(first_lost + " on "), lines[0]
    # Nothing of the job is left on any host: the remote watchdogs stopped it.
    assert _wait_until_gone(cluster, 20) == {}
    print("nothing left %.1f s after the failure" % (time.monotonic() - failed_at))


def test_horovod_across_two_hosts_equals_one_process_on_the_union(netns_hosts, tmp_path):
    """``horovodrun -H gcnh0:1,gcnh1:1 --gloo``, started on the first host over ssh."""
    cluster = netns_hosts(2)
    dump = str(tmp_path / "rank{rank}.params")
    train = "exec %s --seed $((%d + HOROVOD_RANK))" % (
        shlex.join([PY, TRAIN] + DIST_TRAIN + ["--kvstore", "horovod", "--dump-params", dump]),
        SEED)
    hosts = ",".join("%s:1" % name for name in cluster.namespaces)
    done = cluster.ssh(0, "cd %s; export PATH=%s OMP_NUM_THREADS=1; %s -np 2 -H %s --gloo "
                          "--network-interface eth0 sh -c %s"
                       % (shlex.quote(ROOT), shlex.quote(cluster.env["PATH"]),
                          shlex.quote(os.path.join(os.path.dirname(PY), "horovodrun")), hosts,
                          shlex.quote(train)), timeout=90)
    assert done.returncode == 0, done.stdout
    for rank in (0, 1):  # one rank on each host
        assert ("[%d]<stdout>:horovod: rank %d of 2 (local rank 0 on %s); batch 32 of the "
                "global 64, training shard %d of 2" % (rank, rank, cluster.namespaces[rank],
                                                       rank + 1)) in done.stdout, done.stdout
    w0, w1 = (load_params(dump.format(rank=r)) for r in (0, 1))
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    initial, reference, union = single_process_on_the_union((SEED, SEED + 1))
    assert sorted(reference) == sorted(w0)
    # The localhost Horovod test's tolerance (allreduce order against the union batch).
    for name in w0:
        np.testing.assert_allclose(w0[name], reference[name], rtol=0, atol=2e-4, err_msg=name)
    assert mean_loss(lenet_with(w0), union) < mean_loss(lenet_with(initial), union) - 0.1
    assert _wait_until_gone(cluster, 10) == {}


def test_a_host_without_sshd_ends_the_job_at_once_naming_it(netns_hosts, tmp_path):
    cluster = netns_hosts(2)
    for proc in cluster.sshd[1:]:  # host 1 (worker 0's) no longer answers ssh
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    started = time.monotonic()
    job = Launch(["-n", "2", "-s", "1", "-H", cluster.hostfile(str(tmp_path / "hosts")),
                  "--host-ip", cluster.here, "--workdir", ROOT, "--timeout", "60", "--",
                  PY, TRAIN, "--net", "lenet", "--data-dir", DATA, "--limit-train", "8192",
                  "--epochs", "50", "--kvstore", "dist_sync"],
                 env=dict(cluster.env, OMP_NUM_THREADS="1"))
    try:
        code, out, err = job.finish(timeout=30)
    finally:
        job.cleanup()
    assert time.monotonic() - started < 15
    # The launcher's check of the hosts finds it before anything starts.
    assert code == 2 and out == [], "\n".join(out) + err
    assert err.splitlines() == [
        "gluon-cnns-launch: error: cannot reach %s over ssh (ssh: connect to host %s port 22: "
        "Connection refused); check the hostfile, that the host is up and that its sshd lets "
        "this user in without a password (see --help)" % ((cluster.addresses[1],) * 2)], err
    assert _job_processes(cluster) == {}


# Long enough epochs (64 steps) for a host to fail well inside the second one.
RESUME_TRAIN = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "4096", "--limit-test",
                "256", "--batch-size", "64", "--epochs", "3", "--lr", "0.05", "--momentum", "0.9",
                "--seed", str(SEED), "--no-tensorboard"]


def _dist_job(cluster, hostfile, train):
    return Launch(["-n", "2", "-s", "1", "-H", hostfile, "--host-ip", cluster.here,
                   "--workdir", ROOT, "--timeout", "120", "--", PY, TRAIN] + train
                  + ["--kvstore", "dist_sync"], env=dict(cluster.env, OMP_NUM_THREADS="1"))


def _finish(job, timeout):
    try:
        return job.finish(timeout=timeout)
    finally:
        job.cleanup()


def _wait_for_file(path, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no %s after %g s" % (path, seconds)
        time.sleep(0.05)


def test_resume_after_a_killed_host_continues_exactly(netns_hosts, tmp_path):
    """A host dies in epoch 2; the same command with --resume, on the host left, ends
    with the parameters of the uninterrupted run, bit for bit."""
    cluster = netns_hosts(2)
    both = cluster.hostfile(str(tmp_path / "hosts"))
    dump = str(tmp_path / "{name}-rank{{rank}}.params")
    code, out, err = _finish(_dist_job(cluster, both, RESUME_TRAIN + [
        "--dump-params", dump.format(name="whole")]), timeout=150)
    assert code == 0, "\n".join(out) + err

    train = RESUME_TRAIN + ["--save-dir", str(tmp_path / "run"),
                            "--dump-params", dump.format(name="resumed")]
    job = _dist_job(cluster, both, train)
    try:
        job.wait_for(r"^\[worker \d\] epoch 1, ", timeout=90)
        _wait_for_file(str(tmp_path / "run" / "checkpoint.json"), 30)  # rank 0's, epoch 1
        _kill_host(cluster, 1)
        code, out, err = job.finish(timeout=30)
    finally:
        job.cleanup()
    assert code == 255, "\n".join(out) + err
    assert err.strip().splitlines()[-1].startswith("gluon-cnns-launch: "), err
    assert not any(l.startswith("[worker 0] epoch 3") for l in out), out
    assert _wait_until_gone(cluster, 20) == {}

    survivor = cluster.hostfile(str(tmp_path / "survivor"), indices=[0])
    code, out, err = _finish(_dist_job(cluster, survivor, train + ["--resume"]), timeout=150)
    assert code == 0, "\n".join(out) + err
    resumed_from = [l for l in out if "resuming from" in l]
    assert len(resumed_from) == 1 and re.search(r"after epoch [12]\b", resumed_from[0]), out
    for rank in (0, 1):
        whole = load_params(dump.format(name="whole").format(rank=rank))
        resumed = load_params(dump.format(name="resumed").format(rank=rank))
        assert sorted(whole) == sorted(resumed)
        for name in whole:
            np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)


def _horovodrun_on_host0(cluster, train, np_=2):
    """``horovodrun -np 2 -H gcnh0:1,gcnh1:1 --gloo`` started on host 0 over ssh, in the
    background (a Launch: its output lines collected)."""
    hosts = ",".join("%s:1" % name for name in cluster.namespaces)
    remote = "cd %s; export PATH=%s OMP_NUM_THREADS=1; exec %s -np %d -H %s --gloo " \
             "--network-interface eth0 sh -c %s 2>&1" % (
                 shlex.quote(ROOT), shlex.quote(cluster.env["PATH"]),
                 shlex.quote(os.path.join(os.path.dirname(PY), "horovodrun")), np_, hosts,
                 shlex.quote("exec " + shlex.join([PY, TRAIN] + train)))
    return Launch([cluster.addresses[0], remote], env=cluster.env, launcher=("ssh",))


@pytest.mark.parametrize("failure, why", [
    (_kill_host, r"does not take ssh connections \(Connection refused\)"),
    (_cut_link, r"does not answer \(down, or its link cut\)"),
])
def test_a_failed_host_ends_a_horovod_job_in_seconds_naming_it(netns_hosts, failure, why):
    cluster = netns_hosts(2)
    job = _horovodrun_on_host0(cluster, ["--net", "lenet", "--data-dir", DATA, "--limit-train",
                                         "8192", "--limit-test", "256", "--epochs", "50",
                                         "--kvstore", "horovod"])
    try:
        job.wait_for(r"^\[1\]<stdout>:training on", timeout=90)
        time.sleep(1)
        failed_at = time.monotonic()
        failure(cluster, 1)
        code, out, err = job.finish(timeout=40)
        ended_after = time.monotonic() - failed_at
    finally:
        job.cleanup()
    print("%s on host 1: horovodrun ended %.1f s later" % (failure.__name__, ended_after))
    assert code != 0 and ended_after < 20, (code, ended_after, out)
    # Rank 0, on the host left, ends with one line naming the lost host and why.
    ours = [l for l in out if "horovod: rank" in l and "lost its peers" in l]
    assert len(ours) == 1, "\n".join(out)
    assert re.match(r"\[0\]<stderr>:gluon-cnns-train: horovod: rank 0 on gcnh0 lost its peers: "
                    r"gcnh1 %s; stopping$" % why, ours[0]), ours[0]
    assert not any(l.startswith("[0]<stderr>:Traceback") for l in out), "\n".join(out)
    assert _wait_until_gone(cluster, 20) == {}
    print("nothing left %.1f s after the failure" % (time.monotonic() - failed_at))


def test_bad_host_input_is_one_line_before_anything_starts(netns_hosts, tmp_path):
    """Each mistake: exit 2, one line naming the host and the fix, no process started."""
    cluster = netns_hosts(2)
    good = cluster.hostfile(str(tmp_path / "hosts"))
    unreachable = str(tmp_path / "unreachable")
    with open(unreachable, "w") as f:
        f.write("%s\n%s.99\n" % (cluster.addresses[0], cluster.here.rsplit(".", 1)[0]))
    ours = [PY, TRAIN, "--net", "lenet", "--kvstore", "dist_sync"]
    b = re.escape(cluster.addresses[1])
    cases = [
        (unreachable, [], ours, r"cannot reach 10\.231\.0\.99 over ssh \(ssh: connect to host "
                                r"10\.231\.0\.99 port 22: .+\); check the hostfile"),
        (good, [], ["/no/such/python"] + ours[1:],
         r"no /no/such/python on 10\.231\.0\.2: every host needs the same Python environment"),
        (good, [], ["/usr/bin/python3"] + ours[1:],  # Debian's Python, without MXNet
         r"/usr/bin/python3 on 10\.231\.0\.2 cannot import mxnet: install the package's"),
        (good, ["--env", "DMLC_INTERFACE=eth9"], ours,
         r"DMLC_INTERFACE=eth9 names no network interface on 10\.231\.0\.2 \(it has eth0, lo\)"),
        (good, [], [PY, "/no/such/train.py"],
         r"no /no/such/train\.py on 10\.231\.0\.2: every host needs the repository"),
        (good, ["--workdir", "/no/such/folder"], ours,
         r"no folder /no/such/folder on 10\.231\.0\.2 \(--workdir\)"),
    ]
    with open(str(tmp_path / "twice"), "w") as f:  # the same host under another line
        f.write("%s\n%s:22\n" % (cluster.addresses[1], cluster.addresses[1]))
    cases.append((str(tmp_path / "twice"), [], ours,
                  r"the hostfile names the same host twice \(%s and %s, ssh port 22\)" % (b, b)))
    for hostfile, flags, command, expected in cases:
        started = time.monotonic()
        job = Launch(["-n", "2", "-s", "1", "-H", hostfile, "--host-ip", cluster.here]
                     + (flags if "--workdir" in flags else flags + ["--workdir", ROOT])
                     + ["--timeout", "60", "--"] + command,
                     env=dict(cluster.env, OMP_NUM_THREADS="1"))
        code, out, err = _finish(job, timeout=40)
        assert code == 2 and out == [], (expected, out, err)
        lines = err.splitlines()
        assert len(lines) == 1 and re.match(r"gluon-cnns-launch: error: %s.*\(see --help\)$"
                                            % expected, lines[0]), (expected, err)
        assert time.monotonic() - started < 20
        assert _job_processes(cluster) == {}

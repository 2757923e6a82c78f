"""The CPU thread policy (gluon_cnns.threads) on fabricated /proc and /sys files, and in real
processes; the benchmark's thread matrix and PyTorch peer sections (no timings asserted)."""
import collections
import os
import re
import subprocess
import sys

import pytest

from gluon_cnns import threads
from gluon_cnns.threads import (available_cores, cgroup_cpu_limit, cgroup_v1_quota,
                                cgroup_v2_quota, describe_threads, effective_threads,
                                parse_cpu_list, physical_cores, plan, worker_env)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MXNET_OMP_MAX_THREADS")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def sysfs(tmp_path, siblings):
    """A fabricated /sys/devices/system/cpu: {cpu: thread_siblings_list text}."""
    for cpu, text in siblings.items():
        write(tmp_path / "cpu" / ("cpu%d" % cpu) / "topology" / "thread_siblings_list", text + "\n")
    return str(tmp_path / "cpu")


def cgroups(tmp_path, proc_lines, files):
    """A fabricated /proc/self/cgroup and cgroup tree: (proc file, root)."""
    root = tmp_path / "cgroup"
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        write(root / rel, text + "\n")
    return write(tmp_path / "proc_cgroup", "\n".join(proc_lines) + "\n"), str(root)


def no_cgroup(tmp_path):
    return cgroups(tmp_path, [], {})


# ---------------------------------------------------------------- reading the machine

@pytest.mark.parametrize("text, cpus", [("0,4", {0, 4}), ("0-1", {0, 1}),
                                        ("0-3,8-11", {0, 1, 2, 3, 8, 9, 10, 11}), ("5", {5})])
def test_cpu_lists_parse(text, cpus):
    assert parse_cpu_list(text) == cpus


def test_smt_siblings_count_once(tmp_path):
    # 4 cores with 2 hyper-threads each, listed as the kernel does on Intel: 0,4 1,5 ...
    folder = sysfs(tmp_path, {c: "%d,%d" % (c % 4, c % 4 + 4) for c in range(8)})
    assert physical_cores(frozenset(range(8)), folder) == 4
    assert physical_cores(frozenset({0, 4}), folder) == 1      # one core's two threads
    assert physical_cores(frozenset({0, 1, 4}), folder) == 2


def test_smt_sibling_ranges(tmp_path):
    folder = sysfs(tmp_path, {0: "0-1", 1: "0-1", 2: "2-3", 3: "2-3"})
    assert physical_cores(frozenset(range(4)), folder) == 2
    assert physical_cores(frozenset({1, 2}), folder) == 2


def test_cpus_without_topology_count_as_cores(tmp_path):
    assert physical_cores(frozenset({0, 1, 2}), str(tmp_path / "none")) == 3


@pytest.mark.parametrize("text, cpus", [("max 100000", None), ("150000 100000", 1.5),
                                        ("200000 50000", 4.0), ("garbage", None), ("", None)])
def test_cgroup_v2_cpu_max(tmp_path, text, cpus):
    assert cgroup_v2_quota(write(tmp_path / "cpu.max", text)) == cpus


@pytest.mark.parametrize("quota, period, cpus", [("-1", "100000", None), ("250000", "100000", 2.5),
                                                 ("50000", "100000", 0.5)])
def test_cgroup_v1_cfs_quota(tmp_path, quota, period, cpus):
    assert cgroup_v1_quota(write(tmp_path / "q", quota), write(tmp_path / "p", period)) == cpus


def test_cgroup_v2_limit_of_the_process_and_its_parents(tmp_path):
    proc, root = cgroups(tmp_path, ["0::/user.slice/job"], {
        "cpu.max": "max 100000", "user.slice/cpu.max": "300000 100000",
        "user.slice/job/cpu.max": "max 100000"})
    assert cgroup_cpu_limit(proc, root) == 3.0  # the parent's quota binds the child


def test_cgroup_v2_limit_seen_at_a_containers_root(tmp_path):
    proc, root = cgroups(tmp_path, ["0::/"], {"cpu.max": "200000 100000"})
    assert cgroup_cpu_limit(proc, root) == 2.0


def test_cgroup_v1_limit(tmp_path):
    proc, root = cgroups(tmp_path, ["12:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc"], {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(proc, root) == 1.5
    proc, root = cgroups(tmp_path / "unlimited", ["4:cpu,cpuacct:/"], {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(proc, root) is None


def test_no_cgroup_file_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(str(tmp_path / "missing"), str(tmp_path)) is None


def test_available_cores_takes_affinity_smt_and_quota_together(tmp_path):
    folder = sysfs(tmp_path, {c: "%d,%d" % (c % 4, c % 4 + 4) for c in range(8)})
    proc, root = no_cgroup(tmp_path)
    assert available_cores(range(8), folder, proc, root) == 4
    assert available_cores({2, 6}, folder, proc, root) == 1
    proc, root = cgroups(tmp_path / "q", ["0::/"], {"cpu.max": "250000 100000"})
    assert available_cores(range(8), folder, proc, root) == 2     # 2.5 CPUs: 2 whole cores
    proc, root = cgroups(tmp_path / "small", ["0::/"], {"cpu.max": "50000 100000"})
    assert available_cores(range(8), folder, proc, root) == 1     # never 0


def test_this_machine_has_at_least_one_core():
    cores = available_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- the policy

def test_heavy_work_gets_every_core_and_short_spinning():
    assert plan(None, environ={}, cores=4) == {"OMP_NUM_THREADS": "4",
                                               "GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}
    assert plan("resnet18", environ={}, cores=2)["OMP_NUM_THREADS"] == "2"
    assert plan(50000.0, environ={}, cores=2)["OMP_NUM_THREADS"] == "2"


@pytest.mark.parametrize("net", ["lenet", "lenet_bn", "resnet_mnist", "inception_mnist"])
def test_light_nets_get_one_thread_and_no_spin_setting(net):
    assert plan(net, environ={}, cores=8) == {"OMP_NUM_THREADS": "1"}


def test_local_ranks_of_a_horovod_or_mpi_job_share_the_cores():
    assert plan(None, environ={"HOROVOD_LOCAL_SIZE": "2"}, cores=4)["OMP_NUM_THREADS"] == "2"
    assert plan(None, environ={"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}, cores=2) == {
        "OMP_NUM_THREADS": "1"}
    assert plan(None, environ={"MPI_LOCALNRANKS": "1"}, cores=4)["OMP_NUM_THREADS"] == "4"


def test_the_cpus_are_those_of_the_affinity_mask():
    """Not every CPU of the machine: those ``taskset`` or a scheduler left to the process."""
    assert threads.allowed_cpus(lambda pid: {5, 7}) == {5, 7}


def test_one_core_needs_no_waiting_policy():
    assert plan(None, environ={}, cores=1) == {"OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("user, expected", [
    ({"OMP_NUM_THREADS": "3"}, {"GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}),
    ({"OMP_NUM_THREADS": "1"}, {}),
    ({"MXNET_OMP_MAX_THREADS": "1"}, {}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_NUM_THREADS": "4"}),
    ({"GOMP_SPINCOUNT": "0"}, {"OMP_NUM_THREADS": "4"}),
    ({"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}, {}),
])
def test_the_users_variables_win(user, expected):
    assert plan(None, environ=user, cores=4) == expected


def test_configure_sets_only_what_is_missing():
    environ = {"OMP_NUM_THREADS": "3"}
    code = ("import sys; from gluon_cnns.threads import configure; e = {'OMP_NUM_THREADS': '3'};"
            " print(configure(environ=e)); print(sorted(e.items()))")
    out = _python(code, {}).splitlines()
    assert out[0] == str({"GOMP_SPINCOUNT": str(threads.SPIN_COUNT)})
    assert out[1] == str(sorted(dict(environ, GOMP_SPINCOUNT=str(threads.SPIN_COUNT)).items()))


def test_configure_after_mxnet_changes_nothing():
    code = ("import mxnet, os; from gluon_cnns.threads import configure; "
            "print(configure('resnet18'), 'OMP_NUM_THREADS' in os.environ)")
    assert _python(code, {}).strip() == "{} False"


def test_light_net_table_matches_the_flop_count():
    import gluon_cnns
    from gluon_cnns.data import image_shape
    for name, mflops in threads.NET_MFLOPS.items():
        recipe = gluon_cnns.model_spec(name).recipe
        shape = (1,) + image_shape(recipe.dataset, recipe.resize)
        counted = gluon_cnns.flops(gluon_cnns.get_model(name), shape) / 1e6
        assert counted == pytest.approx(mflops, rel=0.1), name
        assert threads.work_mflops(name) == mflops * recipe.batch_size


def test_effective_threads_follow_mxnets_rule():
    assert effective_threads({"OMP_NUM_THREADS": "3,2"}) == 3
    assert effective_threads({"OMP_NUM_THREADS": "4", "MXNET_OMP_MAX_THREADS": "2"}) == 2
    halved = 4 if threads._is_x86() else 8
    assert effective_threads({}, logical_cpus=8) == halved


def test_describe_threads_leaves_gpus_out():
    Ctx = collections.namedtuple("Ctx", "device_type")
    one = {"OMP_NUM_THREADS": "1"}
    assert describe_threads([Ctx("cpu")], one) == "1 thread"
    assert describe_threads([Ctx("cpu")], {"OMP_NUM_THREADS": "2"}) == "2 threads"
    assert describe_threads([Ctx("gpu")], one) == ""


def test_local_workers_split_the_cores():
    assert worker_env(1, environ={}, cores=4) == {"OMP_NUM_THREADS": "4"}
    assert worker_env(2, environ={}, cores=4) == {"OMP_NUM_THREADS": "2"}
    assert worker_env(3, environ={}, cores=4) == {"OMP_NUM_THREADS": "1"}
    assert worker_env(8, environ={}, cores=2) == {"OMP_NUM_THREADS": "1"}
    assert worker_env(2, environ={"OMP_NUM_THREADS": "4"}, cores=4) == {}


# ---------------------------------------------------------------- real processes

def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _python(code, extra):
    proc = subprocess.run([sys.executable, "-c", code], env=_clean_env(extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_mxnet_runs_with_the_policys_threads():
    """configure() before `import mxnet`: libgomp, MXNet's OpenMP runtime, reads the policy."""
    code = ("import ctypes, os; from gluon_cnns.threads import configure; "
            "print(configure('resnet18')); import mxnet; "
            "print(ctypes.CDLL('libgomp.so.1').omp_get_max_threads(), "
            "os.environ.get('GOMP_SPINCOUNT'))")
    out = _python(code, {}).splitlines()
    cores = available_cores()
    assert out[1] == "%d %s" % (cores, threads.SPIN_COUNT if cores > 1 else None)


@pytest.mark.parametrize("net, light", [("lenet_bn", True), ("resnet18", False)])
def test_train_script_prints_the_policys_threads(net, light, fashion_mnist_dir):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--net", net, "--epochs", "1",
         "--batch-size", "8", "--limit-train", "16", "--limit-test", "8", "--quiet",
         "--data-dir", fashion_mnist_dir], env=_clean_env(), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^training on cpu\(0\), (\d+) threads?$", proc.stdout, re.M)
    assert match, proc.stdout
    assert int(match.group(1)) == (1 if light else available_cores())


def test_train_script_keeps_the_users_thread_count(fashion_mnist_dir):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--net", "lenet_bn",
         "--epochs", "1", "--limit-train", "256", "--limit-test", "8", "--quiet",
         "--data-dir", fashion_mnist_dir], env=_clean_env({"OMP_NUM_THREADS": "3"}),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "training on cpu(0), 3 threads\n" in proc.stdout


# ---------------------------------------------------------------- the benchmark's sections

def _thread_section():
    """A matrix of one row whose default took 2.5 s where every other cell took 2.0 s."""
    from tools.benchmark.threads import _row, policies
    labels = [label for label, _ in policies(2)]
    runs = {label: [{"seconds": 2.0 if label != "default" else 2.5, "threads": 1,
                     "load": [1.0, 1.0, 1.0]}] for label in labels}
    return {"cores": 2, "competitor": "resnet18", "rounds": 1, "limits": {"resnet18": 1024},
            "policies": labels, "policy_variables": dict(policies(2)),
            "rows": [_row("resnet18", "quiet", runs, 2)]}


def test_thread_matrix_judges_the_default_against_the_best_cell():
    from tools.benchmark.report import render
    from tools.benchmark.threads import thread_targets
    section = _thread_section()
    (row,) = section["rows"]
    assert row["default_vs_best"] == pytest.approx(1.25) and not row["met"]
    assert row["default_vs_cores"] == pytest.approx(1.25)
    targets = thread_targets(section)
    assert [t["met"] for t in targets] == [False, False]  # best cell, and all cores
    report = {"command": "x", "started": "now", "machine": {
        "cpu": "c", "cores": 2, "python": "3", "mxnet": "1.9.1", "numpy": "1",
        "mxnet_features": [], "bf16_instructions": False},
        "gemm": {"size": 8, "limit_gflops": 1.0, "dot_gflops": row["cells"]["default"]["seconds"],
                 "onednn_gflops": row["cells"]["default"]["seconds"]},
        "nets": [], "e2e": [], "low_precision": [], "bf16_training": [], "threads": section,
        "peer": {"python": "p", "skipped": "torch is not importable by p"}, "targets": targets}
    text = render(report)
    assert "Thread policies" in text and "1.25x" in text and "GOMP_SPINCOUNT=300000" in text
    assert "skipped: torch is not importable" in text


def test_peer_column_is_skipped_without_torch(tmp_path, capsys):
    from tools.benchmark import main as benchmark
    from tools.benchmark.peer import torch_version
    # A Python that cannot import torch whether or not this one can: a torch module
    # that raises ImportError comes first on its path.
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "torch.py").write_text("raise ImportError('hidden by the test')\n")
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n"
                      % (tmp_path / "hide", sys.executable))
    python.chmod(0o755)
    assert torch_version(str(python)) is None
    out = tmp_path / "b.json"
    assert benchmark.main(["--net", "none", "--peer", "lenet_bn", "--peer-python", str(python),
                           "--repeat", "1", "--warmup", "0", "--min-time", "0.01",
                           "--gemm-size", "64", "--json", str(out)]) == 0
    import json
    report = json.loads(out.read_text())
    assert report["nets"] == [] and "skipped" in report["peer"]
    assert "skipped: torch is not importable" in capsys.readouterr().out


def test_unknown_peer_net_is_refused(capsys):
    from tools.benchmark import main as benchmark
    assert benchmark.main(["--peer", "vgg11", "--net", "none"]) == 2
    assert "no PyTorch twin of vgg11" in capsys.readouterr().err


def test_a_forged_record_takes_back_only_the_thread_variables():
    # A record names what the import may remove; one naming PATH or HOME (inherited, or
    # written by hand) must leave them, and still take back its own thread variable.
    environ = {"PATH": "/bin", "HOME": "/root", "OMP_NUM_THREADS": "2",
               threads.SET_VAR: "PATH=/bin HOME=/root OMP_NUM_THREADS=2"}
    assert threads.set_by_package(environ) == {"OMP_NUM_THREADS": "2"}
    threads._take_back(environ)  # pylint: disable=protected-access
    assert environ == {"PATH": "/bin", "HOME": "/root"}

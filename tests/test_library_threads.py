"""The thread policy on the library path: a plain script that imports gluon_cnns and mxnet in
either order, with no thread variable set (gluon_cnns.threads.apply_at_import, first_use).

The policy is fixed when MXNet is loaded, so each case runs in a fresh process. What MXNet's
operators run with is read from outside the package: libgomp keeps the threads of a team parked
in its pool, so a convolution (a oneDNN parallel region in the engine's worker) that ran on N
OpenMP threads leaves N - 1 new threads in /proc/self/task.
"""
import os
import subprocess
import sys

import pytest

from gluon_cnns import threads
from gluon_cnns.threads import SET_VAR, available_cores, configure, effective_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MXNET_OMP_MAX_THREADS",
               threads.POLICY_VAR, SET_VAR)
MXNET_ALONE = effective_threads({})  # MXNet 1.9.1's own count: half the CPUs on x86
CORES = available_cores()
NOTICE = "MXNet is using"

# Runs {before}, then prints how many OpenMP threads a convolution ran on.
SCRIPT = """
import os, sys
{before}
import mxnet as mx
def tasks():
    return len(os.listdir("/proc/self/task"))
(mx.nd.ones((1,)) + 1).wait_to_read()  # starts the engine's worker thread
start = tasks()
x, w = mx.nd.ones((8, 16, 64, 64)), mx.nd.ones((16, 16, 3, 3))
mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=16, no_bias=True).wait_to_read()
print("conv threads", tasks() - start + 1)
"""


def _run(before, extra=None):
    """``(threads a convolution ran on, stdout lines before that, stderr)`` of SCRIPT."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    env.update(extra or {})
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return int(lines[-1].split()[-1]), lines[:-1], proc.stderr


def test_importing_the_package_first_gives_mxnet_the_cores():
    ran, printed, err = _run("import gluon_cnns; print('mxnet' in sys.modules)")
    assert printed == ["False"]  # the import itself leaves MXNet unloaded
    assert ran == CORES, err
    assert NOTICE not in err


def test_opt_out_leaves_mxnets_own_count():
    ran, _, err = _run("import gluon_cnns; print(os.environ.get('OMP_NUM_THREADS'))",
                       {threads.POLICY_VAR: "off"})
    assert ran == MXNET_ALONE
    assert err == ""


def test_a_garbage_opt_out_value_is_one_line_and_counts_as_off():
    ran, _, err = _run("import gluon_cnns", {threads.POLICY_VAR: "maybe"})
    assert ran == MXNET_ALONE
    assert err.splitlines() == ["warning: GLUON_CNNS_THREADS='maybe' is neither on nor off: "
                                "taken as off (import gluon_cnns sets no thread variable)"]


@pytest.mark.parametrize("get_model", ["gluon_cnns.get_model", "gluon_cnns.models.get_model"])
def test_mxnet_first_says_once_how_many_cores_it_uses(get_model):
    ran, _, err = _run("import mxnet, gluon_cnns.models\n"
                       "%s('resnet20_cifar'); %s('resnet18')" % (get_model, get_model))
    assert ran == MXNET_ALONE
    said = [line for line in err.splitlines() if NOTICE in line]
    # Once, though two nets were built; none where MXNet's own count is the policy's.
    assert said == ([] if MXNET_ALONE >= CORES else [
        "warning: MXNet is using %d of %d cores: import gluon_cnns before mxnet, or set "
        "OMP_NUM_THREADS=%d before Python starts (GLUON_CNNS_THREADS=off silences this)"
        % (MXNET_ALONE, CORES, CORES)]), err
    assert len(err.splitlines()) == len(said)


def test_no_line_for_a_light_net_or_with_the_opt_out():
    # lenet_bn's policy is one thread: MXNet's own count is not fewer.
    for before, extra in (("import mxnet, gluon_cnns; gluon_cnns.get_model('lenet_bn')", {}),
                          ("import mxnet, gluon_cnns; gluon_cnns.get_model('resnet18')",
                           {threads.POLICY_VAR: "off"})):
        _, _, err = _run(before, extra)
        assert NOTICE not in err, before


def test_a_tool_run_after_mxnet_says_nothing(tmp_path):
    # The tool sets and prints its own threads: the library's notice is not for it, even
    # when its main runs in a process that loaded MXNet first (resnet18 is a heavy net).
    argv = ["--net", "resnet18", "--resize", "28", "--epochs", "1", "--limit-train", "16",
            "--limit-test", "8", "--batch-size", "8", "--save-dir", str(tmp_path / "run")]
    _, printed, err = _run("import mxnet\nfrom gluon_cnns.cli.train import main\n"
                           "print('exit', main(%r))" % argv)
    assert printed[-1] == "exit 0", err
    assert "training on cpu(0), %d thread" % MXNET_ALONE in "\n".join(printed)
    assert NOTICE not in err


def test_the_users_thread_count_wins_in_either_order():
    for before in ("import gluon_cnns",
                   "import mxnet, gluon_cnns; gluon_cnns.get_model('resnet18')"):
        ran, _, err = _run(before, {"OMP_NUM_THREADS": "1"})
        assert ran == 1, before
        assert NOTICE not in err


def test_loaded_threads_reads_what_the_convolution_ran_on():
    # A variable set once MXNet is loaded changes nothing, and is not what it reads.
    late = "os.environ['OMP_NUM_THREADS'] = '%d'" % (CORES + 1)
    for extra in ({}, {"OMP_NUM_THREADS": str(CORES)}):
        ran, printed, _ = _run("import mxnet\nfrom gluon_cnns.threads import loaded_threads\n"
                               + late + "\nprint(loaded_threads())",
                               dict(extra, GLUON_CNNS_THREADS="off"))
        assert printed == [str(ran)], extra


# ---------------------------------------------------------------- the package's own choice

def _imported():
    """An environment as ``import gluon_cnns`` leaves it, with no thread variable of the user."""
    environ = {}
    threads._apply(None, environ, record=True)
    assert environ[SET_VAR]
    return environ


@pytest.fixture
def before_mxnet(monkeypatch):
    """As in a process that has not loaded MXNet (another test of this session may have)."""
    monkeypatch.delitem(sys.modules, "mxnet", raising=False)


def test_a_tools_per_net_choice_replaces_what_the_import_set(before_mxnet):
    environ = _imported()
    assert configure("lenet_bn", environ) == {"OMP_NUM_THREADS": "1"}
    assert environ == {"OMP_NUM_THREADS": "1"}  # a child process keeps it as given


def test_a_value_the_user_changed_is_the_users(before_mxnet):
    environ = _imported()
    environ["OMP_NUM_THREADS"] = "3"  # e.g. in the notebook, after the import
    assert configure("lenet_bn", environ) == {"GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}
    assert environ["OMP_NUM_THREADS"] == "3"


def test_local_workers_split_the_cores_the_package_chose():
    environ = _imported()
    assert threads.worker_env(2, environ, cores=4) == {"OMP_NUM_THREADS": "2"}
    assert threads.worker_env(2, dict(environ, **{SET_VAR: ""}), cores=2) == {}


# ---------------------------------------------------------------- the benchmark of the path

def test_the_benchmarks_user_script_runs_with_the_policys_threads():
    from types import SimpleNamespace
    from tools.benchmark.library import _argv, _spec
    from tools.benchmark.peer import run_result
    spec = _spec("lenet_bn", SimpleNamespace(warmup=0, repeat=1, min_time=0.01, seed=0))
    assert spec["shape"][0] == 256
    ours = run_result(_argv("ours", spec, sys.executable), "ours")
    first = run_result(_argv("mxnet_first", spec, sys.executable), "mxnet first")
    # Imported first, the package gives MXNet every core: the net is not known yet.
    assert (ours["threads"], first["threads"]) == (CORES, MXNET_ALONE)
    assert ours["train_step"]["median"] > 0


def test_a_library_section_merges_into_a_saved_report(tmp_path):
    import json
    from tools.benchmark import main as benchmark
    from tools.benchmark.library import _record
    from tools.benchmark.report import render
    result = {"framework": "x", "threads": 2, "train_step": {"median": 100.0}}
    runs = {"ours": [result, result], "mxnet_first": [dict(result, threads=1)] * 2,
            "pytorch": [dict(result, train_step={"median": 50.0})] * 2}
    spec = {"shape": [64, 1, 96, 96], "kwargs": {}}
    section = {"python": "p", "torch": "2", "rounds": 2, "started": "now",
               "load_average": [[1.0, 1.0, 1.0], None],
               "nets": [_record("resnet18", spec, runs)]}
    saved = tmp_path / "benchmark.json"
    with open(os.path.join(ROOT, "docs", "benchmark.json")) as f:
        original = json.load(f)
    saved.write_text(json.dumps(original))
    benchmark.merge_into(str(saved), {"command": "python scripts/benchmark.py --library-path "
                                                 "resnet18", "library_path": section,
                                      "machine": {"cores": 2}})
    merged = json.loads(saved.read_text())
    assert {k: v for k, v in merged.items() if k not in ("library_path", "targets")} == {
        k: v for k, v in original.items() if k not in ("library_path", "targets")}
    assert merged["library_path"]["nets"][0]["ours_ratio"]["median"] == 2.0
    # Its load of 1.0 on 2 cores is a quiet machine: the row names no busy one.
    assert {"what": "resnet18 plain user script vs PyTorch eager", "target": 1.3,
            "measured": 2.0, "met": True} in merged["targets"]
    text = render(merged, markdown=True)
    assert "## Library path" in text and "--library-path resnet18" in text
    assert "| resnet18 | 64 | 100 (2) | 100 (1) | 50 (2) | 2.00x (2.00-2.00) |" in text


@pytest.mark.parametrize("get_model", ["gluon_cnns.get_model", "gluon_cnns.models.get_model"])
def test_a_first_get_model_before_mxnet_chooses_for_its_net(get_model):
    ran, printed, err = _run("import gluon_cnns.models; %s('lenet_bn'); "
                             "print(os.environ['OMP_NUM_THREADS'])" % get_model)
    assert (ran, printed) == (1, ["1"]), err


def test_utils_train_judges_by_the_last_net_built():
    # lenet_bn's policy is one thread: MXNet's own count on this machine is not fewer.
    code = ("import mxnet as mx, gluon_cnns\nfrom mxnet import gluon\n"
            "net = gluon_cnns.get_model('lenet_bn'); net.initialize()\n"
            "X, y = mx.nd.zeros((4, 1, 28, 28)), mx.nd.zeros((4,))\n"
            "data = [(X, y)]\n"
            "gluon_cnns.utils.train(data, data, net, gluon.loss.SoftmaxCrossEntropyLoss(), "
            "gluon.Trainer(net.collect_params(), 'sgd'), mx.cpu(), 1)")
    _, _, err = _run(code)
    assert NOTICE not in err


def test_a_library_target_measured_on_a_busy_machine_says_so():
    from tools.benchmark.library import library_targets
    section = {"load_average": [[1.0, 1.0, 1.0], [2.5, 1.0, 1.0]], "nets": [
        {"net": "resnet18", "target": 1.3, "ours_ratio": {"median": 2.0}, "met": True}]}
    (row,) = library_targets(section, {"cores": 2})
    assert row["what"].endswith("on a busy machine (load 2.5 on 2 cores; the target is for "
                                "a quiet one)")
    (row,) = library_targets(section, {"cores": 4})
    assert row["what"] == "resnet18 plain user script vs PyTorch eager"

"""The thread policy on the library path: a plain script importing MXNet and gluon_cnns in
either order, with no thread variable set (gluon_cnns.threads.first_use,
gluon_cnns.loaded_threads). Each case runs in a fresh process.

What MXNet's operators run with is read from outside the package: libgomp keeps the
threads of a team parked in its pool, so a convolution (a oneDNN parallel region in the
engine's worker) that runs on N OpenMP threads leaves N - 1 new threads in
/proc/self/task.
"""
import os
import subprocess
import sys

import pytest

from gluon_cnns.threads import available_cores, describe_threads, effective_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MXNET_OMP_MAX_THREADS",
               "GLUON_CNNS_NO_THREADS")

# Prints how many OpenMP threads a convolution ran on; {before} runs first.
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
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    env.update(extra or {})
    proc = subprocess.run([sys.executable, "-W", "always", "-c", SCRIPT.format(before=before)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return int(lines[-1].split()[-1]), lines[:-1], proc.stderr


MXNET_ALONE = effective_threads({})  # what MXNet 1.9.1 picks with no variable: half the CPUs


@pytest.mark.parametrize("before", [
    "import mxnet; import gluon_cnns; gluon_cnns.get_model('resnet20_cifar')",
    # The engine's worker thread exists, its OpenMP count already set by MXNet.
    "import mxnet as mx; (mx.nd.ones((1,)) + 1).wait_to_read(); import gluon_cnns; "
    "gluon_cnns.get_model('resnet20_cifar')",
    # configure() too late to set the environment: first use still applies the policy.
    "import mxnet; import gluon_cnns.threads; gluon_cnns.threads.configure(); "
    "gluon_cnns.get_model('resnet20_cifar')",
], ids=["plain", "engine-started", "late-configure"])
def test_mxnet_first_then_get_model_gets_all_cores(before):
    threads, printed, err = _run(before + "; print(gluon_cnns.threads.describe_threads())")
    assert threads == available_cores(), err
    # utils.train's "training on cpu(0), N threads" line
    assert printed == [describe_threads(environ={"OMP_NUM_THREADS": str(available_cores())})]
    assert "MXNet is using" not in err


def test_gluon_cnns_first_gets_all_cores_and_leaves_the_environment():
    before = ("import gluon_cnns; print('mxnet' in sys.modules); import mxnet; "
              "gluon_cnns.get_model('resnet20_cifar'); "
              "print(sorted(set(os.environ) & {'OMP_NUM_THREADS', 'GOMP_SPINCOUNT'}))")
    threads, printed, _ = _run(before)
    # No MXNet on import; nothing a child process would inherit as the user's choice.
    assert printed == ["False", "[]"]
    assert threads == available_cores()


def test_a_light_net_keeps_one_thread():
    threads, printed, _ = _run("import gluon_cnns; gluon_cnns.get_model('lenet_bn'); "
                               "print(gluon_cnns.threads.describe_threads())")
    assert (threads, printed) == (1, ["1 thread"])


def test_opt_out_leaves_mxnets_own_count():
    for before in ("import mxnet; import gluon_cnns; gluon_cnns.get_model('resnet20_cifar')",
                   "import gluon_cnns; gluon_cnns.get_model('resnet20_cifar')"):
        threads, _, err = _run(before, {"GLUON_CNNS_NO_THREADS": "1"})
        assert threads == MXNET_ALONE, before
        assert "MXNet is using" not in err


def test_users_variable_wins_on_the_library_path():
    threads, _, _ = _run("import mxnet; import gluon_cnns; gluon_cnns.get_model('resnet20_cifar')",
                         {"OMP_NUM_THREADS": "1"})
    assert threads == 1


def test_one_warning_where_the_loaded_mxnet_cannot_be_changed():
    # As with a libmxnet whose OpenMP object is not the one of MXNet 1.9.1.
    before = ("import mxnet; import gluon_cnns; from gluon_cnns import loaded_threads; "
              "loaded_threads.set_threads = lambda threads, **how: False\n"
              "gluon_cnns.get_model('resnet20_cifar')\ngluon_cnns.get_model('resnet20_cifar')")
    threads, _, err = _run(before)
    assert threads == MXNET_ALONE
    said = [line for line in err.splitlines() if "MXNet is using" in line]
    assert len(said) == 1, err  # once, though two nets were built
    assert ("MXNet is using %d of %d cores: set OMP_NUM_THREADS=%d, or call "
            "gluon_cnns.threads.configure() before `import mxnet`"
            % (MXNET_ALONE, available_cores(), available_cores())) in said[0]

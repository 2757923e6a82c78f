"""CPU threads: how many OpenMP threads MXNet uses, and how they wait (no MXNet import).

    import gluon_cnns.threads
    gluon_cnns.threads.configure("resnet18")   # before the first `import mxnet`
    import mxnet as mx

Left alone, MXNet 1.9.1 runs half of ``omp_get_num_procs()`` OpenMP threads on
x86 (``src/engine/openmp.cc`` assumes every core has two hyper-threads): one
thread on a 2-core machine without SMT, half the speed of a conv-heavy net. And
"all cores" with libgomp's default waiting (each idle thread spins about 300,000
times, some milliseconds, before it sleeps) collapses when another process wants
the same cores: a spinning thread burns the time slice its partner needs, and a
small net such as resnet_mnist became 10x slower next to another training.

:func:`configure` sets, in ``os.environ`` before MXNet's libgomp reads it:

* ``OMP_NUM_THREADS``: the physical cores this process may use (its CPU
  affinity, less SMT siblings, capped by a cgroup v1/v2 CPU quota; divided
  among the local ranks of a horovodrun/mpirun job), or one thread for a net
  whose work per batch is too small to share out (see :data:`LIGHT_WORK_MFLOPS`);
  ``gluon-cnns-launch`` divides the cores among its local workers itself
  (:func:`worker_env`);
* ``GOMP_SPINCOUNT`` (:data:`SPIN_COUNT`) when it runs more than one thread:
  an idle thread spins briefly, then sleeps, so that a busy machine takes the
  time slices of sleeping threads, not of spinning ones.

A variable already in the environment always wins: the thread count is left
alone when ``OMP_NUM_THREADS`` or ``MXNET_OMP_MAX_THREADS`` is set, the waiting
when ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is. Once MXNet is imported the
environment has been read: :func:`configure` then changes nothing.

``import gluon_cnns`` sets the policy for an unknown net (all cores) if MXNet is not
loaded yet (:func:`apply_at_import`; ``GLUON_CNNS_THREADS=off`` turns it off), marked
as the package's own, which a later :func:`configure` replaces; the first ``get_model``
refines it for its net, or, with MXNet loaded first, says once in one line how many
cores MXNet uses and how to fix it (:func:`first_use`).

Every reader takes its files as arguments (defaults: the real ``/proc`` and
``/sys``), so that tests can hand it fabricated ones. docs/SPEED_NOTES.md
("Threads") has the measurements behind the numbers.
"""
import os
import platform
import sys

# The machine as the policy reads it; its home is cpu.py.
from .cpu import (CGROUP_ROOT, CPU_SYSFS, PROC_CGROUP, allowed_cpus,  # noqa: F401
                  available_cores, cgroup_cpu_limit, cgroup_v1_quota, cgroup_v2_quota,
                  parse_cpu_list, physical_cores)

# An idle OpenMP thread spins this many times (about 0.1 ms) before it sleeps.
# libgomp's default is 300,000 (about 3 ms): fine on a quiet machine, a collapse on
# a busy one. PASSIVE (0) costs small nets 1.6x on a quiet machine (SPEED_NOTES.md).
SPIN_COUNT = 10000
# Below this many forward MFLOPs per batch one thread is as fast as several on a
# quiet machine, and much faster on a busy one: the parallel regions are too short
# to pay for waking and joining a team (resnet_mnist: 4 MFLOPs x batch 64).
LIGHT_WORK_MFLOPS = 2000.0
# Forward MFLOPs per image of the zoo's light nets (gluon_cnns.flops at the recipe's
# input size; tests/test_threads.py checks them). A net not listed counts as heavy.
NET_MFLOPS = {"lenet": 2.7, "lenet_bn": 0.6, "resnet_mnist": 4.0, "inception_mnist": 12.1}

THREADS_VAR, WAIT_VAR = "OMP_NUM_THREADS", "GOMP_SPINCOUNT"
# Set by the user, each of these means "the user chose the thread count" / "the waiting".
USER_THREAD_VARS = (THREADS_VAR, "MXNET_OMP_MAX_THREADS")
USER_WAIT_VARS = ("OMP_WAIT_POLICY", WAIT_VAR)

# "off": ``import gluon_cnns`` leaves the thread variables alone and says nothing.
POLICY_VAR = "GLUON_CNNS_THREADS"
# "OMP_NUM_THREADS=2 GOMP_SPINCOUNT=10000": what the package itself put in the
# environment, so that a later configure() (here or in a child process, which inherits
# both) tells the package's own choice from the user's.
SET_VAR = "GLUON_CNNS_THREADS_SET"

# Set by horovodrun / mpirun: how many processes of the job share this machine.
LOCAL_SIZE_VARS = ("HOROVOD_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")

_applied = {}  # what the last configure() set, for describe_threads()
# "chosen": a caller chose before MXNet was loaded (configure(), leave()) or a tool runs
# (chosen_by_tool()); "work": the last get_model's net; "said": first_use()'s one line.
_state = {}


# ---------------------------------------------------------------- the policy

def work_mflops(work):
    """Forward MFLOPs per batch of ``work``: a number as given, a net's name from the
    recipe's batch size and :data:`NET_MFLOPS`, None (unknown: heavy) otherwise."""
    if work is None or isinstance(work, bool):
        return None
    if isinstance(work, (int, float)):
        return float(work)
    if work not in NET_MFLOPS:
        return None
    from .models.registry import model_spec  # no MXNet import
    return NET_MFLOPS[work] * model_spec(work).recipe.batch_size


def local_processes(environ):
    """How many processes of a horovodrun/mpirun job run on this machine (1 outside one)."""
    for name in LOCAL_SIZE_VARS:
        try:
            return max(1, int(environ.get(name, "")))
        except ValueError:
            continue
    return 1


def threads_for(cores, mflops=None):
    """OpenMP threads for ``cores`` physical cores and ``mflops`` forward MFLOPs a batch."""
    if mflops is not None and mflops < LIGHT_WORK_MFLOPS:
        return 1
    return max(1, int(cores))


def plan(work=None, environ=None, cores=None):
    """The variables :func:`configure` would set, as ``{name: value}``; none already set.

    ``work``: a net's name, forward MFLOPs per batch, or None (all cores);
    ``environ``: the environment to respect (default ``os.environ``); ``cores``:
    physical cores (default :func:`available_cores`), shared by the local
    processes of a horovodrun/mpirun job (:data:`LOCAL_SIZE_VARS`).
    """
    environ = users_environ(os.environ if environ is None else environ)
    chosen = {}
    if not any(name in environ for name in USER_THREAD_VARS):
        cores = available_cores() if cores is None else cores
        cores = max(1, cores // local_processes(environ))
        chosen[THREADS_VAR] = str(threads_for(cores, work_mflops(work)))
    threads = effective_threads(dict(environ, **chosen))
    if threads > 1 and not any(name in environ for name in USER_WAIT_VARS):
        chosen[WAIT_VAR] = str(SPIN_COUNT)
    return chosen


def set_by_package(environ):
    """``{name: value}`` of the variables of ``environ`` that the package set
    (:data:`SET_VAR`) and that still hold the value it gave them."""
    recorded = dict(item.partition("=")[::2] for item in environ.get(SET_VAR, "").split())
    # Only the package's own variables: a record inherited or written by hand that names
    # another (PATH, HOME) must not make the import remove it.
    return {name: value for name, value in recorded.items()
            if name in (THREADS_VAR, WAIT_VAR) and environ.get(name) == value}


def users_environ(environ):
    """``environ`` without the variables the package set: what the user chose."""
    own = set_by_package(environ)
    return {name: value for name, value in environ.items() if name not in own}


def _take_back(environ):
    """Remove from ``environ`` what the package set, and its record."""
    for name in set_by_package(environ):
        del environ[name]
    environ.pop(SET_VAR, None)


def _apply(work, environ, record):
    """Replace what the package set in ``environ`` by the policy for ``work``; with
    ``record``, mark it as the package's own choice (:data:`SET_VAR`), which a later
    :func:`configure` replaces; unmarked, it passes to child processes as given."""
    _take_back(environ)
    chosen = plan(work, environ)
    environ.update(chosen)
    if chosen and record:
        environ[SET_VAR] = " ".join("%s=%s" % item for item in sorted(chosen.items()))
    _applied.clear()
    _applied.update(chosen)
    return dict(chosen)


def configure(work=None, environ=None):
    """Set the thread policy in ``os.environ`` before MXNet is imported; return what was set.

    ``work`` is the net's name (e.g. ``"resnet_mnist"``) or its forward MFLOPs per
    batch, to run a light net on one thread; None means all physical cores.
    A value MXNet or libgomp would choke on is refused or removed first
    (:func:`gluon_cnns.envcheck.check_environment`).
    Returns ``{variable: value}`` of what was set: ``{}`` when the user set every
    variable, or when MXNet is already imported (its OpenMP runtime has read the
    environment; the policy would only mislead :func:`describe_threads`).
    """
    environ = os.environ if environ is None else environ
    if "mxnet" in sys.modules:
        return {}
    from .envcheck import check_environment  # UsageError for what MXNet would choke on
    check_environment(environ)
    if environ is os.environ:
        _state["chosen"] = True
    return _apply(work, environ, record=False)


def leave(environ=None):
    """Before MXNet is imported: take back what the package set, leaving MXNet's own
    count (a tool that chooses no policy); the user's variables stay."""
    environ = os.environ if environ is None else environ
    if "mxnet" in sys.modules:
        return
    _take_back(environ)
    _applied.clear()
    if environ is os.environ:
        _state["chosen"] = True


def chosen_by_tool():
    """A tool chose and prints its threads: no :func:`first_use` line, even after MXNet."""
    _state["chosen"] = True


def policy_on(environ=None, warn=None):
    """Whether :data:`POLICY_VAR` lets the package choose threads: unset, ``on`` or
    ``off``; any other value is one line to ``warn`` and counts as ``off``."""
    environ = os.environ if environ is None else environ
    value = environ.get(POLICY_VAR, "").strip().lower()
    if value in ("", "on"):
        return True
    if value != "off":
        (warn or _say)("warning: %s=%r is neither on nor off: taken as off (import "
                        "gluon_cnns sets no thread variable)" % (POLICY_VAR, environ[POLICY_VAR]))
    return False


def _say(line):
    print(line, file=sys.stderr)


def apply_at_import(environ=None, warn=None):
    """From ``import gluon_cnns``: the policy for an unknown net (all physical cores), unless
    MXNet is loaded already or :data:`POLICY_VAR` is ``off``; returns what was set."""
    environ = os.environ if environ is None else environ
    if "mxnet" in sys.modules or not policy_on(environ, warn):
        return {}
    return _apply(None, environ, record=True)


def _libgomp():
    """The libgomp this process loaded (MXNet's), found in /proc/self/maps, or None."""
    import ctypes
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.split()[-1]
                if os.path.basename(path).startswith("libgomp"):
                    return ctypes.CDLL(path)
    except OSError:
        pass
    return None


def loaded_threads():
    """The OpenMP threads of the MXNet loaded in this process, read without changing it.

    Loading ``libmxnet.so`` sets the main thread's OpenMP count to its ceiling
    (``src/engine/openmp.cc``), the count its engine workers start with, so that
    libgomp's ``omp_get_max_threads()`` there tells it; any other thread, or a
    process without libgomp, falls back on MXNet's rule (:func:`effective_threads`).
    """
    import threading
    gomp = _libgomp() if threading.current_thread() is threading.main_thread() else None
    return int(gomp.omp_get_max_threads()) if gomp is not None else effective_threads()


def first_use(work=None, warn=None):
    """From ``get_model`` and ``utils.train``, unless a caller or tool chose (:func:`configure`,
    :func:`chosen_by_tool`): before MXNet is loaded, the import's choice becomes ``work``'s
    (one thread for a small net); once it is, if it runs fewer threads than the policy gives
    ``work``, one line, once per process, naming both counts and the fix. Returns it or None."""
    if "said" in _state or "chosen" in _state or not policy_on(warn=lambda _line: None):
        return None
    if work is None:
        work = _state.get("work")
    _state["work"] = work
    if "mxnet" not in sys.modules:
        _apply(work, os.environ, record=True)  # MXNet is loaded next, with these
        return None
    wanted = plan(work).get(THREADS_VAR)
    running = loaded_threads() if wanted is not None else None
    if running is None or running >= int(wanted):
        return None
    _state["said"] = ("warning: MXNet is using %d of %s cores: import gluon_cnns before mxnet, "
                      "or set %s=%s before Python starts (%s=off silences this)"
                      % (running, wanted, THREADS_VAR, wanted, POLICY_VAR))
    (warn or _say)(_state["said"])
    return _state["said"]


def applied():
    """What the last :func:`configure` of this process set (``{}`` before, or if nothing)."""
    return dict(_applied)


def _is_x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def effective_threads(environ=None, logical_cpus=None):
    """The OpenMP threads MXNet runs with under ``environ`` (default ``os.environ``).

    MXNet 1.9.1's rule: ``MXNET_OMP_MAX_THREADS``, else ``OMP_NUM_THREADS`` (its
    first level), else ``omp_get_num_procs()`` halved on x86.
    """
    environ = os.environ if environ is None else environ
    for name in ("MXNET_OMP_MAX_THREADS", THREADS_VAR):
        try:
            return max(1, int(environ.get(name, "").split(",")[0]))
        except ValueError:
            continue
    procs = len(allowed_cpus()) if logical_cpus is None else logical_cpus
    return max(1, procs // 2 if _is_x86() else procs)


def describe_threads(contexts=(), environ=None):
    """``"2 threads"``: the CPU threads of this process, for the ``training on`` line;
    ``""`` when ``contexts`` (MXNet contexts) include a GPU, whose speed they do not set."""
    if any(not getattr(c, "device_type", "cpu").startswith("cpu") for c in contexts):
        return ""
    count = effective_threads(environ)
    return "%d thread%s" % (count, "" if count == 1 else "s")


def worker_env(local_workers, environ=None, cores=None):
    """``{"OMP_NUM_THREADS": ...}`` for each of ``local_workers`` processes sharing this
    machine's cores (at least 1 each); ``{}`` when the user set the thread count."""
    environ = users_environ(os.environ if environ is None else environ)
    if any(name in environ for name in USER_THREAD_VARS):
        return {}
    cores = available_cores() if cores is None else cores
    return {THREADS_VAR: str(max(1, cores // max(1, local_workers)))}

"""OpenMP threads of an MXNet that is already loaded (ctypes on libmxnet and its libgomp).

``gluon_cnns.threads.configure`` works through the environment, which MXNet 1.9.1
reads once, when ``libmxnet.so`` is loaded. A script that imported MXNet first
has, with no ``OMP_NUM_THREADS``, half of the CPUs (``src/engine/openmp.cc``),
and three things hold that count afterwards:

* the ``mxnet::engine::OpenMP`` singleton's ``omp_thread_max_``, the ceiling of
  ``GetRecommendedOMPThreadCount()`` that MXNet's own kernels (``mxnet_op``) use;
* each engine worker thread's OpenMP ``nthreads`` (set once by
  ``OpenMP::on_start_worker_thread``), which oneDNN's convolutions, BatchNorm and
  pooling read through ``omp_get_max_threads()``: a per-thread value, so
  ``MXSetNumOMPThreads`` from the Python thread leaves the workers at 1;
* libgomp's spin count, read from ``GOMP_SPINCOUNT`` at load and not settable
  afterwards; libgomp's documented fallback (GCC manual, ``GOMP_SPINCOUNT``) is a
  spin of 100 whenever it manages more OpenMP threads than there are CPUs.

:func:`set_threads` changes all three: it writes the ceiling (after checking the
object holds what MXNet's constructor put there), runs ``omp_set_num_threads``
inside the CPU worker threads through ``MXEnginePushSyncND``, and parks idle
OpenMP threads in the calling thread's pool, so that libgomp's threads spin
briefly and then sleep, as ``GOMP_SPINCOUNT`` would have made them.
"""
import ctypes
import os
import threading

OPENMP_GET = "_ZN5mxnet6engine6OpenMP3GetEv"  # mxnet::engine::OpenMP::Get()
RECOMMENDED = "_ZNK5mxnet6engine6OpenMP28GetRecommendedOMPThreadCountEb"
# mxnet::engine::OpenMP's fields (src/engine/openmp.h): bool enabled_;
# int omp_thread_max_; int reserve_cores_; const bool omp_num_threads_set_in_environment_.
ENABLED, THREAD_MAX, RESERVED, ENV_SET = 0, 4, 8, 12
CPU_DEVICE = 1  # mxnet::Context::kCPU
SYNC_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
TEAM_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def libgomp():
    """The libgomp that libmxnet.so loaded (found in /proc/self/maps), as a ctypes library."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libgomp"):
                return ctypes.CDLL(path)
    raise OSError("MXNet's OpenMP runtime (libgomp) is not loaded in this process")


def _lib():
    import mxnet as mx
    return mx.base._LIB


def _openmp(lib):
    """``(address of MXNet's OpenMP singleton, GetRecommendedOMPThreadCount)``."""
    get = getattr(lib, OPENMP_GET)
    get.restype = ctypes.c_void_p
    recommended = getattr(lib, RECOMMENDED)
    recommended.argtypes, recommended.restype = [ctypes.c_void_p, ctypes.c_bool], ctypes.c_int
    return get(), recommended


def on_cpu_workers(fn, workers=None):
    """Run ``fn()`` inside each of the engine's ``cpu(0)`` worker threads, and wait.

    ``workers``: how many the engine runs (``MXNET_CPU_WORKER_NTHREADS``, default 1);
    each call waits for the others, so that no worker takes two.
    """
    import mxnet as mx
    workers = workers or int(os.environ.get("MXNET_CPU_WORKER_NTHREADS", "1") or 1)
    barrier, errors = threading.Barrier(workers, timeout=30), []

    def run(_ctx, _param):
        try:
            fn()
            if workers > 1:
                barrier.wait()
        except Exception as err:  # raised in an engine thread: report it in the caller's
            errors.append(err)
    callback = SYNC_FN(run)
    ctx = (ctypes.c_int * 2)(CPU_DEVICE, 0)
    marks = [mx.nd.zeros((1,)) for _ in range(workers)]
    for mark in marks:
        mx.base.check_call(_lib().MXEnginePushSyncND(
            callback, None, None, ctx, None, 0, ctypes.byref(mark.handle), 1, None, 0, None))
    for mark in marks:
        mark.wait_to_read()
    if errors:
        raise errors[0]


def operator_threads():
    """``(kernels, onednn)``: the OpenMP threads an operator now gets in the engine's CPU
    worker, as MXNet's kernels ask (``GetRecommendedOMPThreadCount``) and as oneDNN
    asks (``omp_get_max_threads``)."""
    lib, gomp = _lib(), libgomp()
    openmp, recommended = _openmp(lib)
    seen = {}

    def probe():
        seen["kernels"] = recommended(openmp, True)
        seen["onednn"] = gomp.omp_get_max_threads()
    on_cpu_workers(probe)
    return seen["kernels"], seen["onednn"]


def _thread_max(lib, gomp):
    """MXNet's ``omp_thread_max_`` as a ctypes int in place, or None when the singleton does
    not hold what ``OpenMP::OpenMP()`` sets (another layout: leave it alone)."""
    openmp, recommended = _openmp(lib)
    raw = (ctypes.c_ubyte * 16).from_address(openmp)
    thread_max = ctypes.c_int.from_address(openmp + THREAD_MAX)
    if raw[ENABLED] != 1 or raw[ENV_SET] not in (0, 1) or thread_max.value < 1 \
            or ctypes.c_int.from_address(openmp + RESERVED).value != 0:
        return None
    # With this thread's OpenMP count above it, MXNet's own getter returns the ceiling.
    before = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(thread_max.value + 1)
    same = raw[ENV_SET] == 1 or recommended(openmp, False) == thread_max.value
    gomp.omp_set_num_threads(before)
    return thread_max if same else None


def _spin_briefly(gomp, threads):
    """Make libgomp count more OpenMP threads than CPUs: it then spins 100 times, not
    300,000, before a waiting thread sleeps. The calling thread runs one parallel region
    whose extra threads stay parked (asleep) in its pool."""
    cpus = len(os.sched_getaffinity(0))
    team = cpus - threads + 2  # 1 + (threads - 1) + (team - 1) > cpus
    if team > 1:
        gomp.GOMP_parallel(TEAM_FN(lambda _data: None), None, ctypes.c_uint(team), ctypes.c_uint(0))


def set_threads(threads, spin_briefly=True):
    """Give operators of the loaded MXNet ``threads`` OpenMP threads; False if it cannot.

    ``spin_briefly``: also cut libgomp's spinning (:func:`_spin_briefly`), as the policy's
    ``GOMP_SPINCOUNT`` would have; False where the user set how threads wait.
    """
    lib, gomp = _lib(), libgomp()
    thread_max = _thread_max(lib, gomp)
    if thread_max is None:
        return False
    thread_max.value = threads
    gomp.omp_set_num_threads(threads)  # this thread: operators MXNet runs in the caller
    on_cpu_workers(lambda: gomp.omp_set_num_threads(threads))
    if spin_briefly and threads > 1:
        _spin_briefly(gomp, threads)
    return operator_threads() == (threads, threads)

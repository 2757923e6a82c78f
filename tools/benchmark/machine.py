"""What the figures were measured on: the machine, the device, and its GEMM limit."""
import os
import platform

from .timing import measure_throughput

# The variables that set MXNet's CPU threads and how they wait (gluon_cnns.threads).
THREAD_ENV = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
              "MXNET_CPU_WORKER_NTHREADS")


def machine_info():
    """CPU model, cores, MXNet version and enabled features: the header of every report."""
    import mxnet as mx
    import numpy as np
    from gluon_cnns.cpu import bf16_supported, cpu_model
    from gluon_cnns.threads import effective_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "python": platform.python_version(),
            "mxnet": mx.__version__, "numpy": np.__version__,
            "mxnet_features": sorted(k for k, v in mx.runtime.Features().items() if v.enabled),
            "bf16_instructions": bf16_supported(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "threads": effective_threads(),
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
            "load_average_start": load_average()}


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def resolve_ctx(name):
    """``mx.cpu()``, or the first GPU; ``gpu`` without one falls back to the CPU with a warning."""
    from gluon_cnns.training.devices import training_contexts
    return training_contexts(name, activity="benchmarking")[0]


def gemm_limit(ctx, size, warmup, repeat, min_time):
    """GFLOP/s of a large float32 matrix product: ``mx.nd.dot`` and oneDNN's (FullyConnected).

    ``mx.nd.dot`` goes to the BLAS MXNet was built with (OpenBLAS in the pip
    wheel); convolutions and dense layers go to oneDNN, whose GEMM is the
    ceiling they can reach. The limit is the best sample of
    the faster of the two.
    """
    import mxnet as mx
    a = mx.nd.random.uniform(shape=(size, size), ctx=ctx)
    b = mx.nd.random.uniform(shape=(size, size), ctx=ctx)
    flop = 2.0 * size ** 3 / 1e9
    # images=flop turns "images/s" into GFLOP/s.
    dot = measure_throughput(lambda: mx.nd.dot(a, b), flop, max(warmup, 1), repeat, min_time)
    onednn = measure_throughput(
        lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=size), flop,
        max(warmup, 1), repeat, min_time)
    # The best sample, not the median: a ceiling should not be lowered by
    # moments when another process had the cores.
    return {"size": size, "dot_gflops": dot, "onednn_gflops": onednn,
            "limit_gflops": max(dot["max"], onednn["max"])}

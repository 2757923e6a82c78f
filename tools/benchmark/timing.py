"""Throughput samples: medians of repeated, interleaved timings of asynchronous MXNet calls."""
import math
import statistics
import time


def summarize(samples):
    """{'median', 'min', 'max', 'samples'} of a list of numbers."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}


def measure_throughput(call, images, warmup, repeat, min_time):
    """Images/s of ``call()`` (which processes ``images`` images), as :func:`summarize` stats."""
    return measure_throughputs([call], images, warmup, repeat, min_time)[0]


def measure_throughputs(calls, images, warmup, repeat, min_time, sync=None):
    """Images/s of each of ``calls`` (each processes ``images`` images): a list of stats.

    MXNet is asynchronous: a call only queues work. So a sample queues ``k``
    calls and then waits for all of them (``sync``, default MXNet's ``waitall``;
    PyTorch on the CPU needs none), and ``k`` is chosen from the last warm-up
    call so that a sample lasts about ``min_time``.
    The samples of several calls are interleaved (A B A B ...), so that a
    change in the machine's load hits all of them alike and their ratios hold.
    """
    if sync is None:
        import mxnet as mx
        sync = mx.nd.waitall
    counts = [1] * len(calls)
    for _ in range(warmup):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            sync()
            counts[i] = max(1, int(math.ceil(min_time / max(time.perf_counter() - start,
                                                            1e-9))))
    samples = [[] for _ in calls]
    for _ in range(repeat):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            for _ in range(counts[i]):
                call()
            sync()
            samples[i].append(counts[i] * images / (time.perf_counter() - start))
    stats = [summarize(s) for s in samples]
    for stat, count in zip(stats, counts):
        stat["calls_per_sample"] = count
    return stats

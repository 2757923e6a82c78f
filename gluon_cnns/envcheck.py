"""The environment that MXNet and its OpenMP runtime read at import, checked before they do.

MXNet 1.9.1 reads its thread and engine variables with ``dmlc::GetEnv`` and
libgomp reads the OpenMP ones; a bad value is not reported as a usage error
(measured with ``python -c "import mxnet; ..."`` running one convolution):

=================================  ==================================================
OMP_NUM_THREADS=abc, =1,2           abort (exit 134, dmlc::ParamError)
OMP_NUM_THREADS=100000              abort (libgomp: thread creation failed); 16384 ran
OMP_NUM_THREADS=0, =-1, empty       libgomp: "Invalid value", ignored; runs
MXNET_OMP_MAX_THREADS=abc, =-1      abort (ParamError; out of memory)
MXNET_CPU_WORKER_NTHREADS=-1, =0    hang (bad_alloc / Check failed: size > 0)
MXNET_CPU_WORKER_NTHREADS=abc       abort; =100000 abort; 4096 ran
MXNET_CPU_PRIORITY_NTHREADS=-1/0    MXNetError; =100000 abort; 1024 ran
MXNET_ENGINE_TYPE=Bogus             MXNetError "Cannot find Engine Bogus"
MKL_NUM_THREADS=abc, =100000        no effect (this MXNet has no MKL); runs
OMP_WAIT_POLICY=bogus               libgomp: "Invalid value", ignored; runs
GOMP_SPINCOUNT=abc, =1e99           libgomp: "Invalid value", ignored; runs
=================================  ==================================================

So a value MXNet would abort, hang or fail on is refused (:class:`UsageError`,
exit 2, one line naming the variable, its value and the accepted range), and a
value the runtime itself ignores is removed from the environment with one
warning, so that what :mod:`gluon_cnns.threads` reports is what runs.
"""
import os
import re
import sys

from .errors import UsageError

# Enough for any machine this runs on (16384 OpenMP threads and 4096 workers ran on
# a 2-core machine; 100000 aborted); more than the cores only slows a run down.
MAX_THREADS = 4096
MAX_WORKERS = 1024
# --cpus N makes N CPU contexts, each with its own engine worker threads: 100000
# ran two minutes, then failed; beyond a few per core a batch is only cut into slivers.
MAX_CPU_CONTEXTS = 64
ENGINES = ("ThreadedEnginePerDevice", "ThreadedEngine", "NaiveEngine")
_SPIN = re.compile(r"^\s*(\d+\s*[kKmMgGtT]?|infinite|infinity)\s*$", re.I)

# name -> (accepted, description of the range, refused: True / removed with a warning)
_RULES = {
    "MXNET_OMP_MAX_THREADS": (lambda v: _int_in(v, 1, MAX_THREADS), "1..%d" % MAX_THREADS, True),
    "MXNET_CPU_WORKER_NTHREADS": (lambda v: _int_in(v, 1, MAX_WORKERS), "1..%d" % MAX_WORKERS,
                                  True),
    "MXNET_CPU_PRIORITY_NTHREADS": (lambda v: _int_in(v, 1, MAX_WORKERS), "1..%d" % MAX_WORKERS,
                                    True),
    "MXNET_ENGINE_TYPE": (lambda v: v in ENGINES, "one of " + ", ".join(ENGINES), True),
    "MKL_NUM_THREADS": (lambda v: _int_in(v, 1, MAX_THREADS), "1..%d" % MAX_THREADS, False),
    "OMP_WAIT_POLICY": (lambda v: v.strip().lower() in ("active", "passive"),
                        "active or passive", False),
    "GOMP_SPINCOUNT": (lambda v: bool(_SPIN.match(v)), "a whole number >= 0 or infinite", False),
}


def _int_in(text, low, high):
    text = text.strip()
    return bool(re.match(r"^[+-]?\d+$", text)) and low <= int(text) <= high


def _omp_num_threads(value):
    """``(refuse?, range)`` for an OMP_NUM_THREADS that is not 1..MAX_THREADS; None if fine.

    MXNet reads it as one whole number (it aborts on libgomp's nested list "1,2");
    libgomp itself ignores 0, negatives and an empty value."""
    if _int_in(value, 1, MAX_THREADS):
        return None
    ignored = value.strip() == "" or (re.match(r"^\s*[+-]?\d+\s*$", value) and int(value) <= 0)
    return (not ignored), "a whole number in 1..%d" % MAX_THREADS


def check_environment(environ=None, warn=None):
    """Refuse (UsageError) or remove (with one line to ``warn``) the thread and engine
    variables of ``environ`` (default ``os.environ``) that MXNet or libgomp would choke on.
    Call it before MXNet is imported; returns the names removed."""
    environ = os.environ if environ is None else environ
    warn = warn or (lambda line: print(line, file=sys.stderr))
    removed = []
    for name in ("OMP_NUM_THREADS",) + tuple(_RULES):
        if name not in environ:
            continue
        value = environ[name]
        if name == "OMP_NUM_THREADS":
            verdict = _omp_num_threads(value)
        else:
            accept, accepted, refuse = _RULES[name]
            verdict = None if accept(value) else (refuse, accepted)
        if verdict is None:
            continue
        refuse, accepted = verdict
        if refuse:
            raise UsageError("%s=%r: MXNet cannot start with it; set it to %s, or unset it"
                             % (name, value, accepted))
        del environ[name]
        removed.append(name)
        warn("warning: ignoring %s=%r (it must be %s; the OpenMP runtime would ignore it too)"
             % (name, value, accepted))
    return removed


def check_cpu_contexts(cpus):
    """UsageError for a ``--cpus`` count MXNet cannot start engine threads for."""
    if cpus is not None and cpus > MAX_CPU_CONTEXTS:
        raise UsageError("--cpus %d: at most %d CPU contexts (each starts its own engine "
                         "threads); use --cpus 1..%d" % (cpus, MAX_CPU_CONTEXTS,
                                                        MAX_CPU_CONTEXTS))

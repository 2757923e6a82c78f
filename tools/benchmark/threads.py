"""The thread matrix: epoch seconds of ``scripts/train.py`` under each thread policy.

For each net and each machine state, one short epoch (``--limit-train``) in a
fresh process per policy:

* ``1 thread``: ``OMP_NUM_THREADS=1``;
* ``N threads``: ``OMP_NUM_THREADS`` = the physical cores, libgomp's own waiting
  (``GOMP_SPINCOUNT=300000``, its default, given so that our policy leaves it);
* ``N threads, PASSIVE``: idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``);
* ``N threads, GOMP_SPINCOUNT=10000``: idle threads spin about 0.1 ms, then sleep;
* ``default``: no thread variable at all: what :func:`gluon_cnns.threads.configure`
  decides in ``scripts/train.py``.

*quiet*: nothing else of ours runs. *busy*: a second training (``--threads-competitor``,
N spinning threads, as someone else's job) runs in the background the whole time.
The policies' runs are interleaved (round 1: every policy, round 2: every policy,
..., each round starting one policy later), so that a change in the machine's
load hits them alike; each cell is the median of its rounds. Every run records
the load average and the thread count the run printed (``training on cpu(0), N
threads``).
"""
import os
import re
import signal
import subprocess
import sys
import time

from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.threads import (SET_VAR, SPIN_COUNT, USER_THREAD_VARS, USER_WAIT_VARS, available_cores,
                                threads_for, work_mflops)

from .argtypes import for_net
from .machine import load_average
from .timing import summarize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_SCRIPT = os.path.join(ROOT, "scripts", "train.py")
LIBGOMP_SPIN_COUNT = 300000  # libgomp's own default when neither variable is set
DEFAULT_CELL = "default"
# The default's epoch may be this much slower than the best cell of its row.
WITHIN_BEST = 1.15
# A conv-heavy net's default on a quiet machine, against all cores.
WITHIN_CORES = 1.10
MACHINES = ("quiet", "busy")
_THREADS_LINE = re.compile(r"^training on cpu\(0\), (\d+) threads?$", re.M)
_EPOCH_TIME = re.compile(r"^epoch 1, .* time (\d+\.\d) sec$", re.M)
# Every variable of a policy: removed from a run's environment before its cell's are set.
THREAD_VARS = USER_THREAD_VARS + USER_WAIT_VARS + ("MXNET_CPU_WORKER_NTHREADS",
                                                   "MXNET_USE_OPERATOR_TUNING", SET_VAR)


def thread_free_env(extra=None):
    """This process's environment without any thread variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(extra or {})
    return env


def policies(cores):
    """``[(label, variables)]`` of the matrix's columns for ``cores`` physical cores."""
    n = str(cores)
    return [("1 thread", {"OMP_NUM_THREADS": "1"}),
            ("%s threads" % n, {"OMP_NUM_THREADS": n, "GOMP_SPINCOUNT": str(LIBGOMP_SPIN_COUNT)}),
            ("%s threads, PASSIVE" % n, {"OMP_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"}),
            ("%s threads, GOMP_SPINCOUNT=%d" % (n, SPIN_COUNT),
             {"OMP_NUM_THREADS": n, "GOMP_SPINCOUNT": str(SPIN_COUNT)}),
            (DEFAULT_CELL, {})]


def _train_argv(name, limit, opts, epochs=1):
    argv = [sys.executable, TRAIN_SCRIPT, "--net", name, "--epochs", str(epochs),
            "--limit-train", str(limit), "--limit-test", "256", "--seed", "1", "--quiet"]
    return argv + (["--data-dir", opts.data_dir] if opts.data_dir else [])


def run_epoch(name, limit, variables, opts, attempts=3, pause=30.0):
    """One epoch of ``scripts/train.py`` under ``variables``: {seconds, threads, load}.

    A failed run is tried again after ``pause`` seconds, up to ``attempts`` runs in
    all: a matrix lasts half an hour, and the work tree may be mid-edit for a moment.
    """
    for attempt in range(attempts):
        proc = subprocess.run(_train_argv(name, limit, opts), env=thread_free_env(variables),
                              capture_output=True, text=True, check=False)
        seconds, threads = _EPOCH_TIME.search(proc.stdout), _THREADS_LINE.search(proc.stdout)
        if proc.returncode == 0 and seconds and threads:
            return {"seconds": float(seconds.group(1)), "threads": int(threads.group(1)),
                    "load": load_average()}
        if attempt + 1 < attempts:
            time.sleep(pause)
    tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines()
            or ["no output"])[-1]
    raise GluonCNNsError("thread matrix: scripts/train.py --net %s with %s failed %d times: %s"
                         % (name, variables or "no thread variable", attempts, tail))


def start_competitor(name, cores, opts):
    """A background training of ``name`` on ``cores`` spinning threads; returns once it trains."""
    variables = {"OMP_NUM_THREADS": str(cores), "GOMP_SPINCOUNT": str(LIBGOMP_SPIN_COUNT)}
    proc = subprocess.Popen(_train_argv(name, 1024, opts, epochs=100000),
                            env=thread_free_env(variables), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = proc.stdout.readline()  # "training on ..." once the data is in and MXNet runs
    if not line.startswith("training on"):
        stop_competitor(proc)
        raise GluonCNNsError("thread matrix: the competing training of %s did not start" % name)
    time.sleep(2)  # into its first batches: graph built, threads spinning
    return proc


def stop_competitor(proc):
    """End the competitor's process group (its pid is its group id) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc.stdout.close()


def _row(name, machine, runs, cores):
    """The matrix row of ``name`` on ``machine`` from its runs {label: [run, ...]}."""
    cells = {label: {"seconds": summarize([r["seconds"] for r in rs]),
                     "threads": sorted({r["threads"] for r in rs}),
                     "load": [r["load"] for r in rs]} for label, rs in runs.items()}
    best = min(cells, key=lambda label: cells[label]["seconds"]["median"])
    default = cells[DEFAULT_CELL]["seconds"]["median"]
    row = {"net": name, "machine": machine, "cells": cells, "best": best,
           "default_vs_best": default / cells[best]["seconds"]["median"]}
    row["met"] = row["default_vs_best"] <= WITHIN_BEST
    cores_cell = cells.get("%d threads" % cores)
    if cores_cell and cores > 1:
        row["default_vs_cores"] = default / cores_cell["seconds"]["median"]
    return row


def _measure_machine(names, machine, opts, cores, say, before_run):
    """The rows of one machine state: every net, every policy, interleaved over rounds."""
    cells = policies(cores)
    runs = {name: {label: [] for label, _ in cells} for name in names}
    for round_ in range(opts.threads_rounds):
        turn = round_ % len(cells)  # each round starts one policy later: no fixed order
        for name in names:
            limit = for_net(opts.threads_limit, name, 12800)
            for label, variables in cells[turn:] + cells[:turn]:
                say("thread matrix, %s, round %d: %s, %s" % (machine, round_ + 1, name, label))
                before_run()
                runs[name][label].append(run_epoch(name, limit, variables, opts))
    return [_row(name, machine, runs[name], cores) for name in names]


def bench_threads(names, opts, say=lambda *_: None):
    """The thread matrix of ``names`` on each of ``opts.threads_machine``: a report section."""
    cores = available_cores()
    rows = []
    for machine in opts.threads_machine:
        competitor = []  # the running competitor, started again should it end

        def keep_busy():
            if machine == "busy" and (not competitor or competitor[0].poll() is not None):
                say("thread matrix: starting the competing training (%s)"
                    % opts.threads_competitor)
                if competitor:
                    stop_competitor(competitor.pop())
                competitor.append(start_competitor(opts.threads_competitor, cores, opts))
        try:
            rows += _measure_machine(names, machine, opts, cores, say, keep_busy)
        finally:
            if competitor:
                stop_competitor(competitor.pop())
    return {"cores": cores, "competitor": opts.threads_competitor, "rounds": opts.threads_rounds,
            "limits": {name: for_net(opts.threads_limit, name, 12800) for name in names},
            "policies": [label for label, _ in policies(cores)],
            "policy_variables": dict(policies(cores)), "rows": rows}


def thread_targets(section):
    """Target rows of the matrix: default within 15% of each row's best cell, and a
    conv-heavy net's (one the policy gives every core) quiet default within 10% of all
    cores."""
    rows = []
    for r in (section or {}).get("rows", []):
        rows.append({"what": "threads: %s %s, default vs best cell (%s)"
                             % (r["net"], r["machine"], r["best"]),
                     "wanted": "<= %.2fx the best's seconds" % WITHIN_BEST,
                     "measured": r["default_vs_best"], "met": r["met"]})
        heavy = threads_for(2, work_mflops(r["net"])) > 1
        if heavy and r["machine"] == "quiet" and "default_vs_cores" in r:
            rows.append({"what": "threads: %s quiet, default vs all cores" % r["net"],
                         "wanted": "<= %.2fx the seconds" % WITHIN_CORES,
                         "measured": r["default_vs_cores"],
                         "met": r["default_vs_cores"] <= WITHIN_CORES})
    return rows

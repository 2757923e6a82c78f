"""What TensorBoard logging costs a training run (the figures in docs/TENSORBOARD.md).

    OMP_NUM_THREADS=1 python tools/tboard_overhead.py --pairs 5 --limit-train 60000

Two measurements of ``scripts/train.py --net lenet_bn`` (2 epochs, with a --save-dir):

* alternated whole runs with and without ``--no-tensorboard``, each in a fresh process:
  wall and process CPU seconds of ``main()``;
* one run that times the board's own methods (main-thread CPU, ``time.thread_time``)
  against the process CPU of the whole ``fit()``: on a machine shared with other jobs
  this share is steadier than the difference of two noisy totals.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _argv(save_dir, limit, board):
    argv = ["--net", "lenet_bn", "--limit-train", str(limit), "--limit-test", "2048",
            "--epochs", "2", "--seed", "1", "--quiet", "--save-dir", save_dir]
    return argv if board else argv + ["--no-tensorboard"]


def one_run(save_dir, limit, board):
    """Wall and CPU seconds of main() in this process (MXNet imported before the clock)."""
    import resource
    import mxnet  # noqa: F401
    from gluon_cnns.cli.train import main

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    wall, start = time.perf_counter(), cpu()
    assert main(_argv(save_dir, limit, board)) == 0
    return {"wall": time.perf_counter() - wall, "cpu": cpu() - start}


def board_share(save_dir, limit):
    """Main-thread CPU seconds inside the board, and the process CPU of fit()."""
    from gluon_cnns.cli.train import main
    from gluon_cnns.training import fit as fit_module, tboard
    spent = {"board": 0.0}

    def timed(method):
        def call(*args, **kwargs):
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent["board"] += time.thread_time() - start
        return call
    for name in ("__init__", "on_batch", "__call__", "add_graph", "keep_test_images", "close"):
        setattr(tboard.Board, name, timed(getattr(tboard.Board, name)))
    fit = fit_module.fit

    def timed_fit(*args, **kwargs):
        start = time.process_time()
        try:
            return fit(*args, **kwargs)
        finally:
            spent["fit"] = time.process_time() - start
    fit_module.fit = timed_fit
    assert main(_argv(save_dir, limit, True)) == 0
    return dict(spent, share=spent["board"] / spent["fit"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--limit-train", type=int, default=60000)
    parser.add_argument("--child", choices=("on", "off", "share"), help=argparse.SUPPRESS)
    parser.add_argument("--save-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = (board_share(args.save_dir, args.limit_train) if args.child == "share" else
                  one_run(args.save_dir, args.limit_train, args.child == "on"))
        print(json.dumps(result))
        return 0
    runs = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        def child(mode, i):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--limit-train",
                                  str(args.limit_train), "--save-dir",
                                  os.path.join(tmp, "%s%d" % (mode, i))],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            return json.loads(out.stdout.strip().splitlines()[-1])
        for i in range(args.pairs):
            for mode in ("on", "off"):
                runs[mode].append(child(mode, i))
        share = child("share", 0)
    for key in ("wall", "cpu"):
        on, off = [r[key] for r in runs["on"]], [r[key] for r in runs["off"]]
        print("%s s: with %s, without %s; medians %.2f / %.2f (%+.1f%%)" % (
            key, " ".join("%.2f" % v for v in on), " ".join("%.2f" % v for v in off),
            statistics.median(on), statistics.median(off),
            100 * (statistics.median(on) / statistics.median(off) - 1)))
    print("the board's own work: %.3f s of the run's %.2f CPU s (%.2f%%)"
          % (share["board"], share["fit"], 100 * share["share"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

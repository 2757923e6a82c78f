#!/usr/bin/env python
"""``scripts/train.py`` that kills itself (SIGKILL) at a chosen moment, for tests/test_resume.py.

    python tests/kill_run.py batch:E:B ARGS...   # after batch B of epoch E (and its save, if due)
    python tests/kill_run.py write:N ARGS...     # inside the Nth checkpoint file write (its
                                                 # files, its entry, checkpoint.json): the
                                                 # temporary file half written, not renamed

SIGKILL gives the process no chance to clean up, as a power cut or the OOM killer would;
choosing the moment from inside makes it exact instead of a race against the clock.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gluon_cnns.artifacts.rundir as rundir  # noqa: E402
import gluon_cnns.training.saver as saver  # noqa: E402
from gluon_cnns.cli.train import main  # noqa: E402


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_batch(epoch, batch):
    on_batch = saver.Checkpointer.on_batch

    def patched(self, progress):
        on_batch(self, progress)
        if (progress.epoch, progress.batch) == (epoch, batch):
            die()
    saver.Checkpointer.on_batch = patched


def kill_in_write(nth):
    atomic_write, calls = rundir.atomic_write, [0]

    def patched(path, write_fn):
        name = os.path.basename(path)
        calls[0] += name.startswith("epoch-") or name == rundir.CHECKPOINT
        if calls[0] != nth:
            return atomic_write(path, write_fn)

        def torn(tmp):
            write_fn(tmp)
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            die()
        return atomic_write(path, torn)
    rundir.atomic_write = patched


if __name__ == "__main__":
    kind, *where = sys.argv[1].split(":")
    {"batch": kill_after_batch, "write": kill_in_write}[kind](*map(int, where))
    sys.exit(main(sys.argv[2:]))

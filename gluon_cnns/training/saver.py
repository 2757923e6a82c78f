"""When a run is saved: after every epoch, every K batches, and on Ctrl-C."""
import contextlib
import signal
import threading
import time

from ..artifacts.rundir import describe


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, after a checkpoint was saved; the message says where and how to
    go on, ``signum`` which signal it was."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class Checkpointer:
    """Saves the run to a :class:`RunDir`: after every epoch (as ``train``'s callback), and
    every ``every`` batches and on Ctrl-C (``on_batch``, ``train``'s batch_callback).

    Write order makes a kill at any point recoverable: the new checkpoint's
    files, best.params and the log line first, then the entry and the index, and
    only then are the files that it no longer names deleted. Two checkpoints at
    most: a 200-epoch run of a large net would otherwise fill the disk. Each
    entry carries the log records up to it, from which a damaged log is rebuilt.
    """

    def __init__(self, run_dir, net, trainer, train_iter, history, best=None, current=None,
                 every=None, ctrl_c=None, last_epoch=None, resume_command=None, ema=None):
        self.run_dir, self.net, self.trainer, self.train_iter = run_dir, net, trainer, train_iter
        self.history = history  # log records so far, including earlier runs
        self.best = best or {"test_acc": -1.0, "epoch": None, "sha256": None}
        self.current = current  # the entry of the newest checkpoint (resumed from)
        self.resumed = current is not None
        # Where this process took over, for the first record it writes (see _conditions).
        self.resumed_from = self._position(current)
        self.batches_run = 0  # batches this process trained in the epoch in progress
        self.every = every      # also save every this many batches
        self.ctrl_c = ctrl_c    # a CtrlC: save and stop once it was pressed
        self.last_epoch = last_epoch
        self.resume_command = resume_command  # what to run to continue, for the Ctrl-C line
        # A WeightEMA (training/tricks.py): each checkpoint keeps it, best.params is it.
        self.ema = ema

    def __call__(self, record):
        """After an epoch: checkpoint, best.params, log and curves."""
        epoch = record["epoch"]
        entry = self.run_dir.write_checkpoint(epoch, 0, self.net, self.trainer, self.train_iter,
                                              self.ema)
        if record["test_acc"] > self.best["test_acc"]:
            with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
                sha256 = self.run_dir.save_best(self.net)
            self.best = {"test_acc": record["test_acc"], "epoch": epoch, "sha256": sha256}
        self.history.append(dict(
            {k: record[k] for k in ("epoch", "loss", "train_acc", "test_acc", "time", "cpu_time",
                                    "images_per_sec", "lr", "nan_skips") if k in record},
            **self._conditions()))
        self.run_dir.append_log(self.history[-1])
        self.resumed_from, self.batches_run = None, 0
        self._switch(entry)
        self.run_dir.save_curves(self.history)
        if epoch != self.last_epoch:
            self._stop_if_interrupted()

    def on_batch(self, progress):
        """After a batch: a checkpoint when one is due, or when Ctrl-C was pressed."""
        self.batches_run += 1
        stop = self.ctrl_c is not None and self.ctrl_c.requested
        due = (self.every and progress.batch % self.every == 0
               and progress.batch != progress.num_batches)  # the epoch's end saves anyway
        if not (due or stop):  # each call is a newly trained batch: never a saved position
            return
        snapshot = progress.snapshot()  # first: raises if a batch was not finite
        entry = self.run_dir.write_checkpoint(progress.epoch - 1, progress.batch, self.net,
                                              self.trainer, self.train_iter, self.ema)
        entry["progress"] = dict(snapshot, threads=self._epoch_threads())
        self._switch(entry)
        self._stop_if_interrupted()

    def _conditions(self):
        """How the epoch ran, for the log: OpenMP threads (this process's, and every count
        that ran a part of the epoch), the process's peak memory so far, and whether
        this process resumed the run from a checkpoint; in the first record after a
        resume, from which one (``resumed_from``: its epochs done, its batch within the
        next epoch, and the batches this process then trained to finish that epoch)."""
        import resource
        from ..threads import effective_threads
        conditions = {"threads": effective_threads(), "epoch_threads": self._epoch_threads(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "resumed": self.resumed, "date": time.strftime("%Y-%m-%d %H:%M")}
        if self.resumed_from is not None:
            epoch, batch = self.resumed_from
            conditions["resumed_from"] = {"epoch": epoch, "batch": batch,
                                          "batches_run": self.batches_run}
        return conditions

    def _epoch_threads(self):
        """The thread counts of the epoch in progress: this process's, and those the
        checkpoint it goes on from carries, if that one was taken inside the epoch (a
        process stopped mid-epoch writes no log record of its own)."""
        from ..threads import effective_threads
        progress = (self.current or {}).get("progress") or {}
        return sorted(set(progress.get("threads", [])) | {effective_threads()})

    @staticmethod
    def _position(entry):
        return None if entry is None else (entry["epoch"], entry.get("batch", 0))

    def _switch(self, entry):
        """Make ``entry`` the newest checkpoint, the current one the one before it."""
        entry.update(best_test_acc=self.best["test_acc"], best_epoch=self.best["epoch"],
                     best_sha256=self.best["sha256"], records=list(self.history))
        self.run_dir.switch(entry, self.current)
        self.current = entry

    def _stop_if_interrupted(self):
        if self.ctrl_c is not None and self.ctrl_c.requested:
            raise TrainingInterrupted(
                "saved a checkpoint at %s in %s; continue with: %s"
                % (describe(self.current), self.run_dir, self.resume_command),
                self.ctrl_c.signum)


class CtrlC:
    """While training with a run folder: the first Ctrl-C -- or SIGTERM, which batch
    schedulers send before they kill -- asks for a checkpoint at the end of the batch
    in flight and a clean stop; a second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

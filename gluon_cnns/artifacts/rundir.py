"""The run folder (``--save-dir``): the one place that knows its files and their format.

    config.json       the run's settings (flags merged with the recipe), the seed included
    checkpoint.json   the index: the newest checkpoint and the one before it (below)
    log.jsonl         one JSON record per finished epoch: its figures, and how it ran
                      (threads; epoch_threads, every count that ran a part of it)
    best.params       the parameters of the epoch with the best test accuracy
    curves.png        loss and accuracy per epoch
    .lock             held (fcntl.flock) by the one process that owns the folder
    .gluon_cnns       the marker that a run made the folder (gluon_cnns.ownership; an
                      unmarked one is recognised by artifacts.run_files)

A checkpoint is a *position* in training -- ``epoch`` epochs done and ``batch``
batches of the next one -- and three files named after it (STEM is
``epoch-0002`` at the end of epoch 2, ``epoch-0003-batch-000017`` 17 batches
into epoch 3): ``STEM.params`` (``net.save_parameters``), ``STEM.states``
(``trainer.save_states``: momentum or Adam moments, update counts, the
learning-rate schedule) and ``STEM.rng.npz`` (``artifacts.state``); with ``--ema``, a fourth,
``STEM.ema.params``, the weight average in the net's format (``training.tricks.WeightEMA``).

An *entry* (a dict) describes one checkpoint: its position, its file names,
the SHA-256 of each file (best.params' too) and the log records up to it.
Every file is written atomically (temporary file, fsync, rename) and hashed as
it is on disk. The entry is written beside its files as ``STEM.json`` and then
into the index, so a kill at any moment -- or a full disk -- leaves the last
complete checkpoint in place, and one whose index write failed is adopted by
the next ``--resume``; only then are the files no entry names deleted. The log
is appended to, one line per epoch, and checked against the index on resume: a
log that disagrees is kept aside and written again from the index.
"""
import errno
import json
import os
import stat

import numpy as np

from ..errors import CheckpointError, GluonCNNsError, error_line
from ..io import (LockHeld, NotRegularFile, atomic_write, path_kind, read_json, read_jsonl,
                  release_lock, take_lock, write_json, write_jsonl)
from ..ownership import claim
from .run_files import (_EPOCH_PARAMS, _OURS, _TEMPORARY, BEST, CHECKPOINT, CONFIG,  # noqa: F401
                        CURVES, LOCK, LOG, is_run_folder)
from .records import OPTIONAL_FILES, config_problem, entry_problem, record_problem
from .state import (capture_random_state, check_trainer_states, restore_random_state, save_npz,
                    sha256_file)

INDEX_FORMAT = 2
# (key in an entry, suffix of the file)
FILES = (("params", ".params"), ("trainer", ".states"), ("rng", ".rng.npz"),
         ("ema", ".ema.params"))


def stem(epoch, batch):
    """The file name stem of the checkpoint ``batch`` batches after ``epoch`` epochs."""
    if batch:
        return "epoch-%04d-batch-%06d" % (epoch + 1, batch)
    return "epoch-%04d" % epoch


def describe(entry):
    """The position of an entry in words: "epoch 2" or "epoch 3 batch 17"."""
    if entry.get("batch"):
        return "epoch %d batch %d" % (entry["epoch"] + 1, entry["batch"])
    return "epoch %d" % entry["epoch"]


def write_checkpoint(save_dir, epoch, batch, net, trainer, data_iter=None, ema=None):
    """Write the files of the checkpoint at (epoch, batch); return its entry."""
    name = stem(epoch, batch)
    entry = {"epoch": epoch, "batch": batch, "sha256": {}}
    writers = {"params": net.save_parameters, "trainer": trainer.save_states,
               "rng": lambda tmp: save_npz(tmp, capture_random_state(data_iter)),
               "ema": ema and ema.save}
    for key, suffix in FILES:
        if writers[key] is None:
            continue
        entry[key] = name + suffix
        path = _write(os.path.join(save_dir, entry[key]), writers[key])
        entry["sha256"][entry[key]] = sha256_file(path)  # the bytes on disk
    return entry


def _write(path, write_fn):
    """``atomic_write``, with MXNet's write errors (a full disk: "FileStream.Write
    incomplete") as one-line CheckpointErrors; the file is left as it was."""
    try:
        return atomic_write(path, write_fn)
    except OSError as err:
        raise CheckpointError("cannot write %s: %s; free some space or choose another "
                              "--save-dir" % (path, err.strerror or err)) from None
    except Exception as err:  # MXNetError
        if "MXNetError" not in type(err).__name__:
            raise
        raise CheckpointError("cannot write %s (%s); free some space or choose another "
                              "--save-dir" % (path, error_line(err))) from None


def verify(save_dir, entry):
    """Raise CheckpointError unless every file of ``entry`` exists with its recorded SHA-256."""
    problem = entry_problem(entry, [key for key, _ in FILES])
    if problem:
        raise CheckpointError("its index entry is malformed: %s" % problem)
    for key, _ in FILES:
        name = entry.get(key)
        if name is None:
            if key in OPTIONAL_FILES:
                continue
            raise CheckpointError("no %r file named" % key)
        path = os.path.join(save_dir, name)
        if not os.path.isfile(path):
            kind = path_kind(path)
            raise CheckpointError("%s is %s" % (name, kind and kind + ", not a file" or "missing"))
        expected = entry.get("sha256", {}).get(name)
        if expected is not None and sha256_file(path) != expected:
            raise CheckpointError("%s is damaged (its SHA-256 does not match the one recorded "
                                  "when it was written)" % name)


def restore(save_dir, entry, net, trainer, ctx=None, data_iter=None, ema=None):
    """Check ``entry``'s files, then load them into the net, the trainer, the generators,
    ``data_iter`` (whose next pass continues at the checkpoint's batch) and ``ema``."""
    verify(save_dir, entry)
    if ema is not None and not entry.get("ema"):
        raise CheckpointError("%s keeps no .ema.params; the run uses --ema" % describe(entry))
    # Before the trainer unpickles it: a file whose checksum was forged along with it
    # must not run code.
    check_trainer_states(os.path.join(save_dir, entry["trainer"]))
    try:
        if ema is not None:  # through the net: before the net's own weights
            ema.load(os.path.join(save_dir, entry["ema"]), ctx=ctx)
        net.load_parameters(os.path.join(save_dir, entry["params"]), ctx=ctx)
        trainer.load_states(os.path.join(save_dir, entry["trainer"]))
        if entry.get("rng"):
            with np.load(os.path.join(save_dir, entry["rng"]), allow_pickle=False) as arrays:
                restore_random_state(dict(arrays), entry.get("batch", 0), data_iter)
    except GluonCNNsError:
        raise
    except Exception as err:  # MXNetError, AssertionError, pickle errors...: all mean "unusable"
        raise CheckpointError("cannot load %s (%s)" % (describe(entry), error_line(err))) \
            from None


def remove_unreferenced(save_dir, entries):
    """Delete checkpoint files (and temporary files left by a kill) that no entry names."""
    keep = {entry[key] for entry in entries if entry for key, _ in FILES if entry.get(key)}
    for name in os.listdir(save_dir):
        if name not in keep and (_OURS.match(name) or _TEMPORARY.match(name)):
            try:
                os.remove(os.path.join(save_dir, name))
            except OSError:
                pass  # another process removed it, or a folder: not ours to fight over


def _index_trouble(path, index, entry):
    """Why the checkpoint index ``index`` (at ``path``) does not name ``entry``."""
    problem = index is not None and entry_problem(index, [key for key, _ in FILES])
    if problem:
        return "%s is malformed (%s)" % (path, problem)
    return ("the index of %s does not name the checkpoint at %s (its write failed)"
            % (os.path.dirname(path), describe(entry)))


class RunDir:
    """A training run's folder: its settings, log, checkpoints, best parameters and plot."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    def __str__(self):
        return self.path

    # ------------------------------------------------------------ settings

    def create(self, resume):
        """Create the folder and lock it (:meth:`lock`); refuse to overwrite someone's
        checkpoint without ``resume``."""
        try:
            claim(self.path, "--save-dir", "run", recognise=is_run_folder)
        except OSError as e:
            raise CheckpointError("cannot create --save-dir %s: %s; choose a writable folder"
                                  % (self.path, e.strerror or e))
        self.lock()  # a folder in use is refused naming its holder
        if not resume and os.path.exists(self.file(CHECKPOINT)):
            self.unlock()
            raise CheckpointError("%s already holds a checkpoint; add --resume to continue it "
                                  "or choose another --save-dir" % self.path)

    def write_config(self, config):
        _write(self.file(CONFIG), lambda tmp: write_json(tmp, config))

    def has_config(self):
        return os.path.exists(self.file(CONFIG))

    def read_config(self):
        """The run's config.json, checked to name a net; CheckpointError if it cannot be read."""
        if not os.path.isdir(self.path):
            raise CheckpointError("%s: no such folder; pass the --save-dir of a training run"
                                  % self.path)
        try:
            config = read_json(self.file(CONFIG))
        except FileNotFoundError:
            raise CheckpointError("%s has no %s; is it the --save-dir of a training run?"
                                  % (self.path, CONFIG)) from None
        except (OSError, ValueError) as err:
            raise CheckpointError("%s: unreadable (%s)" % (self.file(CONFIG), error_line(err))) \
                from None
        if not isinstance(config, dict) or not isinstance(config.get("net"), str):
            raise CheckpointError("%s does not name the trained net (no \"net\" entry)"
                                  % self.file(CONFIG))
        problem = config_problem(config)
        if problem:
            raise CheckpointError("%s is damaged: %s" % (self.file(CONFIG), problem))
        return config

    def lock(self):
        """Own the folder while this process lives: an exclusive ``flock`` on .lock, which
        the OS releases when the process ends, however it ends (kill -9 included).

        A second run on the folder gets CheckpointError naming the holder's pid.
        .lock is removed on :meth:`unlock`; one left by a killed run is simply taken over.
        """
        try:
            fd = take_lock(self.file(LOCK))
        except LockHeld as held:
            raise CheckpointError("%s is in use by another training run (pid %s); wait for it "
                                  "to end or choose another --save-dir"
                                  % (self.path, held.holder)) from None
        except NotRegularFile as e:
            raise CheckpointError("cannot lock %s (%s); remove it" % (self.file(LOCK),
                                                                   error_line(e))) from None
        except OSError as e:  # a read-only folder or file system
            raise CheckpointError("cannot lock %s: %s; a run needs a writable --save-dir: copy "
                                  "the folder to one and continue there" % (
                                      self.file(LOCK), e.strerror or e)) from None
        self._lock_fd = fd  # kept open: closing it would release the lock

    def unlock(self):
        """Give the folder up (a process that ends gives it up anyway)."""
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            release_lock(self.file(LOCK), fd)

    # ------------------------------------------------------------ log, best, curves

    def read_log(self):
        """The log's records, or None if it is missing or damaged (a torn line, a bad record)."""
        try:
            records = read_jsonl(self.file(LOG))
        except (OSError, ValueError):
            return None
        return records if all(record_problem(r) is None for r in records) else None

    def index_records(self):
        """The epoch records the checkpoint index keeps (what the log held at its last
        checkpoint), or None if there is no usable index."""
        try:
            index = read_json(self.file(CHECKPOINT))
        except (OSError, ValueError):
            return None
        if not isinstance(index, dict) or entry_problem(index, ()) is not None:
            return None
        return index.get("records")

    def append_log(self, record):
        """Add one epoch's record to the log: appended and flushed to disk, never rewritten."""
        line = json.dumps(record, sort_keys=True) + "\n"

        def append():
            # Not through a symbolic link (O_NOFOLLOW), nor blocking on a pipe (O_NONBLOCK).
            fd = os.open(self.file(LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_NONBLOCK, 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, "not a regular file")
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        try:
            append()
        except OSError as err:
            raise CheckpointError("cannot write %s: %s; free some space or choose another "
                                  "--save-dir" % (self.file(LOG), err.strerror or err)) from None

    def reconcile_log(self, records, warn):
        """Make the log hold exactly ``records`` (the index's, up to the checkpoint resumed).

        A log that holds something else is kept aside as log.jsonl.N and written
        again from the index: quietly when it only ran ahead of the checkpoint (a
        crash after an epoch's log line, or a fallback to an older checkpoint: those
        epochs are trained again), with one line to ``warn`` when it was truncated
        or edited.
        """
        log = self.read_log()
        if log == records:
            return
        if os.path.exists(self.file(LOG)):
            aside = next(self.file("%s.%d" % (LOG, n)) for n in range(1, 10 ** 6)
                         if not os.path.exists(self.file("%s.%d" % (LOG, n))))
            os.replace(self.file(LOG), aside)
            if log is None or log[:len(records)] != records:
                warn("warning: %s did not match the checkpoint's records; kept it as %s and "
                     "wrote it again from checkpoint.json" % (self.file(LOG), aside))
        _write(self.file(LOG), lambda tmp: write_jsonl(tmp, records))

    def save_best(self, net):
        """Write best.params; returns its SHA-256, for the index."""
        return sha256_file(_write(self.file(BEST), net.save_parameters))

    def best_is_intact(self, entry):
        """Whether best.params is there with the SHA-256 ``entry`` recorded for it."""
        expected = entry.get("best_sha256")
        return (os.path.isfile(self.file(BEST)) and
                (expected is None or sha256_file(self.file(BEST)) == expected))

    def intact_best(self, entry):
        """The best epoch (test_acc, epoch, sha256) of ``entry`` -- or of the index, when
        a fallback to an older checkpoint left best.params from a later epoch -- whose
        best.params is intact; None if there is none."""
        try:
            index = read_json(self.file(CHECKPOINT))
        except (OSError, ValueError):
            index = None
        for e in (entry, index):
            if isinstance(e, dict) and e.get("best_epoch") is not None and self.best_is_intact(e):
                return {"test_acc": e.get("best_test_acc", -1.0), "epoch": e["best_epoch"],
                        "sha256": e.get("best_sha256")}
        return None

    def trained_params(self):
        """best.params if the run saved one (checked against the index), else its newest
        epoch-NNNN.params (with --ema, its epoch-NNNN.ema.params: the run's weights)."""
        if os.path.isfile(self.file(BEST)):
            try:
                index = read_json(self.file(CHECKPOINT))
            except (OSError, ValueError):
                index = {}
            if isinstance(index, dict) and not self.best_is_intact(index):
                raise CheckpointError("%s is damaged (its SHA-256 does not match the one in %s); "
                                      "continue the run with --resume to write it again"
                                      % (self.file(BEST), CHECKPOINT))
            return self.file(BEST)
        epochs = [(int(m.group(1)), name) for name in os.listdir(self.path)
                  for m in [_EPOCH_PARAMS.match(name)] if m]
        if not epochs:
            raise CheckpointError("%s has no %s and no epoch-NNNN.params; train at least one "
                                  "epoch with --save-dir %s" % (self.path, BEST, self.path))
        newest = self.file(max(epochs)[1])
        average = newest[:-len("params")] + "ema.params"
        return average if os.path.isfile(average) else newest

    def save_curves(self, history):
        """Plot loss and train/test accuracy per epoch to curves.png (atomically)."""
        # The object-oriented API with the Agg canvas: no pyplot, so importing this
        # never changes the backend of a notebook that uses the package.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
        epochs = [r["epoch"] for r in history]
        fig = Figure(figsize=(9, 3.5))
        FigureCanvasAgg(fig)
        ax_loss, ax_acc = fig.subplots(1, 2)
        ax_loss.plot(epochs, [r["loss"] for r in history], "o-", label="train loss")
        ax_acc.plot(epochs, [r["train_acc"] for r in history], "o-", label="train acc")
        ax_acc.plot(epochs, [r["test_acc"] for r in history], "s--", label="test acc")
        for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.5"
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        atomic_write(self.file(CURVES), lambda tmp: fig.savefig(tmp, format="png", dpi=100))

    # ------------------------------------------------------------ checkpoints

    def write_checkpoint(self, epoch, batch, net, trainer, data_iter=None, ema=None):
        return write_checkpoint(self.path, epoch, batch, net, trainer, data_iter, ema)

    def restore(self, entry, net, trainer, ctx=None, data_iter=None, ema=None):
        restore(self.path, entry, net, trainer, ctx, data_iter, ema)

    def switch(self, entry, previous):
        """Make ``entry`` the newest checkpoint and ``previous`` the one before it; then
        delete the checkpoint files neither names."""
        previous = previous and {k: v for k, v in previous.items()
                                 if k not in ("previous", "format", "best_params", "log")}
        # Beside its files first: if the index cannot be written, --resume adopts it.
        _write(self.file(stem(entry["epoch"], entry["batch"]) + ".json"),
               lambda tmp: write_json(tmp, entry))
        _write(self.file(CHECKPOINT), lambda tmp: write_json(tmp, dict(
            entry, format=INDEX_FORMAT, best_params=BEST, log=LOG, previous=previous)))
        remove_unreferenced(self.path, [entry, previous])

    def _candidates(self):
        """Checkpoint entries to resume from, newest first: the index's two, and any
        newer one whose entry file exists but whose index write did not happen."""
        try:
            index = read_json(self.file(CHECKPOINT))
        except FileNotFoundError:
            index = None
        except (OSError, ValueError) as e:
            raise CheckpointError("--resume: the checkpoint index in %s is corrupt (%s); start "
                                  "a new --save-dir" % (self.path, error_line(e)))
        entries = [] if index is None else [index, index.get("previous")]
        for name in os.listdir(self.path):
            if _OURS.match(name) and name.endswith(".json"):
                try:
                    entries.append(read_json(self.file(name)))
                except (OSError, ValueError):
                    pass  # a torn entry file: not a candidate
        entries = [e for e in entries if entry_problem(e, [k for k, _ in FILES]) is None
                   or e is index]
        entries.sort(key=lambda e: (e.get("epoch", -1), e.get("batch", 0))
                     if isinstance(e, dict) and not isinstance(e.get("epoch"), bool)
                     and isinstance(e.get("epoch"), int) else (-1, 0), reverse=True)
        return index, entries

    def load_checkpoint(self, warn):
        """``(config, entry)``: config.json and the newest usable checkpoint entry.

        One whose files are missing or fail their SHA-256 check is passed over for
        the one before, with one line to ``warn``; so is a malformed index entry.
        """
        if not os.path.isdir(self.path):
            raise CheckpointError("--resume: %s: no such folder; pass the --save-dir of the run "
                                  "to continue" % self.path)
        index, entries = self._candidates()
        if index is None and not entries:
            raise CheckpointError("--resume: no checkpoint in %s (no %s); train without "
                                  "--resume first" % (self.path, CHECKPOINT))
        config = self.read_config()
        damage = None
        for entry in entries:
            try:
                verify(self.path, entry)
            except CheckpointError as e:
                where = describe(entry) if entry_problem(entry, ()) is None else "the index"
                damage = damage and damage + ", and so is the one before it" or (
                    "the checkpoint at %s in %s is damaged: %s" % (where, self.path,
                                                                   error_line(e)))
                continue
            if damage:
                warn("warning: %s; resuming from the one before it, at %s"
                     % (damage, describe(entry)))
            elif entry is not index:
                warn("warning: %s; resuming from the checkpoint at %s"
                     % (_index_trouble(self.file(CHECKPOINT), index, entry), describe(entry)))
            return config, entry
        raise CheckpointError("--resume: %s; start a new --save-dir"
                              % (damage or "no usable checkpoint in %s" % self.path))

"""The run folder (``--save-dir``): the one place that knows its files and their format.

    config.json       the run's settings (flags merged with the recipe), the seed included
    checkpoint.json   the index: the newest checkpoint and the one before it (below)
    log.jsonl         one JSON record per finished epoch
    best.params       the parameters of the epoch with the best test accuracy
    curves.png        loss and accuracy per epoch
    .lock             held (fcntl.flock) by the one process that owns the folder

A checkpoint is a *position* in training -- ``epoch`` epochs done and ``batch``
batches of the next one -- and three files named after it (STEM is
``epoch-0002`` at the end of epoch 2, ``epoch-0003-batch-000017`` 17 batches
into epoch 3): ``STEM.params`` (``net.save_parameters``), ``STEM.states``
(``trainer.save_states``: momentum or Adam moments, update counts, the
learning-rate schedule) and ``STEM.rng.npz`` (``training.state``).

An *entry* (a dict) describes one checkpoint: its position, its file names and
the SHA-256 of each file. Every file is written atomically (temporary file,
fsync, rename) and hashed as it is on disk; the index is written last, so a
kill at any moment leaves the last complete checkpoint in place, and only
then are the files it no longer names deleted.
"""
import os
import re

import numpy as np

from ..errors import CheckpointError, GluonCNNsError, error_line
from ..io import atomic_write, read_json, read_jsonl, write_json, write_jsonl
from .state import capture_random_state, restore_random_state, save_npz, sha256_file

CONFIG, CHECKPOINT, LOG, BEST, CURVES, LOCK = ("config.json", "checkpoint.json", "log.jsonl",
                                               "best.params", "curves.png", ".lock")
INDEX_FORMAT = 2
# (key in an entry, suffix of the file)
FILES = (("params", ".params"), ("trainer", ".states"), ("rng", ".rng.npz"))
# The checkpoint files: what remove_unreferenced may delete.
_OURS = re.compile(r"^epoch-\d{4,}(-batch-\d{6,})?(\.params|\.states|\.rng\.npz)$")
_EPOCH_PARAMS = re.compile(r"^epoch-(\d+)\.params$")
# What atomic_write leaves behind when a run is killed: ".NAME.RANDOM.tmp".
_TEMPORARY = re.compile(r"^\.(epoch-\d{4,}\S*|%s)\.[^.]+\.tmp$"
                        % "|".join(re.escape(n) for n in (CHECKPOINT, CONFIG, LOG, BEST, CURVES)))


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


def write_checkpoint(save_dir, epoch, batch, net, trainer, data_iter=None):
    """Write the three files of the checkpoint at (epoch, batch); return its entry."""
    name = stem(epoch, batch)
    entry = {"epoch": epoch, "batch": batch, "sha256": {}}
    writers = {"params": net.save_parameters, "trainer": trainer.save_states,
               "rng": lambda tmp: save_npz(tmp, capture_random_state(data_iter))}
    for key, suffix in FILES:
        entry[key] = name + suffix
        path = atomic_write(os.path.join(save_dir, entry[key]), writers[key])
        entry["sha256"][entry[key]] = sha256_file(path)  # the bytes on disk
    return entry


def verify(save_dir, entry):
    """Raise CheckpointError unless every file of ``entry`` exists with its recorded SHA-256."""
    for key, _ in FILES:
        name = entry.get(key)
        if name is None:
            if key == "rng":
                continue  # an index without one: resumable, not exactly
            raise CheckpointError("no %r file named" % key)
        path = os.path.join(save_dir, name)
        if not os.path.isfile(path):
            raise CheckpointError("%s is missing" % name)
        expected = entry.get("sha256", {}).get(name)
        if expected is not None and sha256_file(path) != expected:
            raise CheckpointError("%s is damaged (its SHA-256 does not match the one recorded "
                                  "when it was written)" % name)


def restore(save_dir, entry, net, trainer, ctx=None, data_iter=None):
    """Check ``entry``'s files, then load them into the net, the trainer, the generators
    and ``data_iter`` (whose next pass continues at the checkpoint's batch)."""
    verify(save_dir, entry)
    try:
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
        """Create the folder; refuse to overwrite someone's checkpoint without ``resume``."""
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise CheckpointError("cannot create --save-dir %s: %s; choose a writable folder"
                                  % (self.path, e.strerror or e))
        if not resume and os.path.exists(self.file(CHECKPOINT)):
            raise CheckpointError("%s already holds a checkpoint; add --resume to continue it "
                                  "or choose another --save-dir" % self.path)

    def write_config(self, config):
        try:
            write_json(self.file(CONFIG), config)
        except OSError as e:
            raise CheckpointError("cannot write to --save-dir %s: %s; choose a writable folder"
                                  % (self.path, e.strerror or e))

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
        return config

    def lock(self):
        """Own the folder while this process lives: an exclusive ``flock`` on .lock, which
        the OS releases when the process ends, however it ends (kill -9 included).

        A second run on the folder gets CheckpointError naming the holder's pid.
        .lock is removed on :meth:`unlock`; one left by a killed run is simply taken over.
        """
        import fcntl
        while True:
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise CheckpointError("%s is in use by another training run (pid %s); wait for "
                                      "it to end or choose another --save-dir"
                                      % (self.path, holder)) from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.file(LOCK)).st_ino:
                    break  # else the holder removed the file while we waited: try again
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._lock_fd = fd  # kept open: closing it would release the lock

    def unlock(self):
        """Give the folder up (a process that ends gives it up anyway)."""
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            try:
                os.remove(self.file(LOCK))
            except OSError:
                pass
            os.close(fd)

    # ------------------------------------------------------------ log, best, curves

    def read_log(self, last_epoch):
        """Log records up to ``last_epoch``: a crash after the log write but before the
        index write leaves one record too many, which the resumed run redoes."""
        try:
            records = read_jsonl(self.file(LOG))
        except (OSError, ValueError):
            return []
        return [r for r in records if isinstance(r, dict) and r.get("epoch", 0) <= last_epoch]

    def write_log(self, records):
        write_jsonl(self.file(LOG), records)

    def save_best(self, net):
        atomic_write(self.file(BEST), net.save_parameters)

    def trained_params(self):
        """best.params if the run saved one, else its newest epoch-NNNN.params."""
        if os.path.isfile(self.file(BEST)):
            return self.file(BEST)
        epochs = [(int(m.group(1)), name) for name in os.listdir(self.path)
                  for m in [_EPOCH_PARAMS.match(name)] if m]
        if not epochs:
            raise CheckpointError("%s has no %s and no epoch-NNNN.params; train at least one "
                                  "epoch with --save-dir %s" % (self.path, BEST, self.path))
        return self.file(max(epochs)[1])

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

    def write_checkpoint(self, epoch, batch, net, trainer, data_iter=None):
        return write_checkpoint(self.path, epoch, batch, net, trainer, data_iter)

    def restore(self, entry, net, trainer, ctx=None, data_iter=None):
        restore(self.path, entry, net, trainer, ctx, data_iter)

    def switch(self, entry, previous):
        """Make ``entry`` the newest checkpoint and ``previous`` the one before it; then
        delete the checkpoint files neither names."""
        previous = previous and {k: v for k, v in previous.items()
                                 if k not in ("previous", "format", "best_params", "log")}
        write_json(self.file(CHECKPOINT), dict(entry, format=INDEX_FORMAT, best_params=BEST,
                                               log=LOG, previous=previous))
        remove_unreferenced(self.path, [entry, previous])

    def load_checkpoint(self, warn):
        """``(config, entry)``: config.json and the newest usable checkpoint entry.

        The index names the newest checkpoint and the one before it. One whose
        files are missing or fail their SHA-256 check is passed over for the one
        before, with one line to ``warn``.
        """
        if not os.path.exists(self.file(CHECKPOINT)):
            raise CheckpointError("--resume: no checkpoint in %s (no %s); train without "
                                  "--resume first" % (self.path, CHECKPOINT))
        try:
            config = read_json(self.file(CONFIG))
            newest = read_json(self.file(CHECKPOINT))
            if not isinstance(config.get("net"), str) or not isinstance(newest.get("epoch"), int):
                raise ValueError("missing 'net' or 'epoch'")
        except (OSError, ValueError, KeyError, AttributeError) as e:
            raise CheckpointError("--resume: the checkpoint in %s is corrupt (%s); start a new "
                                  "--save-dir" % (self.path, error_line(e)))
        entries = [newest]
        if isinstance(newest.get("previous"), dict) and isinstance(
                newest["previous"].get("epoch"), int):
            entries.append(newest["previous"])
        for entry in entries:
            try:
                verify(self.path, entry)
            except CheckpointError as e:
                damage = "the checkpoint at %s in %s is damaged: %s" % (
                    describe(entry), self.path, error_line(e))
                continue
            if entry is not newest:
                warn("warning: %s; resuming from the one before it, at %s"
                     % (damage, describe(entry)))
            return config, entry
        if len(entries) > 1:
            damage += ", and so is the one before it"
        raise CheckpointError("--resume: %s; start a new --save-dir" % damage)

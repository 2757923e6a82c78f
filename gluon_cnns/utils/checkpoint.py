"""Checkpoints that continue a run exactly, survive ``kill -9`` at any moment, and detect damage.

A checkpoint is a *position* in training -- ``epoch`` epochs done and ``batch``
batches of the next one -- and three files named after it (STEM is
``epoch-0002`` at the end of epoch 2, ``epoch-0003-batch-000017`` 17 batches
into epoch 3):

``STEM.params``
    the net's parameters (``net.save_parameters``);
``STEM.states``
    the trainer (``trainer.save_states``): the momentum or Adam moments, and the
    pickled optimizer with its update counts and learning-rate scheduler;
``STEM.rng.npz``
    NumPy's and Python's random states and the shuffled order of the epoch in
    progress (``BatchIterator.state``).

An *entry* (a dict) describes one checkpoint: its position, its file names and
the SHA-256 of each file. Every file is written atomically (temporary file,
fsync, rename) and hashed as it is on disk; whoever keeps the entries writes
them into one JSON file last, so a kill at any moment leaves the last complete
checkpoint in place.

MXNet's own generator (Dropout masks) has no API to read its state:
``utils.train(seed=...)`` reseeds it from (seed, epoch, batch) before every
batch instead, so its state is a function of the position and needs no file.
"""
import hashlib
import os
import random
import re

import numpy as np

from ..errors import CheckpointError, GluonCNNsError, error_line
from .io import atomic_write

# (key in an entry, suffix of the file)
FILES = (("params", ".params"), ("trainer", ".states"), ("rng", ".rng.npz"))
# The files this module writes: what remove_unreferenced may delete.
_OURS = re.compile(r"^epoch-\d{4,}(-batch-\d{6,})?(\.params|\.states|\.rng\.npz)$")
# What atomic_write leaves behind when a run is killed: ".NAME.RANDOM.tmp".
_TEMPORARY = re.compile(r"^\.(epoch-\d{4,}\S*|checkpoint\.json|config\.json|log\.jsonl|"
                        r"best\.params|curves\.png)\.[^.]+\.tmp$")


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


def sha256_file(path):
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- random state

def capture_random_state(data_iter=None):
    """NumPy's and Python's random states and ``data_iter``'s pass, as arrays for ``np.savez``."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, words, gauss_next = random.getstate()
    arrays = {"numpy_keys": keys, "numpy_pos": np.int64(pos),
              "numpy_has_gauss": np.int64(has_gauss),
              "numpy_cached_gaussian": np.float64(cached_gaussian),
              "python_version": np.int64(version),
              "python_words": np.array(words, dtype=np.int64),
              "python_gauss_next": np.array([] if gauss_next is None else [gauss_next],
                                            dtype=np.float64)}
    state = data_iter.state() if hasattr(data_iter, "state") else {"order": None}
    if state["order"] is not None:
        arrays["order"] = np.asarray(state["order"], dtype=np.int64)
    return arrays


def restore_random_state(arrays, batch=0, data_iter=None):
    """Undo ``capture_random_state``; ``data_iter``'s next pass continues after ``batch``."""
    np.random.set_state(("MT19937", arrays["numpy_keys"], int(arrays["numpy_pos"]),
                         int(arrays["numpy_has_gauss"]), float(arrays["numpy_cached_gaussian"])))
    gauss = arrays["python_gauss_next"]
    random.setstate((int(arrays["python_version"]),
                     tuple(int(w) for w in arrays["python_words"]),
                     float(gauss[0]) if len(gauss) else None))
    if hasattr(data_iter, "set_state"):
        order = arrays["order"] if "order" in arrays else None
        data_iter.set_state({"order": order, "batch": batch})
    elif batch:
        raise CheckpointError("the checkpoint is %d batches into an epoch, but the training "
                              "data cannot continue there (it has no set_state)" % batch)


# ---------------------------------------------------------------- writing and reading

def write_checkpoint(save_dir, epoch, batch, net, trainer, data_iter=None):
    """Write the three files of the checkpoint at (epoch, batch); return its entry."""
    name = stem(epoch, batch)
    entry = {"epoch": epoch, "batch": batch, "sha256": {}}
    writers = {"params": net.save_parameters, "trainer": trainer.save_states,
               "rng": lambda tmp: _save_npz(tmp, capture_random_state(data_iter))}
    for key, suffix in FILES:
        entry[key] = name + suffix
        path = atomic_write(os.path.join(save_dir, entry[key]), writers[key])
        entry["sha256"][entry[key]] = sha256_file(path)  # the bytes on disk
    return entry


def _save_npz(path, arrays):
    # A file object: np.savez would append ".npz" to the temporary file's name.
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def verify(save_dir, entry):
    """Raise CheckpointError unless every file of ``entry`` exists with its recorded SHA-256."""
    for key, _ in FILES:
        name = entry.get(key)
        if name is None:
            if key == "rng":
                continue  # written before checkpoints had one: resumable, not exactly
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

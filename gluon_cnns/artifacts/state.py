"""What a checkpoint holds besides the parameters and the trainer: the random state.

NumPy's and Python's generators (shuffling, augmentation) and the shuffled
order of the epoch in progress, as plain arrays for ``np.savez`` -- no pickle.
MXNet's own generator (Dropout masks) has no API to read its state:
``train(seed=...)`` reseeds it from (seed, epoch, batch) before every batch
instead, so its state is a function of the position and needs no file.
"""
import hashlib
import importlib
import random

import numpy as np

from ..errors import CheckpointError
from ..io import RestrictedUnpickler

# What trainer.save_states pickles: NDArrays (as bytearrays), the optimizer, and its
# learning-rate schedule (MXNet's or GluonCV's).
_STATE_GLOBALS = {("builtins", "bytearray"), ("builtins", "set"), ("builtins", "frozenset"),
                  ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
                  ("builtins", "object"), ("mxnet.ndarray.ndarray", "NDArray"),
                  ("mxnet.context", "Context")}
_STATE_CLASSES = {"mxnet.optimizer.optimizer": ("mxnet.optimizer", "Optimizer"),
                  "mxnet.lr_scheduler": ("mxnet.lr_scheduler", "LRScheduler"),
                  "gluoncv.utils.lr_scheduler": ("mxnet.lr_scheduler", "LRScheduler")}


def sha256_file(path):
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _state_global(module, name):
    """Whether a trainer-state pickle may name ``module.name``: the listed globals, and
    optimizer and schedule classes (subclasses of MXNet's bases) of the listed modules."""
    if (module, name) in _STATE_GLOBALS:
        return True
    if module not in _STATE_CLASSES:
        return False
    if module.startswith("gluoncv"):
        from ..gluoncv_import import import_gluoncv
        found = getattr(import_gluoncv(module), name, None)
    else:
        found = getattr(importlib.import_module(module), name, None)
    base_module, base_name = _STATE_CLASSES[module]
    base = getattr(importlib.import_module(base_module), base_name)
    return isinstance(found, type) and issubclass(found, base)


def check_trainer_states(path):
    """Raise CheckpointError unless ``path`` (``trainer.save_states``) unpickles with only
    optimizer-state classes: loading it can then run no other code."""
    try:
        with open(path, "rb") as f:
            RestrictedUnpickler(f, _state_global).load()
    except Exception as err:  # UnpicklingError, EOFError, ...: all mean "not trainer states"
        raise CheckpointError("%s is not a trainer state file this package wrote (%s)"
                              % (path, err)) from None


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
    if state.get("seed") is not None:  # the augmentation seed of an image folder's pass
        arrays["data_seed"] = np.int64(state["seed"])
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
        seed = int(arrays["data_seed"]) if "data_seed" in arrays else None
        data_iter.set_state({"order": order, "batch": batch, "seed": seed})
    elif batch:
        raise CheckpointError("the checkpoint is %d batches into an epoch, but the training "
                              "data cannot continue there (it has no set_state)" % batch)


def save_npz(path, arrays):
    # A file object: np.savez would append ".npz" to the temporary file's name.
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def seed_all(seed):
    """Seed every generator a run draws from: MXNet's, NumPy's and Python's."""
    import mxnet as mx
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)

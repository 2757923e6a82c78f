"""One epoch of training, in parts: the step, the device-side sums, the non-finite
guard, the progress bar.

The rule everywhere: no host read per batch. ``loss.mean().asscalar()`` in a
loop makes Python wait for the device after every batch, so the device idles
while Python prepares the next one. The loss sum and correct count stay on the
device as NDArrays and are read once per epoch; whether a batch's loss and
gradients are finite is computed on the device too, and the host looks at the
running count of bad batches about once a second (``nan_policy``).
"""
import hashlib
import math
import sys
import time

import mxnet as mx
from mxnet import autograd, gluon

from ..errors import GluonCNNsError, NonFiniteLossError
from .devices import split

# How often (seconds) the progress bar may read the running loss from the device.
_PROGRESS_REFRESH_S = 0.5
# How often (seconds) nan_policy "stop" reads the device's count of non-finite batches.
_NAN_CHECK_S = 1.0
# Arrays per multi-array operator call (multi_all_finite aborts the process beyond 200).
_MAX_ARRAYS_PER_OP = 200
NAN_POLICIES = ("stop", "skip")


def correct_count(output, y):
    """Number of rows whose arg-max equals the label, as a 1-element NDArray (no host copy)."""
    # argmax returns float32 whatever the output's dtype (bf16 under AMP), so compare in float32.
    return (output.argmax(axis=1) == y.astype("float32")).sum()


def total(parts):
    """Sum per-context 1-element NDArrays on the host: one read per context."""
    return sum(p.asscalar() for p in parts)


def batches(data, what="data"):
    """``(X, y)`` from any iterable the tutorials train on: ``(X, y)`` pairs (tuples or
    lists) or ``mx.io.DataBatch`` es. An ``mx.io.DataIter`` (``NDArrayIter``,
    ``ImageRecordIter``) is reset first and the padding of its last batch dropped."""
    if isinstance(data, gluon.Block):
        raise TypeError("%s is a %s, not batches of data; the order is train(train_iter, "
                        "test_iter, net, loss, trainer, ctx, num_epochs) -- d2l's order (net, "
                        "train_iter, test_iter, batch_size, trainer, ctx, num_epochs) is "
                        "train_ch5" % (what, type(data).__name__))
    if isinstance(data, mx.io.DataIter):
        data.reset()
    return map(_pair, data)


def _pair(batch):
    """``(X, y)`` of one batch; a DataBatch without the padding of a short last batch."""
    if not isinstance(batch, mx.io.DataBatch):
        X, y = batch
        return X, y
    X, y = batch.data[0], batch.label[0]
    if batch.pad:
        X, y = X[:X.shape[0] - batch.pad], y[:y.shape[0] - batch.pad]
    return X, y


def _draws_random_numbers(net):
    """Whether training ``net`` draws from MXNet's generator: it has an active Dropout."""
    if not isinstance(net, gluon.Block):
        return True  # cannot tell: reseed to be safe
    found = []
    net.apply(lambda block: found.append(isinstance(block, gluon.nn.Dropout)
                                         and block._rate > 0))
    return any(found)


def position_seed(seed, epoch, batch):
    """MXNet's seed for batch ``batch`` of epoch ``epoch`` (1-based) of a run seeded ``seed``."""
    digest = hashlib.sha256(("%d:%d:%d" % (seed, epoch, batch)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF  # MXNet takes a C int


def _device_values(values, ctxs):
    """One float32 1-element NDArray per context holding ``values`` (zeros when None).

    A snapshot's float32 sums come back bit for bit, so a resumed epoch adds up
    exactly as the uninterrupted one. Saved on another number of contexts,
    they are summed onto the first.
    """
    if values is None:
        values = [0.0] * len(ctxs)
    if len(values) != len(ctxs):
        values = [sum(values)] + [0.0] * (len(ctxs) - 1)
    return [mx.nd.array([v], ctx=c) for v, c in zip(values, ctxs)]


class EpochProgress:
    """The epoch in progress: what ``train`` passes to ``batch_callback`` after each batch.

    ``epoch`` (1-based), ``batch`` (batches done in this epoch) and
    ``num_batches`` (None for data without a length) are host numbers. The sums
    and the count of non-finite batches stay on the device: ``snapshot()``
    reads them, for a checkpoint.
    """

    def __init__(self, ctxs, epoch, num_batches, nan_policy="stop", resume=None):
        resume = resume or {}
        self.ctxs, self.epoch, self.num_batches = ctxs, epoch, num_batches
        self.nan_policy = nan_policy
        self.batch = int(resume.get("batch", 0))
        self.examples = int(resume.get("examples", 0))
        self.time_before = float(resume.get("time", 0.0))  # seconds of this epoch before a resume
        self.cpu_before = float(resume.get("cpu_time", 0.0))  # and CPU seconds, all threads
        self.loss_sum = _device_values(resume.get("loss_sum"), ctxs)
        self.correct = _device_values(resume.get("correct"), ctxs)
        # Non-finite batches so far, and (skip) the examples they held. A new
        # array per batch, not an in-place sum: the previous batch's count stays
        # readable without waiting for the batch in flight.
        self.bad = mx.nd.array([resume.get("nan_skips", 0)], ctx=ctxs[0])
        self.skipped = mx.nd.array([resume.get("skipped_examples", 0)], ctx=ctxs[0])
        self._zeros = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
        # stop: (batch, bad flag, loss sums, lr) of the batches the host has not
        # yet seen to be finite, to name the first bad one.
        self._unchecked = []
        self.started = self.checked_at = time.time()
        self.cpu_started = time.process_time()

    def add(self, size, loss_sums, corrects, bad, bads, lr):
        """Count one batch; ``bad`` (on the first context) and ``bads`` (one per
        context) are 1 if it was not finite, else 0."""
        self.batch += 1
        self.examples += size
        if self.nan_policy == "skip":
            # A skipped batch adds nothing: its nan would make the epoch's mean nan.
            for i, (l, c, b) in enumerate(zip(loss_sums, corrects, bads)):
                self.loss_sum[i] += mx.nd.where(b, self._zeros[i], l)
                self.correct[i] += mx.nd.where(b, self._zeros[i], c)
            self.skipped = self.skipped + bad * size
        else:
            for i, (l, c) in enumerate(zip(loss_sums, corrects)):
                self.loss_sum[i] += l
                self.correct[i] += c
            self._unchecked.append((self.batch, bad, loss_sums, lr))
        self.bad = self.bad + bad

    def check(self, bad, upto):
        """stop: raise NonFiniteLossError if ``bad`` (the count after batch ``upto``) is not 0.

        ``bad`` must be computed already: reading it then costs no wait.
        """
        self.checked_at = time.time()
        if self.nan_policy != "stop":
            return
        if bad.asscalar() == 0:
            self._unchecked = [entry for entry in self._unchecked if entry[0] > upto]
            return
        for batch, flag, loss_sums, lr in self._unchecked:  # the error path: reads are fine
            if flag.asscalar():
                value = sum(l.asscalar() for l in loss_sums)
                what = ("loss is %s" % ("nan" if math.isnan(value) else value)
                        if not math.isfinite(value) else "gradient is not finite")
                raise NonFiniteLossError(
                    "%s at epoch %d batch %d (lr %g); lower the learning rate, or skip such "
                    "batches with nan_policy='skip'" % (what, self.epoch, batch, lr),
                    epoch=self.epoch, batch=batch, lr=lr, what=what)
        raise NonFiniteLossError("a loss or gradient of epoch %d is not finite"
                                 % self.epoch, epoch=self.epoch)

    def snapshot(self):
        """The epoch so far as plain numbers (reads the device), for ``train(resume=...)``.

        With nan_policy "stop" it raises NonFiniteLossError if a batch so far
        was not finite: nothing after it is worth saving.
        """
        self.check(self.bad, self.batch)
        return {"batch": self.batch, "examples": self.examples,
                "loss_sum": [float(a.asscalar()) for a in self.loss_sum],
                "correct": [float(a.asscalar()) for a in self.correct],
                "nan_skips": int(self.bad.asscalar()),
                "skipped_examples": int(self.skipped.asscalar()),
                "time": self.elapsed(), "cpu_time": self.cpu_elapsed()}


    def check_now_and_then(self, bad):
        """stop: look at ``bad``, the count after the previous batch, about once a second
        (it is computed, or nearly, so reading it costs no wait)."""
        if time.time() - self.checked_at >= _NAN_CHECK_S:
            self.check(bad, self.batch - 1)

    def finish(self, lr):
        """The epoch's figures, reading the device once: mean loss, train accuracy,
        images/s (training only), the final lr and the skipped batches."""
        self.check(self.bad, self.batch)  # waits for the last batch: the time is real
        nan_skips = int(self.bad.asscalar()) if self.nan_policy == "skip" else 0
        n = self.examples - (int(self.skipped.asscalar()) if nan_skips else 0)
        train_time = time.time() - self.started + self.time_before
        return {"loss": total(self.loss_sum) / n if n else float("nan"),
                "train_acc": total(self.correct) / n if n else float("nan"),
                "images_per_sec": self.examples / train_time if train_time > 0 else float("nan"),
                "lr": lr, "nan_skips": nan_skips}

    def elapsed(self):
        """Seconds of this epoch so far, before a resume included."""
        return self.time_before + time.time() - self.started

    def cpu_elapsed(self):
        """CPU seconds of this epoch so far (every thread of the process, which is what a
        recipe costs on a shared machine), before a resume included."""
        return self.cpu_before + time.process_time() - self.cpu_started


def _updates_on_kvstore(trainer, ctxs):
    """Whether ``trainer`` updates inside its kvstore (MXNet's default for several devices)."""
    if getattr(trainer, "_kv_initialized", False):
        return bool(trainer._update_on_kvstore)
    config = getattr(trainer, "_kvstore_params", {})
    if config.get("update_on_kvstore") is not None:
        return bool(config["update_on_kvstore"])
    kvstore = config.get("kvstore")
    if kvstore is None or (isinstance(kvstore, str) and len(ctxs) == 1 and "dist" not in kvstore):
        return False
    return True


def _state_arrays(state):
    """The NDArrays of one optimizer state (None, an NDArray, or nested tuples of them)."""
    if isinstance(state, mx.nd.NDArray):
        return [state]
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _state_arrays(s)]
    return []


class UndoBadBatch:
    """nan_policy "skip": put back, on the device, everything a non-finite batch changed.

    Deciding on the host would cost a device read per batch. Instead every batch
    keeps copies of the parameters (BatchNorm's running statistics included:
    the forward pass changes them), of the optimizer state and of the weight EMA, and
    after the update ``where(bad, saved, new)`` keeps the new values only for a finite batch.
    """

    def __init__(self, net, trainer, ctxs, ema=None):
        if _updates_on_kvstore(trainer, ctxs):
            raise GluonCNNsError(
                "nan_policy 'skip' cannot undo an update made inside the kvstore (several "
                "devices, or dist_async); create the Trainer with update_on_kvstore=False")
        self.net, self.trainer, self.ctxs = net, trainer, ctxs
        self.params = list(net.collect_params().values())
        self.saved, self.ema = [], ema

    def _arrays(self):
        arrays = []
        for param in self.params:
            try:
                arrays += param.list_data()
            except (gluon.parameter.DeferredInitializationError, RuntimeError):
                pass  # not initialized yet
        for updater in self.trainer._updaters:  # pylint: disable=protected-access
            for state in updater.states.values():
                arrays += _state_arrays(state)
        if self.ema is not None:
            arrays += self.ema.shadow or []
        return arrays

    def save(self, Xs):
        """Before the forward pass: copy what the batch may change."""
        if any(p._data is None for p in self.params):  # pylint: disable=protected-access
            # A fresh net gets its shapes (and initial values) in its first forward
            # pass: run it in predict mode, which changes no statistics, to have
            # something to save.
            with autograd.predict_mode():
                for x in Xs:
                    self.net(x)
        self.saved = [(a, a.copy()) for a in self._arrays()]

    def restore_if_bad(self, bads):
        """After the update: keep the new values only if the batch was finite.

        ``bads`` holds the batch's 0/1 flag on each context.
        """
        bad_on = dict(zip(self.ctxs, bads))
        kept = set()
        for array, saved in self.saved:
            _choose(bad_on[array.context], saved, array)
            kept.add(id(array))
        for array in self._arrays():
            if id(array) not in kept:
                # Optimizer state created by this very update: MXNet's optimizers
                # start every state at zero.
                _choose(bad_on[array.context], mx.nd.zeros_like(array), array)


def _choose(flag, if_set, array):
    """``array = if_set if flag else array``, on the device (``flag``: a 1-element 0/1 NDArray)."""
    # Seen as one row, ``where`` takes the 1-element flag as the row's condition: no
    # broadcast copy of the flag per array. A reshape is a view, so out= writes ``array``.
    row = array.reshape((1, -1))
    mx.nd.where(flag, if_set.reshape((1, -1)), row, out=row)


def _not_finite(loss_sum, grads):
    """1 if ``loss_sum`` or an element of ``grads`` is nan or infinite, else 0: a
    1-element NDArray beside ``loss_sum``, computed on the device (no host read).

    A sum of squares is finite only if every element is (or it overflows, which
    takes values near 1e19: a diverged run anyway), and x * 0 != 0 only for a
    non-finite x. multi_sum_sq takes all the arrays in one operator; on the CPU it
    is about 60 times faster than multi_all_finite, which cost 2 ms per lenet_bn batch.
    """
    arrays = [loss_sum] + grads
    total = None
    for start in range(0, len(arrays), _MAX_ARRAYS_PER_OP):
        chunk = arrays[start:start + _MAX_ARRAYS_PER_OP]
        part = mx.nd.multi_sum_sq(*chunk, num_arrays=len(chunk)).sum()
        total = part if total is None else total + part
    return (total * 0) != 0


def _gradients(net, ctxs):
    """Per context, the gradient arrays of the net's trained parameters."""
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    return [[p.grad(c) for p in params] for c in ctxs]


class ProgressBar:
    """A tqdm bar of images for one epoch, drawn only when stdout is a terminal.

    It reads the running loss and accuracy from the device at most every
    ``_PROGRESS_REFRESH_S`` seconds: the only in-epoch host reads.
    """

    def __init__(self, enabled, data, state):
        self.bar = None
        if enabled and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=getattr(data, "num_examples", None), unit="img",
                            unit_scale=True, desc="epoch %d" % state.epoch, leave=False,
                            file=sys.stdout, mininterval=_PROGRESS_REFRESH_S)
            if state.examples:
                self.bar.update(state.examples)  # a resumed epoch: the part done before
        self.refreshed = time.time()

    def update(self, size, state):
        if self.bar is None:
            return
        self.bar.update(size)
        if time.time() - self.refreshed >= _PROGRESS_REFRESH_S:
            self.bar.set_postfix([("loss", "%.4f" % (total(state.loss_sum) / state.examples)),
                                  ("acc", "%.3f" % (total(state.correct) / state.examples))],
                                 refresh=False)
            self.refreshed = time.time()

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Engine:
    """Trains ``net`` batch by batch: the parts of ``train`` below the d2l-facing loop.

    ``nan_policy`` "skip" undoes a non-finite batch's update (:class:`UndoBadBatch`);
    ``seed``, for a net with Dropout, reseeds MXNet's generator from the position
    before every batch, so a resumed run draws the masks of an uninterrupted one.
    ``tricks`` (``training/tricks.py``): its ``targets`` make what each batch trains on
    (label smoothing, mixup; the loss is then theirs), its ``ema`` follows every update.
    """

    def __init__(self, net, loss, trainer, ctxs, nan_policy="stop", seed=None, tricks=None):
        if nan_policy not in NAN_POLICIES:
            raise GluonCNNsError("nan_policy must be one of %s, got %r"
                                 % (", ".join(map(repr, NAN_POLICIES)), nan_policy))
        self.net, self.loss, self.trainer, self.ctxs = net, loss, trainer, ctxs
        self.nan_policy = nan_policy
        self.targets, self.ema = (tricks.targets, tricks.ema) if tricks else (None, None)
        self.undo = UndoBadBatch(net, trainer, ctxs, self.ema) if nan_policy == "skip" else None
        self.seed = seed if seed is not None and _draws_random_numbers(net) else None
        self.grads = None  # per context, the gradient arrays (known after the first batch)
        if self.targets is not None:
            self.loss = self.targets.loss

    def step(self, X, y, state, batch_size):
        """Train on one batch, stepping with ``batch_size``; returns an output to wait on."""
        if self.seed is not None:
            mx.random.seed(position_seed(self.seed, state.epoch, state.batch + 1))
        ts = None
        if self.targets is not None:
            X, ts, y = self.targets(X, y, state.epoch, state.batch + 1)
            ts = split(ts, ts, self.ctxs)[0]
        Xs, ys = split(X, y, self.ctxs)
        if self.ema is not None:
            self.ema.begin(Xs)
        if self.undo is not None:
            self.undo.save(Xs)
        with autograd.record():
            outputs = [self.net(x) for x in Xs]
            losses = [self.loss(out, t) for out, t in zip(outputs, ts or ys)]
        for l in losses:
            l.backward()
        if self.undo is not None:
            self.trainer.allreduce_grads()  # judge the summed gradients before updating
        loss_sums = [l.sum() for l in losses]
        bad, bads = self._not_finite(loss_sums)
        if self.undo is None:
            # step() divides the summed gradient by the whole batch size, however the
            # batch was split across the contexts.
            self.trainer.step(batch_size)
        else:
            self.trainer.update(batch_size)
        if self.ema is not None:
            self.ema.update()
        if self.undo is not None:
            self.undo.restore_if_bad(bads)  # the EMA's update included
        state.add(X.shape[0], loss_sums, [correct_count(o, t) for o, t in zip(outputs, ys)],
                  bad, bads, self.trainer.learning_rate)
        return losses[-1]

    def _not_finite(self, loss_sums):
        """The batch's 0/1 flag on the first context, and on each context."""
        if self.grads is None:
            self.grads = _gradients(self.net, self.ctxs)
        bads = [_not_finite(s, g) for s, g in zip(loss_sums, self.grads)]
        bad = bads[0]
        for other in bads[1:]:
            bad = mx.nd.maximum(bad, other.as_in_context(self.ctxs[0]))
        if len(self.ctxs) > 1:
            bads = [bad.as_in_context(c) for c in self.ctxs]
        return bad, bads

    def run_epoch(self, data, state, progress=True, batch_callback=None, batch_size=None):
        """One pass over ``data`` (continuing ``state``); returns ``state.finish()``.

        Every batch steps with ``batch_size`` (default: the data's, else its first batch's).
        """
        bar = ProgressBar(progress, data, state)
        # Every example's gradient gets the weight lr / batch_size, also in the short last
        # batch, as d2l's train_ch5 steps: a full-size update of the short batch just
        # before evaluation, unseen by BatchNorm's running statistics, cost lenet_bn
        # 7 points of test accuracy after epoch 1 (docs/RESULTS_NOTES.md).
        nominal = batch_size or getattr(data, "batch_size", 0)
        previous = previous_bad = None
        for X, y in batches(data, "train_data"):
            if not batch_size:
                nominal = max(nominal, X.shape[0])  # any iterable: its first batch
            last = self.step(X, y, state, nominal)
            # Python runs at most one batch ahead of the device: enough to prepare the
            # next batch while this one computes, without queueing the whole epoch.
            if previous is not None:
                previous.wait_to_read()  # copies nothing to the host
                state.check_now_and_then(previous_bad)
            previous, previous_bad = last, state.bad
            bar.update(X.shape[0], state)
            if batch_callback is not None:
                batch_callback(state)
        bar.close()
        return state.finish(self.trainer.learning_rate)

"""The training helpers of the MXNet tutorials (``try_gpu``, ``evaluate_accuracy``, ``train``).

Same names and positional parameters as the tutorial's ``utils.py``, with one
change that matters for speed: the loop never copies a number to the host per
batch. ``loss.mean().asscalar()`` inside the loop makes Python wait for the
device after every batch, so the device idles while Python prepares the next
one. Here the loss sum and the correct count stay on the device as NDArrays
and are read once per epoch.

The same holds for the guard against a diverging run: whether a batch's loss
and gradients are finite is computed on the device, and the host reads the
running count of bad batches about once a second (``nan_policy``). For exact
resumption, ``train`` can continue mid-epoch (``resume``), call back after
every batch (``batch_callback``, e.g. to checkpoint) and reseed MXNet's
generator from the position (``seed``); see gluon_cnns.utils.checkpoint.
"""
import hashlib
import math
import sys
import time

import mxnet as mx
from mxnet import autograd, gluon

from ..errors import GluonCNNsError, NonFiniteLossError

# How often (seconds) the progress bar may read the running loss from the device.
_PROGRESS_REFRESH_S = 0.5
# How often (seconds) nan_policy "stop" reads the device's count of non-finite batches.
_NAN_CHECK_S = 1.0
# Arrays per multi-array operator call (multi_all_finite aborts the process beyond 200).
_MAX_ARRAYS_PER_OP = 200
NAN_POLICIES = ("stop", "skip")


def try_gpu(i=0):
    """Return ``mx.gpu(i)`` if that GPU exists and works, else ``mx.cpu()``."""
    if i < mx.context.num_gpus():
        ctx = mx.gpu(i)
        try:
            # A GPU can be listed but unusable (driver/toolkit mismatch, out of
            # memory): only a real allocation tells.
            mx.nd.zeros((1,), ctx=ctx).wait_to_read()
            return ctx
        except mx.base.MXNetError:
            pass
    return mx.cpu()


def try_all_gpus():
    """Return every usable GPU as a list, or ``[mx.cpu()]`` if there is none."""
    ctxs = [try_gpu(i) for i in range(mx.context.num_gpus())]
    ctxs = [c for c in ctxs if c.device_type == "gpu"]
    return ctxs or [mx.cpu()]


def _as_list(ctx):
    """Accept one context or a list of them."""
    ctxs = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    if not ctxs or not all(isinstance(c, mx.Context) for c in ctxs):
        raise GluonCNNsError("ctx must be an mx.Context, e.g. mx.cpu() or mx.gpu(0), or a "
                             "list of them; got %r" % (ctx,))
    return ctxs


def _split(X, y, ctxs):
    """Split a batch across the contexts (a plain copy when there is only one)."""
    Xs = gluon.utils.split_and_load(X, ctxs, even_split=False)
    ys = gluon.utils.split_and_load(y, ctxs, even_split=False)
    return Xs, ys


def _correct(output, y):
    """Number of rows whose arg-max equals the label, as a 1-element NDArray (no host copy)."""
    # argmax returns float32 whatever the output's dtype (bf16 under AMP), so compare in float32.
    return (output.argmax(axis=1) == y.astype("float32")).sum()


def _total(parts):
    """Sum per-context 1-element NDArrays on the host: one read per context."""
    return sum(p.asscalar() for p in parts)


def evaluate_accuracy(data_iter, net, ctx):
    """Classification accuracy of ``net`` on ``data_iter``; ``ctx`` is one context or a list."""
    ctxs = _as_list(ctx)
    correct = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    n = 0
    for X, y in data_iter:
        Xs, ys = _split(X, y, ctxs)
        for i, (x_part, y_part) in enumerate(zip(Xs, ys)):
            correct[i] += _correct(net(x_part), y_part)
        n += y.shape[0]  # the shape is known on the host: no device sync
    return _total(correct) / n if n else float("nan")


def _progress_bar(enabled, data_iter, epoch):
    """A tqdm bar counting images, or None when disabled or stdout is not a terminal."""
    if not enabled or not sys.stdout.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=getattr(data_iter, "num_examples", None), unit="img", unit_scale=True,
                desc="epoch %d" % epoch, leave=False, file=sys.stdout,
                mininterval=_PROGRESS_REFRESH_S)


def train(train_data, test_data, net, loss, trainer, ctx, num_epochs, *,
          progress=True, callback=None, start_epoch=0, epoch_lr=None,
          seed=None, nan_policy="stop", batch_callback=None, resume=None):
    """Train ``net`` for ``num_epochs`` epochs and return the per-epoch history.

    The first seven parameters are those of the MXNet tutorial's ``utils.train``.
    ``ctx`` may be a list of contexts: each batch is then split across them
    (data parallelism) and ``trainer`` sums their gradients.

    Keyword-only options:

    * ``progress``: show a tqdm bar per epoch (only if stdout is a terminal).
    * ``callback(record)``: called after each epoch with that epoch's record,
      e.g. to save a checkpoint.
    * ``start_epoch``: epochs already done (when resuming); training runs
      epochs ``start_epoch + 1`` to ``num_epochs``.
    * ``epoch_lr(epoch)``: if given, the learning rate to set at the start of
      each epoch (for per-update schedules, give the optimizer an
      ``mx.lr_scheduler`` instead).
    * ``seed``: for a net with Dropout, reseed MXNet's generator from (seed,
      epoch, batch) before every batch. MXNet cannot save its generator's
      state; this makes the state a function of the position, so a run resumed
      in the middle of an epoch draws the same masks as an uninterrupted one.
    * ``nan_policy``: what a batch whose loss or gradients are nan or infinite
      does. ``"stop"`` (the default) raises :class:`NonFiniteLossError` naming
      the epoch, the batch and its learning rate; the check runs on the device
      and the host looks at its count about once a second, so a few batches may
      run after the bad one, and ``net`` is then left with their updates.
      ``"skip"`` undoes the bad batch's update on the device (parameters,
      BatchNorm statistics and optimizer state keep their values; the update
      count, and so a learning-rate schedule, still advances) and counts it in
      the record's ``nan_skips``; it needs a trainer that updates outside the
      kvstore (one device, or ``update_on_kvstore=False``).
    * ``batch_callback(progress)``: called after every batch with the
      :class:`EpochProgress` of the epoch, e.g. to save a checkpoint mid-epoch.
    * ``resume``: ``EpochProgress.snapshot()`` of a checkpoint taken inside
      epoch ``start_epoch + 1``: that epoch goes on after the snapshot's batch,
      with its sums. ``train_data`` must continue there too
      (``BatchIterator.set_state``).

    Each history record is a dict with keys ``epoch``, ``loss``, ``train_acc``,
    ``test_acc``, ``time`` (seconds, test evaluation included, as in d2l),
    ``images_per_sec`` (training only) and ``lr`` (at the end of the epoch),
    and ``nan_skips`` with ``nan_policy="skip"``.
    """
    if nan_policy not in NAN_POLICIES:
        raise GluonCNNsError("nan_policy must be one of %s, got %r"
                             % (", ".join(map(repr, NAN_POLICIES)), nan_policy))
    ctxs = _as_list(ctx)
    undo = _UndoBadBatch(net, trainer, ctxs) if nan_policy == "skip" else None
    reseed = seed is not None and _draws_random_numbers(net)
    print("training on", ctxs[0] if len(ctxs) == 1 else ctxs)
    history = []
    for epoch in range(start_epoch + 1, num_epochs + 1):
        if epoch_lr is not None:
            trainer.set_learning_rate(epoch_lr(epoch))
        start = time.time()
        state = EpochProgress(ctxs, epoch, _length(train_data), nan_policy,
                              resume if epoch == start_epoch + 1 else None)
        stats = _train_epoch(train_data, net, loss, trainer, state, progress,
                             seed if reseed else None, undo, batch_callback)
        test_acc = evaluate_accuracy(test_data, net, ctxs)
        record = {"epoch": epoch, "loss": stats["loss"], "train_acc": stats["train_acc"],
                  "test_acc": test_acc, "time": time.time() - start + state.time_before,
                  "images_per_sec": stats["images_per_sec"], "lr": stats["lr"]}
        line = ("epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec"
                % (epoch, record["loss"], record["train_acc"], record["test_acc"],
                   record["time"]))
        if undo is not None:
            record["nan_skips"] = stats["nan_skips"]
            if stats["nan_skips"]:
                line += ", skipped %d non-finite batch%s" % (
                    stats["nan_skips"], "" if stats["nan_skips"] == 1 else "es")
        print(line, flush=True)
        history.append(record)
        if callback is not None:
            callback(record)
    return history


def _length(data):
    """len(data), or None for data without a length (a generator)."""
    try:
        return len(data)
    except TypeError:
        return None


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
        self.checked_at = time.time()

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
                "time": self.time_before + time.time() - self.started}


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


class _UndoBadBatch:
    """nan_policy "skip": put back, on the device, everything a non-finite batch changed.

    Deciding on the host would cost a device read per batch. Instead every batch
    keeps copies of the parameters (BatchNorm's running statistics included:
    the forward pass changes them) and of the optimizer state, and after the
    update ``where(bad, saved, new)`` keeps the new values only for a finite batch.
    """

    def __init__(self, net, trainer, ctxs):
        if _updates_on_kvstore(trainer, ctxs):
            raise GluonCNNsError(
                "nan_policy 'skip' cannot undo an update made inside the kvstore (several "
                "devices, or dist_async); create the Trainer with update_on_kvstore=False")
        self.net, self.trainer, self.ctxs = net, trainer, ctxs
        self.params = list(net.collect_params().values())
        self.saved = []

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


def _train_epoch(train_data, net, loss, trainer, state, progress, seed, undo, batch_callback):
    """One pass over ``train_data``: mean loss, train accuracy, images/s, final lr, nan skips.

    ``state`` (an EpochProgress) holds the sums; ``seed``, if not None, reseeds
    MXNet before every batch; ``undo`` (nan_policy "skip") takes back a
    non-finite batch's update.
    """
    ctxs = state.ctxs
    state.started = start = time.time()
    bar = _progress_bar(progress, train_data, state.epoch)
    if bar is not None and state.examples:
        bar.update(state.examples)  # a resumed epoch: the part done before
    last_refresh = start
    previous = previous_bad = None  # results of the previous batch: to wait on, to check
    grads = None
    # Every example's gradient gets the weight lr / batch_size, also in the short last
    # batch: d2l's train_ch5 steps with the nominal batch size too. Stepping the last
    # batch of 96 (of 60000 at batch 256) with step(96) gives it a full-size update
    # right before evaluation, which BatchNorm's running statistics have not seen:
    # measured on lenet_bn at lr 1.0, test accuracy after epoch 1 fell from 0.815 to 0.746.
    nominal_batch = getattr(train_data, "batch_size", 0)
    for X, y in train_data:
        nominal_batch = max(nominal_batch, X.shape[0])  # any iterable: its first batch
        if seed is not None:
            mx.random.seed(position_seed(seed, state.epoch, state.batch + 1))
        Xs, ys = _split(X, y, ctxs)
        if undo is not None:
            undo.save(Xs)
        with autograd.record():
            outputs = [net(x_part) for x_part in Xs]
            losses = [loss(out, y_part) for out, y_part in zip(outputs, ys)]
        for l in losses:
            l.backward()
        if undo is not None:
            # Judge the summed gradients (all devices, all workers) before updating.
            trainer.allreduce_grads()
        loss_sums = [l.sum() for l in losses]
        if grads is None:
            grads = _gradients(net, ctxs)  # known once the first batch made the shapes
        # 1 if this batch's loss or gradients are not finite, on each device, without
        # a host read; the host looks at the running count only now and then.
        bads = [_not_finite(s, g) for s, g in zip(loss_sums, grads)]
        bad = bads[0]
        for other in bads[1:]:
            bad = mx.nd.maximum(bad, other.as_in_context(ctxs[0]))
        if len(ctxs) > 1:
            bads = [bad.as_in_context(c) for c in ctxs]
        if undo is None:
            # step() divides the summed gradient by the whole batch size, however the
            # batch was split across the contexts.
            trainer.step(nominal_batch)
        else:
            trainer.update(nominal_batch)
            undo.restore_if_bad(bads)
        state.add(X.shape[0], loss_sums,
                  [_correct(out, y_part) for out, y_part in zip(outputs, ys)], bad, bads,
                  trainer.learning_rate)
        # Let Python run at most one batch ahead of the device: enough to
        # prepare the next batch while this one computes, but without any wait
        # a slow device would have the whole epoch queued up in memory.
        # wait_to_read copies nothing to the host.
        if previous is not None:
            previous.wait_to_read()
            if time.time() - state.checked_at >= _NAN_CHECK_S:
                # The count up to the previous batch: computed, or nearly.
                state.check(previous_bad, state.batch - 1)
        previous, previous_bad = losses[-1], state.bad
        if bar is not None:
            bar.update(X.shape[0])
            now = time.time()
            if now - last_refresh >= _PROGRESS_REFRESH_S:
                # The only in-epoch host reads: at most one every 0.5 s.
                bar.set_postfix([("loss", "%.4f" % (_total(state.loss_sum) / state.examples)),
                                 ("acc", "%.3f" % (_total(state.correct) / state.examples))],
                                refresh=False)
                last_refresh = now
        if batch_callback is not None:
            batch_callback(state)
    if bar is not None:
        bar.close()
    # Reading the sums waits for the last batch, so the time below is the real one.
    state.check(state.bad, state.batch)
    nan_skips = int(state.bad.asscalar()) if undo is not None else 0
    n = state.examples - (int(state.skipped.asscalar()) if nan_skips else 0)
    mean_loss = _total(state.loss_sum) / n if n else float("nan")
    train_acc = _total(state.correct) / n if n else float("nan")
    train_time = time.time() - start + state.time_before
    return {"loss": mean_loss, "train_acc": train_acc,
            "images_per_sec": state.examples / train_time if train_time > 0 else float("nan"),
            "lr": trainer.learning_rate, "nan_skips": nan_skips}

"""The training helpers of the MXNet tutorials: ``evaluate_accuracy`` and ``train``.

Same names and positional parameters as the tutorial's ``utils.py``; the loop
reads the device once per epoch instead of once per batch (see ``engine``).
For exact resumption ``train`` can continue mid-epoch (``resume``), call back
after every batch (``batch_callback``, e.g. to checkpoint) and reseed MXNet's
generator from the position (``seed``); see ``artifacts.rundir``.
"""
import contextlib

import mxnet as mx
from mxnet import gluon

from ..data.quick import cap_epochs
from ..threads import describe_threads, first_use
from ..models.base import param_contexts
from .devices import as_contexts, split
from .engine import Engine, EpochProgress, batches, correct_count, total
from .live import live_curves


def evaluate_accuracy(data_iter, net, ctx=None):
    """Classification accuracy of ``net`` on ``data_iter``.

    ``ctx`` is one context or a list; by default where the net's parameters are
    (as the tutorials' ``ctx=mx.cpu()`` default does on a CPU machine).
    """
    data = batches(data_iter, "data_iter")
    ctxs = as_contexts(param_contexts(net) if ctx is None else ctx)
    correct = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    n = 0
    for X, y in data:
        Xs, ys = split(X, y, ctxs)
        for i, (x_part, y_part) in enumerate(zip(Xs, ys)):
            correct[i] += correct_count(net(x_part), y_part)
        n += y.shape[0]  # the shape is known on the host: no device sync
    return total(correct) / n if n else float("nan")


def train(train_data, test_data, net, loss, trainer, ctx, num_epochs, *,
          progress=True, callback=None, start_epoch=0, epoch_lr=None, seed=None,
          nan_policy="stop", batch_callback=None, resume=None, print_batches=None,
          batch_size=None, tricks=None):
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
    * ``print_batches``: every this many batches, print the old gluon
      tutorials' ``Batch N. Loss: ..., Train acc ...`` line (a host read each time).
    * ``batch_size``: what every ``trainer.step`` divides by; default the data's
      ``batch_size``, else its first batch's size.
    * ``tricks``: a :class:`~gluon_cnns.training.tricks.Tricks` -- label smoothing and
      mixup decide what each batch trains on; with a weight EMA, the test accuracy is
      the EMA's (the net keeps its own weights; ``tricks.ema.apply_for_good()`` after).

    The data may yield ``(X, y)`` pairs or be an ``mx.io.DataIter`` of
    ``DataBatch`` es (reset before each pass).

    Each history record is a dict with keys ``epoch``, ``loss``, ``train_acc``,
    ``test_acc``, ``time`` (seconds, test evaluation included, as in d2l), ``cpu_time``
    (the same span's CPU seconds, all threads),
    ``images_per_sec`` (training only) and ``lr`` (at the end of the epoch),
    and ``nan_skips`` with ``nan_policy="skip"``.
    """
    if isinstance(train_data, gluon.Block) or not isinstance(net, gluon.Block):
        raise TypeError("train(train_iter, test_iter, net, loss, trainer, ctx, num_epochs) got "
                        "a %s as its third argument, net; for d2l's order (net, train_iter, "
                        "test_iter, batch_size, trainer, ctx, num_epochs) call train_ch5"
                        % type(net).__name__)
    first_use()  # a net built without get_model
    ctxs = as_contexts(ctx)
    engine = Engine(net, loss, trainer, ctxs, nan_policy, seed, tricks)
    ema = tricks.ema if tricks else None
    if print_batches:
        batch_callback = _with_batch_lines(batch_callback, print_batches)
    threads = describe_threads(ctxs)  # "2 threads"; "" on a GPU
    print("training on %s%s" % (ctxs[0] if len(ctxs) == 1 else ctxs, threads and ", " + threads))
    history = []
    curves = live_curves(num_epochs)  # a figure redrawn each epoch, in a notebook only
    for epoch in range(start_epoch + 1, cap_epochs(num_epochs, start_epoch) + 1):
        if epoch_lr is not None:
            trainer.set_learning_rate(epoch_lr(epoch))
        state = EpochProgress(ctxs, epoch, _length(train_data), nan_policy,
                              resume if epoch == start_epoch + 1 else None)
        record = engine.run_epoch(train_data, state, progress, batch_callback, batch_size)
        with ema.applied() if ema is not None else contextlib.nullcontext():
            test_acc = evaluate_accuracy(test_data, net, ctxs)
        record.update(epoch=epoch, test_acc=test_acc, time=state.elapsed(),
                      cpu_time=state.cpu_elapsed())
        if nan_policy != "skip":
            del record["nan_skips"]
        print(_epoch_line(record), flush=True)
        history.append(record)
        if curves is not None:
            curves.update(record)
        if callback is not None:
            callback(record)
    return history


def train_ch5(net, train_iter, test_iter, batch_size, trainer, ctx, num_epochs):
    """d2l's ``train_ch5``, same arguments: :func:`train` with softmax cross-entropy,
    stepping every batch with ``batch_size``."""
    return train(train_iter, test_iter, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
                 ctx, num_epochs, batch_size=batch_size)


def _with_batch_lines(batch_callback, every):
    """``batch_callback`` that also prints the running loss and accuracy every ``every``
    batches, as the old gluon tutorials' ``train(..., print_batches=N)`` did."""
    def callback(state):
        if state.batch % every == 0:
            print("Batch %d. Loss: %f, Train acc %f" % (
                state.batch, total(state.loss_sum) / state.examples,
                total(state.correct) / state.examples), flush=True)
        if batch_callback is not None:
            batch_callback(state)
    return callback


def _epoch_line(record):
    """The d2l book's line for an epoch (plus the skipped batches, if any)."""
    line = ("epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec"
            % (record["epoch"], record["loss"], record["train_acc"], record["test_acc"],
               record["time"]))
    skips = record.get("nan_skips")
    if skips:
        line += ", skipped %d non-finite batch%s" % (skips, "" if skips == 1 else "es")
    return line


def _length(data):
    """len(data), or None for data without a length (a generator)."""
    try:
        return len(data)
    except TypeError:
        return None

"""The training helpers of the MXNet tutorials (``try_gpu``, ``evaluate_accuracy``, ``train``).

Same names and positional parameters as the tutorial's ``utils.py``, with one
change that matters for speed: the loop never copies a number to the host per
batch. ``loss.mean().asscalar()`` inside the loop makes Python wait for the
device after every batch, so the device idles while Python prepares the next
one. Here the loss sum and the correct count stay on the device as NDArrays
and are read once per epoch.
"""
import sys
import time

import mxnet as mx
from mxnet import autograd, gluon

# How often (seconds) the progress bar may read the running loss from the device.
_PROGRESS_REFRESH_S = 0.5


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
    return list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]


def _split(X, y, ctxs):
    """Split a batch across the contexts (a plain copy when there is only one)."""
    Xs = gluon.utils.split_and_load(X, ctxs, even_split=False)
    ys = gluon.utils.split_and_load(y, ctxs, even_split=False)
    return Xs, ys


def _correct(output, y):
    """Number of rows whose arg-max equals the label, as a 1-element NDArray (no host copy)."""
    return (output.argmax(axis=1) == y.astype(output.dtype)).sum()


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
          progress=True, callback=None, start_epoch=0, epoch_lr=None):
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

    Each history record is a dict with keys ``epoch``, ``loss``, ``train_acc``,
    ``test_acc``, ``time`` (seconds, test evaluation included, as in d2l),
    ``images_per_sec`` (training only) and ``lr`` (at the end of the epoch).
    """
    ctxs = _as_list(ctx)
    print("training on", ctxs[0] if len(ctxs) == 1 else ctxs)
    history = []
    for epoch in range(start_epoch + 1, num_epochs + 1):
        if epoch_lr is not None:
            trainer.set_learning_rate(epoch_lr(epoch))
        start = time.time()
        stats = _train_epoch(train_data, net, loss, trainer, ctxs, epoch, progress)
        test_acc = evaluate_accuracy(test_data, net, ctxs)
        record = {"epoch": epoch, "loss": stats["loss"], "train_acc": stats["train_acc"],
                  "test_acc": test_acc, "time": time.time() - start,
                  "images_per_sec": stats["images_per_sec"], "lr": stats["lr"]}
        print("epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec"
              % (epoch, record["loss"], record["train_acc"], record["test_acc"], record["time"]),
              flush=True)
        history.append(record)
        if callback is not None:
            callback(record)
    return history


def _train_epoch(train_data, net, loss, trainer, ctxs, epoch, progress):
    """One pass over ``train_data``: mean loss, train accuracy, images/s and final lr."""
    start = time.time()
    loss_sum = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    correct = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    n = 0
    bar = _progress_bar(progress, train_data, epoch)
    last_refresh = start
    previous = None  # a result of the previous batch, to wait on
    # Every example's gradient gets the weight lr / batch_size, also in the short last
    # batch: d2l's train_ch5 steps with the nominal batch size too. Stepping the last
    # batch of 96 (of 60000 at batch 256) with step(96) gives it a full-size update
    # right before evaluation, which BatchNorm's running statistics have not seen:
    # measured on lenet_bn at lr 1.0, test accuracy after epoch 1 fell from 0.815 to 0.746.
    nominal_batch = getattr(train_data, "batch_size", 0)
    for X, y in train_data:
        nominal_batch = max(nominal_batch, X.shape[0])  # any iterable: its first batch
        Xs, ys = _split(X, y, ctxs)
        with autograd.record():
            outputs = [net(x_part) for x_part in Xs]
            losses = [loss(out, y_part) for out, y_part in zip(outputs, ys)]
        for l in losses:
            l.backward()
        # step() divides the summed gradient by the whole batch size, however the
        # batch was split across the contexts.
        trainer.step(nominal_batch)
        for i, (l, out, y_part) in enumerate(zip(losses, outputs, ys)):
            loss_sum[i] += l.sum()
            correct[i] += _correct(out, y_part)
        # Let Python run at most one batch ahead of the device: enough to
        # prepare the next batch while this one computes, but without any wait
        # a slow device would have the whole epoch queued up in memory.
        # wait_to_read copies nothing to the host.
        if previous is not None:
            previous.wait_to_read()
        previous = losses[-1]
        n += X.shape[0]
        if bar is not None:
            bar.update(X.shape[0])
            now = time.time()
            if now - last_refresh >= _PROGRESS_REFRESH_S:
                # The only in-epoch host reads: at most one every 0.5 s.
                bar.set_postfix([("loss", "%.4f" % (_total(loss_sum) / n)),
                                 ("acc", "%.3f" % (_total(correct) / n))], refresh=False)
                last_refresh = now
    if bar is not None:
        bar.close()
    # Reading the sums waits for the last batch, so the time below is the real one.
    mean_loss = _total(loss_sum) / n if n else float("nan")
    train_acc = _total(correct) / n if n else float("nan")
    train_time = time.time() - start
    return {"loss": mean_loss, "train_acc": train_acc,
            "images_per_sec": n / train_time if train_time > 0 else float("nan"),
            "lr": trainer.learning_rate}

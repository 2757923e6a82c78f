"""A prepared training run, trained: data, net, trainer, checkpoint restore, saving.

The command line (``cli/train.py``) decides what to run -- settings merged from
flags, config.json and the recipe, devices, the run folder -- and hands a
:class:`Run` to :func:`fit`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..errors import GluonCNNsError, UsageError, error_line
from ..artifacts.state import seed_all

if TYPE_CHECKING:  # the annotations only: importing this module imports no MXNet
    from mxnet import Context
    from mxnet.gluon import HybridBlock

    from ..data.image_data import ImageData
    from .distributed import Cluster
    from ..artifacts.rundir import RunDir
    from .saver import Checkpointer


@dataclass
class Run:
    """What :func:`fit` trains. ``settings`` are those of :mod:`gluon_cnns.settings`, complete
    (see :mod:`gluon_cnns.training.prepare`); ``source`` is the run folder a resumed
    checkpoint is read from (every worker reads it); ``writer`` the folder written to
    (rank 0 only)."""
    settings: Dict[str, Any]
    ctxs: List[Context]
    net: HybridBlock
    sample_shape: Tuple[int, int, int, int]  # (1, channels, side, side)
    cluster: Cluster
    source: Optional[RunDir] = None
    writer: Optional[RunDir] = None
    ckpt: Optional[Dict[str, Any]] = None  # the checkpoint entry resumed from
    hybridize: bool = True
    progress: bool = True
    resume_command: str = ""
    warn: Optional[Callable[[str], None]] = None  # one warning line -> stderr
    config: Optional[Dict[str, Any]] = None  # what config.json keeps, written once restored
    images: Optional[ImageData] = None  # the scanned image folder or pack
    start_from: Optional[HybridBlock] = field(default=None, repr=False)  # --finetune's net
    saver: Optional[Checkpointer] = field(default=None, repr=False)
    tensorboard: Optional[str] = None  # the folder of TensorBoard's events (rank 0 only)
    tensorboard_every: int = 50  # batches between running-loss points

    def __post_init__(self):
        """Refuse settings that are incomplete or of the wrong type, before any training."""
        from ..settings import kept
        from ..artifacts.records import config_problem
        missing = [spec.name for spec in kept() if spec.name not in self.settings]
        problem = ("it has no %s" % ", ".join(repr(name) for name in missing) if missing
                   else config_problem(self.settings))
        if problem:
            raise GluonCNNsError("Run.settings: %s; build them with gluon_cnns.training.prepare's "
                                 "run_settings and resolve_data" % problem)

    @property
    def done(self):
        """Epochs finished before this run started."""
        return self.ckpt["epoch"] if self.ckpt else 0


def _load(run):
    """The data iterators of the run (this worker's shard of the training set)."""
    import mxnet as mx
    from ..data import load_data
    s = run.settings
    # With several devices the batch is split later; keep it on the CPU until then.
    data_ctx = run.ctxs[0] if len(run.ctxs) == 1 else mx.cpu()
    if run.images is not None:
        train_iter, test_iter = _image_batches(run, data_ctx)
    else:
        train_iter, test_iter = load_data(s["dataset"], run.cluster.batch_size,
                                          resize=s["resize"], root=s["data_dir"], ctx=data_ctx,
                                          limit_train=s["limit_train"],
                                          limit_test=s["limit_test"])
    train_iter = run.cluster.shard(train_iter)
    check_split(train_iter.num_examples, train_iter.batch_size, len(run.ctxs))
    return train_iter, test_iter


def check_split(examples, batch_size, devices):
    """UsageError unless every batch gives each device an example: MXNet cannot hand a
    device an empty part of a batch (``split_and_load``), and a device left out would add
    its previous gradient again."""
    smallest = min(batch_size, examples % batch_size or batch_size)
    if devices > 1 and smallest < devices:
        raise UsageError("training on %d devices splits each batch among them, and %d examples "
                         "in batches of %d leave a batch of %d; give every batch at least %d "
                         "examples (--batch-size, --limit-train)"
                         % (devices, examples, batch_size, smallest, devices))


def _image_batches(run, ctx):
    """(train, test) ImageBatches of the run's image folder or pack."""
    from ..data.image_batches import image_iterators
    s = run.settings
    train, test = image_iterators(run.images, run.cluster.batch_size, s["resize"], s["channels"],
                                  ctx, s["mean"], s["std"], augment=s["augment"],
                                  center_crop=s["center_crop"], workers=s["workers"],
                                  bad_images=s["bad_images"], warn=run.warn)
    if s["limit_train"]:
        train = train.take(s["limit_train"])
    if s["limit_test"]:
        test = test.take(s["limit_test"])
    return train, test


def _build(run, train_iter, tricks):
    """Initialize the net, make the trainer and restore the checkpoint being resumed."""
    import mxnet as mx
    from .optim import make_trainer
    run.net.initialize(mx.init.Xavier(), ctx=run.ctxs)
    if run.settings.get("last_gamma"):
        from .tricks import check_last_gamma, zero_last_gammas
        check_last_gamma(run.net, run.settings["net"])
        zero_last_gammas(run.net)
    if run.start_from is not None:  # --finetune, fresh: the source's features
        from .finetune import transfer_features
        transfer_features(run.start_from, run.net, run.sample_shape, run.ctxs)
    if run.settings.get("freeze_features"):
        from .finetune import freeze_features
        freeze_features(run.net)
    if run.hybridize:
        # Static memory and shapes: the graph is planned once (a short last batch plans it
        # once more); lenet_bn's training step measured 10.4k -> 14k images/s.
        run.net.hybridize(static_alloc=True, static_shape=True)
    trainer = make_trainer(run.net, run.settings, len(train_iter), run.cluster)
    if run.ckpt:
        try:
            run.source.restore(run.ckpt, run.net, trainer, run.ctxs, train_iter, tricks.ema)
        except GluonCNNsError as e:  # CheckpointError, DataError
            raise UsageError("--resume: cannot load the checkpoint in %s (%s); start a new "
                             "--save-dir" % (run.source, error_line(e)))
    run.cluster.sync_parameters(run.net, trainer, run.sample_shape, run.ctxs[0])
    return trainer


def _saver(run, trainer, train_iter, ema):
    """The Checkpointer of a run with a --save-dir (rank 0 only), else None."""
    from .saver import Checkpointer, CtrlC
    if run.writer is None:
        return None
    history, best = [], None
    if run.ckpt:
        history, best = _resumed_records(run)
    # Ctrl-C saves first; a distributed job cannot stop all its workers at one batch.
    ctrl_c = None if run.cluster.distributed else CtrlC()
    return Checkpointer(run.writer, run.net, trainer, train_iter, history, best,
                        current=run.ckpt, every=run.settings["checkpoint_every"],
                        ctrl_c=ctrl_c, last_epoch=run.settings["epochs"],
                        resume_command=run.resume_command, ema=ema)


def fit(run, on_ready=None):
    """Train the prepared run; returns the history of the epochs trained now.

    ``on_ready(train_iter, test_iter)``, if given, is called once the data is loaded
    and the net is built, just before the first batch.
    """
    from mxnet import gluon
    from .loop import train
    from .tboard import chain, open_board
    from .tricks import make_tricks
    seed_all(run.settings["seed"])
    train_iter, test_iter = _load(run)
    tricks = make_tricks(run.settings, run.net)
    trainer = _build(run, train_iter, tricks)
    if run.writer is not None and run.config is not None:
        run.writer.write_config(run.config)
    if on_ready is not None:
        on_ready(train_iter, test_iter)
    run.saver = saver = _saver(run, trainer, train_iter, tricks.ema)
    with (saver.ctrl_c if saver and saver.ctrl_c else contextlib.nullcontext()), \
            open_board(run, train_iter, test_iter) as board:
        # The board writes before the saver: what a checkpoint covers is on disk first.
        history = train(train_iter, test_iter, run.net, gluon.loss.SoftmaxCrossEntropyLoss(),
                      trainer, run.ctxs if len(run.ctxs) > 1 else run.ctxs[0],
                      run.settings["epochs"], progress=run.progress, callback=chain(board, saver),
                      start_epoch=run.done, seed=run.settings["seed"],
                      nan_policy=run.settings["nan_policy"] or "stop",
                      batch_callback=chain(board and board.on_batch, saver and saver.on_batch),
                      resume=run.ckpt.get("progress") if run.ckpt else None, tricks=tricks)
    if tricks.ema is not None:  # the run's final weights are the average (timm's ModelEmaV2)
        tricks.ema.apply_for_good()
    return history


def _resumed_records(run):
    """The log records and the best epoch of the checkpoint being resumed, with the log
    and best.params checked against it (a log that disagrees is rebuilt from the index;
    a best.params that is gone or damaged is written again by the next better epoch)."""
    ckpt = run.ckpt
    warn = run.warn or (lambda line: None)
    history = list(ckpt.get("records") or [])  # a copy: the entry keeps its own records
    if "records" not in ckpt:  # an index written before entries held their records
        history = [r for r in (run.writer.read_log() or []) if r["epoch"] <= run.done]
    run.writer.reconcile_log(history, warn)
    best = run.writer.intact_best(ckpt)
    if best is None and ckpt.get("best_epoch") is not None:
        warn("warning: best.params of epoch %d is missing or damaged; the next epoch writes "
             "it again" % ckpt["best_epoch"])
    return history, best

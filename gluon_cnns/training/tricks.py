"""The training tricks of "Bag of Tricks for Image Classification with Convolutional Neural
Networks" (He et al. 2019) as GluonCV's train_imagenet.py applies them, and timm's weight EMA.

* :class:`Targets` -- label smoothing (Szegedy et al. 2016 sec. 7; He et al. 2019 sec. 5.2)
  and mixup (Zhang et al. 2018; He et al. 2019 sec. 5.4): what a batch trains on.
* :func:`no_weight_decay` -- no decay on biases and BatchNorm's gamma and beta (sec. 3.1).
* :func:`zero_last_gammas` -- each residual block starts as the identity (sec. 3.1).
* :class:`WeightEMA` -- an exponential moving average of the weights (timm's ModelEmaV2).

The linear warm-up (``warmup_epochs``, sec. 3.1) is a learning-rate schedule:
``training/optim.py``. Each trick is off unless its setting is given.

Mixup's randomness is a function of the position, as Dropout's is (``engine.position_seed``):
batch b of epoch e draws ``lam ~ Beta(alpha, alpha)`` from a generator seeded with
``position_seed(seed, e, b)``, and pairs each example with the one at the mirrored place of
the same batch, ``x[::-1]``, as GluonCV does. A resumed run therefore mixes as the
uninterrupted one, and the workers of a distributed run share ``lam`` while each mixes within
its own part of the global batch -- one process on the union of their batches mixes each
worker's part alike.
"""
import contextlib

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..errors import UsageError
from .engine import position_seed


# ---------------------------------------------------------------- label smoothing and mixup

def smooth(y, classes, eps):
    """One-hot rows of the labels ``y``, smoothed: 1 - eps + eps/K on the label, eps/K on the
    other K-1 classes (GluonCV's ``smooth``; eps 0: plain one-hot)."""
    return mx.nd.one_hot(y, classes, on_value=1 - eps + eps / classes, off_value=eps / classes)


def mixup_lambda(seed, alpha, epoch, batch):
    """The mixing weight of batch ``batch`` (1-based) of epoch ``epoch``: Beta(alpha, alpha)."""
    return float(np.random.RandomState(position_seed(seed, epoch, batch)).beta(alpha, alpha))


def mix(X, targets, lam):
    """``lam * X + (1 - lam) * X[::-1]``, and the targets alike: each example with its mirror."""
    return (X * lam + mx.nd.flip(X, axis=0) * (1 - lam),
            targets * lam + mx.nd.flip(targets, axis=0) * (1 - lam))


class Targets:
    """What a batch trains on with label smoothing and mixup: ``(X, soft targets, labels)``.

    The soft targets go to :attr:`loss` (cross-entropy on probabilities); the labels are those
    the train accuracy counts, the mix's larger part. Mixup is off in the last
    ``mixup_off_epoch`` epochs of ``epochs`` (GluonCV's ``--mixup-off-epoch``).
    """

    def __init__(self, classes, seed, smoothing=0.0, alpha=0.0, mixup_off_epoch=0, epochs=None):
        self.classes, self.seed, self.smoothing, self.alpha = classes, seed, smoothing, alpha
        self.mixup_until = (epochs or 0) - mixup_off_epoch if epochs else None
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)

    def mixing(self, epoch):
        """Whether epoch ``epoch`` (1-based) mixes."""
        return self.alpha > 0 and (self.mixup_until is None or epoch <= self.mixup_until)

    def __call__(self, X, y, epoch, batch):
        targets = smooth(y, self.classes, self.smoothing)
        if not self.mixing(epoch):
            return X, targets, y
        lam = mixup_lambda(self.seed, self.alpha, epoch, batch)
        X, targets = mix(X, targets, lam)
        return X, targets, (y if lam >= 0.5 else mx.nd.flip(y, axis=0))


# ---------------------------------------------------------------- weight decay, last gamma

def no_decay_parameters(net):
    """``{structural name: Parameter}`` of the biases and BatchNorm's gamma and beta of ``net``.

    Chosen by what each parameter is -- the ``bias`` of any layer, ``gamma`` and ``beta`` of a
    BatchNorm -- not by a pattern of names (GluonCV's ``'.*beta|.*gamma|.*bias'``), which
    would also catch a layer whose name merely contains one of the words.
    """
    found = {}

    def visit(block, prefix):
        for key, param in block._reg_params.items():  # pylint: disable=protected-access
            if key == "bias" or (isinstance(block, gluon.nn.BatchNorm) and key in ("gamma",
                                                                                    "beta")):
                found[prefix + key] = param
        for name, child in block._children.items():  # pylint: disable=protected-access
            visit(child, prefix + name + ".")
    visit(net, "")
    return found


def no_weight_decay(net):
    """Set ``wd_mult`` 0 on :func:`no_decay_parameters` (before the Trainer is made)."""
    for param in no_decay_parameters(net).values():
        param.wd_mult = 0.0


def copy_wd_mult(trainer):
    """Also give the optimizer the parameters' ``wd_mult`` by index: an optimizer pickled to a
    kvstore server (or into a checkpoint) leaves its ``param_dict`` behind (MXNet's
    ``Optimizer.__getstate__``), and would decay everything there."""
    optimizer = trainer._optimizer  # pylint: disable=protected-access
    for index, param in enumerate(trainer._params):  # pylint: disable=protected-access
        if param.wd_mult != 1.0:
            optimizer.wd_mult[index] = param.wd_mult


def last_gammas(net):
    """The gamma of the last BatchNorm of each residual block of ``net`` (the blocks that name
    it as ``last_batchnorm``), in the order of the net."""
    found = []
    net.apply(lambda block: found.append(block.last_batchnorm.gamma)
              if getattr(block, "last_batchnorm", None) is not None else None)
    return found


def check_last_gamma(net, name):
    """UsageError unless ``net`` has residual blocks with a last BatchNorm."""
    if not last_gammas(net):
        raise UsageError("--last-gamma zero-initializes the last BatchNorm of each residual "
                         "block, and %s has none (the ResNets and CIFAR ResNets do); drop "
                         "--last-gamma" % name)


def zero_last_gammas(net):
    """Each residual block starts as the identity: its last BatchNorm's gamma is 0 (GluonCV's
    ``last_gamma=True``). The net must be initialized (deferred shapes are fine)."""
    for gamma in last_gammas(net):
        gamma.initialize(mx.init.Zero(), ctx=gamma.list_ctx(), force_reinit=True)


# ---------------------------------------------------------------- weight EMA

class WeightEMA:
    """An exponential moving average of every parameter of ``net`` (timm's ModelEmaV2):
    after each update, ``ema = decay * ema + (1 - decay) * w``, starting from the weights
    before the first update.

    BatchNorm's running mean and variance are averaged like the weights (ModelEmaV2 averages
    the whole ``state_dict``, buffers included): they are parameters of the net, and the
    averaged weights are tested with averaged statistics of the same runs. The average lives
    on the first context; :meth:`applied` puts it into the net for a while (testing, saving).
    """

    def __init__(self, net, decay):
        self.net, self.decay = net, decay
        self.params = list(net.collect_params().values())
        self.shadow = None  # one NDArray per parameter, once started

    def begin(self, Xs=()):
        """Start from the net's weights (no-op once started); a fresh net first gets its
        shapes from a predict-mode pass over ``Xs``, which changes no statistics."""
        if self.shadow is not None:
            return
        if any(p._data is None for p in self.params):  # pylint: disable=protected-access
            with autograd.predict_mode():
                for x in Xs:
                    self.net(x)
        self.shadow = [p.list_data()[0].copy() for p in self.params]

    def update(self):
        """``ema = decay * ema + (1 - decay) * w``, on the device."""
        for e, p in zip(self.shadow, self.params):
            e[:] = e * self.decay + p.list_data()[0] * (1 - self.decay)

    @contextlib.contextmanager
    def applied(self):
        """The net holds the average inside the block, its own weights again after it."""
        if self.shadow is None:
            yield
            return
        own = [[a.copy() for a in p.list_data()] for p in self.params]
        try:
            for e, p in zip(self.shadow, self.params):
                for a in p.list_data():
                    e.copyto(a)
            yield
        finally:
            for arrays, p in zip(own, self.params):
                for saved, a in zip(arrays, p.list_data()):
                    saved.copyto(a)

    def apply_for_good(self):
        """Put the average into the net for good (the run's final weights)."""
        if self.shadow is not None:
            for e, p in zip(self.shadow, self.params):
                p.set_data(e)

    def save(self, path):
        """Write the average as a ``.params`` file of the net (``net.save_parameters``)."""
        with self.applied():
            self.net.save_parameters(path)

    def load(self, path, ctx=None):
        """Read the average back from :meth:`save`'s file; call it before the net's own
        weights are loaded (it goes through the net)."""
        self.net.load_parameters(path, ctx=ctx)
        self.shadow = None
        self.begin()


class Tricks:
    """The tricks of a run that act batch by batch: ``targets`` (a :class:`Targets` or None)
    and ``ema`` (a :class:`WeightEMA` or None)."""

    def __init__(self, targets=None, ema=None):
        self.targets, self.ema = targets, ema

    def __bool__(self):
        return self.targets is not None or self.ema is not None


def make_tricks(settings, net):
    """The :class:`Tricks` of a run's settings; empty when none is given."""
    targets = ema = None
    if settings.get("label_smoothing") or settings.get("mixup"):
        targets = Targets(settings["classes"], settings["seed"] or 0,
                          settings.get("label_smoothing") or 0.0, settings.get("mixup") or 0.0,
                          settings.get("mixup_off_epoch") or 0, settings["epochs"])
    if settings.get("ema"):
        ema = WeightEMA(net, settings["ema"])
    return Tricks(targets, ema)

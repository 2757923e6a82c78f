"""The CIFAR-10 ResNets of He et al. 2015, section 4.2: depth 6n+2.

A 3x3 conv with 16 filters, then three stages of ``n`` basic blocks with
16, 32 and 64 filters on 32, 16 and 8-pixel maps (the first block of stages 2
and 3 halves the side with stride 2 and doubles the channels), global average
pooling and a dense layer: 6n + 2 weighted layers.

Shortcut options (section 3.3), for the blocks that change side and width:

* ``'A'`` -- the paper's choice for CIFAR-10 (section 4.2: "identity shortcuts
  in all cases"): the input subsampled with stride 2 (``x[:, :, ::2, ::2]``),
  with zero-valued channels appended for the new channels. No parameters, so
  the residual net has exactly the parameters of its plain counterpart:
  269,722 / 464,154 / 658,586 / 853,018 / 1,727,962 learnable parameters at
  depth 20 / 32 / 44 / 56 / 110 (3-channel input, 10 classes).
* ``'B'`` -- a 1x1 convolution with stride 2 and BatchNorm (a projection), as
  in GluonCV's ``cifar_resnet*_v1``: 2,752 more learnable parameters.

``get_model('resnet20_cifar', shortcut='B', stem_relu=False)`` is GluonCV's
``cifar_resnet20_v1`` parameter for parameter (same creation order and shapes;
GluonCV's stem has no ReLU after its BatchNorm), so its trained weights load
with :func:`gluon_cnns.models.gluoncv_weights.load_gluoncv_params`.
"""
from mxnet.gluon import nn

from .base import ClassicNet, GlobalAvgPool

SHORTCUTS = ("A", "B")


class ZeroPadShortcut(nn.HybridBlock):
    """Shortcut option A, without parameters: ``x[:, :, ::strides, ::strides]`` widened
    from ``in_channels`` to ``channels`` by appending zero channels after the input's.

    The zeros may be at most as many as the input's channels (the CIFAR ResNets
    double the width: as many).
    """

    def __init__(self, strides, in_channels, channels, **kwargs):
        super().__init__(**kwargs)
        if not in_channels <= channels <= 2 * in_channels:
            raise ValueError("option A widens %d channels to between %d and %d, not %d"
                             % (in_channels, in_channels, 2 * in_channels, channels))
        self._strides = strides
        self._in_channels, self._extra = in_channels, channels - in_channels

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        if self._strides != 1:
            x = F.slice(x, begin=(None, None, None, None), end=(None, None, None, None),
                        step=(1, 1, self._strides, self._strides))
        if self._extra:
            like = x if self._extra == self._in_channels else F.slice_axis(
                x, axis=1, begin=0, end=self._extra)
            x = F.concat(x, F.zeros_like(like), dim=1)
        return x


class CIFARBasicBlock(nn.HybridBlock):
    """Two bias-free 3x3 convs with BatchNorm, added to the shortcut, then ReLU.

    The shortcut is the identity unless the block changes the side (``strides``)
    or the width (``in_channels`` != ``channels``); then it is option ``'A'``
    (:class:`ZeroPadShortcut`) or ``'B'`` (1x1 conv + BatchNorm), He et al. 2015
    section 3.3.
    """

    def __init__(self, channels, strides=1, in_channels=None, shortcut="A", **kwargs):
        super().__init__(**kwargs)
        in_channels = channels if in_channels is None else in_channels
        with self.name_scope():
            self.body = nn.HybridSequential()
            self.body.add(nn.Conv2D(channels, 3, strides, 1, use_bias=False), nn.BatchNorm(),
                          nn.Activation("relu"),
                          nn.Conv2D(channels, 3, 1, 1, use_bias=False), nn.BatchNorm())
            self.shortcut = None
            if strides != 1 or in_channels != channels:
                if shortcut == "A":
                    self.shortcut = ZeroPadShortcut(strides, in_channels, channels)
                else:
                    self.shortcut = nn.HybridSequential()
                    self.shortcut.add(nn.Conv2D(channels, 1, strides, use_bias=False),
                                      nn.BatchNorm())

    @property
    def last_batchnorm(self):
        """The body's BatchNorm before the addition (``--last-gamma`` starts its gamma at 0)."""
        return self.body[-1]

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        residual = x if self.shortcut is None else self.shortcut(x)
        return F.Activation(self.body(x) + residual, act_type="relu")


def cifar_stage(channels, num_blocks, strides, in_channels, shortcut="A"):
    """``num_blocks`` basic blocks of ``channels`` filters; the first one applies ``strides``
    and widens from ``in_channels`` through a shortcut of kind ``shortcut``."""
    stage = nn.HybridSequential()
    with stage.name_scope():
        stage.add(CIFARBasicBlock(channels, strides, in_channels, shortcut))
        for _ in range(num_blocks - 1):
            stage.add(CIFARBasicBlock(channels, shortcut=shortcut))
    return stage


class CIFARResNet(ClassicNet):
    """ResNet-``depth`` for 32x32 CIFAR images, He et al. 2015 section 4.2 (depth 6n+2).

    3x3 conv (16) + BN (+ ReLU if ``stem_relu``), three stages of ``n`` blocks
    with 16/32/64 filters on 32/16/8-pixel maps, global average pooling, dense.

    ``shortcut='A'`` (default, the paper's for CIFAR-10): subsampling and zero
    channels, no parameters. ``shortcut='B'``: 1x1 conv + BatchNorm projection.
    ``stem_relu=True`` (default) is the paper's conv-BN-ReLU stem;
    ``stem_relu=False`` with ``shortcut='B'`` is GluonCV's ``CIFARResNetV1``.
    """

    cam_layer = -3  # Grad-CAM explains the last residual stage

    def __init__(self, depth, classes=10, shortcut="A", stem_relu=True, **kwargs):
        super().__init__(**kwargs)
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError("CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got %r"
                             % (depth,))
        if shortcut not in SHORTCUTS:
            raise ValueError("CIFAR ResNet shortcut must be 'A' (zero-padded identity) or 'B' "
                             "(1x1 conv projection), got %r" % (shortcut,))
        self.depth, self.shortcut_option, self.stem_relu = depth, shortcut, bool(stem_relu)
        n = (depth - 2) // 6
        with self.name_scope():
            stem = nn.HybridSequential()
            stem.add(nn.Conv2D(16, 3, 1, 1, use_bias=False), nn.BatchNorm())
            if stem_relu:
                stem.add(nn.Activation("relu"))
            self.add(stem,
                     cifar_stage(16, n, 1, 16, shortcut),
                     cifar_stage(32, n, 2, 16, shortcut),
                     cifar_stage(64, n, 2, 32, shortcut),
                     GlobalAvgPool(),  # = GlobalAvgPool2D, trains 1.9x faster: see its doc
                     nn.Dense(classes))


def _depth(depth, doc):
    """The builder of the CIFAR ResNet of ``depth``: ``builder(classes=10, **kwargs)``."""
    def builder(classes=10, **kwargs):
        return CIFARResNet(depth, classes=classes, **kwargs)
    builder.__name__ = builder.__qualname__ = "resnet%d_cifar" % depth
    builder.__doc__ = doc
    return builder


# Learnable parameters with option A (3-channel input, 10 classes); the paper's in brackets.
resnet14_cifar = _depth(14, "ResNet-14 (n=2), the CIFAR source article's ``ResNet(ResidualBlock, "
                            "[2, 2, 2])`` with its stage-3 bug fixed (172,506 parameters).")
resnet20_cifar = _depth(20, "ResNet-20 for CIFAR (269,722 parameters; the paper's 0.27M).")
resnet32_cifar = _depth(32, "ResNet-32 for CIFAR (464,154 parameters; the paper's 0.46M).")
resnet44_cifar = _depth(44, "ResNet-44 for CIFAR (658,586 parameters; the paper's 0.66M).")
resnet56_cifar = _depth(56, "ResNet-56 for CIFAR (853,018 parameters; the paper's 0.85M).")
resnet110_cifar = _depth(110, "ResNet-110 for CIFAR (1,727,962 parameters; the paper's 1.7M).")

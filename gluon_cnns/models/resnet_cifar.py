"""The CIFAR-10 ResNets of He et al. 2015, section 4.2: depth 6n+2.

Corrects the CIFAR source article: stage 3 gets its own depth (the article
reuses stage 2's), the shortcut is the paper's 1x1 projection (option B), not
a 3x3 conv, and every stage is built by one function with one signature.
"""
from mxnet.gluon import nn

from .base import ClassicNet, GlobalAvgPool


class CIFARBasicBlock(nn.HybridBlock):
    """Two bias-free 3x3 convs with BatchNorm; a 1x1 conv + BN projection shortcut
    when the block changes the side or the channels."""

    def __init__(self, channels, strides=1, projection=False, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential()
            self.body.add(nn.Conv2D(channels, 3, strides, 1, use_bias=False), nn.BatchNorm(),
                          nn.Activation("relu"),
                          nn.Conv2D(channels, 3, 1, 1, use_bias=False), nn.BatchNorm())
            self.shortcut = None
            if projection:
                self.shortcut = nn.HybridSequential()
                self.shortcut.add(nn.Conv2D(channels, 1, strides, use_bias=False),
                                  nn.BatchNorm())

    def hybrid_forward(self, F, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        return F.Activation(self.body(x) + residual, act_type="relu")


def cifar_stage(channels, num_blocks, strides):
    """``num_blocks`` basic blocks; the first one applies ``strides`` and projects."""
    stage = nn.HybridSequential()
    with stage.name_scope():
        stage.add(CIFARBasicBlock(channels, strides, projection=strides != 1))
        for _ in range(num_blocks - 1):
            stage.add(CIFARBasicBlock(channels))
    return stage


class CIFARResNet(ClassicNet):
    """3x3 conv (16) + BN + ReLU, three stages of ``n`` blocks with 16/32/64 filters
    on 32/16/8-pixel maps, global average pooling, dense: depth 6n + 2."""

    def __init__(self, depth, classes=10, **kwargs):
        super().__init__(**kwargs)
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError("CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got %r"
                             % (depth,))
        n = (depth - 2) // 6
        with self.name_scope():
            stem = nn.HybridSequential()
            stem.add(nn.Conv2D(16, 3, 1, 1, use_bias=False), nn.BatchNorm(),
                     nn.Activation("relu"))
            self.add(stem,
                     cifar_stage(16, n, strides=1),
                     cifar_stage(32, n, strides=2),
                     cifar_stage(64, n, strides=2),
                     GlobalAvgPool(),  # = GlobalAvgPool2D, trains 1.9x faster: see its doc
                     nn.Dense(classes))


def resnet20_cifar(classes=10, **kwargs):
    """ResNet-20 for CIFAR (paper: 0.27M parameters)."""
    return CIFARResNet(20, classes=classes, **kwargs)


def resnet32_cifar(classes=10, **kwargs):
    """ResNet-32 for CIFAR (paper: 0.46M parameters)."""
    return CIFARResNet(32, classes=classes, **kwargs)


def resnet44_cifar(classes=10, **kwargs):
    """ResNet-44 for CIFAR (paper: 0.66M parameters)."""
    return CIFARResNet(44, classes=classes, **kwargs)


def resnet56_cifar(classes=10, **kwargs):
    """ResNet-56 for CIFAR (paper: 0.85M parameters)."""
    return CIFARResNet(56, classes=classes, **kwargs)


def resnet110_cifar(classes=10, **kwargs):
    """ResNet-110 for CIFAR (paper: 1.7M parameters)."""
    return CIFARResNet(110, classes=classes, **kwargs)

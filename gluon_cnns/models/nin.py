"""Network in Network (Lin, Chen & Yan 2013), as laid out in d2l section 7.3."""
from mxnet.gluon import nn

from .base import ClassicNet


def nin_block(channels, kernel_size, strides, padding):
    """One conv followed by two 1x1 convs (a per-pixel MLP), all with ReLU."""
    block = nn.HybridSequential()
    with block.name_scope():
        block.add(nn.Conv2D(channels, kernel_size, strides, padding, activation="relu"),
                  nn.Conv2D(channels, kernel_size=1, activation="relu"),
                  nn.Conv2D(channels, kernel_size=1, activation="relu"))
    return block


class NiNNet(ClassicNet):
    """NiN: three NiN blocks with max-pools, dropout, a NiN block with ``classes``
    channels and global average pooling in place of dense layers."""

    cam_layer = -3  # Grad-CAM explains the last NiN block (one map per class)

    # The classifier: the last NiN block (``classes`` channels), its global average
    # pooling and the flatten (Lin et al. 2013 section 3.2: no dense layers).
    head_size = 3

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nin_block(96, kernel_size=11, strides=4, padding=0),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     nin_block(256, kernel_size=5, strides=1, padding=2),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     nin_block(384, kernel_size=3, strides=1, padding=1),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     nn.Dropout(0.5),
                     nin_block(classes, kernel_size=3, strides=1, padding=1),
                     nn.GlobalAvgPool2D(),
                     nn.Flatten())


def nin(classes=10, **kwargs):
    """NiN for 224x224 inputs (1,992,166 parameters at 1 channel, 10 classes)."""
    return NiNNet(classes=classes, **kwargs)

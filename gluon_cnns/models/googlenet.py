"""GoogLeNet / Inception v1 (Szegedy et al. 2014), as laid out in d2l section 7.4.

Unlike the MXNet source article, the 3x3 and 5x5 paths really use 3x3 and 5x5
kernels, every conv has its ReLU, and the net ends with global average pooling
(the article's AvgPool(2) only works for one input size).
"""
from mxnet.gluon import nn

from .base import ClassicNet


class Inception(nn.HybridBlock):
    """Four parallel paths concatenated on the channel axis.

    ``c1``: 1x1 conv; ``c2 = (reduce, out)``: 1x1 then 3x3; ``c3 = (reduce, out)``:
    1x1 then 5x5; ``c4``: 3x3 max-pool then 1x1. Output channels c1 + c2[1] + c3[1] + c4.
    """

    def __init__(self, c1, c2, c3, c4, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation="relu")
            self.p2_1 = nn.Conv2D(c2[0], kernel_size=1, activation="relu")
            self.p2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation="relu")
            self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation="relu")
            self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation="relu")
            self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
            self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation="relu")

    def hybrid_forward(self, F, x):
        p1 = self.p1_1(x)
        p2 = self.p2_2(self.p2_1(x))
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return F.concat(p1, p2, p3, p4, dim=1)


def _stage(*blocks):
    stage = nn.HybridSequential()
    stage.add(*blocks)
    return stage


class GoogLeNet(ClassicNet):
    """Five stages (b1..b5) and a dense classifier; at 96x96 the stage outputs are
    64x24x24, 192x12x12, 480x6x6, 832x3x3, 1024x1x1."""

    cam_layer = -3  # Grad-CAM explains stage b4 (b5 ends in global pooling)

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(_stage(nn.Conv2D(64, kernel_size=7, strides=2, padding=3, activation="relu"),
                            nn.MaxPool2D(pool_size=3, strides=2, padding=1)))
            self.add(_stage(nn.Conv2D(64, kernel_size=1, activation="relu"),
                            nn.Conv2D(192, kernel_size=3, padding=1, activation="relu"),
                            nn.MaxPool2D(pool_size=3, strides=2, padding=1)))
            self.add(_stage(Inception(64, (96, 128), (16, 32), 32),
                            Inception(128, (128, 192), (32, 96), 64),
                            nn.MaxPool2D(pool_size=3, strides=2, padding=1)))
            self.add(_stage(Inception(192, (96, 208), (16, 48), 64),
                            Inception(160, (112, 224), (24, 64), 64),
                            Inception(128, (128, 256), (24, 64), 64),
                            Inception(112, (144, 288), (32, 64), 64),
                            Inception(256, (160, 320), (32, 128), 128),
                            nn.MaxPool2D(pool_size=3, strides=2, padding=1)))
            self.add(_stage(Inception(256, (160, 320), (32, 128), 128),
                            Inception(384, (192, 384), (48, 128), 128),
                            nn.GlobalAvgPool2D()))
            self.add(nn.Dense(classes))


def googlenet(classes=10, **kwargs):
    """GoogLeNet for 96x96 inputs (5,977,530 parameters at 1 channel, 10 classes)."""
    return GoogLeNet(classes=classes, **kwargs)

"""ResNet (He et al. 2015) for ImageNet-style inputs, as laid out in d2l section 7.6.

Corrects the MXNet source article: the stem has BatchNorm, ReLU, padding 3 and
a padded max-pool, and the head is global average pooling (the article's
AvgPool(3) before Dense only fits one input size).
"""
from mxnet.gluon import nn

from .base import ClassicNet


class Residual(nn.HybridBlock):
    """Basic block: two 3x3 convs with BatchNorm, ReLU after adding the shortcut.

    With ``use_1x1conv`` the shortcut is a strided 1x1 conv, so the block can
    change the channel count and halve the side.
    """

    def __init__(self, channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = nn.Conv2D(channels, kernel_size=3, padding=1, strides=strides)
            self.bn1 = nn.BatchNorm()
            self.conv2 = nn.Conv2D(channels, kernel_size=3, padding=1)
            self.bn2 = nn.BatchNorm()
            self.conv3 = (nn.Conv2D(channels, kernel_size=1, strides=strides)
                          if use_1x1conv else None)

    @property
    def last_batchnorm(self):
        """The BatchNorm before the addition (``--last-gamma`` starts its gamma at 0)."""
        return self.bn2

    def hybrid_forward(self, F, x):
        # Activation(act_type="relu") rather than F.relu: oneDNN has kernels for the former
        # only (fused with the conv, bf16, int8); measured 19 % faster on resnet56_cifar.
        y = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.Activation(y + x, act_type="relu")


def resnet_stage(channels, num_blocks, first_stage=False):
    """``num_blocks`` residual blocks; all but the first stage start by halving the side."""
    stage = nn.HybridSequential()
    with stage.name_scope():
        for i in range(num_blocks):
            if i == 0 and not first_stage:
                stage.add(Residual(channels, use_1x1conv=True, strides=2))
            else:
                stage.add(Residual(channels))
    return stage


class ResNet(ClassicNet):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), four stages of 64/128/256/512
    channels with ``layers[i]`` blocks each, global average pooling and a dense layer."""

    cam_layer = -3  # Grad-CAM explains the last residual stage

    def __init__(self, classes=10, layers=(2, 2, 2, 2), **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(self.stem(64))
            for i, (channels, num_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
                self.add(resnet_stage(channels, num_blocks, first_stage=(i == 0)))
            self.add(nn.GlobalAvgPool2D(), nn.Dense(classes))

    @staticmethod
    def stem(channels):
        """7x7/2 conv, BN, ReLU, 3x3/2 max-pool: a 4x smaller side (DenseNet reuses it)."""
        stem = nn.HybridSequential()
        stem.add(nn.Conv2D(channels, kernel_size=7, strides=2, padding=3),
                 nn.BatchNorm(), nn.Activation("relu"),
                 nn.MaxPool2D(pool_size=3, strides=2, padding=1))
        return stem


def resnet18(classes=10, **kwargs):
    """ResNet-18 (11,186,186 parameters at 1 channel, 10 classes)."""
    return ResNet(classes=classes, layers=(2, 2, 2, 2), **kwargs)


def resnet34(classes=10, **kwargs):
    """ResNet-34."""
    return ResNet(classes=classes, layers=(3, 4, 6, 3), **kwargs)

"""The two small nets of the lecture source article ("PyTorch深度学习实践", lecture 11),
for 28x28 MNIST-style inputs: one with Inception modules, one with residual blocks."""
from mxnet.gluon import nn

from .base import ClassicNet


class InceptionA(nn.HybridBlock):
    """The lecture's Inception module: 1x1(16) | 1x1(16)->5x5(24) |
    1x1(16)->3x3(24)->3x3(24) | avg-pool->1x1(24); 88 output channels, same side.

    As in the lecture, no activation inside the module.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.branch1x1 = nn.Conv2D(16, kernel_size=1)
            self.branch5x5_1 = nn.Conv2D(16, kernel_size=1)
            self.branch5x5_2 = nn.Conv2D(24, kernel_size=5, padding=2)
            self.branch3x3_1 = nn.Conv2D(16, kernel_size=1)
            self.branch3x3_2 = nn.Conv2D(24, kernel_size=3, padding=1)
            self.branch3x3_3 = nn.Conv2D(24, kernel_size=3, padding=1)
            # count_include_pad=True matches PyTorch's avg_pool2d default
            self.branch_pool_avg = nn.AvgPool2D(pool_size=3, strides=1, padding=1)
            self.branch_pool = nn.Conv2D(24, kernel_size=1)

    def hybrid_forward(self, F, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        bp = self.branch_pool(self.branch_pool_avg(x))
        return F.concat(b1, b5, b3, bp, dim=1)


class ResidualBlock(nn.HybridBlock):
    """relu(x + conv3x3(relu(conv3x3(x)))): channels and side unchanged, no BatchNorm."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = nn.Conv2D(channels, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2D(channels, kernel_size=3, padding=1)

    def hybrid_forward(self, F, x):
        y = self.conv2(F.Activation(self.conv1(x), act_type="relu"))
        return F.Activation(x + y, act_type="relu")


def _conv_pool_relu(channels):
    # Pool and ReLU commute for max-pooling; the lecture's order is kept.
    return [nn.Conv2D(channels, kernel_size=5), nn.MaxPool2D(pool_size=2),
            nn.Activation("relu")]


class InceptionMNIST(ClassicNet):
    """Conv(10,5) Pool ReLU InceptionA Conv(20,5) Pool ReLU InceptionA Flatten Dense;
    1408 features reach the dense layer at 28x28."""

    cam_layer = -3  # Grad-CAM explains the second InceptionA

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(*_conv_pool_relu(10), InceptionA(),
                     *_conv_pool_relu(20), InceptionA(),
                     nn.Flatten(), nn.Dense(classes))


class ResNetMNIST(ClassicNet):
    """Conv(16,5) Pool ReLU Residual(16) Conv(32,5) Pool ReLU Residual(32) Flatten Dense;
    512 features reach the dense layer at 28x28."""

    cam_layer = -3  # Grad-CAM explains the second residual block

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(*_conv_pool_relu(16), ResidualBlock(16),
                     *_conv_pool_relu(32), ResidualBlock(32),
                     nn.Flatten(), nn.Dense(classes))


def inception_mnist(classes=10, **kwargs):
    """The lecture's Inception net for 28x28 inputs."""
    return InceptionMNIST(classes=classes, **kwargs)


def resnet_mnist(classes=10, **kwargs):
    """The lecture's residual net for 28x28 inputs."""
    return ResNetMNIST(classes=classes, **kwargs)

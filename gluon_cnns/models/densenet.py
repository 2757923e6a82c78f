"""DenseNet (Huang et al. 2017), the small version of d2l section 7.7."""
from mxnet.gluon import nn

from .base import ClassicNet
from .resnet import ResNet


def conv_block(channels):
    """BN, ReLU, 3x3 conv: the pre-activation order DenseNet uses."""
    block = nn.HybridSequential()
    block.add(nn.BatchNorm(), nn.Activation("relu"),
              nn.Conv2D(channels, kernel_size=3, padding=1))
    return block


class DenseBlock(nn.HybridBlock):
    """``num_convs`` conv blocks, each seeing the concatenation of all earlier outputs;
    adds ``num_convs * growth_rate`` channels."""

    def __init__(self, num_convs, growth_rate, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.net = nn.HybridSequential()
            for _ in range(num_convs):
                self.net.add(conv_block(growth_rate))

    def hybrid_forward(self, F, x):
        for blk in self.net:
            x = F.concat(x, blk(x), dim=1)
        return x


def transition_block(channels):
    """BN, ReLU, 1x1 conv to ``channels``, 2x2 average pool: shrinks width and side."""
    block = nn.HybridSequential()
    block.add(nn.BatchNorm(), nn.Activation("relu"),
              nn.Conv2D(channels, kernel_size=1),
              nn.AvgPool2D(pool_size=2, strides=2))
    return block


class DenseNet(ClassicNet):
    """ResNet's stem, dense blocks separated by channel-halving transitions, then
    BN, ReLU, global average pooling and a dense layer."""

    cam_layer = -3  # Grad-CAM explains the final BN-ReLU of the dense features

    def __init__(self, classes=10, growth_rate=32, block_config=(4, 4, 4, 4),
                 init_channels=64, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(ResNet.stem(init_channels))
            channels = init_channels
            for i, num_convs in enumerate(block_config):
                self.add(DenseBlock(num_convs, growth_rate))
                channels += num_convs * growth_rate
                if i != len(block_config) - 1:
                    channels //= 2
                    self.add(transition_block(channels))
            self.add(nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D(),
                     nn.Dense(classes))


def densenet(classes=10, **kwargs):
    """d2l's DenseNet for 96x96 inputs (764,834 parameters at 1 channel, 10 classes)."""
    return DenseNet(classes=classes, **kwargs)

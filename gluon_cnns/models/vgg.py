"""VGG (Simonyan & Zisserman 2014), built from an architecture list as in d2l section 7.2."""
from mxnet.gluon import nn

from .base import ClassicNet

# (number of 3x3 convs, output channels) per block: the paper's configurations A, B, D, E.
VGG_ARCHITECTURES = {
    11: ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    13: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    16: ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    19: ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def vgg_block(num_convs, channels):
    """``num_convs`` 3x3 pad-1 ReLU convs followed by a 2x2 max-pool that halves the side."""
    block = nn.HybridSequential()
    with block.name_scope():
        for _ in range(num_convs):
            block.add(nn.Conv2D(channels, kernel_size=3, padding=1, activation="relu"))
        block.add(nn.MaxPool2D(pool_size=2, strides=2))
    return block


class VGGNet(ClassicNet):
    """VGG from ``architecture`` = ((num_convs, channels), ...).

    ``ratio`` divides every conv's channels (d2l trains VGG-11 with ratio 4 to
    fit Fashion-MNIST on one GPU); ``fc_units`` is the width of the two hidden
    dense layers.
    """

    cam_layer = -7  # Grad-CAM explains the last VGG block

    def __init__(self, architecture, ratio=1, fc_units=4096, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            for num_convs, channels in architecture:
                self.add(vgg_block(num_convs, channels // ratio))
            # An explicit Flatten, as the MXNet article's VGG has (see LeNet), lets
            # mx.viz.print_summary count the first dense layer's inputs.
            self.add(nn.Flatten(),
                     nn.Dense(fc_units, activation="relu"), nn.Dropout(0.5),
                     nn.Dense(fc_units, activation="relu"), nn.Dropout(0.5),
                     nn.Dense(classes))


def vgg(depth, classes=10, ratio=1, fc_units=4096, **kwargs):
    """VGG-``depth`` for ``depth`` in 11, 13, 16, 19."""
    return VGGNet(VGG_ARCHITECTURES[depth], ratio=ratio, fc_units=fc_units, classes=classes,
                  **kwargs)


def vgg11(classes=10, **kwargs):
    """VGG-11 (128,806,154 parameters at 1x224x224, 10 classes)."""
    return vgg(11, classes=classes, **kwargs)


def vgg13(classes=10, **kwargs):
    """VGG-13."""
    return vgg(13, classes=classes, **kwargs)


def vgg16(classes=10, **kwargs):
    """VGG-16."""
    return vgg(16, classes=classes, **kwargs)


def vgg19(classes=10, **kwargs):
    """VGG-19."""
    return vgg(19, classes=classes, **kwargs)


def vgg11_small(classes=10, **kwargs):
    """VGG-11 with a quarter of the conv channels, the model d2l section 7.2 trains."""
    kwargs.setdefault("ratio", 4)
    return vgg(11, classes=classes, **kwargs)

"""LeNet (LeCun et al. 1998) in the two forms the tutorials train.

* :class:`LeNet` is the MXNet source article's version: ReLU activations,
  20 and 50 conv filters, a 128-unit hidden layer.
* :class:`LeNetBN` is the batch-normalized LeNet of d2l section 7.5 ("Batch
  Normalization"): 6/16 filters, 120/84 units, BatchNorm before every
  activation, sigmoid by default as in the book.
"""
from mxnet.gluon import nn

from .base import ClassicNet


class LeNet(ClassicNet):
    """The MXNet article's LeNet: Conv(20,5) Pool Conv(50,3) Pool Flatten Dense(128) Dense."""

    cam_layer = -5  # Grad-CAM explains the second conv (50 maps)

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nn.Conv2D(20, kernel_size=5, activation="relu"),
                     nn.MaxPool2D(pool_size=2, strides=2),
                     nn.Conv2D(50, kernel_size=3, activation="relu"),
                     nn.MaxPool2D(pool_size=2, strides=2),
                     # Dense would flatten by itself; an explicit Flatten, as the article
                     # has, lets symbol-level tools (mx.viz.print_summary) see the shapes.
                     nn.Flatten(),
                     nn.Dense(128, activation="relu"),
                     nn.Dense(classes))


class LeNetBN(ClassicNet):
    """d2l's LeNet with BatchNorm after every conv and hidden dense layer.

    ``activation`` is the nonlinearity after each BatchNorm: the book uses
    ``'sigmoid'``; ``'relu'`` trains faster at a smaller learning rate.
    """

    def __init__(self, classes=10, activation="sigmoid", **kwargs):
        super().__init__(**kwargs)
        # Grad-CAM explains the second conv's activation; a sigmoid's is all positive and
        # the map, a ReLU of a weighted sum of them, then mostly one constant: with sigmoid
        # it explains the BatchNorm before it, centred as a ReLU net's conv output is.
        self.cam_layer = -10 if activation == "relu" else -11
        with self.name_scope():
            self.add(nn.Conv2D(6, kernel_size=5), nn.BatchNorm(), nn.Activation(activation),
                     nn.MaxPool2D(pool_size=2, strides=2),
                     nn.Conv2D(16, kernel_size=5), nn.BatchNorm(), nn.Activation(activation),
                     nn.MaxPool2D(pool_size=2, strides=2),
                     nn.Flatten(),  # as in LeNet above
                     nn.Dense(120), nn.BatchNorm(), nn.Activation(activation),
                     nn.Dense(84), nn.BatchNorm(), nn.Activation(activation),
                     nn.Dense(classes))


def lenet(classes=10, **kwargs):
    """LeNet of the MXNet article (170,988 parameters at 1x28x28)."""
    return LeNet(classes=classes, **kwargs)


def lenet_bn(classes=10, activation="sigmoid", **kwargs):
    """Batch-normalized LeNet of the d2l book."""
    return LeNetBN(classes=classes, activation=activation, **kwargs)

"""AlexNet (Krizhevsky, Sutskever & Hinton 2012), single tower as in d2l section 7.1.

The PyTorch notes in the sources drop one of the two 4096-unit layers to fit a
CPU; this keeps both, as in the paper and the MXNet article.
"""
from mxnet.gluon import nn

from .base import ClassicNet


class AlexNet(ClassicNet):
    """Five convs (96@11/4, 256@5, 384@3, 384@3, 256@3), three max-pools, Flatten,
    4096-4096-classes."""

    cam_layer = -8  # Grad-CAM explains the fifth conv

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nn.Conv2D(96, kernel_size=11, strides=4, activation="relu"),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     nn.Conv2D(256, kernel_size=5, padding=2, activation="relu"),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
                     nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
                     nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
                     nn.MaxPool2D(pool_size=3, strides=2),
                     # Dense would flatten by itself; an explicit Flatten, as the MXNet
                     # article's AlexNet has, lets symbol-level tools (mx.viz.print_summary)
                     # see how many features reach the first dense layer.
                     nn.Flatten(),
                     nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
                     nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
                     nn.Dense(classes))


def alexnet(classes=10, **kwargs):
    """AlexNet for 224x224 inputs (46,764,746 parameters at 1 channel, 10 classes)."""
    return AlexNet(classes=classes, **kwargs)

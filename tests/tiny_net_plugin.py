"""A pytest plugin (``-p tiny_net_plugin``) that adds two tiny nets to the zoo the way a
contributor adds one: a model file (here, this module) and one registry line each.

test_models.py runs itself with this plugin to show that its generic tests pick a new
net up. ``tiny_net_unflattened`` leaves out the Flatten before its dense layer.
"""
import sys

from mxnet.gluon import nn

from gluon_cnns.models import registry
from gluon_cnns.models.base import ClassicNet

# The registry imports a builder from "module:function" inside gluon_cnns.models.
sys.modules["gluon_cnns.models.tiny_net_plugin"] = sys.modules[__name__]


class TinyNet(ClassicNet):
    """Conv(4, 3, stride 2) Pool(2) [Flatten] Dense(classes)."""

    def __init__(self, classes=10, flatten=True, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nn.Conv2D(4, kernel_size=3, strides=2, activation="relu"),
                     nn.MaxPool2D(pool_size=2, strides=2))
            if flatten:
                self.add(nn.Flatten())
            self.add(nn.Dense(classes))


def tiny_net(classes=10, **kwargs):
    return TinyNet(classes=classes, **kwargs)


def tiny_net_unflattened(classes=10, **kwargs):
    return TinyNet(classes=classes, flatten=False, **kwargs)


registry._register("tiny_net", "tiny_net_plugin:tiny_net", "a tiny test net", registry.recipe())
registry._register("tiny_net_unflattened", "tiny_net_plugin:tiny_net_unflattened",
                   "a tiny test net without Flatten", registry.recipe())

"""The model zoo: one file per family, and the registry (``registry.py``) naming them.

``get_model``, ``list_models`` and ``model_spec`` need no MXNet; the net classes
below are imported on first use.
"""
from .._lazy import lazy_exports
from .registry import ModelSpec, Recipe, get_model, list_models, model_spec, recipe

_CLASSES = {"AlexNet": ".alexnet", "CIFARResNet": ".resnet_cifar", "ClassicNet": ".base",
            "DenseNet": ".densenet", "GoogLeNet": ".googlenet", "Inception": ".googlenet",
            "InceptionA": ".lecture", "LeNet": ".lenet", "LeNetBN": ".lenet", "NiNNet": ".nin",
            "ResNet": ".resnet", "ResidualBlock": ".lecture", "VGGNet": ".vgg",
            "load_gluoncv_params": ".gluoncv_weights"}
__getattr__, __dir__ = lazy_exports(__name__, _CLASSES)

__all__ = sorted(list(_CLASSES) + ["ModelSpec", "Recipe", "get_model", "list_models",
                                   "model_spec", "recipe"])

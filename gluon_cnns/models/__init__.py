"""The model zoo: one file per family, the registry (``registry.py``) naming them, and
``get_model`` building one by its name.

``get_model``, ``list_models`` and ``model_spec`` need no MXNet; the net classes
below are imported on first use.
"""
import numbers

from .._lazy import lazy_exports
from ..errors import GluonCNNsError
from ..threads import first_use
from .registry import ModelSpec, Recipe, list_models, model_spec, recipe

_CLASSES = {"AlexNet": ".alexnet", "CIFARResNet": ".resnet_cifar", "ClassicNet": ".base",
            "DenseNet": ".densenet", "GoogLeNet": ".googlenet", "Inception": ".googlenet",
            "InceptionA": ".lecture", "LeNet": ".lenet", "LeNetBN": ".lenet", "NiNNet": ".nin",
            "ResNet": ".resnet", "ResidualBlock": ".lecture", "VGGNet": ".vgg",
            "load_gluoncv_params": ".gluoncv_weights"}
__getattr__, __dir__ = lazy_exports(__name__, _CLASSES)


def get_model(name, **kwargs):
    """Build the network registered as ``name``; ``kwargs`` go to its builder (e.g. ``classes``).

    An unknown name raises UnknownModelError; a ``classes`` that is not a
    positive integer, or an argument the builder does not take, GluonCNNsError.
    The first call applies the thread policy (:func:`gluon_cnns.threads.first_use`):
    before MXNet is loaded, the net's threads; once it is, one line, once, if MXNet
    runs on fewer cores than the policy gives the net. Nothing after a tool chose.
    """
    spec = model_spec(name)
    classes = kwargs.get("classes", 10)
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise GluonCNNsError("get_model(%r): classes must be a positive integer, got %r"
                             % (name, classes))
    first_use(name)  # before the builder's module imports MXNet
    try:
        return spec.builder(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise GluonCNNsError("get_model(%r) takes no argument %s; see the builder's "
                             "signature, gluon_cnns.model_spec(%r).builder"
                             % (name, str(err).rsplit(" ", 1)[-1], name)) from None


__all__ = sorted(list(_CLASSES) + ["ModelSpec", "Recipe", "get_model", "list_models",
                                   "model_spec", "recipe"])

"""gluon_cnns: the classic convolutional networks as hybridizable MXNet Gluon blocks.

    >>> import gluon_cnns
    >>> net = gluon_cnns.get_model('googlenet')
    >>> gluon_cnns.list_models()[:3]
    ['lenet', 'lenet_bn', 'alexnet']

The source articles' constructors (``LeNet()``, ``AlexNet()``, ``VGGNet(arch)``,
``NiNNet()``, ``GoogLeNet(num_class)``, ``ResNet(num_classes)``) are importable
from here and return the corrected networks. The tutorial helpers
(``load_data_fashion_mnist``, ``train``, ...) live in :mod:`gluon_cnns.utils`.
A trained run or an export classifies images: ``load_predictor(path).predict(images)``
(:mod:`gluon_cnns.inference.predict`); :mod:`gluon_cnns.viz` shows what a net looks at
(Grad-CAM, feature maps, filters, a report page per run).
"""
from ._lazy import lazy_exports
from ._version import __version__
from .errors import DataError, ExportError, GluonCNNsError, InputTooSmallError, UnknownModelError
from .models import get_model, list_models, model_spec
from .threads import apply_at_import

# A script that imports the package before mxnet gets the thread policy's cores
# (gluon_cnns.threads; GLUON_CNNS_THREADS=off leaves MXNet's own count).
apply_at_import()

# Imported on first use, so that the command-line tools start without MXNet.
_LAZY = {"AlexNet": ".models", "GoogLeNet": ".models", "LeNet": ".models", "NiNNet": ".models",
         "ResNet": ".models", "VGGNet": ".models", "export_checkpoint": ".inference.export", "export_model": ".inference.export",
         "load_checkpoint_net": ".artifacts.source", "load_exported": ".inference.export",
         "load_predictor": ".inference.predict", "Predictor": ".inference.predict",
         "count_parameters": ".shapes", "flops": ".shapes", "summary": ".shapes",
         "trace": ".shapes", "utils": ".utils", "threads": ".threads", "viz": ".viz"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["AlexNet", "DataError", "ExportError", "GluonCNNsError", "GoogLeNet",
           "InputTooSmallError", "LeNet", "NiNNet", "Predictor", "ResNet", "UnknownModelError",
           "VGGNet", "count_parameters", "export_checkpoint", "export_model", "flops",
           "get_model", "list_models", "load_checkpoint_net", "load_exported", "load_predictor",
           "model_spec", "summary", "trace"]

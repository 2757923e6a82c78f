"""The model zoo's registry: name -> builder, description and training recipe.

In the manner of GluonCV's ``model_zoo``: each entry also carries the net's
tutorial recipe, so that ``scripts/train.py --net NAME`` alone reproduces the
book. Adding a net is one file in this package plus one ``_register`` line.
Nothing here imports MXNet: the builders are imported when first called, by
``gluon_cnns.models.get_model`` (which also applies the thread policy, whose
light-net rule reads the recipes here).
"""
import difflib
from collections import OrderedDict, namedtuple

import importlib

from ..errors import GluonCNNsError, UnknownModelError
from ..settings import Recipe, recipe  # a recipe's fields are declared with the settings

# He et al. 2015 section 4.2: "a weight decay of 0.0001 and momentum of 0.9 ... a
# mini-batch size of 128 ... start with a learning rate of 0.1, divide it by 10 at 32k
# and 48k iterations, and terminate training at 64k iterations". 50,000 images are 391
# batches of 128: 164 epochs are 64,124 iterations, the nearest whole epoch.
_CIFAR_PAPER = recipe(dataset="cifar10", epochs=164, batch_size=128, lr=0.1, optimizer="sgd",
                      momentum=0.9, wd=1e-4, lr_schedule="step", lr_step_iters=(32000, 48000))
# For ResNet-110 the paper warms up: "we use 0.01 to warm up the training until the
# training error is below 80% (about 400 iterations), and then go back to 0.1".
_CIFAR_PAPER_110 = _CIFAR_PAPER._replace(warmup_iters=400, warmup_lr=0.01)
# As GluonCV's train_cifar10.py runs it: NAG, lr / 10 at epochs 100 and 150 of 200.
_CIFAR_GLUONCV = recipe(dataset="cifar10", epochs=200, batch_size=128, lr=0.1, optimizer="nag",
                        momentum=0.9, wd=1e-4, lr_schedule="step", lr_steps=(100, 150))
_CIFAR_RECIPES = OrderedDict([("paper", _CIFAR_PAPER), ("gluoncv", _CIFAR_GLUONCV)])
# The CIFAR source article's own loop for its ResNet: Adam lr 0.001, batch 100, 80 epochs,
# the lr divided by 3 every 20 epochs.
_ARTICLE_CIFAR = recipe(dataset="cifar10", epochs=80, batch_size=100, lr=0.001,
                        optimizer="adam", lr_schedule="step", lr_steps=(20, 40, 60),
                        lr_factor=1 / 3)

# The lecture's own loop ("PyTorch深度学习实践", lecture 11): SGD lr 0.01, momentum 0.5,
# batch 64, 28x28 inputs.
_LECTURE_RECIPE = recipe(lr=0.01, momentum=0.5, batch_size=64)
# One epoch of the lecture nets, which have no BatchNorm: lr 0.1 at batch 128 stalls them
# at chance (measured), 0.05 at batch 64 does not.
_LECTURE_FAST = dict(epochs=1, lr=0.05)
# inception_mnist diverges under Nesterov at 0.05 (seed 0) and 0.03 (seed 1, also after a
# warm-up), and reaches too little at 0.02; Adam (Kingma & Ba 2015) at 0.002 does neither.
_INCEPTION_FAST = dict(_LECTURE_FAST, optimizer="adam", lr=0.002, momentum=0.0, wd=0.0,
                       no_wd=False)

# Beyond the book: two more recipes per Fashion-MNIST net, chosen by measurement (the runs
# and their CPU minutes are docs/RESULTS.md, "Beyond the book").
# "tricks": the book's epochs, resolution, optimizer and batch, plus the tricks of "Bag of
# Tricks" (He et al. 2019): the cosine schedule (sec. 5.1) and label smoothing with
# eps 0.1 (sec. 5.2). Mixup is left out: its paper trains 200 epochs, and it slows fitting
# down (He et al. 2019, Table 6 trains 2x longer with it), which 5 epochs cannot pay back.
_TRICKS = dict(lr_schedule="cosine", label_smoothing=0.1)
# "fast": the book's accuracy in the least CPU time. Nesterov momentum 0.9 with the lr
# scaled to the batch (0.1 per 256, Goyal et al. 2017 sec. 2.1), weight decay 1e-4
# without decay on biases and BatchNorm (He et al. 2019 sec. 3.1), cosine to 0 and
# label smoothing; per net, fewer epochs and pixels where that keeps the accuracy.
_FAST = dict(optimizer="nag", momentum=0.9, wd=1e-4, no_wd=True, lr_schedule="cosine",
             label_smoothing=0.1)


def _beyond(book, fast, tricks=None):
    """The book's recipe (the default, "tutorial"), then "fast" and "tricks"."""
    return OrderedDict([("tutorial", book), ("fast", book._replace(**dict(_FAST, **fast))),
                        ("tricks", book._replace(**dict(_TRICKS, **(tricks or {}))))])


# Where each recipe name comes from, for train.py --help.
RECIPE_SOURCES = OrderedDict([
    ("tutorial", "d2l (MXNet edition) chapters 6-7 and the source articles' own loops"),
    ("paper", "He et al. 2015 sec. 4.2 (CIFAR-10)"),
    ("gluoncv", "GluonCV's train_cifar10.py"),
    ("article", "the CIFAR source article's loop"),
    ("fast", "the book's accuracy in the least CPU time, chosen by measurement (docs/RESULTS.md, "
             "\"Beyond the book\"): Goyal et al. 2017, He et al. 2019"),
    ("tricks", "the book's budget plus the cosine schedule and label smoothing (He et al. "
               "2019 sec. 5.1-5.2)")])


class ModelSpec(namedtuple("ModelSpec", "name where description recipes")):
    """A registered net: ``where`` is "module:builder" inside this package, imported on
    first use of ``builder``, so that listing the zoo and its recipes needs no MXNet.
    ``recipes`` maps recipe names to recipes; the first is the default, ``recipe``."""
    __slots__ = ()

    @property
    def recipe(self):
        return self.recipes[self.recipe_name]

    @property
    def recipe_name(self):
        """The first recipe's name: the default, the book's for the Fashion-MNIST nets."""
        return next(iter(self.recipes))

    def recipe_named(self, name=None):
        """The recipe called ``name`` (default: the first); GluonCNNsError if there is none."""
        if name is None:
            return self.recipe
        if name not in self.recipes:
            raise GluonCNNsError("%s has no recipe %r; its recipes: %s"
                                 % (self.name, name, ", ".join(self.recipes)))
        return self.recipes[name]

    @property
    def builder(self):
        module, function = self.where.split(":")
        return getattr(importlib.import_module("." + module, __package__), function)


_REGISTRY = OrderedDict()


def _register(name, where, description, recipes):
    """Register a net; ``recipes`` is one Recipe (named "tutorial") or an OrderedDict."""
    if isinstance(recipes, Recipe):
        recipes = OrderedDict([("tutorial", recipes)])
    _REGISTRY[name] = ModelSpec(name, where, description, recipes)


# Recipes: d2l (MXNet edition) chapter 5 defaults; see docs/MODELS.md, "Differences from the source
# articles", for lenet's lr.
_register("lenet", "lenet:lenet", "LeNet of the MXNet article: ReLU, 20/50 conv filters, Dense 128",
          recipe(lr=0.1, batch_size=256))
_register("lenet_bn", "lenet:lenet_bn", "d2l batch-normalized LeNet (6/16 filters, 120/84 units, sigmoid)",
          _beyond(recipe(lr=1.0, batch_size=256),
                  dict(epochs=2, batch_size=128, lr=0.2)))
_register("alexnet", "alexnet:alexnet", "AlexNet (Krizhevsky et al. 2012), single-tower, Dropout 0.5",
          recipe(lr=0.01, batch_size=128, resize=224))
_register("vgg11", "vgg:vgg11", "VGG-11 (Simonyan & Zisserman 2014, config A)",
          recipe(lr=0.05, batch_size=128, resize=224))
_register("vgg13", "vgg:vgg13", "VGG-13 (config B)", recipe(lr=0.05, batch_size=128, resize=224))
_register("vgg16", "vgg:vgg16", "VGG-16 (config D)", recipe(lr=0.05, batch_size=128, resize=224))
_register("vgg19", "vgg:vgg19", "VGG-19 (config E)", recipe(lr=0.05, batch_size=128, resize=224))
_register("vgg11_small", "vgg:vgg11_small", "VGG-11 with conv channels / 4, as d2l trains it",
          recipe(lr=0.05, batch_size=128, resize=224))
_register("nin", "nin:nin", "Network in Network (Lin et al. 2013) with global average pooling",
          recipe(lr=0.1, batch_size=128, resize=224))
_register("googlenet", "googlenet:googlenet", "GoogLeNet / Inception v1 (Szegedy et al. 2014), d2l layout",
          recipe(lr=0.1, batch_size=128, resize=96))
_register("resnet18", "resnet:resnet18", "ResNet-18 (He et al. 2015), d2l layout",
          _beyond(recipe(lr=0.05, batch_size=256, resize=96),
                  dict(resize=64, epochs=3, lr=0.1, last_gamma=True), dict(last_gamma=True)))
_register("resnet34", "resnet:resnet34", "ResNet-34 (He et al. 2015), d2l layout",
          recipe(lr=0.05, batch_size=256, resize=96))
_register("resnet14_cifar", "resnet_cifar:resnet14_cifar",
          "CIFAR ResNet-14 (n=2), the CIFAR article's net",
          OrderedDict(_CIFAR_RECIPES, article=_ARTICLE_CIFAR))
_register("resnet20_cifar", "resnet_cifar:resnet20_cifar", "CIFAR ResNet-20 (He et al. 2015 sec. 4.2, n=3)",
          _CIFAR_RECIPES)
_register("resnet32_cifar", "resnet_cifar:resnet32_cifar", "CIFAR ResNet-32 (n=5)", _CIFAR_RECIPES)
_register("resnet44_cifar", "resnet_cifar:resnet44_cifar", "CIFAR ResNet-44 (n=7)", _CIFAR_RECIPES)
_register("resnet56_cifar", "resnet_cifar:resnet56_cifar", "CIFAR ResNet-56 (n=9)", _CIFAR_RECIPES)
_register("resnet110_cifar", "resnet_cifar:resnet110_cifar", "CIFAR ResNet-110 (n=18)",
          OrderedDict(_CIFAR_RECIPES, paper=_CIFAR_PAPER_110))
_register("densenet", "densenet:densenet", "DenseNet (Huang et al. 2017), d2l layout, growth rate 32",
          _beyond(recipe(lr=0.1, batch_size=256, resize=96), dict(resize=64, epochs=2)))
_register("inception_mnist", "lecture:inception_mnist",
          "lecture net: two convs, each followed by an InceptionA module (88 channels)",
          _beyond(_LECTURE_RECIPE, _INCEPTION_FAST))
_register("resnet_mnist", "lecture:resnet_mnist",
          "lecture net: two convs, each followed by a plain residual block",
          _beyond(_LECTURE_RECIPE, _LECTURE_FAST))


def list_models():
    """Names of every registered network, in registry order."""
    return list(_REGISTRY)


def model_spec(name):
    """The :data:`ModelSpec` (builder, description, recipe) registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = ("did you mean %s? " % ", ".join(close)) if close else ""
        raise UnknownModelError("unknown network %r; %sknown networks: %s"
                                % (name, hint, ", ".join(_REGISTRY))) from None


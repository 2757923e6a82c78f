"""The CIFAR ResNets' recipes against He et al. 2015 section 4.2 and the CIFAR article:
the learning rate at the iterations the paper names, and the recipe chosen by --recipe."""
import pytest

import gluon_cnns
from gluon_cnns.cli.train import build_parser, resolve_settings
from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.training.optim import make_lr_scheduler

BATCHES = 391  # 50,000 CIFAR-10 images in batches of 128


def lr_at(schedule, iteration):
    """The lr of iteration ``iteration`` (0-based): MXNet's optimizer numbers updates from 1."""
    return schedule(iteration + 1)


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet32_cifar", "resnet44_cifar",
                                  "resnet56_cifar", "resnet110_cifar", "resnet14_cifar"])
def test_paper_recipe_divides_at_32k_and_48k_iterations(name):
    recipe = gluon_cnns.model_spec(name).recipe  # the default is the paper's
    assert (recipe.batch_size, recipe.lr, recipe.momentum, recipe.wd) == (128, 0.1, 0.9, 1e-4)
    assert recipe.optimizer == "sgd" and recipe.epochs * BATCHES >= 64000
    schedule = make_lr_scheduler(recipe._asdict(), BATCHES)
    assert lr_at(schedule, 31999) == pytest.approx(0.1)
    assert lr_at(schedule, 32000) == pytest.approx(0.01)
    assert lr_at(schedule, 47999) == pytest.approx(0.01)
    assert lr_at(schedule, 48000) == pytest.approx(0.001)
    assert lr_at(schedule, 64000) == pytest.approx(0.001)
    warm = 0.01 if name == "resnet110_cifar" else 0.1
    assert lr_at(schedule, 0) == pytest.approx(warm) and lr_at(schedule, 399) == pytest.approx(warm)
    assert lr_at(schedule, 400) == pytest.approx(0.1)


def test_gluoncv_recipe_is_still_available():
    recipe = gluon_cnns.model_spec("resnet56_cifar").recipes["gluoncv"]
    schedule = make_lr_scheduler(recipe._asdict(), BATCHES)
    assert recipe.optimizer == "nag" and recipe.epochs == 200
    assert lr_at(schedule, 100 * BATCHES - 1) == pytest.approx(0.1)
    assert lr_at(schedule, 100 * BATCHES) == pytest.approx(0.01)
    assert lr_at(schedule, 150 * BATCHES) == pytest.approx(0.001)


def test_article_recipe_of_resnet14():
    recipe = gluon_cnns.model_spec("resnet14_cifar").recipes["article"]
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs) == ("adam", 0.001,
                                                                              100, 80)
    schedule = make_lr_scheduler(recipe._asdict(), 500)
    lrs = [lr_at(schedule, e * 500) for e in (0, 19, 20, 40, 60, 79)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3 / 3, 1e-3 / 9, 1e-3 / 27, 1e-3 / 27])


def test_recipe_flag_chooses_the_defaults():
    parse = build_parser().parse_args
    paper = resolve_settings(parse(["--net", "resnet110_cifar"]))
    assert paper["recipe"] == "paper" and paper["warmup_iters"] == 400
    gluoncv = resolve_settings(parse(["--net", "resnet110_cifar", "--recipe", "gluoncv"]))
    assert gluoncv["optimizer"] == "nag" and gluoncv["lr_steps"] == [100, 150]
    assert gluoncv["warmup_iters"] == 0
    given = resolve_settings(parse(["--net", "resnet20_cifar", "--recipe", "gluoncv",
                                    "--epochs", "3"]))
    assert given["epochs"] == 3
    with pytest.raises(GluonCNNsError, match="has no recipe 'article'; its recipes: paper"):
        resolve_settings(parse(["--net", "resnet20_cifar", "--recipe", "article"]))


# d2l (MXNet edition): lr, batch size and resize of each chapter's training call, 5 epochs
# of plain SGD (sec. 6.6 LeNet lr 0.9 with sigmoid; this zoo's lenet is the MXNet article's
# ReLU net, lr 0.1; 7.5 BN-LeNet lr 1.0; 7.1 AlexNet 0.01, 224; 7.2 VGG 0.05, 224; 7.3 NiN
# 0.1, 224; 7.4 GoogLeNet 0.1, 96; 7.6 ResNet 0.05, 96; 7.7 DenseNet 0.1, 96).
BOOK = {"lenet": (0.1, 256, None), "lenet_bn": (1.0, 256, None), "alexnet": (0.01, 128, 224),
        "vgg11_small": (0.05, 128, 224), "nin": (0.1, 128, 224), "googlenet": (0.1, 128, 96),
        "resnet18": (0.05, 256, 96), "densenet": (0.1, 256, 96)}


@pytest.mark.parametrize("name", sorted(BOOK) + ["resnet_mnist", "inception_mnist"])
def test_the_book_recipe_stays_the_default_with_every_trick_off(name):
    spec = gluon_cnns.model_spec(name)
    book = spec.recipe
    assert next(iter(spec.recipes)) == "tutorial"
    lr, batch, resize = BOOK.get(name, (0.01, 64, None))   # the lecture: lr 0.01, batch 64
    assert (book.lr, book.batch_size, book.resize, book.epochs) == (lr, batch, resize, 5)
    assert (book.optimizer, book.wd, book.lr_schedule, book.warmup_epochs, book.warmup_iters,
            book.label_smoothing, book.mixup, book.no_wd, book.last_gamma, book.ema) == (
        "sgd", 0.0, "none", 0, 0, 0.0, 0.0, False, False, None)
    assert book.momentum == (0.0 if name in BOOK else 0.5)


@pytest.mark.parametrize("name", [n for n in gluon_cnns.list_models()
                                  if "tricks" in gluon_cnns.model_spec(n).recipes])
def test_the_tricks_recipe_is_the_book_budget_plus_tricks_only(name):
    spec = gluon_cnns.model_spec(name)
    book, tricks = spec.recipe._asdict(), spec.recipes["tricks"]._asdict()
    changed = {k for k in book if book[k] != tricks[k]}
    residual = name.startswith("resnet") and name != "resnet_mnist"   # zero-gamma needs BN
    assert changed == {"lr_schedule", "label_smoothing"} | ({"last_gamma"} if residual else set())
    assert (tricks["lr_schedule"], tricks["label_smoothing"]) == ("cosine", 0.1)
    # Every fast recipe trains a net where its tricks apply (train.py refuses the others).
    fast = spec.recipes["fast"]
    settings = resolve_settings(build_parser().parse_args(["--net", name, "--recipe", "fast"]))
    assert settings["epochs"] == fast.epochs < book["epochs"] or fast.resize < book["resize"]

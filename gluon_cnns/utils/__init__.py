"""The tutorial helpers: ``from gluon_cnns import utils`` gives what d2l's ``utils.py`` gave.

    train_iter, test_iter = utils.load_data_fashion_mnist(batch_size=256)
    utils.train(train_iter, test_iter, net, loss, trainer, utils.try_gpu(), num_epochs=5)

A facade: the helpers live in ``gluon_cnns.data`` and ``gluon_cnns.training``.
"""
from ..data import (CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES,
                    get_fashion_mnist_labels, get_text_labels, load_data, load_data_cifar10,
                    load_data_fashion_mnist, load_data_mnist)
from ..training.devices import try_all_gpus, try_gpu
from ..training.loop import evaluate_accuracy, train, train_ch5

__all__ = ["CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "evaluate_accuracy",
           "get_fashion_mnist_labels", "get_text_labels", "load_data", "load_data_cifar10",
           "load_data_fashion_mnist", "load_data_mnist", "train", "train_ch5", "try_all_gpus",
           "try_gpu"]

"""The zoo's nets in PyTorch, layer for layer, and the worker that times them (peer column).

Imported only by a Python that has ``torch`` (see ``tools/benchmark/peer.py``);
nothing here imports MXNet or gluon_cnns. Each builder mirrors the file of
``gluon_cnns/models`` named in its docstring: the same layers, channels,
kernels, paddings, biases and BatchNorms, so the parameter counts are equal
(the peer suite checks them). PyTorch's BatchNorm ``eps`` (1e-5) is MXNet's;
its ``momentum`` 0.1 is MXNet's 0.9 the other way round.
"""
import json
import sys
import time

import torch
from torch import nn

from .timing import measure_throughputs


class _Residual(nn.Module):
    """ResNet's basic block (gluon_cnns/models/resnet.py ``Residual``): biased convs."""

    def __init__(self, in_channels, channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, strides, 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(in_channels, channels, 1, strides) if use_1x1conv else None

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return torch.relu(y + x)


def _stem(in_channels, channels):
    """7x7/2 conv, BN, ReLU, 3x3/2 max-pool (``ResNet.stem``, DenseNet reuses it)."""
    return [nn.Conv2d(in_channels, channels, 7, 2, 3), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1)]


def resnet18(in_channels=1, classes=10):
    """gluon_cnns/models/resnet.py ``resnet18`` (d2l layout)."""
    layers, width = _stem(in_channels, 64), 64
    for i, channels in enumerate((64, 128, 256, 512)):
        first = i > 0
        layers += [_Residual(width, channels, use_1x1conv=first, strides=2 if first else 1),
                   _Residual(channels, channels)]
        width = channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def lenet_bn(in_channels=1, classes=10):
    """gluon_cnns/models/lenet.py ``lenet_bn`` (sigmoid, as in the book)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, classes))


class _PlainResidual(nn.Module):
    """relu(x + conv(relu(conv(x)))) (gluon_cnns/models/lecture.py ``ResidualBlock``)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def resnet_mnist(in_channels=1, classes=10):
    """gluon_cnns/models/lecture.py ``resnet_mnist``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5), nn.MaxPool2d(2), nn.ReLU(), _PlainResidual(16),
        nn.Conv2d(16, 32, 5), nn.MaxPool2d(2), nn.ReLU(), _PlainResidual(32),
        nn.Flatten(), nn.Linear(512, classes))


class _Inception(nn.Module):
    """gluon_cnns/models/googlenet.py ``Inception``: four paths, every conv with its ReLU."""

    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()

        def conv(cin, cout, k, pad=0):
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad), nn.ReLU())
        self.p1 = conv(in_channels, c1, 1)
        self.p2 = nn.Sequential(conv(in_channels, c2[0], 1), conv(c2[0], c2[1], 3, 1))
        self.p3 = nn.Sequential(conv(in_channels, c3[0], 1), conv(c3[0], c3[1], 5, 2))
        self.p4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(in_channels, c4, 1))

    def forward(self, x):
        return torch.cat((self.p1(x), self.p2(x), self.p3(x), self.p4(x)), dim=1)


# (c1, c2, c3, c4) of each Inception block, None for a 3x3/2 max-pool: stages b3..b5.
_GOOGLENET_BLOCKS = [(64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64), None,
                     (192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64),
                     (128, (128, 256), (24, 64), 64), (112, (144, 288), (32, 64), 64),
                     (256, (160, 320), (32, 128), 128), None,
                     (256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)]


def googlenet(in_channels=1, classes=10):
    """gluon_cnns/models/googlenet.py ``googlenet`` (d2l layout)."""
    layers = [nn.Conv2d(in_channels, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
              nn.Conv2d(64, 64, 1), nn.ReLU(), nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    width = 192
    for block in _GOOGLENET_BLOCKS:
        if block is None:
            layers.append(nn.MaxPool2d(3, 2, 1))
            continue
        layers.append(_Inception(width, *block))
        width = block[0] + block[1][1] + block[2][1] + block[3]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


class _DenseBlock(nn.Module):
    """gluon_cnns/models/densenet.py ``DenseBlock``: BN-ReLU-conv3x3 blocks, concatenated."""

    def __init__(self, num_convs, in_channels, growth_rate):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(in_channels + i * growth_rate), nn.ReLU(),
                          nn.Conv2d(in_channels + i * growth_rate, growth_rate, 3, padding=1))
            for i in range(num_convs))

    def forward(self, x):
        for block in self.blocks:
            x = torch.cat((x, block(x)), dim=1)
        return x


def densenet(in_channels=1, classes=10, growth_rate=32, block_config=(4, 4, 4, 4)):
    """gluon_cnns/models/densenet.py ``densenet`` (d2l layout, growth rate 32)."""
    layers, width = _stem(in_channels, 64), 64
    for i, num_convs in enumerate(block_config):
        layers.append(_DenseBlock(num_convs, width, growth_rate))
        width += num_convs * growth_rate
        if i != len(block_config) - 1:
            layers += [nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, width // 2, 1),
                       nn.AvgPool2d(2, 2)]
            width //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, classes))


class _CIFARBlock(nn.Module):
    """gluon_cnns/models/resnet_cifar.py ``CIFARBasicBlock``: bias-free convs; option A
    (subsample, zero channels) or B (1x1 conv + BN) where side or width change."""

    def __init__(self, in_channels, channels, strides, shortcut):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, strides, 1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        self.strides, self.extra, self.project = strides, channels - in_channels, None
        if shortcut == "B" and (strides != 1 or self.extra):
            self.project = nn.Sequential(nn.Conv2d(in_channels, channels, 1, strides, bias=False),
                                         nn.BatchNorm2d(channels))

    def forward(self, x):
        residual = x
        if self.project is not None:
            residual = self.project(x)
        elif self.strides != 1 or self.extra:
            residual = x[:, :, ::self.strides, ::self.strides]
            residual = torch.cat((residual, torch.zeros_like(residual[:, :self.extra])), 1)
        return torch.relu(self.body(x) + residual)


def resnet20_cifar(in_channels=3, classes=10, shortcut="B", stem_relu=True):
    """gluon_cnns/models/resnet_cifar.py ``resnet20_cifar`` (n=3)."""
    layers = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)]
    if stem_relu:
        layers.append(nn.ReLU())
    width = 16
    for channels, strides in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(_CIFARBlock(width, channels, strides if i == 0 else 1, shortcut))
            width = channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


NETS = {"lenet_bn": lenet_bn, "resnet_mnist": resnet_mnist, "resnet18": resnet18,
        "googlenet": googlenet, "resnet20_cifar": resnet20_cifar, "densenet": densenet}


def parameter_counts(model):
    """(learnable, learnable + BatchNorm running statistics) of ``model``, as MXNet counts."""
    learnable = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for name, b in model.named_buffers()
                if name.endswith(("running_mean", "running_var")))
    return learnable, learnable + stats


def torch_worker(spec):
    """Time ``spec['net']``'s training step and inference in PyTorch eager; print a RESULT line.

    ``spec``: net, shape (batch, C, H, W), lr, momentum, warmup, repeat,
    min_time, seed, and kwargs for the builder. Training: forward, cross
    entropy, backward, SGD step; inference: ``eval()`` under ``inference_mode``.
    """
    torch.manual_seed(spec["seed"])
    model = NETS[spec["net"]](in_channels=spec["shape"][1], **spec.get("kwargs", {}))
    X = torch.rand(*spec["shape"])
    y = torch.randint(0, 10, (spec["shape"][0],))
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(X), y).backward()
        optimizer.step()

    def infer():
        with torch.inference_mode():
            model(X)
    timing = (spec["shape"][0], spec["warmup"], spec["repeat"], spec["min_time"])
    model.train()
    (train,) = measure_throughputs([step], *timing, sync=lambda: None)
    model.eval()
    (forward,) = measure_throughputs([infer], *timing, sync=lambda: None)
    learnable, total = parameter_counts(model)
    print("RESULT " + json.dumps({
        "framework": "pytorch %s" % torch.__version__, "threads": torch.get_num_threads(),
        "train_step": train, "inference": forward, "learnable_params": learnable,
        "params": total, "finished": time.time()}))


if __name__ == "__main__":
    torch_worker(json.loads(sys.argv[1]))

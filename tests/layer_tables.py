"""Learnable-parameter counts of the zoo's nets, from the layer tables of their papers and
of the d2l book (MXNet edition, chapter 7), written here independently of the package.

``LEARNABLE[name](channels, side, classes)`` is ``(learnable, bn_channels)``: the weights,
biases and BatchNorm gamma/beta, and the channels over all BatchNorm layers (each also
keeps a running mean and variance, which are Parameters but not learnable).
"""
from functools import partial


def conv(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def dense(n_in, n_out):
    return n_in * n_out + n_out


def side_after(side, k, s=1, p=0):
    """The side a k x k window with stride s and padding p leaves (conv or pooling)."""
    return (side + 2 * p - k) // s + 1


def lenet(channels, side, classes):
    # The MXNet article: conv 20@5, pool 2, conv 50@3, pool 2, dense 128, dense classes.
    side = side_after(side_after(side_after(side_after(side, 5), 2, 2), 3), 2, 2)
    return (conv(channels, 20, 5) + conv(20, 50, 3) + dense(50 * side * side, 128)
            + dense(128, classes), 0)


def lenet_bn(channels, side, classes):
    # d2l section 7.5: conv 6@5, conv 16@5 (each + BN + pool 2), dense 120, 84 (+ BN), classes.
    side = side_after(side_after(side_after(side_after(side, 5), 2, 2), 5), 2, 2)
    weights = (conv(channels, 6, 5) + conv(6, 16, 5) + dense(16 * side * side, 120)
               + dense(120, 84) + dense(84, classes))
    bn = 6 + 16 + 120 + 84
    return weights + 2 * bn, bn


def alexnet(channels, side, classes):
    # d2l section 7.1 (single tower): conv 96@11/4, pool 3/2, conv 256@5 p2, pool 3/2,
    # conv 384@3, 384@3, 256@3 (p1), pool 3/2, dense 4096, 4096, classes.
    side = side_after(side, 11, 4)
    for _ in range(3):
        side = side_after(side, 3, 2)
    convs = (conv(channels, 96, 11) + conv(96, 256, 5) + conv(256, 384, 3)
             + conv(384, 384, 3) + conv(384, 256, 3))
    return convs + dense(256 * side * side, 4096) + dense(4096, 4096) + dense(4096, classes), 0


# Simonyan & Zisserman 2014, table 1: the 3x3 conv widths of configurations A, B, D, E,
# "M" a 2x2 max-pool; then FC-4096, FC-4096, FC-classes.
VGG_CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}


def vgg(config, channels, side, classes, ratio=1):
    """``ratio`` divides the conv widths, as d2l section 7.2 trains VGG-11 (ratio 4)."""
    total, c_in = 0, channels
    for layer in VGG_CONFIGS[config]:
        if layer == "M":
            side //= 2
        else:
            total += conv(c_in, layer // ratio, 3)
            c_in = layer // ratio
    return total + dense(c_in * side * side, 4096) + dense(4096, 4096) + dense(4096, classes), 0


def nin(channels, side, classes):
    # d2l section 7.3: NiN blocks (k x k conv, two 1x1 convs) of 96@11, 256@5, 384@3 and
    # classes@3, global average pooling; no dense layer.
    total, c_in = 0, channels
    for c_out, k in ((96, 11), (256, 5), (384, 3), (classes, 3)):
        total += conv(c_in, c_out, k) + 2 * conv(c_out, c_out, 1)
        c_in = c_out
    return total, 0


# Szegedy et al. 2014, table 1: inception (3a) ... (5b) with their input channels, their
# #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, and the "params" column (in K of
# 1024 weights, biases not counted).
INCEPTIONS = [("3a", 192, (64, 96, 128, 16, 32, 32), 159),
              ("3b", 256, (128, 128, 192, 32, 96, 64), 380),
              ("4a", 480, (192, 96, 208, 16, 48, 64), 364),
              ("4b", 512, (160, 112, 224, 24, 64, 64), 437),
              ("4c", 512, (128, 128, 256, 24, 64, 64), 463),
              ("4d", 512, (112, 144, 288, 32, 64, 64), 580),
              ("4e", 528, (256, 160, 320, 32, 128, 128), 840),
              ("5a", 832, (256, 160, 320, 32, 128, 128), 1072),
              ("5b", 832, (384, 192, 384, 48, 128, 128), 1388)]


def inception(c_in, widths, bias=True):
    c1, r3, c3, r5, c5, pool = widths
    return (conv(c_in, c1, 1, bias) + conv(c_in, r3, 1, bias) + conv(r3, c3, 3, bias)
            + conv(c_in, r5, 1, bias) + conv(r5, c5, 5, bias) + conv(c_in, pool, 1, bias))


def googlenet(channels, side, classes):
    # d2l section 7.4: conv 64@7, conv 64@1, conv 192@3, the nine inception modules,
    # global average pooling, dense classes (1024 inputs).
    stem = conv(channels, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    return stem + sum(inception(c_in, w) for _, c_in, w, _ in INCEPTIONS) + dense(1024, classes), 0


def resnet(blocks, channels, side, classes, conv_bias=True):
    """He et al. 2015 table 1, basic blocks: a 7x7 64 conv + BN, stages of 64/128/256/512
    with ``blocks`` two-conv (3x3, + BN each) blocks; the first block of stages 2-4 has
    a strided 1x1 conv shortcut; global average pooling, dense. d2l's convs have biases."""
    total = conv(channels, 64, 7, conv_bias)
    bn = 64
    c_in = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for i in range(n):
            total += conv(c_in, width, 3, conv_bias) + conv(width, width, 3, conv_bias)
            bn += 2 * width
            if i == 0 and stage > 0:
                total += conv(c_in, width, 1, conv_bias)
                if not conv_bias:  # torchvision's projection is conv + BN
                    bn += width
            c_in = width
    return total + 2 * bn + dense(512, classes), bn


def cifar_resnet(n, channels, side, classes):
    # He et al. 2015 section 4.2: a bias-free 3x3 16 conv + BN, then 3 stages of n blocks of
    # two bias-free 3x3 convs + BN with 16, 32, 64 filters, option A shortcuts (no
    # parameters), global average pooling, dense.
    total, bn, c_in = conv(channels, 16, 3, bias=False), 16, 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(c_in, width, 3, bias=False) + conv(width, width, 3, bias=False)
            bn += 2 * width
            c_in = width
    return total + 2 * bn + dense(64, classes), bn


def densenet(channels, side, classes, growth=32, convs=(4, 4, 4, 4)):
    # d2l section 7.7: ResNet's stem (conv 64@7 + BN), four dense blocks of four (BN, 3x3
    # conv to 32) units, transitions (BN, 1x1 conv to half the channels) between them,
    # BN, global average pooling, dense.
    total, bn, c = conv(channels, 64, 7), 64, 64
    for i, n in enumerate(convs):
        for _ in range(n):
            total += conv(c, growth, 3)
            bn += c
            c += growth
        if i != len(convs) - 1:
            total += conv(c, c // 2, 1)
            bn += c
            c //= 2
    bn += c
    return total + 2 * bn + dense(c, classes), bn


def inception_mnist(channels, side, classes):
    # The lecture: conv 10@5, pool 2, InceptionA, conv 20@5, pool 2, InceptionA, dense.
    def inception_a(c_in):  # 1x1 16 | 1x1 16, 5x5 24 | 1x1 16, 3x3 24, 3x3 24 | pool, 1x1 24
        return (3 * conv(c_in, 16, 1) + conv(16, 24, 5) + conv(16, 24, 3) + conv(24, 24, 3)
                + conv(c_in, 24, 1))
    side = side_after(side_after(side_after(side_after(side, 5), 2, 2), 5), 2, 2)
    return (conv(channels, 10, 5) + inception_a(10) + conv(88, 20, 5) + inception_a(20)
            + dense(88 * side * side, classes), 0)


def resnet_mnist(channels, side, classes):
    # The lecture: conv 16@5, pool 2, residual(16), conv 32@5, pool 2, residual(32), dense;
    # a residual block is two 3x3 convs of its width.
    side = side_after(side_after(side_after(side_after(side, 5), 2, 2), 5), 2, 2)
    return (conv(channels, 16, 5) + 2 * conv(16, 16, 3) + conv(16, 32, 5) + 2 * conv(32, 32, 3)
            + dense(32 * side * side, classes), 0)


LEARNABLE = {
    "lenet": lenet, "lenet_bn": lenet_bn, "alexnet": alexnet,
    "vgg11": partial(vgg, "A"), "vgg13": partial(vgg, "B"), "vgg16": partial(vgg, "D"),
    "vgg19": partial(vgg, "E"), "vgg11_small": partial(vgg, "A", ratio=4),
    "nin": nin, "googlenet": googlenet,
    "resnet18": partial(resnet, (2, 2, 2, 2)), "resnet34": partial(resnet, (3, 4, 6, 3)),
    "densenet": densenet, "inception_mnist": inception_mnist, "resnet_mnist": resnet_mnist,
}
LEARNABLE.update(("resnet%d_cifar" % (6 * n + 2), partial(cifar_resnet, n))
                 for n in (2, 3, 5, 7, 9, 18))

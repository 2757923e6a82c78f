"""What an image of your own goes through before the net sees it (an image folder or pack).

Training (``augment="crop-flip"``, the default): a random crop of 8%-100% of
the image's area with an aspect ratio in [3/4, 4/3], scaled to ``side`` x
``side``, mirrored left-right half of the time -- the "random resized crop" of
Szegedy et al., *Going deeper with convolutions* (2015), section 6, as
torchvision and GluonCV implement it. ``"flip"`` only mirrors the evaluation
crop; ``"none"`` uses the evaluation crop as it is.

Evaluation (validation and ``scripts/predict.py``): the shorter side is scaled
to ``side / center_crop`` and the centre ``side`` x ``side`` is cut out (224 of
256 for ImageNet: ``center_crop`` 0.875). ``center_crop`` 1 scales the
shorter side to ``side`` and keeps the centre square.

Then ``ToTensor`` (/255) and, for 3-channel images, ImageNet's per-channel mean
and std unless others are given; 1-channel images are not normalized, as the
Fashion-MNIST recipes are not. Pillow does the scaling, bilinear with the
crop box given to ``resize`` (one resampling, antialiased when shrinking).
"""
import math

import numpy as np

from .decode import to_mode

AUGMENTS = ("crop-flip", "flip", "none")
CENTER_CROP = 0.875
MIN_AREA, RATIOS = 0.08, (3 / 4, 4 / 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_normalization(channels):
    """``(mean, std)`` used when none is given: ImageNet's for RGB, none for grey."""
    return (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (None, None)


def random_crop_box(width, height, rng):
    """A random ``(left, top, right, bottom)`` of MIN_AREA..1 of the area and a ratio in
    RATIOS; after ten misses, the largest centred box of an allowed ratio."""
    area = width * height
    log_ratios = (math.log(RATIOS[0]), math.log(RATIOS[1]))
    for _ in range(10):
        target = area * rng.uniform(MIN_AREA, 1.0)
        ratio = math.exp(rng.uniform(*log_ratios))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    ratio = min(max(width / height, RATIOS[0]), RATIOS[1])
    w, h = (width, int(round(width / ratio))) if width / height < ratio \
        else (int(round(height * ratio)), height)
    w, h = min(w, width), min(h, height)
    return (width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h


def center_box(width, height, fraction=CENTER_CROP):
    """The centred square that becomes the evaluation input: ``fraction`` of the shorter side."""
    side = max(1, int(round(min(width, height) * fraction)))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def draft_size(side, training, fraction=CENTER_CROP):
    """The size (W, H) a JPEG may be decoded down to and still give a sharp ``side`` input."""
    smallest = math.sqrt(MIN_AREA) if training else fraction
    need = int(math.ceil(side / smallest))
    return need, need


def _scaled(image, side, box):
    from PIL import Image
    return image.resize((side, side), Image.BILINEAR, box=box)


def eval_pixels(image, side, channels, fraction=CENTER_CROP):
    """The evaluation input of a decoded Pillow image: uint8 (side, side, channels)."""
    image = to_mode(image, channels)
    pixels = np.asarray(_scaled(image, side, center_box(image.width, image.height, fraction)),
                        dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def train_pixels(image, side, channels, rng, augment="crop-flip", fraction=CENTER_CROP):
    """One augmented training input of a decoded image, drawn from ``rng``."""
    image = to_mode(image, channels)
    if augment == "crop-flip":
        box = random_crop_box(image.width, image.height, rng)
    else:
        box = center_box(image.width, image.height, fraction)
    pixels = np.asarray(_scaled(image, side, box), dtype=np.uint8)
    if augment != "none" and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return pixels[:, :, None] if pixels.ndim == 2 else pixels

"""What a training run's config.json says about its net's input, in an export sidecar's terms.

A run on a built-in dataset (fashion-mnist, mnist, cifar10) takes the input's
channels, side and normalization from the dataset's facts (``resize`` changes
the side); config.json's ``class_names`` and ``channels``, where present, are
used (older runs do not have them). A run on your own images (``--dataset
folder`` or ``rec``) keeps all of it in config.json: ``class_names`` (with
``classes``), ``channels``, ``resize`` (the side), ``mean``/``std`` and
``center_crop``, the evaluation crop of :mod:`gluon_cnns.data.transforms`.
Every field used is checked: a damaged or hand-edited value is one ExportError
naming the field and config.json.
"""
from ..data.datasets import DATASETS, dataset_info
from ..data.images import IMAGE_DATASETS
from ..errors import DataError, ExportError
from .records import is_int
from .sidecar import (INPUT_NAME, MAX_INPUT_SIDE, is_fraction, is_number_list,
                      normalization_entry)

_ABSENT = object()


def _short(value, limit=80):
    """``repr(value)``, cut to ``limit`` characters: a bad list of 1000 names stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + " ..."


def _bad(config, key, must):
    """The one-line ExportError for config.json's field ``key``; ``must`` says what is valid."""
    value = config.get(key, _ABSENT)
    found = ('has no "%s"' % key if value is _ABSENT
             else 'has "%s": %s' % (key, _short(value)))
    return ExportError("the run's config.json %s; %s; correct the file" % (found, must))


def _side(config, required):
    """The input side: ``resize``, which a run on your own images always has."""
    resize = config.get("resize")
    if resize is None and not required:
        return None
    if not is_int(resize, 1, MAX_INPUT_SIDE):
        raise _bad(config, "resize", "it must be %sa side in pixels, 1..%d (e.g. 224)"
                   % ("" if required else "null or ", MAX_INPUT_SIDE))
    return resize


def _channels(config, default):
    channels = config.get("channels")
    if channels is None and default is not None:
        return default
    if not (is_int(channels) and channels in (1, 3)):
        raise _bad(config, "channels", "it must be 1 (grey) or 3 (RGB)")
    return channels


def _class_names(config, default):
    """The class names, one per output of the net (``classes``, where given)."""
    names = config.get("class_names")
    if names is None and default is not None:
        names = list(default)
    elif not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise _bad(config, "class_names", "it must be a non-empty list of strings, one name "
                                          "per class")
    classes = config.get("classes")
    if classes is not None and not is_int(classes, 1):
        raise _bad(config, "classes", "it must be a positive integer")
    if classes is not None and len(names) != classes:
        raise ExportError('the run\'s config.json has %d "class_names" but "classes": %d; '
                          "they must agree (one name per output of the net); correct the file"
                          % (len(names), classes))
    return names


def _normalization(config, channels):
    """``(mean, std)`` lists, or None: what a run on your own images normalizes with."""
    mean, std = config.get("mean"), config.get("std")
    if mean is None and std is None:
        return None
    for key in ("mean", "std"):
        value = config.get(key)
        if not is_number_list(value, {1, channels}) or (key == "std" and min(value) <= 0):
            raise _bad(config, key, 'it must be 1 or %d numbers%s, with "mean" and "std" both '
                                    "given or both null" % (channels, ", positive"
                                                            if key == "std" else ""))
    return mean, std


def _center_crop(config):
    """The evaluation crop; left out, the training's default (``--center-crop``)."""
    from ..data.transforms import CENTER_CROP
    crop = config.get("center_crop")
    if crop is None:
        return CENTER_CROP
    if not is_fraction(crop):
        raise _bad(config, "center_crop", "it must be a fraction in (0, 1], e.g. 0.875")
    return float(crop)


def _own_images_input(config):
    """``(dataset, channels, side, normalization, class names, center crop)`` of a run on
    your own images."""
    channels = _channels(config, None)
    return (config["dataset"], channels, _side(config, required=True),
            _normalization(config, channels), _class_names(config, None), _center_crop(config))


def _builtin_input(config, dataset):
    """The same for a built-in dataset; no center crop (its images are used as they are)."""
    try:
        info = dataset_info(dataset if isinstance(dataset, str) else repr(dataset))
    except DataError:
        raise ExportError("the run's config.json names dataset %r; known: %s"
                          % (config.get("dataset"), ", ".join(DATASETS + IMAGE_DATASETS))) \
            from None
    channels, side, _ = info.image_shape(_side(config, required=False))
    norm = None if info.mean is None else (info.mean, info.std)
    return (info.name, _channels(config, channels), side, norm,
            _class_names(config, info.class_names), None)


def checkpoint_meta(config):
    """What a run's config.json says about the net's input, as in an export sidecar.

    Keys: net, dataset, input_name, input_shape, channels, input_size, normalization,
    class_names, and for a run on your own images center_crop.
    """
    dataset = config.get("dataset") or "fashion-mnist"
    dataset, channels, side, norm, names, crop = (
        _own_images_input(config) if dataset in IMAGE_DATASETS
        else _builtin_input(config, dataset))
    meta = {"net": config["net"], "dataset": dataset, "input_name": INPUT_NAME,
            "input_shape": [1, channels, side, side], "channels": channels,
            "input_size": [side, side], "normalization": normalization_entry(norm, channels),
            "class_names": names}
    if crop is not None:
        meta["center_crop"] = crop
    return meta

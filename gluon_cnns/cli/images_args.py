"""The training command's flags for your own images and for fine-tuning, and the settings
they resolve to: classes and channels from the scanned folder or pack, the input side,
the normalization, and the net a ``--finetune`` starts from."""
import argparse

from ..data.images import IMAGE_DATASETS as IMAGE_KINDS
from ..errors import UsageError
from .common import non_empty, positive_int

# Saved in config.json and taken from it on --resume when the flag is left out.
IMAGE_RUN_KEYS = ("channels", "val_split", "bad_images", "augment", "center_crop", "mean", "std",
                  "workers", "finetune", "freeze_features")
# What the saved weights, optimizer state and data order were made with.
IMAGE_FIXED_KEYS = ("channels", "val_split", "augment", "center_crop", "mean", "std",
                    "finetune", "freeze_features")
_IMAGE_ONLY = ("channels", "val_split", "bad_images", "augment", "center_crop", "mean", "std",
               "workers")


def fraction(low_open=True):
    """An argparse type: a number in (0, 1) (``low_open``) or (0, 1]."""
    def check(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a fraction like 0.2, got %r" % text)
        if not (0 < value < 1 or (value == 1 and not low_open)):
            raise argparse.ArgumentTypeError("must be in 0..1%s, got %r"
                                             % (" (both excluded)" if low_open else "", text))
        return value
    return check


def number_list(text):
    """One number, or one per channel: ``0.5`` or ``0.485,0.456,0.406``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers like 0.5 or 0.485,0.456,0.406, got %r"
                                         % text)
    if len(values) not in (1, 3) or not all(abs(v) < 1e6 for v in values):
        raise argparse.ArgumentTypeError("expected 1 or 3 numbers, got %r" % text)
    return values


def add_image_flags(add):
    """The flags of ``--dataset folder|rec`` and of fine-tuning."""
    add("--channels", type=int, choices=(1, 3),
        help="read images as grey (1) or RGB (3) (default: 1 if every image is grey, else 3; "
             "when fine-tuning, the source net's)")
    add("--val-split", type=fraction(), metavar="F",
        help="without a val/ folder, hold out this fraction of each class for testing, chosen "
             "by file name (default 0.1)")
    add("--bad-images", choices=("skip", "stop"),
        help="an image that cannot be read: skip it and count it, or stop (default: skip)")
    add("--augment", choices=("crop-flip", "flip", "none"),
        help="training augmentation: random resized crop and mirror, mirror only, or none "
             "(default: crop-flip)")
    add("--center-crop", type=fraction(low_open=False), metavar="F",
        help="evaluation: scale the shorter side to SIDE/F and cut out the centre SIDE x SIDE "
             "(default 0.875, as 224 of 256)")
    add("--mean", type=number_list, metavar="M[,M,M]",
        help="per-channel mean subtracted after /255 (default: ImageNet's for RGB, none for "
             "grey; when fine-tuning, the source net's)")
    add("--std", type=number_list, metavar="S[,S,S]", help="per-channel std, with --mean")
    add("--workers", type=positive_int, metavar="N",
        help="threads decoding images (default: the CPUs, at most 4)")
    add("--finetune", type=non_empty("a run's --save-dir or an export prefix"),
        metavar="RUN_DIR_OR_EXPORT",
        help="start from this trained net's features (a --save-dir or an export), with a new "
             "classifier for this data's classes")
    add("--freeze-features", action="store_true", default=None,
        help="with --finetune: train only the new classifier")


def check_image_flags(settings, args):
    """Refuse image flags that do not apply; fill the defaults that do not need the data."""
    images = settings["dataset"] in IMAGE_KINDS
    if not images:
        given = [k for k in _IMAGE_ONLY if getattr(args, k, None) is not None]
        if given:
            raise UsageError("--%s applies to --dataset folder or rec (your own images), not "
                             "%s; drop it" % (given[0].replace("_", "-"), settings["dataset"]))
    elif not settings.get("data_dir"):
        raise UsageError("--dataset %s needs --data-dir DIR, the folder of %s"
                         % (settings["dataset"], "train/<class>/*.jpg sub-folders"
                            if settings["dataset"] == "folder" else "train.rec, val.rec, ..."))
    if settings.get("freeze_features") and not settings.get("finetune"):
        raise UsageError("--freeze-features needs --finetune RUN_DIR_OR_EXPORT, the net whose "
                         "features to keep")
    if (settings.get("mean") is None) != (settings.get("std") is None):
        raise UsageError("--mean and --std go together; give both")
    if settings.get("std") is not None and min(settings["std"]) <= 0:
        raise UsageError("--std must be positive, got %s" % settings["std"])
    if images:
        settings["bad_images"] = settings.get("bad_images") or "skip"
        settings["augment"] = settings.get("augment") or "crop-flip"
        settings["center_crop"] = settings.get("center_crop") or 0.875


def _check_channels_fit(what, values, channels):
    if values is not None and len(values) not in (1, channels):
        raise UsageError("--%s has %d values, but the images are read with %d channel%s; give "
                         "%s, or pass --channels %d" % (what, len(values), channels,
                                                        "" if channels == 1 else "s",
                                                        "1 value" if channels == 1
                                                        else "1 or %d values" % channels,
                                                        len(values)))


def _normalization(settings, source, channels):
    """``(mean, std)`` lists or (None, None): the flags', the source net's, or the default."""
    from ..data.transforms import default_normalization
    if settings.get("mean") is not None:
        _check_channels_fit("mean", settings["mean"], channels)
        _check_channels_fit("std", settings["std"], channels)
        return list(settings["mean"]), list(settings["std"])
    if source is not None and source["channels"] == channels:
        norm = source["normalization"]
        return norm.get("mean"), norm.get("std")
    mean, std = default_normalization(channels)
    return (None, None) if mean is None else (list(mean), list(std))


def resolve_data(settings, saved, recipe_dataset, source, warn):
    """Fill the run's classes, channels, input side and normalization; returns the scanned
    :class:`~gluon_cnns.data.images.ImageData` (None for a built-in dataset).

    ``source`` is the fine-tuning source's sidecar-style meta, or None.
    """
    from ..data.datasets import dataset_info
    data = None
    if settings["dataset"] in IMAGE_KINDS:
        from ..data.images import scan_images
        data = scan_images(settings["dataset"], settings["data_dir"], settings["val_split"],
                           settings["bad_images"])
        for note in data.notes:
            warn(note)
        fingerprint = data.fingerprint()
        _check_same_images(fingerprint, saved, settings["data_dir"])
        names = list(data.class_names)
        channels = settings["channels"] or (source["channels"] if source
                                            else data.default_channels)
        settings["mean"], settings["std"] = _normalization(settings, source, channels)
        settings["resize"] = settings["resize"] or (source["input_size"][0] if source else
                                                    dataset_info(recipe_dataset).side)
    else:
        info = dataset_info(settings["dataset"])
        names, channels, fingerprint = list(info.class_names), info.channels, None
        if source is not None and source["channels"] != channels:
            raise UsageError("--finetune: the source net takes %d-channel images, %s has %d"
                             % (source["channels"], info.title, channels))
    if saved is not None and saved.get("class_names") not in (None, names):
        raise UsageError("the run in --save-dir was trained on the classes %s, %s now has %s; "
                         "use the same data or another --save-dir"
                         % (", ".join(saved["class_names"]), settings["data_dir"],
                            ", ".join(names)))
    settings.update(class_names=names, classes=len(names), channels=channels,
                    data_fingerprint=fingerprint)
    return data


def _check_same_images(fingerprint, saved, where):
    """On --resume, refuse images that are not those the run trained on."""
    before = (saved or {}).get("data_fingerprint")
    if before and before != fingerprint:
        raise UsageError("the images in %s are not those the run in --save-dir trained on "
                         "(files added, removed or renamed): --resume continues only on the "
                         "same images; restore them, or start a new run from this one with "
                         "--finetune RUN_DIR" % where)

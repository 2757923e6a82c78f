"""A run's settings, complete: what was given, merged with a resumed run's config.json and
the net's recipe (:func:`run_settings`), then what the data decides -- classes,
channels, input side, normalization and the data's fingerprint (:func:`resolve_data`);
and, on a resume, what may not change (:func:`check_resume`).

The training command calls both; a library user of :func:`~gluon_cnns.training.fit.fit`
calls them the same way::

    settings = run_settings({"net": "lenet", "epochs": 1})
    images = resolve_data(settings)  # None for a built-in dataset

Which keys there are, and which ``--resume`` takes from config.json, comes from the
table in :mod:`gluon_cnns.settings`. The messages name the training command's flags,
the words a user of either knows the settings by.
"""
import os
import sys

from ..data.images import IMAGE_DATASETS
from ..errors import UsageError
from ..settings import EPOCHS, kept_flags, setting


def _print_warning(line):
    print(line, file=sys.stderr)


def run_settings(given, saved=None):
    """The run's settings from ``given`` (setting name -> value; None or absent: not given).

    Precedence: a given value, then ``saved`` (a resumed run's config.json), then the
    net's recipe. UsageError for settings that do not fit together.
    """
    from ..models.registry import model_spec
    saved = saved or {}
    net = (given.get("net") or saved.get("net") or finetune_net(given.get("finetune"))
           or setting("net").default)
    spec = model_spec(net)  # raises UnknownModelError with close matches
    recipe_name = given.get("recipe") or saved.get("recipe") or spec.recipe_name
    recipe = spec.recipe_named(recipe_name)._asdict()
    settings = {"net": net, "recipe": recipe_name}
    for key in (s.name for s in kept_flags() if s.name not in settings):
        if given.get(key) is not None:
            settings[key] = given[key]
        elif key in saved:
            settings[key] = saved[key]
        else:
            settings[key] = recipe.get(key)
    if given.get("data_dir") is not None:  # a --resume from another folder must find the data
        settings["data_dir"] = os.path.abspath(os.path.expanduser(given["data_dir"]))
    # JSON has no tuples; keep one type so that comparisons with config.json work.
    for spec in kept_flags():
        if spec.kind == EPOCHS:
            settings[spec.name] = list(settings[spec.name] or ())
    _check_schedule(settings, given)
    _check_tricks(settings, given)
    _check_images(settings, given)
    return settings


def finetune_net(source):
    """The net of a ``--finetune`` source, the net a fine-tuning run trains by default."""
    if not source:
        return None
    from ..artifacts.source import source_net_name
    return source_net_name(source)


def check_resume(given, saved, save_dir, warn=_print_warning):
    """Refuse given settings that would silently disagree with the saved optimizer state,
    data order or weights of the run in ``save_dir`` (its config.json is ``saved``)."""
    for spec in kept_flags():
        value = given.get(spec.name)
        if not spec.fixed_on_resume or value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        if value != saved.get(spec.name):
            raise UsageError(spec.refuse(value, saved.get(spec.name), save_dir))
    data_dir = given.get("data_dir")
    if data_dir is not None and os.path.abspath(os.path.expanduser(data_dir)) \
            != saved.get("data_dir"):
        warn("warning: --data-dir %s, the run read %s: the data must be the same files for an "
             "exact continuation" % (data_dir, saved.get("data_dir")))
    epochs = given.get("epochs")
    if epochs is not None and saved.get("lr_schedule") == "cosine" and epochs != saved.get(
            "epochs"):
        raise UsageError("--epochs cannot change on --resume with a cosine schedule (it decays "
                         "over %s epochs); start a new --save-dir" % saved.get("epochs"))


def _check_schedule(settings, given):
    """Refuse optimizer and schedule settings that do not fit together."""
    if settings["optimizer"] == "adam":
        if given.get("momentum") is not None:
            raise UsageError("--momentum applies to sgd and nag, not adam; drop --momentum")
        settings["momentum"] = None
    if settings["warmup_iters"] and not settings["warmup_lr"]:
        raise UsageError("--warmup-iters needs --warmup-lr, e.g. --warmup-lr 0.01")
    if settings["lr_schedule"] == "step" and not (settings["lr_steps"]
                                                   or settings["lr_step_iters"]):
        raise UsageError("--lr-schedule step needs --lr-steps, e.g. --lr-steps 100,150")
    if given.get("lr_steps") is not None and settings["lr_schedule"] != "step":
        raise UsageError("--lr-steps only applies to --lr-schedule step; add --lr-schedule step")


def _check_tricks(settings, given):
    """Refuse tricks that do not fit together (their ranges are the flags' own checks)."""
    if settings["warmup_epochs"] and settings["warmup_iters"]:
        raise UsageError("--warmup-epochs (a linear ramp from 0 to --lr) and --warmup-iters (a "
                         "constant --warmup-lr) are two warm-ups; give one")
    if settings["warmup_epochs"] and settings["warmup_epochs"] >= settings["epochs"]:
        raise UsageError("--warmup-epochs %d leaves no epoch of the %d after the warm-up; give "
                         "fewer" % (settings["warmup_epochs"], settings["epochs"]))
    if given.get("mixup_off_epoch") and not settings["mixup"]:
        raise UsageError("--mixup-off-epoch turns mixup off for the last epochs, and mixup is "
                         "not on; add --mixup ALPHA, e.g. --mixup 0.2")
    if settings["last_gamma"] and settings.get("finetune"):
        # The source's trained features, last gammas included, replace the zeros.
        raise UsageError("--last-gamma zero-initializes the residual blocks' last gammas, and "
                         "--finetune starts from the source net's trained ones; drop "
                         "--last-gamma")
    if settings["mixup"] and (settings["mixup_off_epoch"] or 0) >= settings["epochs"]:
        raise UsageError("--mixup-off-epoch %d turns mixup off for all %d epochs; give fewer, "
                         "or drop --mixup" % (settings["mixup_off_epoch"], settings["epochs"]))


def _check_images(settings, given):
    """Refuse image settings that do not apply; fill the defaults that do not need the data."""
    images = settings["dataset"] in IMAGE_DATASETS
    only = [s for s in kept_flags() if s.images_only]
    if not images:
        wrong = [s.option for s in only if given.get(s.name) is not None]
        if wrong:
            raise UsageError("%s applies to --dataset folder or rec (your own images), not "
                             "%s; drop it" % (wrong[0], settings["dataset"]))
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
        for spec in only:
            if spec.default is not None:
                settings[spec.name] = settings.get(spec.name) or spec.default


# ---------------------------------------------------------------- what the data decides

def _check_channels_fit(what, values, channels):
    if values is not None and len(values) not in (1, channels):
        raise UsageError("--%s has %d values, but the images are read with %d channel%s; give "
                         "%s, or pass --channels %d" % (what, len(values), channels,
                                                        "" if channels == 1 else "s",
                                                        "1 value" if channels == 1
                                                        else "1 or %d values" % channels,
                                                        len(values)))


def _normalization(settings, source, channels):
    """``(mean, std)`` lists or (None, None): the settings', the source net's, or the default."""
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


def resolve_data(settings, saved=None, source=None, warn=_print_warning):
    """Fill the run's classes, class names, channels, input side, normalization and data
    fingerprint into ``settings``; returns the scanned
    :class:`~gluon_cnns.data.images.ImageData` (None for a built-in dataset).

    ``saved`` is a resumed run's config.json (its classes and images must be these),
    ``source`` the fine-tuning source's sidecar-style meta, or None; ``warn`` gets one
    line per note of the scan (e.g. images skipped).
    """
    from ..data.datasets import dataset_info
    data = None
    if settings["dataset"] in IMAGE_DATASETS:
        from ..data.images import scan_images
        from ..models.registry import model_spec
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
        recipe = model_spec(settings["net"]).recipe_named(settings.get("recipe"))
        settings["resize"] = settings["resize"] or (source["input_size"][0] if source else
                                                    dataset_info(recipe.dataset).side)
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

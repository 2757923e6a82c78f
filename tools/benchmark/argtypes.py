"""The benchmark's argument types, and how a per-net flag is read for one net.

argparse calls the types on the raw strings, so a bad value is a one-line
usage error before MXNet is imported.
"""
import argparse

from gluon_cnns.cli.common import positive_int


def non_negative_int(text):
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer >= 0, got %r" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %r" % text)
    return value


def name_list(text):
    """Comma-separated names, e.g. ``lenet,alexnet``; ``none`` is the empty list."""
    if text.strip().lower() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, got %r" % text)
    return names


def positive_int_list(text):
    """Comma-separated integers >= 1, e.g. ``1,2``."""
    try:
        return [positive_int(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError("expected comma-separated integers >= 1, got %r"
                                         % text) from None


def per_net_int(text):
    """``50`` (every net) or ``lenet_bn=100,alexnet=10[,50]``: {net or None: count}."""
    counts = {}
    for part in text.split(","):
        name, _, value = part.rpartition("=")
        counts[name.strip() or None] = positive_int(value.strip())
    return counts


def per_net_dir(text):
    """``lenet_bn=runs/lenet,resnet18=runs/r18``: {net: folder}."""
    dirs = {}
    for part in text.split(","):
        name, sep, folder = part.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise argparse.ArgumentTypeError("expected NET=FOLDER[,NET=FOLDER...], got %r" % text)
        dirs[name.strip()] = folder.strip()
    return dirs


def for_net(counts, name, default):
    """The count ``per_net_int`` gave for ``name``, else its bare default, else ``default``."""
    return counts.get(name, counts.get(None, default))

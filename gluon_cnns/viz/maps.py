"""Pictures of what a net computes: a layer's feature maps, the first layer's filters, and
Grad-CAM overlays, as numpy arrays and as PNG grids (matplotlib, Agg).

    maps = feature_maps(net, x[0], layer=-3, path="maps.png")   # (C, H, W)
    weights = filters(net, path="filters.png")                  # (out, in, kh, kw)

Every PNG is written atomically (:func:`gluon_cnns.io.atomic_write`).
"""
import math

import numpy as np

from ..errors import GluonCNNsError
from ..io import atomic_write
from .gradcam import resolve_layer, run_prefix

__all__ = ["feature_maps", "filters", "overlay", "save_grid", "save_overlays", "to_display"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display is needed, or opened
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=100):
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                   bbox_inches="tight"))
    finally:
        _pyplot().close(fig)
    return path


def save_grid(tiles, path, titles=None, cmap="viridis", columns=None, title=None):
    """Tiles (a list or array of (H, W) or (H, W, 3) images) in a near-square grid PNG."""
    plt = _pyplot()
    count = len(tiles)
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns + 0.4, 1.3 * rows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            ax.imshow(tiles[i], cmap=cmap, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def feature_maps(net, x, layer, path=None):
    """The activations of top-level block ``layer`` (index or name) for ONE image ``x``
    ((C, H, W) or (1, C, H, W), prepared as the net's input): numpy (channels, h, w).
    With ``path``, also a grid PNG of them, one tile per channel."""
    x = np.asarray(x.asnumpy() if hasattr(x, "asnumpy") else x, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise GluonCNNsError("feature_maps takes one image, (C, H, W) or (1, C, H, W), got "
                             "shape %s" % (x.shape,))
    k = resolve_layer(net, layer)
    maps = run_prefix(net, x, k).asnumpy()[0]
    if maps.ndim != 3:
        raise GluonCNNsError("layer %d gives a %d-D output per image, not feature maps "
                             "(C, H, W); pick a convolutional block" % (k, maps.ndim))
    if path is not None:
        save_grid(list(maps), path, titles=[str(c) for c in range(len(maps))],
                  title="%s, block %d: %d maps %dx%d" % (type(net).__name__, k, *maps.shape))
    return maps


def _first_conv(net):
    """The first ``Conv2D`` of ``net`` in the order its blocks run (children in order)."""
    from mxnet.gluon import nn
    if isinstance(net, nn.Conv2D):
        return net
    for child in net._children.values():  # pylint: disable=protected-access
        found = _first_conv(child)
        if found is not None:
            return found
    return None


def filters(net, path=None):
    """The first conv layer's weights, numpy (out channels, in channels, kh, kw); with
    ``path``, a grid PNG of them (RGB for 3 input channels, else the channel mean)."""
    conv = _first_conv(net)
    if conv is None:
        raise GluonCNNsError("%s has no Conv2D layer" % type(net).__name__)
    if conv.weight._data is None:  # pylint: disable=protected-access
        raise GluonCNNsError("the net's parameters are not initialized yet: run one batch "
                             "through it, or load its parameters, first")
    weights = conv.weight.data().asnumpy()
    if path is not None:
        tiles = [_scaled(w.transpose(1, 2, 0)) if w.shape[0] == 3 else w.mean(axis=0)
                 for w in weights]
        save_grid(tiles, path, cmap="gray", title="%s: %d filters %dx%d of the first conv"
                  % (type(net).__name__, weights.shape[0], *weights.shape[2:]))
    return weights


# ---------------------------------------------------------------- Grad-CAM pictures

def _scaled(image):
    """``image`` scaled to [0, 1] (min to 0, max to 1)."""
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def to_display(x):
    """One prepared input (C, H, W) as a displayable image in [0, 1]: (H, W) grey or
    (H, W, 3) RGB, stretched to the full range (undoes any normalization's scale)."""
    x = np.asarray(x, dtype=np.float32)
    return _scaled(x[0] if x.shape[0] == 1 else x[:3].transpose(1, 2, 0))


def overlay(image, cam, alpha=0.5):
    """RGB (H, W, 3) in [0, 1]: ``image`` (from :func:`to_display`) in grey under the
    ``cam`` (H, W, [0, 1]) in the jet colour map, the paper's figure 1 style."""
    import matplotlib
    grey = image if image.ndim == 2 else image.mean(axis=2)
    heat = matplotlib.colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    return (1 - alpha) * np.repeat(grey[..., None], 3, axis=2) + alpha * heat


def save_overlays(x, cams, path, titles=None, columns=None, title=None):
    """A grid PNG: each image of the batch ``x`` (N, C, H, W) under its Grad-CAM map."""
    x = x.asnumpy() if hasattr(x, "asnumpy") else np.asarray(x)
    tiles = [overlay(to_display(image), cam) for image, cam in zip(x, cams)]
    return save_grid(tiles, path, titles=titles, columns=columns, title=title)

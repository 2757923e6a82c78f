"""Looking inside the nets: Grad-CAM, feature maps, filters, and a report page per run.

    cams = gluon_cnns.viz.grad_cam(net, x)                    # (N, H, W) in [0, 1]
    maps = gluon_cnns.viz.feature_maps(net, x[0], -3, "maps.png")
    weights = gluon_cnns.viz.filters(net, "filters.png")

Nothing here imports MXNet until a function is called.
"""
from .._lazy import lazy_exports

_LAZY = {"grad_cam": ".gradcam", "resolve_layer": ".gradcam", "feature_maps": ".maps",
         "filters": ".maps", "overlay": ".maps", "save_overlays": ".maps", "save_grid": ".maps",
         "write_report": ".report"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)

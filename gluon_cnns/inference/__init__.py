"""Using trained nets: predictions in Python, export (MXNet symbol, ONNX, sidecar) and fast
CPU inference (oneDNN fusion, int8, bf16). Imported on first use, like the rest of the package."""
from .._lazy import lazy_exports

_LAZY = {"export_model": ".export", "load_exported": ".export", "export_checkpoint": ".export",
         "load_checkpoint_net": "..artifacts.source", "fuse_for_cpu": ".quantize",
         "quantize_net": ".quantize", "to_bfloat16": ".quantize",
         "load_predictor": ".predict", "Predictor": ".predict"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)

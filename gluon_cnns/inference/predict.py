"""Predictions in Python: a trained net, its classes and its evaluation's preprocessing in one.

    predictor = gluon_cnns.load_predictor("runs/lenet")   # or an export: "exports/lenet"
    predictor.classes[:2]           # ['T-shirt/top', 'Trouser']
    predictor.predict(["shirt.png", "boot.jpg"], top_k=2)
    # [[('Shirt', 0.83), ('T-shirt/top', 0.11)], [('Ankle boot', 0.97), ('Sneaker', 0.02)]]

``load_predictor`` takes a training run's ``--save-dir`` (the net of
``best.params``, or the newest epoch, and what config.json says about its
input) or an export prefix (what ``export_model`` / ``scripts/export.py``
wrote; the sidecar ``PREFIX.json`` says it). ``predict`` takes

- image files (``str`` or ``pathlib.Path``) and PIL images, in one list, of any
  size and mode: each is prepared exactly as the run's evaluation prepared its
  images. Converted to grey (1 channel) or RGB (3); a net trained on your own
  images (it has a ``center_crop``) gets the shorter side scaled to
  side / center_crop and the centre cut out (``load_image`` with the same JPEG
  draft size, then ``eval_pixels`` of :mod:`gluon_cnns.data.transforms`); other
  nets' images are resized bilinearly to the input size. Then ``ToTensor``
  (/255) and, where the model says so, the per-channel normalization. One path
  or image alone is a list of one; a folder is not expanded (scripts/predict.py
  does that).
- or one batch, a numpy array or ``mx.nd.NDArray`` of shape (N, C, H, W) as
  the net takes it: **already prepared**, i.e. divided by 255 and normalized --
  what the run's evaluation fed the net (the test batches of
  ``load_data_fashion_mnist`` and the other loaders, ``ImageBatches``, or
  :meth:`Predictor.batch`). It goes to the net as it is. A batch of integers
  is refused: raw pixels are passed as images.

and returns, per input, its ``top_k`` most likely classes as
``(class name, probability)`` pairs, best first (the softmax of the net's
output). A mistake -- a path that is neither a run folder nor an export, an
unreadable image, a batch of the wrong shape, ``top_k`` < 1 -- raises a
:class:`~gluon_cnns.errors.GluonCNNsError` with one line naming it.
"""
import contextlib
import os
import time

from ..data.decode import ImageError, load_image, to_pixels
from ..errors import ExportError, GluonCNNsError, error_line

BATCH_SIZE = 64  # images per forward pass: bounds memory for a long list or a large batch
FUSE_SECONDS = 0.5  # plain forward time of a batch shape, spent and due, that pays for fusing
FUSED_SHAPES = 4  # batch shapes a predictor fuses at most (each holds its own graph)
FUSE_TOLERANCE = 1e-5  # fused probabilities within this of the plain net's, or plain

__all__ = ["BATCH_SIZE", "Predictor", "load_predictor", "ranked"]


def load_predictor(path, ctx=None, fuse=True):
    """A :class:`Predictor` for ``path``: a training run's ``--save-dir`` or an export prefix
    (``PREFIX.json`` or any other file of the export works too); its net on ``ctx``
    (default CPU). ``fuse=False``: every forward runs the plain hybridized net, never
    oneDNN's fused graph (see :class:`Predictor`)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise GluonCNNsError("load_predictor needs the path of a run folder (--save-dir) or "
                             "an export prefix, e.g. 'exports/lenet'; got %r" % (path,))
    block, meta = _load_net(os.fspath(path), ctx)
    return Predictor(block, meta, os.fspath(path), ctx, fuse=fuse)


def _load_net(spec, ctx):
    """``(block, meta)`` of ``spec``: an export prefix or a training run's --save-dir."""
    from ..artifacts.rundir import RunDir
    from ..artifacts.layout import export_paths
    from ..artifacts.run_meta import checkpoint_meta
    from ..artifacts.source import load_checkpoint_net
    from .export import load_exported
    sidecar = export_paths(spec)["meta"]
    if not os.path.exists(spec) and not os.path.exists(sidecar):
        raise GluonCNNsError("neither an export (no %s) nor a training run's --save-dir (no such "
                             "folder)" % sidecar)
    # A folder is a save-dir, unless it is not one and an export of that name exists.
    if os.path.isdir(spec) and (RunDir(spec).has_config()
                                or not os.path.exists(sidecar)):
        net, config = load_checkpoint_net(spec, ctx)
        meta = checkpoint_meta(config)
        net.hybridize()
    else:
        net = load_exported(spec, ctx)
        meta = net.meta
    if meta["channels"] not in (1, 3):
        raise GluonCNNsError("the net takes %d input channels; predict reads images as grey "
                             "(1 channel) or RGB (3)" % meta["channels"])
    return net, meta


def ranked(probabilities, class_names, k):
    """The ``k`` most likely classes of one row of probabilities: ``[(index, name,
    probability)]``, best first (a net with more outputs than names: the index as name)."""
    order = probabilities.argsort()[::-1][:k]
    return [(int(i), class_names[i] if i < len(class_names) else str(i),
             float(probabilities[i])) for i in order]


def _decode_options(meta):
    """What ``load_image`` is given for ``meta``'s net: with a center crop, the training
    evaluation's JPEG draft size (a large image is reduced as that evaluation did); without,
    the input size (a large image is reduced to about four times it)."""
    crop = meta.get("center_crop")
    if crop is None:
        return {"size": meta["input_size"]}
    from ..data.transforms import draft_size
    return {"draft": draft_size(meta["input_size"][0], False, crop)}


class Predictor:
    """A trained net with what it needs to classify images; made by :func:`load_predictor`.

    ``classes``: the class names, one per output; ``meta``: the input the net
    takes, in the terms of an export sidecar (input_size, channels,
    normalization, class_names, center_crop); ``block``: the Gluon block;
    ``path``: where it was loaded from.

    On a CPU, a batch shape (N, C, H, W) that runs long enough to pay for it
    runs through oneDNN's fused graph of the net
    (:func:`~gluon_cnns.inference.fuse_for_cpu`: BatchNorm folded into the
    convolutions, the residual addition fused), once its probabilities have
    been checked against the plain net's on that very batch; see
    :class:`_FusedShapes` for when and how. ``fused_shapes``: the
    batch shapes that run fused; ``plain_shapes``: ``{shape: reason}`` of those
    that were tried and run plain. ``fuse=False`` (or a GPU ``ctx``): always plain.
    A fused graph holds its own copy of the weights, BatchNorm folded in: after
    changing ``block``'s parameters, make a new predictor.
    """

    def __init__(self, block, meta, path, ctx=None, fuse=True):
        import mxnet as mx
        self.block, self.meta, self.path = block, meta, path
        self.ctx = ctx or mx.cpu()
        self._fused = _FusedShapes(block, self.ctx) if fuse and self.ctx.device_type == "cpu" \
            else None
        self.classes = list(meta["class_names"])
        self.input_shape = (meta["channels"],) + tuple(meta["input_size"])  # (C, H, W)
        self._decode_options = _decode_options(meta)

    def __repr__(self):
        return "Predictor(%r: %s, %d classes, input %s)" % (
            self.path, self.meta.get("net"), len(self.classes),
            "x".join(map(str, self.input_shape)))

    def read(self, image):
        """The uint8 (H, W, C) pixels of one image file or PIL image, prepared as the run's
        evaluation prepared its images up to ``ToTensor``; ImageError with the reason.

        Grey or RGB; with a center crop (a net trained on your own images) the evaluation
        crop at the input size, else the whole image (:meth:`batch` resizes it).
        """
        from PIL import Image, ImageOps
        given = isinstance(image, Image.Image)
        if not given:
            image = load_image(image, **self._decode_options)  # upright, as EXIF says
        channels, crop = self.meta["channels"], self.meta.get("center_crop")
        try:
            if given:
                image = ImageOps.exif_transpose(image)  # as a file is read
            if crop is None:
                return to_pixels(image, channels)
            from ..data.transforms import eval_pixels
            return eval_pixels(image, self.input_shape[1], channels, crop)
        except (OSError, SyntaxError, ValueError) as err:  # a lazily opened, damaged image
            raise ImageError("cannot decode the image (%s)" % " ".join(str(err).split())) \
                from None

    def batch(self, images):
        """uint8 HWC pixels (what :meth:`read` returns) -> the float32 NCHW batch the net
        takes, with the very operators of the training pipeline (mx.nd.image.resize,
        to_tensor, normalize), so that an image of the training size gives its numbers."""
        import mxnet as mx
        if not len(images):
            raise GluonCNNsError("Predictor.batch needs at least one image")
        height, width = self.meta["input_size"]
        norm = self.meta["normalization"]
        tensors = []
        with self._running():
            for pixels in images:
                x = mx.nd.array(pixels, ctx=self.ctx, dtype="uint8")
                if x.shape[:2] != (height, width):
                    x = mx.nd.image.resize(x, size=(width, height), interp=1)  # bilinear
                x = mx.nd.image.to_tensor(x)  # CHW float32, / 255
                if norm.get("mean") is not None:
                    x = mx.nd.image.normalize(x, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
                tensors.append(x)
            return mx.nd.stack(*tensors)

    def probabilities(self, inputs):
        """Softmax probabilities of ``inputs`` (see the module docstring): a numpy array of
        (number of inputs, classes), BATCH_SIZE inputs per forward pass."""
        import numpy as np
        batch = _as_batch(inputs, self.input_shape)
        parts = []
        if batch is not None:
            for start in range(0, batch.shape[0], BATCH_SIZE):
                parts.append(self._forward(batch[start:start + BATCH_SIZE],
                                           _chunks_left(batch.shape[0], start)))
        else:
            images = _as_images(inputs)
            for start in range(0, len(images), BATCH_SIZE):
                chunk = images[start:start + BATCH_SIZE]
                parts.append(self._forward(self.batch([self._read(x) for x in chunk]),
                                           _chunks_left(len(images), start)))
        if not parts:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(parts)

    def predict(self, inputs, top_k=5):
        """Per input, its ``top_k`` most likely classes as ``(class name, probability)``
        pairs, best first (all classes when there are fewer)."""
        if not (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 1):
            raise GluonCNNsError("top_k must be a positive integer (how many classes to "
                                 "return per input), got %r" % (top_k,))
        return [[(name, p) for _, name, p in ranked(row, self.classes, top_k)]
                for row in self.probabilities(inputs)]

    def _read(self, image):
        """:meth:`read`, with the file's name in the error."""
        try:
            return self.read(image)
        except ImageError as err:
            if not isinstance(image, (str, os.PathLike)):
                raise ImageError("a PIL image: %s" % err) from None
            hint = "; pass the image files in it" if os.path.isdir(image) else ""
            raise ImageError("%s: %s%s" % (os.fspath(image), err, hint)) from None

    @property
    def fused_shapes(self):
        """The batch shapes that run through the fused graph, in the order they were fused."""
        return [] if self._fused is None else self._fused.fused_shapes()

    @property
    def plain_shapes(self):
        """``{batch shape: why}`` of the shapes whose fused graph was refused or unequal."""
        return {} if self._fused is None else dict(self._fused.refused)

    def _forward(self, batch, left=1):
        """The net's softmax of one NCHW float32 NDArray, as numpy; ``left``: the chunks of
        its shape this call runs from this one on."""
        import mxnet as mx
        with self._running(), mx.autograd.pause(train_mode=False):
            batch = batch.as_in_context(self.ctx)
            if self._fused is not None:
                return self._fused(batch, left)
            return _softmax(self.block, batch)

    @contextlib.contextmanager
    def _running(self):
        """MXNet's errors as one ExportError: the model's files do not fit its net (e.g. a
        hand-edited sidecar)."""
        import mxnet as mx
        try:
            yield
        except mx.base.MXNetError as err:
            raise ExportError("%s does not run on these images: %s"
                              % (self.path, error_line(err))) from None


def _chunks_left(total, start):
    """How many chunks of the size of the one at ``start`` a call of ``total`` inputs runs
    from there on: the full ones, or the short last one alone."""
    return (total - start) // BATCH_SIZE if total - start >= BATCH_SIZE else 1


_clock = time.perf_counter  # times the plain forwards: what fusing would save


def _softmax(block, batch):
    import mxnet as mx
    return mx.nd.softmax(block(batch)).asnumpy()


class _FusedShapes:
    """The probabilities of ``block``, through its fused graph for the batch shapes that
    run long enough to pay for it (CPU only).

    A fused graph is built for one batch shape (``static_shape``), so each shape
    gets its own, for at most ``FUSED_SHAPES`` shapes (later ones stay plain).
    A shape is fused once the seconds of its plain forwards so far, with those
    this call still runs of it (each estimated as long as the current one),
    reach ``FUSE_SECONDS``: about what building the graph costs and a fused
    forward saves (docs/SPEED_NOTES.md, "The predictor's fused graph"). Why not
    at once: on one OpenMP thread of a shared machine, building it
    (``optimize_for``, the first forward of the static graph) took 0.1-0.2 s for
    resnet20_cifar and 0.04 s for lenet_bn, against fused forwards 1.3-1.5x and
    1.2-1.3x as fast as plain ones: fused at once, the first prediction of 1 or
    64 images was 2-3.7x slower; resnet20_cifar broke even near 512 images (0.5 s
    of plain forwards), lenet_bn not within 1024. So one image, a short list, the
    short last chunk of a long list run plain; a long list, or a loop of calls,
    runs fused.

    The forward that fuses a shape runs both graphs on its batch and keeps the
    fused one only if ``max|a - b| <= FUSE_TOLERANCE * max(1, max|b|)``, ``a``
    and ``b`` the fused and the plain softmax probabilities (at most 1, so:
    within 1e-5 each); it returns the plain ones. Unequal, or failing to build
    or run (a net that cannot be partitioned), the shape runs plain from then on
    and ``refused`` says why: never other numbers than the plain net's to 1e-5.
    """

    def __init__(self, block, ctx):
        self.block, self.ctx = block, ctx
        self.spent = {}  # batch shape -> seconds of its plain forwards so far
        self.graphs = {}  # batch shape -> its fused block
        self.refused = {}  # batch shape -> why it runs plain

    def fused_shapes(self):
        return list(self.graphs)

    def __call__(self, batch, left=1):
        shape = tuple(batch.shape)
        if shape in self.graphs:
            return _softmax(self.graphs[shape], batch)
        start = _clock()
        plain = _softmax(self.block, batch)
        if shape in self.refused or len(self.graphs) + len(self.refused) >= FUSED_SHAPES:
            return plain
        took = _clock() - start
        self.spent[shape] = self.spent.get(shape, 0.0) + took
        if self.spent[shape] + (left - 1) * took >= FUSE_SECONDS:
            self._try(shape, batch, plain)
        return plain

    def _try(self, shape, batch, plain):
        """Fuse ``block`` for ``shape``, checked on ``batch`` against its ``plain`` answer."""
        import numpy as np
        from .quantize import fuse_for_cpu
        try:
            fused = fuse_for_cpu(self.block, batch, self.ctx)
            ours = _softmax(fused, batch)
        except Exception as err:  # pylint: disable=broad-except
            # MXNetError, or whatever a net oneDNN cannot partition raises: run it plain.
            self.refused[shape] = "fusing failed: %s" % error_line(err)
            return
        if ours.shape != plain.shape:
            self.refused[shape] = "the fused graph gives %s outputs, not %s" % (
                ours.shape, plain.shape)
            return
        gap = float(np.abs(ours - plain).max())
        limit = FUSE_TOLERANCE * max(1.0, float(np.abs(plain).max()))
        if not gap <= limit:  # NaN too
            self.refused[shape] = "fused probabilities differ by %.3g (> %.3g)" % (gap, limit)
            return
        self.graphs[shape] = fused


# ---------------------------------------------------------------- what predict takes

def _as_images(inputs):
    """``inputs`` as a list of file paths and PIL images (one of them alone: a list of one)."""
    from PIL import Image
    if isinstance(inputs, (str, os.PathLike, Image.Image)):
        return [inputs]
    try:
        images = list(inputs)
    except TypeError:
        images = [inputs]
    for i, image in enumerate(images):
        if not isinstance(image, (str, os.PathLike, Image.Image)):
            raise GluonCNNsError("input %d is a %s; predict takes a list of image files and PIL "
                                 "images, or one (N, C, H, W) array" % (i, type(image).__name__))
    return images


def _as_batch(inputs, shape):
    """``inputs`` as a float32 NDArray when it is an array batch, else None."""
    import mxnet as mx
    import numpy as np
    if isinstance(inputs, mx.nd.NDArray):
        dtype, found = np.dtype(inputs.dtype), inputs.shape
    elif isinstance(inputs, np.ndarray):
        dtype, found = inputs.dtype, inputs.shape
    else:
        return None
    if len(found) != 4 or tuple(found[1:]) != shape:
        raise GluonCNNsError("the batch has shape %s; this net takes (N, %d, %d, %d) -- for one "
                             "image add the batch axis, x[None]" % ((tuple(found),) + shape))
    if dtype.kind != "f":
        raise GluonCNNsError("the batch is of %s; a batch is the net's prepared float input "
                             "(/255, normalized): pass raw pixels as PIL images instead" % dtype)
    if isinstance(inputs, np.ndarray):
        return mx.nd.array(inputs, dtype="float32")
    return inputs.astype("float32", copy=False)

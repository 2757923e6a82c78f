"""``predict``: classify image files with an exported or freshly trained net.

    python scripts/predict.py shirt.png boot.jpg --model exports/lenet
    python scripts/predict.py photos/ --model runs/lenet --top-k 5 --json

``--model`` is an export prefix (what ``export_model``/``scripts/export.py``
wrote: ``PREFIX.json`` beside ``PREFIX-symbol.json``) or a training run's
``--save-dir``. Each image, of any size and mode, is turned into what the
net was trained on: converted to grey (1 channel) or RGB (3 channels),
resized bilinearly to the net's input size, divided by 255 and, where the
model says so, normalized per channel.

A file that cannot be read -- missing, damaged, not an image, not a regular
file (a named pipe would block forever), or larger than MAX_PIXELS -- is
reported as one line on stderr and the others are still classified; the exit
code is then 2 (0 when every file worked). Images of up to MAX_PIXELS pixels
are read; above LARGE_PIXELS they are decoded at a reduced scale where the
format allows (JPEG) and otherwise shrunk by an integer factor right after
decoding, to about four times the net's input size, before the usual resize.
"""
import json
import os
import stat
import sys

from ..errors import GluonCNNsError, error_line
from .common import OneLineParser, non_empty, parse, positive_int, report

PROG = "predict"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BATCH_SIZE = 64  # images per forward pass: bounds memory for a large folder
# The largest image read: 500 megapixels (e.g. 22000 x 22000) take up to 2 GB while a
# PNG is decoded (4 bytes a pixel at most); JPEGs are decoded at a reduced scale.
MAX_PIXELS = 500_000_000
# Larger images are reduced right after decoding (Image.draft / Image.reduce).
LARGE_PIXELS = 4096 * 4096


class ImageError(Exception):
    """One input file that cannot be classified; the message is the reason."""


def build_parser():
    parser = OneLineParser(prog=PROG, description="Classify images with a net of the gluon_cnns zoo.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (png, jpg, jpeg, bmp, gif), or folders of them")
    parser.add_argument("--model", required=True, metavar="PATH",
                        type=non_empty("an export prefix or a --save-dir, e.g. exports/lenet"),
                        help="export prefix (PATH.json, PATH-symbol.json, ...) or a training "
                             "run's --save-dir")
    parser.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                        help="how many classes to show per image (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


# ---------------------------------------------------------------- the model

def load_model(spec, ctx=None):
    """``(block, meta)`` for ``--model``: an export prefix or a training run's --save-dir."""
    from ..inference.export import checkpoint_meta, export_paths, load_checkpoint_net, \
        load_exported
    from ..training.rundir import RunDir
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


# ---------------------------------------------------------------- the images

def expand_inputs(paths):
    """Files to classify, in order: a folder stands for its images, sorted by name.

    Returns ``(files, problems)``; a problem is ``(path, reason)`` for a folder
    without images (missing files are found when they are read).
    """
    files, problems = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        # Not only regular files: a named pipe called x.png is reported, not passed over.
        found = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.lower().endswith(IMAGE_EXTENSIONS)
                       and not os.path.isdir(os.path.join(path, name)))
        if not found:
            problems.append((path, "folder holds no %s images" % "/".join(
                e[1:] for e in IMAGE_EXTENSIONS)))
        files.extend(found)
    return files, problems


# Pillow modes of 16-bit, 32-bit and float greys; convert("L") would clip them at 255.
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def _to_8bit_grey(image):
    """A wide grey image scaled (not clipped) to 8-bit mode "L"."""
    import numpy as np
    from PIL import Image
    grey = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if grey.max() <= 1.0 else 255.0
    else:
        top = 65535.0 if grey.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.rint(grey / top * 255), 0, 255).astype(np.uint8), "L")


def _pixels(image, channels):
    """The image as a uint8 (H, W, channels) numpy array: grey for 1 channel, else RGB."""
    import numpy as np
    if image.mode in _WIDE_GREY_MODES:
        image = _to_8bit_grey(image)
    arr = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


_FILE_TYPES = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _open_regular(path):
    """``path`` opened for binary reading, or ImageError unless it is a regular file.

    The open does not block (O_NONBLOCK): a named pipe without a writer would
    otherwise wait forever, and a device would never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as err:
        raise ImageError("cannot open it (%s)" % (err.strerror or err)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ImageError("is a folder")
        kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a file")
        raise ImageError("not a regular file (%s); skipped" % kind)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _shrink_factor(width, height, size):
    """The integer factor that brings an image to about 4x ``size`` (H, W); at least 1.

    Without a ``size``, the factor brings it just below LARGE_PIXELS.
    """
    if size is None:
        return max(1, int(((width * height) / LARGE_PIXELS) ** 0.5) + 1)
    return max(1, min(width // (4 * size[1]), height // (4 * size[0])))


def _decode(image, size):
    """Decode ``image`` (opened, not loaded), reduced if it is large; returns the image."""
    if image.width * image.height <= LARGE_PIXELS:
        image.load()  # decode now: a truncated file fails here, not later
        return image
    factor = _shrink_factor(image.width, image.height, size)
    if image.format == "JPEG" and factor > 1:
        # Decode at 1/2, 1/4 or 1/8 scale: the full image is never in memory.
        image.draft(None, (max(1, image.width // factor), max(1, image.height // factor)))
        factor = _shrink_factor(image.width, image.height, size)  # what is left to do
    image.load()
    if factor > 1:
        if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr"):
            # Palette, 1-bit and 16-bit images: Image.reduce takes them as 8-bit or "I".
            image = image.convert("I" if image.mode in _WIDE_GREY_MODES else "RGBA")
        image = image.reduce(factor)
    return image


def read_image(path, channels, size=None):
    """Read ``path`` as uint8 (H, W, channels) pixels; raise ImageError with the reason.

    ``size`` (H, W), the net's input size, lets a large image be reduced to
    about four times that right away (it is resized to ``size`` later).
    """
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
    # Importing gluoncv's data package sets Pillow's process-wide LOAD_TRUNCATED_IMAGES,
    # which would silently pad a truncated file with grey: refuse truncated files anyway.
    # MAX_IMAGE_PIXELS: Pillow's own bound is replaced by MAX_PIXELS, checked below.
    saved = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = False, None
    try:
        with _open_regular(path) as f, Image.open(f) as image:
            pixels = image.width * image.height
            if pixels > MAX_PIXELS:
                raise ImageError("the image is %dx%d (%d megapixels), more than the %d "
                                 "megapixels predict reads; scale it down first"
                                 % (image.width, image.height, pixels // 10 ** 6,
                                    MAX_PIXELS // 10 ** 6))
            image = _decode(image, size)
            image = ImageOps.exif_transpose(image)  # photos taken sideways
            return _pixels(image, channels)
    except UnidentifiedImageError:
        raise ImageError("not an image file (or a format Pillow cannot read)") from None
    except MemoryError:
        raise ImageError("not enough memory to decode it") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # Pillow raises OSError ("image file is truncated") or SyntaxError ("broken PNG
        # file") for damaged files.
        raise ImageError("cannot decode the image (%s)" % " ".join(str(err).split())) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = saved


def to_batch(images, meta, ctx=None):
    """uint8 HWC images -> the float32 NCHW batch the net was trained on.

    The very operators of the training pipeline (mx.nd.image.resize, to_tensor,
    normalize), so that an image of the training size gives the training numbers.
    """
    import mxnet as mx
    height, width = meta["input_size"]
    norm = meta["normalization"]
    tensors = []
    for pixels in images:
        x = mx.nd.array(pixels, ctx=ctx or mx.cpu(), dtype="uint8")
        if x.shape[:2] != (height, width):
            x = mx.nd.image.resize(x, size=(width, height), interp=1)  # bilinear
        x = mx.nd.image.to_tensor(x)  # CHW float32, / 255
        if norm.get("mean") is not None:
            x = mx.nd.image.normalize(x, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
        tensors.append(x)
    return mx.nd.stack(*tensors)


def predict_probabilities(block, images, meta):
    """Softmax probabilities of a list of uint8 HWC images: a (len(images), classes) array."""
    import mxnet as mx
    with mx.autograd.pause(train_mode=False):
        return mx.nd.softmax(block(to_batch(images, meta))).asnumpy()


def top_k(probabilities, class_names, k):
    """The ``k`` most likely classes: a list of {class, index, probability}, best first."""
    order = probabilities.argsort()[::-1][:k]
    return [{"class": class_names[i] if i < len(class_names) else str(i), "index": int(i),
             "probability": float(probabilities[i])} for i in order]


# ---------------------------------------------------------------- output

def print_text(results):
    """One block per image: its path, then the top classes with percentages."""
    blocks = []
    for result in results:
        width = max(len(p["class"]) for p in result["top"])
        lines = [result["file"]]
        lines += ["  %d. %s  %6.2f%%" % (rank, p["class"].ljust(width), 100 * p["probability"])
                  for rank, p in enumerate(result["top"], 1)]
        blocks.append("\n".join(lines))
    if blocks:
        print("\n\n".join(blocks))


def _read_images(paths, channels, failed, size=None):
    """``(paths read, their pixels)``; each unreadable file is reported and added to ``failed``."""
    readable, images = [], []
    for path in paths:
        try:
            images.append(read_image(path, channels, size))
            readable.append(path)
        except ImageError as err:
            report(PROG, "%s: %s" % (path, err))
            failed.append((path, str(err)))
    return readable, images


def classify(block, meta, files, top, failed):
    """Top-``top`` results for ``files``, read and run BATCH_SIZE at a time (bounded memory)."""
    results = []
    for start in range(0, len(files), BATCH_SIZE):
        readable, images = _read_images(files[start:start + BATCH_SIZE], meta["channels"], failed,
                                        meta["input_size"])
        if images:
            probs = predict_probabilities(block, images, meta)
            results += [{"file": path, "top": top_k(p, meta["class_names"], top)}
                        for path, p in zip(readable, probs)]
    return results


def run(args):
    """Classify ``args.images``; returns the exit code (2 if any file failed)."""
    import mxnet as mx  # here, not at the top: --help should not wait for MXNet
    try:
        block, meta = load_model(args.model)
    except GluonCNNsError as err:
        report(PROG, "--model %s: %s" % (args.model, error_line(err)))
        return 2
    files, failed = expand_inputs(args.images)
    for path, reason in failed:
        report(PROG, "%s: %s" % (path, reason))
    try:
        results = classify(block, meta, files, args.top_k, failed)
    except (GluonCNNsError, mx.base.MXNetError) as err:  # e.g. a hand-edited sidecar
        report(PROG, "--model %s does not run on these images: %s" % (args.model, error_line(err)))
        return 2
    if args.json:
        print(json.dumps({"model": args.model, "net": meta.get("net"), "results": results,
                          "errors": [{"file": p, "error": r} for p, r in failed]}, indent=2))
    else:
        print_text(results)
    return 2 if failed else 0


def main(argv=None):
    """Entry point of ``scripts/predict.py``; returns the exit code."""
    args, code = parse(build_parser(), argv)
    if args is None:  # --help, or a usage error already printed by the parser
        return code
    from ..threads import configure
    configure()  # before MXNet is imported
    try:
        return run(args)
    except KeyboardInterrupt:
        print("%s: interrupted" % PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

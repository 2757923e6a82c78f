"""Reading one image file (or the bytes of one) into pixels: the one home of image decoding.

Training on an image folder or a RecordIO pack, ``scripts/pack.py`` and
``scripts/predict.py`` all decode through :func:`load_image`, so that the same
file gives the same pixels everywhere. Pillow decodes (it releases the GIL, so
a thread pool decodes in parallel); any mode is accepted -- palette, CMYK,
16-bit and float greys, with or without alpha -- and turned into 8-bit grey or
RGB by :func:`to_pixels`. A file that cannot be used raises :class:`ImageError`
with the reason in a few words: missing, not a regular file (a named pipe would
block forever), not an image, truncated or damaged, or larger than MAX_PIXELS.
"""
import contextlib
import io
import threading

from ..errors import DataError
from ..io import NotRegularFile
from ..io import open_regular as io_open_regular

# What an image folder's files and predict's folder arguments are recognized by.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff",
                    ".webp")
# The largest image read: 500 megapixels (e.g. 22000 x 22000) take up to 2 GB while a
# PNG is decoded (4 bytes a pixel at most); JPEGs are decoded at a reduced scale.
MAX_PIXELS = 500_000_000
# Larger images are reduced right after decoding (Image.draft / Image.reduce).
LARGE_PIXELS = 4096 * 4096


class ImageError(DataError):
    """One image file that cannot be used; the message is the reason."""


# Pillow modes of 16-bit, 32-bit and float greys; convert("L") would clip them at 255.
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
# Modes that hold no colour: an image folder of only these is read as 1 channel.
GREY_MODES = ("1", "L", "LA", "La") + _WIDE_GREY_MODES


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


def to_mode(image, channels):
    """The image in Pillow mode "L" (1 channel) or "RGB" (3 channels)."""
    if image.mode in _WIDE_GREY_MODES:
        image = _to_8bit_grey(image)
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def to_pixels(image, channels):
    """The image as a uint8 (H, W, channels) numpy array: grey for 1 channel, else RGB."""
    import numpy as np
    arr = np.asarray(to_mode(image, channels), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def open_regular(path):
    """``path`` opened for binary reading, or ImageError unless it is a regular file
    (opened without blocking: a named pipe would wait forever for a writer)."""
    try:
        return io_open_regular(path)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except NotRegularFile as err:
        raise ImageError("is a folder" if err.kind == "a folder"
                         else "not a regular file (%s); skipped" % err.kind) from None
    except OSError as err:
        raise ImageError("cannot open it (%s)" % (err.strerror or err)) from None


def _shrink_factor(width, height, size):
    """The integer factor that brings an image to about 4x ``size`` (H, W); at least 1.

    Without a ``size``, the factor brings it just below LARGE_PIXELS.
    """
    if size is None:
        return max(1, int(((width * height) / LARGE_PIXELS) ** 0.5) + 1)
    return max(1, min(width // (4 * size[1]), height // (4 * size[0])))


def _decode(image, size, draft):
    """Decode ``image`` (opened, not loaded), reduced if it is large; returns the image.

    ``draft`` (W, H): a JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale
    that is still at least that large (the DCT does the scaling, far faster).
    """
    if draft is not None and image.format == "JPEG":
        image.draft(image.mode if image.mode in ("L", "RGB") else None, draft)
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


_STRICT = {"lock": threading.Lock(), "users": 0, "saved": None}


@contextlib.contextmanager
def _strict_pillow():
    """Pillow's process-wide settings made strict while any thread decodes here.

    Importing gluoncv's data package sets LOAD_TRUNCATED_IMAGES, which would
    silently pad a truncated file with grey: truncated files are refused anyway.
    Pillow's own pixel bound is replaced by MAX_PIXELS, checked in load_image.
    The first decoding thread sets them, the last one puts the user's back.
    """
    from PIL import Image, ImageFile
    with _STRICT["lock"]:
        if _STRICT["users"] == 0:
            _STRICT["saved"] = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
            ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = False, None
        _STRICT["users"] += 1
    try:
        yield
    finally:
        with _STRICT["lock"]:
            _STRICT["users"] -= 1
            if _STRICT["users"] == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = _STRICT["saved"]


@contextlib.contextmanager
def open_image(source):
    """``source`` (a path, or the bytes of a file) opened by Pillow -- its header read,
    not its pixels -- and checked against MAX_PIXELS. Any failure, in the ``with`` block
    too, becomes one ImageError with the reason."""
    from PIL import Image, UnidentifiedImageError
    try:
        f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) \
            else open_regular(source)
        with _strict_pillow(), f, Image.open(f) as image:
            pixels = image.width * image.height
            if pixels > MAX_PIXELS:
                raise ImageError("the image is %dx%d (%d megapixels), more than the %d "
                                 "megapixels read here; scale it down first"
                                 % (image.width, image.height, pixels // 10 ** 6,
                                    MAX_PIXELS // 10 ** 6))
            yield image
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file (or a format Pillow cannot read)") from None
    except MemoryError:
        raise ImageError("not enough memory to decode it") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # Pillow raises OSError ("image file is truncated") or SyntaxError ("broken PNG
        # file") for damaged files.
        raise ImageError("cannot decode the image (%s)" % " ".join(str(err).split())) from None


def load_image(source, size=None, draft=None):
    """Decode ``source`` (a path, or the bytes of a file) into a Pillow image.

    ``size`` (H, W), the net's input size, lets a large image be reduced to
    about four times that right away; ``draft`` (W, H) see ``_decode``.
    Photos taken sideways are turned upright (EXIF orientation).
    """
    from PIL import ImageOps
    with open_image(source) as image:
        return ImageOps.exif_transpose(_decode(image, size, draft))


def read_image(path, channels, size=None):
    """Read ``path`` as uint8 (H, W, channels) pixels; raise ImageError with the reason."""
    return to_pixels(load_image(path, size), channels)

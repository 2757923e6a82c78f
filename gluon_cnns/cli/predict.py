"""``predict``: classify image files with an exported or freshly trained net.

    python scripts/predict.py shirt.png boot.jpg --model exports/lenet
    python scripts/predict.py photos/ --model runs/lenet --top-k 5 --json

``--model`` is an export prefix (what ``export_model``/``scripts/export.py``
wrote: ``PREFIX.json`` beside ``PREFIX-symbol.json``) or a training run's
``--save-dir``. Each image, of any size and mode, is turned into what the
net was trained on: converted to grey (1 channel) or RGB (3 channels),
brought to the net's input size, divided by 255 and, where the model says so,
normalized per channel. A net trained on your own images (``--dataset folder``
or ``rec``) has a ``center_crop``: its images go through the training's own
evaluation steps (``load_image`` with the same JPEG draft size, then
``eval_pixels``: the shorter side scaled to side / center_crop, the centre cut
out), so that predict on the val folder gives the accuracy the run logged.
Other nets' images are resized bilinearly to the input size.

A file that cannot be read -- missing, damaged, not an image, not a regular
file (a named pipe would block forever), or larger than MAX_PIXELS -- is
reported as one line on stderr and the others are still classified; the exit
code is then 2 (0 when every file worked). Images of up to MAX_PIXELS pixels
are read; above LARGE_PIXELS they are decoded at a reduced scale where the
format allows (JPEG) and otherwise shrunk by an integer factor right after
decoding -- to about four times the net's input size, or with a center crop to
just below LARGE_PIXELS as in training -- before the usual resize.
"""
import json
import os
import sys

from ..data.decode import (IMAGE_EXTENSIONS, LARGE_PIXELS, MAX_PIXELS,  # noqa: F401
                           ImageError, load_image, read_image)
from ..errors import GluonCNNsError, error_line
from .common import (OneLineParser, configure_threads, non_empty, parse, positive_int,
                     report)

PROG = "predict"
BATCH_SIZE = 64  # images per forward pass: bounds memory for a large folder


def build_parser():
    parser = OneLineParser(prog=PROG,
                           description="Classify images with a net of the gluon_cnns zoo.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (%s), or folders of them"
                        % ", ".join(e[1:] for e in IMAGE_EXTENSIONS))
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

def _folder_images(folder, hidden):
    """``(images, sub-folders)`` of ``folder``, each sorted by name."""
    images, folders = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") and not hidden:
            continue
        if os.path.isdir(path):
            folders.append(path)
        # Not only regular files: a named pipe called x.png is reported, not passed over.
        elif name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(path)
    return images, folders


def expand_inputs(paths):
    """Files to classify, in order: a folder stands for its images, sorted by name, then
    those of its sub-folders (an image folder's ``val/<class>/*`` layout; hidden ones left
    out as training leaves them out).

    Returns ``(files, problems)``; a problem is ``(path, reason)`` for a folder
    without images (missing files are found when they are read).
    """
    files, problems = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        try:
            found, folders = _folder_images(path, hidden=True)
            for folder in folders:
                if not os.path.basename(folder).startswith("."):
                    found += _folder_images(folder, hidden=False)[0]
        except OSError as err:
            problems.append((path, "cannot read the folder (%s)" % (err.strerror or err)))
            continue
        if not found:
            problems.append((path, "folder holds no %s images" % "/".join(
                e[1:] for e in IMAGE_EXTENSIONS)))
        files.extend(found)
    return files, problems


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


def image_reader(meta):
    """The function that turns one file into the uint8 HWC pixels ``meta``'s net is fed."""
    channels, size, crop = meta["channels"], meta["input_size"], meta.get("center_crop")
    if crop is None:
        return lambda path: read_image(path, channels, size)
    from ..data.transforms import draft_size, eval_pixels
    side = size[0]  # a center crop is square (the sidecar and checkpoint_meta check it)
    # No size for load_image: a large image is reduced as the training's evaluation did.
    draft = draft_size(side, False, crop)
    return lambda path: eval_pixels(load_image(path, draft=draft), side, channels, crop)


def _read_images(paths, reader, failed):
    """``(paths read, their pixels)``; each unreadable file is reported and added to ``failed``."""
    readable, images = [], []
    for path in paths:
        try:
            images.append(reader(path))
            readable.append(path)
        except ImageError as err:
            report(PROG, "%s: %s" % (path, err))
            failed.append((path, str(err)))
    return readable, images


def classify(block, meta, files, top, failed):
    """Top-``top`` results for ``files``, read and run BATCH_SIZE at a time (bounded memory)."""
    results, reader = [], image_reader(meta)
    for start in range(0, len(files), BATCH_SIZE):
        readable, images = _read_images(files[start:start + BATCH_SIZE], reader, failed)
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
    failed = configure_threads(PROG)  # before MXNet is imported
    if failed:
        return failed
    try:
        return run(args)
    except KeyboardInterrupt:
        print("%s: interrupted" % PROG, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

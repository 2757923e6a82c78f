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
Other nets' images are resized bilinearly to the input size. A folder stands
for its images at any depth, in name order -- an image folder's
``train/<class>/`` and ``val/<class>/`` too -- found as training finds them.
The work is :func:`gluon_cnns.load_predictor`'s (``inference/predict.py``);
this module reads the arguments, expands folders and prints.

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
                           ImageError, read_image)
from ..errors import DataError, GluonCNNsError, error_line
from ..inference.predict import BATCH_SIZE, ranked
from .common import (OneLineParser, configure_threads, non_empty, parse, positive_int,
                     report)

PROG = "predict"


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
    parser.add_argument("--cam", metavar="OUT_DIR",
                        type=non_empty("a folder for the overlays, e.g. cams"),
                        help="also write one Grad-CAM overlay PNG per image to OUT_DIR, "
                             "titled with its top class (needs a run's --save-dir as --model: "
                             "an export has no layers to explain)")
    return parser


# ---------------------------------------------------------------- the images

def expand_inputs(paths):
    """Files to classify, in order: a folder stands for its images at any depth, in name
    order (an image folder's ``train/<class>/*`` and ``val/<class>/*`` layout), found as
    training finds a class folder's images (``image_files``: the same extensions, hidden
    files and folders left out, a folder reached twice through links read once).

    Returns ``(files, problems)``; a problem is ``(path, reason)`` for a folder
    without images (missing files are found when they are read).
    """
    from ..data.image_folder import image_files
    files, problems = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        try:
            found = image_files(path)[0]
        except DataError as err:
            problems.append((path, error_line(err)))
            continue
        if not found:
            problems.append((path, "folder holds no %s images" % "/".join(
                e[1:] for e in IMAGE_EXTENSIONS)))
        files.extend(found)
    return files, problems


def _read_images(paths, predictor, failed):
    """``(paths read, their pixels)``; each unreadable file is reported and added to ``failed``."""
    readable, images = [], []
    for path in paths:
        try:
            images.append(predictor.read(path))
            readable.append(path)
        except ImageError as err:
            report(PROG, "%s: %s" % (path, err))
            failed.append((path, str(err)))
    return readable, images


def classify(predictor, files, top, failed, cam_dir=None):
    """Top-``top`` results for ``files``, read and run BATCH_SIZE at a time (bounded memory);
    with ``cam_dir``, each image's Grad-CAM overlay is written there too."""
    results, cam_names = [], set()
    for start in range(0, len(files), BATCH_SIZE):
        readable, images = _read_images(files[start:start + BATCH_SIZE], predictor, failed)
        if not images:
            continue
        batch = predictor.batch(images)
        rows = predictor.probabilities(batch)
        for path, row in zip(readable, rows):
            best = ranked(row, predictor.classes, top)
            results.append({"file": path, "top": [{"class": name, "index": i, "probability": p}
                                                  for i, name, p in best]})
        if cam_dir is not None:
            write_cams(predictor, batch, rows, readable, cam_dir, cam_names)
    return results


def write_cams(predictor, batch, rows, paths, cam_dir, taken):
    """One overlay PNG per image in ``cam_dir``, named after the image (``taken``: names
    already used, so that two ``shirt.png`` of different folders both stay)."""
    from ..viz import grad_cam, save_overlays
    cams = grad_cam(predictor.block, batch)  # the top class of each image
    for i, (path, row) in enumerate(zip(paths, rows)):
        stem = os.path.splitext(os.path.basename(path))[0] or "image"
        name, n = stem + ".png", 1
        while name in taken:
            n += 1
            name = "%s-%d.png" % (stem, n)
        taken.add(name)
        (_, label, p), = ranked(row, predictor.classes, 1)
        save_overlays(batch[i:i + 1], cams[i:i + 1], os.path.join(cam_dir, name),
                      titles=["%s %.0f%%" % (label, 100 * p)], columns=1)


def _cam_folder(predictor, folder):
    """Check that ``--cam`` can work and make its folder; a one-line problem, or None."""
    from mxnet.gluon import nn
    if not isinstance(predictor.block, nn.HybridSequential):
        return ("--cam needs the Gluon net of a training run: pass its --save-dir as --model "
                "(an export has no layers to explain)")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        return "--cam %s: cannot make the folder (%s)" % (folder, err.strerror or err)
    return None


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


def run(args):
    """Classify ``args.images``; returns the exit code (2 if any file failed)."""
    from ..inference.predict import load_predictor
    try:
        predictor = load_predictor(args.model)
    except GluonCNNsError as err:
        report(PROG, "--model %s: %s" % (args.model, error_line(err)))
        return 2
    problem = _cam_folder(predictor, args.cam) if args.cam else None
    if problem:
        report(PROG, problem)
        return 2
    files, failed = expand_inputs(args.images)
    for path, reason in failed:
        report(PROG, "%s: %s" % (path, reason))
    try:
        results = classify(predictor, files, args.top_k, failed, cam_dir=args.cam)
    except GluonCNNsError as err:  # "... does not run on these images", e.g. a hand-edited sidecar
        report(PROG, "--model %s" % error_line(err))
        return 2
    if args.json:
        print(json.dumps({"model": args.model, "net": predictor.meta.get("net"),
                          "results": results,
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

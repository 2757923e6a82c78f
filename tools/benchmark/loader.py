"""The own-image loader: does decoding keep up with training? (``--loader resnet18``)

On photo-like JPEGs written for the run (Fashion-MNIST test images upscaled to
``--loader-photo-size``, colourised and given film grain so that a file is as
costly to decode as a small photo), in one run, in interleaved rounds:

* images/s of :class:`~gluon_cnns.data.image_batches.ImageBatches` alone (the
  training split, augmented, each batch waited for and dropped), from the folder
  and from its ``scripts/pack.py`` pack, with each ``--loader-workers`` count and
  the default;
* images/s of MXNet's own C++ ``mx.io.ImageRecordIter`` on the same pack, the
  same random resized crop, flip and normalization, for reference;
* the net's training step fed from memory (one random batch, hybridized, SGD):
  ``--loader-steps`` steps and the same number of steps fed by the folder
  loader, alternately; their time ratio is the end-to-end slowdown.

The verdict: the folder loader's images/s (default workers, as training uses
them) over the training step's; :data:`TARGET` means decoding keeps up with the
cores' training with room to spare.
"""
import os
import tempfile
import time

from gluon_cnns.errors import GluonCNNsError

from .machine import load_average
from .timing import summarize

TARGET = 2.0            # loader images/s >= 2x the training step's
JPEG_QUALITY = 90
# Film grain (std of 8-bit levels): an upscaled 28x28 image is so smooth that its JPEG is
# ~5 KB and decodes in half the time of a photo's; grain 8 gives ~19 KB at 256x256 q90.
GRAIN = 8.0
CHANNELS = 3
# ImageNet's mean/std in 8-bit levels: ImageRecordIter normalizes as ImageBatches does.
MEAN_255 = (123.675, 116.28, 103.53)
STD_255 = (58.395, 57.12, 57.375)
LR = 1e-3               # irrelevant to speed; small, so random labels do not blow up


def check_loader_args(opts):
    """GluonCNNsError (one line) for loader flags that cannot work together."""
    if not opts.loader:
        return
    if len(opts.loader) > 1:
        raise GluonCNNsError("--loader takes one net, got %s" % ",".join(opts.loader))
    if opts.loader_images < max(10, opts.loader_batch_size):
        raise GluonCNNsError("--loader-images %d is too few: at least 10 (one per class) and "
                             "--loader-batch-size (%d)" % (opts.loader_images,
                                                          opts.loader_batch_size))
    if opts.loader_side > opts.loader_photo_size:
        raise GluonCNNsError("--loader-side %d is larger than --loader-photo-size %d: the "
                             "photos would be upscaled" % (opts.loader_side,
                                                           opts.loader_photo_size))


# ---------------------------------------------------------------- the photos

def _fashion_test_images(data_dir):
    """Fashion-MNIST's test images (N, 28, 28, 1) uint8 and labels."""
    from gluon_cnns.data import find_data
    from gluon_cnns.data.readers import read_idx_pair
    files = find_data("fashion-mnist", data_dir)
    return read_idx_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"], 10,
                         "Fashion-MNIST")


def _photo(grey, size, rng):
    """A photo-like RGB Pillow image of one 28x28 grey image: upscaled, colourised, grain."""
    import numpy as np
    from PIL import Image, ImageOps
    image = Image.fromarray(grey, "L").resize((size, size), Image.BICUBIC)
    dark, light = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
    pixels = np.asarray(ImageOps.colorize(image, dark, light), dtype=np.float32)
    pixels = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * GRAIN
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_photo_folder(root, count, size, data_dir=None, seed=0):
    """``count`` JPEGs in ``root``/train/<class>/ (image j in class j % 10) and one per class in
    ``root``/val/<class>/; returns ``{count, size, quality, grain, mean_bytes}``."""
    import numpy as np
    from gluon_cnns.data.datasets import FASHION_MNIST_CLASSES
    images, labels = _fashion_test_images(data_dir)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    folders = [name.replace("/", "-") for name in FASHION_MNIST_CLASSES]  # "T-shirt/top"
    rng = np.random.default_rng(seed)
    written = 0
    for j in range(count + 10):
        label = j % 10
        split = "train" if j < count else "val"
        index = by_class[label][(j // 10) % len(by_class[label])]
        folder = os.path.join(root, split, folders[label])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "%05d.jpg" % j)
        _photo(images[index, :, :, 0], size, rng).save(path, quality=JPEG_QUALITY)
        written += os.path.getsize(path) if split == "train" else 0
    return {"count": count, "size": size, "quality": JPEG_QUALITY, "grain": GRAIN,
            "mean_bytes": written / count}


def pack_folder(folder, out):
    """Pack ``folder`` into ``out`` with ``scripts/pack.py``'s writer; GluonCNNsError if it
    fails."""
    from gluon_cnns.data.pack_writer import pack_folder as write_pack
    try:
        write_pack(folder, out)
    except GluonCNNsError as err:
        raise GluonCNNsError("--loader: packing %s failed (%s)" % (folder, err)) from None


# ---------------------------------------------------------------- one sample each

def loader_pass(batches):
    """Images/s of one pass over ``batches``, each batch only waited for."""
    start, images = time.perf_counter(), 0
    for X, _ in batches:
        X.wait_to_read()
        images += X.shape[0]
    return images / (time.perf_counter() - start)


def record_iter_threads(asked, cpus=None):
    """The decoding threads ImageRecordIter really runs: MXNet 1.9.1 caps ``preprocess_threads``
    at max(omp_get_num_procs() / 2 - 1, 1) (iter_image_recordio_2.cc), 1 on 2 CPUs."""
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    return min(asked, max(cpus // 2 - 1, 1))


def record_iter(rec, idx, opts):
    """MXNet's C++ loader on the pack: the same crop, flip, normalization and batches.

    Its ``random_resized_crop`` is ImageBatches' crop (area 8%-100%, aspect 3/4-4/3,
    scaled to the side); MXNet refuses it together with ``rand_crop``, which would
    only cut a fixed-size patch, without scaling.
    """
    import mxnet as mx
    side = opts.loader_side
    normalize = {"%s_%s" % (kind, c): v for kind, values in (("mean", MEAN_255),
                                                            ("std", STD_255))
                 for c, v in zip("rgb", values)}
    return mx.io.ImageRecordIter(
        path_imgrec=rec, path_imgidx=idx, data_shape=(CHANNELS, side, side),
        batch_size=opts.loader_batch_size, shuffle=True, seed=opts.seed,
        rand_mirror=True, random_resized_crop=True, min_random_area=0.08,
        max_random_area=1.0, min_aspect_ratio=3 / 4, max_aspect_ratio=4 / 3,
        preprocess_threads=opts.loader_record_threads, verbose=False, **normalize)


def record_pass(it):
    """Images/s of one pass of an ImageRecordIter (its reset, which starts the decoding,
    included)."""
    start, images = time.perf_counter(), 0
    it.reset()
    for batch in it:
        batch.data[0].wait_to_read()
        images += batch.data[0].shape[0] - batch.pad
    return images / (time.perf_counter() - start)


def train_seconds(net, trainer, loss, batches):
    """Seconds of training steps on ``batches`` (until the last update is computed)."""
    import mxnet as mx
    from mxnet import autograd
    start = time.perf_counter()
    for X, y in batches:
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(X.shape[0])
    mx.nd.waitall()
    return time.perf_counter() - start


# ---------------------------------------------------------------- the suite

def _loaders(data, ctx, opts):
    """``[(key, source, workers, ImageBatches)]`` of the training split, for each source and
    workers count (the default count always among them), and the default count."""
    from gluon_cnns.data.image_batches import ImageBatches

    def batches(split, workers=None):
        return ImageBatches(split, opts.loader_batch_size, opts.loader_side, CHANNELS,
                            training=True, ctx=ctx, workers=workers)
    default = batches(data["folder"].train).workers
    counts = sorted(set(opts.loader_workers) | {default})
    return [("%s_w%d" % (source, w), source, w, batches(data[source].train, w))
            for source in ("folder", "rec") for w in counts], default


def _trainer_setup(name, ctx, opts, steps):
    """The net (hybridized as scripts/train.py does), its trainer and loss, one random batch."""
    from mxnet import gluon
    from gluon_cnns.models import model_spec
    from .nets import fresh_net, hybridize, random_batch, recipe_trainer
    shape = (opts.loader_batch_size, CHANNELS, opts.loader_side, opts.loader_side)
    net = fresh_net(name, ctx, opts.seed)
    hybridize(net, static=True)
    trainer = recipe_trainer(net, model_spec(name).recipe, steps, lr=LR)
    return net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), random_batch(shape, ctx,
                                                                            opts.seed)


def _rotated(items, round_):
    """``items`` starting at the ``round_``-th: each round starts with another one."""
    k = round_ % len(items)
    return items[k:] + items[:k]


def _cores_used(fn, *args):
    """``fn(*args)`` and the cores this process kept busy meanwhile (its CPU seconds, every
    thread's, over the wall seconds): on a shared machine, whether the threads got cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, (time.process_time() - cpu) / (time.perf_counter() - wall)


def _rounds(loaders, rec_iter, train, opts, say):
    """The interleaved rounds: {key: [sample per round]}, {key: [cores used per round]} and
    the load averages at the start of each round and at the end."""
    keys = [key for key, _, _, _ in loaders] + ["record_iter", "memory_seconds",
                                                "loader_seconds"]
    samples, cores = {key: [] for key in keys}, {key: [] for key in keys}

    def sample(key, fn, *args):
        value, used = _cores_used(fn, *args)
        samples[key].append(value)
        cores[key].append(used)
    loads = []
    for round_ in range(opts.loader_rounds):
        loads.append(load_average())
        say("loader, round %d of %d" % (round_ + 1, opts.loader_rounds))
        for key, _, _, batches in _rotated(loaders, round_):
            sample(key, loader_pass, batches)
        sample("record_iter", record_pass, rec_iter)
        pair = [("memory_seconds", train["memory"]), ("loader_seconds", train["loader"])]
        for key, batches in (pair if round_ % 2 == 0 else pair[::-1]):
            sample(key, train_seconds, *train["net"], batches)
    loads.append(load_average())
    return samples, cores, loads


def _warm_up(loaders, rec_iter, train):
    """One untimed pass of everything: Pillow, oneDNN primitives, the page cache."""
    for _, _, _, batches in loaders[:1] + loaders[-1:]:
        loader_pass(batches.take(2 * batches.batch_size))
    record_pass(rec_iter)
    train_seconds(*train["net"], train["memory"][:2])
    train_seconds(*train["net"], train["loader"].take(train["loader"].batch_size))


def _paired(numerators, denominators):
    """Stats of the rounds' ratios: a round's two figures share that round's load, so their
    ratio is steadier than the ratio of medians taken from different rounds."""
    return summarize([n / d for n, d in zip(numerators, denominators)])


def _record(name, samples, cores, loaders, default, steps, opts):
    """The section's figures from the rounds' samples: images/s stats, ratios, verdict."""
    batch = opts.loader_batch_size
    training = [steps * batch / s for s in samples["memory_seconds"]]
    runs = [{"source": source, "workers": w, "default": w == default,
             "images_per_sec": summarize(samples[key]), "cores_used": summarize(cores[key]),
             "vs_training": _paired(samples[key], training)} for key, source, w, _ in loaders]
    folder = next(r for r in runs if r["source"] == "folder" and r["default"])
    fed = [steps * batch / s for s in samples["loader_seconds"]]
    slowdown = _paired(samples["loader_seconds"], samples["memory_seconds"])
    return {
        "runs": runs, "default_workers": default,
        "record_iter": {"preprocess_threads": opts.loader_record_threads,
                        "threads_used": record_iter_threads(opts.loader_record_threads),
                        "augment": "random_resized_crop (area 0.08-1, aspect 3/4-4/3), "
                                   "rand_mirror, mean/std",
                        "images_per_sec": summarize(samples["record_iter"]),
                        "cores_used": summarize(cores["record_iter"]),
                        "vs_training": _paired(samples["record_iter"], training)},
        "training": {"net": name, "steps": steps, "images_per_sec": summarize(training),
                     "cores_used": summarize(cores["memory_seconds"])},
        "end_to_end": {"steps": steps, "workers": default,
                       "memory_seconds": summarize(samples["memory_seconds"]),
                       "loader_seconds": summarize(samples["loader_seconds"]),
                       "loader_images_per_sec": summarize(fed),
                       "cores_used": summarize(cores["loader_seconds"]),
                       "vs_training": _paired(fed, training),
                       "slowdown": slowdown["median"], "slowdown_per_round": slowdown},
        "verdict": {"loader_images_per_sec": folder["images_per_sec"]["median"],
                    "training_images_per_sec": summarize(training)["median"],
                    "ratio": folder["vs_training"]["median"], "target": TARGET,
                    "met": folder["vs_training"]["median"] >= TARGET}}


def _threads_info():
    """MXNet's OpenMP threads and the variables behind them (gluon_cnns.threads)."""
    from gluon_cnns.threads import applied, available_cores, effective_threads
    return {"omp_threads": effective_threads(), "cores": available_cores(),
            "set_by_policy": applied(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT",
                                               "MXNET_OMP_MAX_THREADS", "OMP_WAIT_POLICY")
                    if k in os.environ}}


def bench_loader(name, ctx, opts, say=lambda *_: None):
    """The loader section of the report for training ``name`` (see the module's doc)."""
    from gluon_cnns.data.images import scan_images
    with tempfile.TemporaryDirectory(prefix="gluon-cnns-loader-") as tmp:
        folder, packed = os.path.join(tmp, "photos"), os.path.join(tmp, "pack")
        say("loader: writing %d JPEGs of %dx%d" % (opts.loader_images, opts.loader_photo_size,
                                                   opts.loader_photo_size))
        photos = write_photo_folder(folder, opts.loader_images, opts.loader_photo_size,
                                    opts.data_dir, opts.seed)
        say("loader: packing them with scripts/pack.py")
        pack_folder(folder, packed)
        data = {"folder": scan_images("folder", folder), "rec": scan_images("rec", packed)}
        loaders, default = _loaders(data, ctx, opts)
        rec_iter = record_iter(data["rec"].train.rec, data["rec"].train.idx, opts)
        # No more steps than the folder has full batches.
        steps = min(opts.loader_steps, len(data["folder"].train) // opts.loader_batch_size)
        net, trainer, loss, (X, y) = _trainer_setup(name, ctx, opts, steps)
        feed = next(batches for key, _, w, batches in loaders if key == "folder_w%d" % default)
        train = {"net": (net, trainer, loss), "memory": [(X, y)] * steps,
                 "loader": feed.take(steps * opts.loader_batch_size)}
        _warm_up(loaders, rec_iter, train)
        samples, cores, loads = _rounds(loaders, rec_iter, train, opts, say)
        del rec_iter  # its C++ threads hold the pack open
    record = _record(name, samples, cores, loaders, default, steps, opts)
    record.update(photos=photos, train_images=len(data["folder"].train), side=opts.loader_side,
                  channels=CHANNELS, batch_size=opts.loader_batch_size, augment="crop-flip",
                  rounds=opts.loader_rounds, loads=loads, threads=_threads_info(),
                  ctx=str(ctx))
    return record


def loader_targets(section):
    """Target row: the folder loader's images/s over the training step's."""
    if not section:
        return []
    v = section["verdict"]
    return [{"what": "own-image loader vs %s training step" % section["training"]["net"],
             "target": v["target"], "measured": v["ratio"], "met": v["met"]}]

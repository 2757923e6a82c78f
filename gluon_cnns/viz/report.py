"""One self-contained HTML page per training run: ``write_report(RUN_DIR)`` writes
``RUN_DIR/report.html``.

It shows the curves of log.jsonl, the net's accuracy per class and its confusion
matrix on the run's test images (Fashion-MNIST, MNIST and CIFAR-10 runs: the
test set; runs on your own images: the val images of the image folder), its
most confident mistakes under their Grad-CAM, and how the run was made: config,
machine, threads and timings. The net and its class names are
:func:`gluon_cnns.load_predictor`'s, so every image is prepared exactly as the
run's evaluation prepared it. Images are embedded as base64 PNG and the page
has no script: it opens anywhere, offline, as one file. It is written atomically.
"""
import base64
import html
import io
import json
import os
import platform

import numpy as np

from ..artifacts.run_files import REPORT
from ..errors import GluonCNNsError
from ..io import atomic_write
from .gradcam import grad_cam
from .maps import _pyplot, overlay, to_display

WORST = 8  # mistakes shown

__all__ = ["REPORT", "build_report", "evaluation_set", "write_report"]


# ---------------------------------------------------------------- the run and its images

def _run_records(run_dir):
    """``(config, log records)`` of a run folder; one-line GluonCNNsError without a log."""
    from ..artifacts.rundir import LOG, RunDir
    run = RunDir(run_dir)
    if not os.path.isdir(run_dir):
        raise GluonCNNsError("%s: no such folder; pass a training run's --save-dir" % run_dir)
    if not os.path.exists(run.file(LOG)):
        raise GluonCNNsError("%s has no %s: not a training run's --save-dir, or no epoch has "
                             "finished yet" % (run_dir, LOG))
    records = run.read_log()
    if not records:
        raise GluonCNNsError("%s is damaged or empty; --resume the run to rewrite it"
                             % run.file(LOG))
    return run.read_config(), records


def evaluation_set(predictor, config, limit=None):
    """The run's test images as ``(batch NDArray, labels numpy, source names)``: the test
    set of a built-in dataset (the first ``limit_test`` as the run tested), or the val
    images of an image folder; at most ``limit``."""
    from ..data import find_data
    from ..data.datasets import dataset_info
    dataset = predictor.meta["dataset"]
    cap = min(n for n in (limit, config.get("limit_test"), 1 << 62) if n)
    if dataset == "folder":
        from ..data.image_folder import scan_folder
        val = scan_folder(config["data_dir"], config.get("val_split")).val
        paths, labels = val.sources[:cap], np.asarray(val.labels[:cap])
        return predictor.batch([predictor.read(p) for p in paths]), labels, list(paths)
    if dataset == "rec":
        raise GluonCNNsError("the report reads the val images of an image folder run; for a "
                             "RecordIO pack run, train on the folder it was packed from")
    info = dataset_info(dataset)
    files = find_data(dataset, config.get("data_dir"))
    if info.layout == "idx":
        from ..data.readers import read_idx_pair
        images, labels = read_idx_pair(files["t10k-images-idx3-ubyte"],
                                       files["t10k-labels-idx1-ubyte"], info.classes)
    else:
        from ..data.readers import read_cifar10
        images, labels = read_cifar10(files["test"], binary=files["binary"])
    images, labels = images[:cap], np.asarray(labels[:cap]).astype(int)
    names = ["%s test image %d" % (info.title, i) for i in range(len(labels))]
    return predictor.batch(list(images)), labels, names


# ---------------------------------------------------------------- pictures

def _png(fig):
    """A matplotlib figure as a ``data:`` URI of its PNG (the figure is closed)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _curves(records):
    """Loss, and train and test accuracy, per epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot(epochs, [r["loss"] for r in records], "o-")
    left.set(xlabel="epoch", ylabel="train loss", title="loss")
    right.plot(epochs, [r["train_acc"] for r in records], "o-", label="train")
    right.plot(epochs, [r["test_acc"] for r in records], "s-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    right.legend()
    from matplotlib.ticker import MaxNLocator
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    return _png(fig)


def _confusion_figure(matrix, classes):
    """The confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    plt = _pyplot()
    size = 2.5 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    limit = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > limit else "black")
    return _png(fig)


def _mistakes_figure(predictor, batch, labels, probs, worst):
    """The ``worst`` most confident mistakes: each image, and its Grad-CAM for the class the
    net chose; None when there is no mistake."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return None, []
    chosen = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:worst]
    import mxnet as mx
    batch = mx.nd.take(batch, mx.nd.array(chosen, ctx=batch.context))
    cams = grad_cam(predictor.block, batch)
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(chosen), figsize=(1.6 * len(chosen) + 0.3, 3.6),
                             squeeze=False)
    name = lambda i: predictor.classes[i] if i < len(predictor.classes) else str(i)  # noqa: E731
    for column, (i, cam) in enumerate(zip(chosen, cams)):
        image = to_display(batch[column].asnumpy())
        axes[0, column].imshow(image, cmap="gray")
        axes[0, column].set_title("true: %s" % name(labels[i]), fontsize=7)
        axes[1, column].imshow(overlay(image, cam))
        # An all-zero map: no unit of the layer speaks for the class (eq. 2's ReLU).
        axes[1, column].set_title("said: %s %.0f%%%s" % (
            name(predicted[i]), 100 * probs[i, predicted[i]],
            "" if cam.max() > 0 else "\n(no positive evidence)"), fontsize=7)
        for ax in axes[:, column]:
            ax.axis("off")
    return _png(fig), chosen


# ---------------------------------------------------------------- the page

def _table(rows, header=None):
    """An HTML table of ``rows`` (escaped cells)."""
    cells = lambda row, tag: "".join("<%s>%s</%s>" % (tag, html.escape(str(c)), tag)  # noqa: E731
                                     for c in row)
    head = "<tr>%s</tr>" % cells(header, "th") if header else ""
    return "<table>%s%s</table>" % (head, "".join("<tr>%s</tr>" % cells(r, "td")
                                                  for r in rows))


def _per_class(labels, predicted, classes):
    """Rows (class, images, correct, accuracy) and the confusion matrix."""
    k = max(len(classes), int(labels.max()) + 1, int(predicted.max()) + 1)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    rows = []
    for c in range(k):
        total = matrix[c].sum()
        rows.append((classes[c] if c < len(classes) else c, total, matrix[c, c],
                     "%.1f%%" % (100.0 * matrix[c, c] / total) if total else "-"))
    return rows, matrix


def _how_it_ran(config, records):
    """Rows about the machine, threads and timings of the run."""
    seconds = [r.get("time", 0) for r in records]
    rates = [r["images_per_sec"] for r in records if r.get("images_per_sec")]
    threads = sorted({t for r in records for t in (r.get("epoch_threads") or [r.get("threads")])
                      if t is not None})
    return [("machine", config.get("machine") or platform.processor() or platform.machine()),
            ("devices", ", ".join(config.get("contexts") or ["cpu(0)"])),
            ("threads", ", ".join(map(str, threads)) or "-"),
            ("epochs logged", len(records)),
            ("training time", "%.1f s (%.1f s per epoch)" % (sum(seconds),
                                                             sum(seconds) / len(seconds))),
            ("images/s", "%.0f (mean of the epochs)" % np.mean(rates) if rates else "-"),
            ("peak memory", "%.0f MiB" % max(r.get("peak_rss_mib") or 0 for r in records)),
            ("last epoch", records[-1].get("date", "-"))]


_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
          "padding:2px 8px;text-align:left;font-size:0.9em}th{background:#eee}"
          "img{max-width:100%}h2{border-bottom:1px solid #ddd}")


def build_report(run_dir, limit=None, worst=WORST):
    """The report page of ``run_dir`` as one HTML string (see the module docstring)."""
    from ..inference.predict import load_predictor
    config, records = _run_records(run_dir)
    predictor = load_predictor(run_dir)
    batch, labels, _ = evaluation_set(predictor, config, limit)
    probs = predictor.probabilities(batch)
    predicted = probs.argmax(axis=1)
    rows, matrix = _per_class(labels, predicted, predictor.classes)
    mistakes, _ = _mistakes_figure(predictor, batch, labels, probs, worst)
    accuracy = float((predicted == labels).mean())
    dataset = predictor.meta["dataset"]
    title = "%s on %s" % (config["net"], "%s %s" % (dataset, config.get("data_dir"))
                          if dataset in ("folder", "rec") else dataset)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title><style>%s"
             "</style></head><body>" % (html.escape(title), _STYLE),
             "<h1>%s</h1><p>%s &mdash; accuracy %.2f%% on %d test images; best logged test "
             "accuracy %.2f%%.</p>" % (html.escape(title), html.escape(os.path.abspath(run_dir)),
                                       100 * accuracy, len(labels),
                                       100 * max(r["test_acc"] for r in records)),
             "<h2>Curves</h2><img alt='curves' src='%s'>" % _curves(records),
             "<h2>Accuracy per class</h2>",
             _table(rows, ("class", "images", "correct", "accuracy")),
             "<h2>Confusion matrix</h2><img alt='confusion matrix' src='%s'>"
             % _confusion_figure(matrix, predictor.classes),
             "<h2>Most confident mistakes, with Grad-CAM of the class chosen</h2>",
             "<img alt='mistakes' src='%s'>" % mistakes if mistakes else "<p>No mistakes.</p>",
             "<h2>How it ran</h2>", _table(_how_it_ran(config, records)),
             "<h2>Config</h2>", _table(sorted((k, json.dumps(v)) for k, v in config.items()),
                                       ("setting", "value")),
             "</body></html>"]
    return "\n".join(parts)


def write_report(run_dir, limit=None, worst=WORST):
    """Write ``run_dir/report.html`` atomically; returns its path."""
    page = build_report(run_dir, limit=limit, worst=worst)
    path = os.path.join(run_dir, REPORT)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
    atomic_write(path, write)
    return path

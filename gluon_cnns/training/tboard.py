"""TensorBoard event files of a training run, written with tensorboardX.

    gluon-cnns-train --save-dir runs/lenet_bn          # events in runs/lenet_bn/tensorboard/
    tensorboard --logdir runs/lenet_bn/tensorboard --host 127.0.0.1

Every curve has one x axis, the batches trained so far ("step"): the per-epoch
figures (``epoch/*``) sit at the step that ends their epoch, the running loss
(``batch/running_loss``) every ``every`` batches. One axis for all tags is what
makes a resumed run continue the same curves: the resumed process opens a new
events file that starts with TensorBoard's restart marker (a ``SessionLog.START``
at the step after the checkpoint, tensorboardX's ``purge_step``), and
TensorBoard's reader drops every event at or after that step from the files
before it -- what the stopped process wrote past its last checkpoint -- so
each step is shown once. Events are flushed as soon as they are written, so
nothing before a checkpoint can be lost by a kill after it.

Only reads: the board looks at the net, its gradients and the epoch's sums,
and changes none of them (a run's weights are the same with and without it).
"""
import contextlib
import time

import numpy as np

from .engine import batches, total

# How many test images the misclassified grid is chosen from, and shows at most.
_POOL = 128
_GRID = 16
_TILE = 72  # pixels per image in the grid


@contextlib.contextmanager
def open_board(run, train_iter, test_iter):
    """The :class:`Board` of ``run`` (None when it has no ``tensorboard`` folder), closed
    at the end. It continues after the position of the checkpoint resumed from; a fresh
    run starts the folder's curves over (a run killed before its first checkpoint leaves
    events that must not show beside the new ones)."""
    if not run.tensorboard:
        yield None
        return
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        if run.warn:
            run.warn("warning: no TensorBoard events: tensorboardX is not installed (pip install "
                     "-r requirements.txt); pass --no-tensorboard to silence this")
        yield None
        return
    from ..data.datasets import DATASETS, dataset_info
    names = run.settings.get("class_names") or (
        dataset_info(run.settings["dataset"]).classes if run.settings["dataset"] in DATASETS
        else ())
    per_epoch = len(train_iter)
    ckpt = run.ckpt or {}
    position = ckpt.get("epoch", 0) * per_epoch + (ckpt.get("progress") or {}).get("batch", 0)
    board = Board(run.tensorboard, run.net, run.ctxs[0], per_epoch, list(names),
                  every=run.tensorboard_every,
                  purge_step=position + 1)
    try:
        board.add_graph(run.sample_shape, warn=run.warn)
        board.keep_test_images(test_iter)
        yield board
    finally:
        board.close()


def chain(*callbacks):
    """One callback calling each of ``callbacks`` that is not None, in order (None if none)."""
    callbacks = [c for c in callbacks if c is not None]
    if not callbacks:
        return None

    def call(value):
        for callback in callbacks:
            callback(value)
    return call


class Board:
    """Writes the curves, histograms, graph and mistakes of one training process."""

    def __init__(self, logdir, net, ctx, per_epoch, class_names, every=50, purge_step=None):
        from tensorboardX import SummaryWriter
        # A file of its own per process, named after the one before it even within the
        # same second: TensorBoard reads a folder's files in the order of their names.
        self.writer = SummaryWriter(logdir, purge_step=purge_step, flush_secs=10 ** 6,
                                    filename_suffix=".%020d" % time.time_ns())
        self.net, self.ctx, self.per_epoch = net, ctx, per_epoch
        self.class_names, self.every = class_names, every
        self.test_images = None

    def step(self, epoch, batch):
        """The x of batch ``batch`` (1-based) of epoch ``epoch``: batches trained so far."""
        return (epoch - 1) * self.per_epoch + batch

    def on_batch(self, progress):
        """Every ``every`` batches: the epoch's mean loss so far (one read of the device)."""
        if progress.batch % self.every == 0 and progress.examples:
            self.writer.add_scalar("batch/running_loss",
                                   total(progress.loss_sum) / progress.examples,
                                   self.step(progress.epoch, progress.batch))
            self.writer.flush()

    def __call__(self, record):
        """After an epoch: its figures, the histograms and the misclassified grid."""
        step = self.step(record["epoch"] + 1, 0)
        for tag in ("loss", "train_acc", "test_acc", "lr", "time", "images_per_sec"):
            self.writer.add_scalar("epoch/" + tag, record[tag], step)
        self.writer.add_scalar("epoch/epoch", record["epoch"], step)
        self._histograms(step)
        self._mistakes(step)
        self.writer.flush()

    def _histograms(self, step):
        """Each parameter's values, and the L2 norms of the gradients of the last batch.

        Tagged by the parameter's place in the net, as its .params file names it
        (``0.weight``): the prefix of ``collect_params`` depends on how many nets the
        process made before."""
        norms = []
        # pylint: disable=protected-access
        for name, param in self.net._collect_params_with_prefix().items():
            data = param.list_data()[0].asnumpy()
            _histogram(self.writer, "weights/" + name, data, step)
            if param.grad_req != "null":
                grad = param.list_grad()[0].asnumpy().astype(np.float64)
                norm = float(np.sqrt((grad ** 2).sum()))
                norms.append(norm)
                self.writer.add_scalar("grad_norm/" + name, norm, step)
        _histogram(self.writer, "grad_norm/all_parameters", np.array(norms), step)

    def keep_test_images(self, test_iter):
        """The first test batch (at most 128 images), for the grid of mistakes."""
        for X, y in batches(test_iter, "test_iter"):
            self.test_images = (X[:_POOL].copyto(self.ctx), y[:_POOL].asnumpy().astype(int))
            break

    def _mistakes(self, step):
        """A grid of up to 16 misclassified test images, titled with the predicted class
        over the true one."""
        if self.test_images is None:
            return
        X, y = self.test_images
        predicted = self.net(X).argmax(axis=1).asnumpy().astype(int)
        wrong = np.flatnonzero(predicted != y)[:_GRID]
        images = X.asnumpy()[wrong]
        titles = ["%s\n(%s)" % (self._name(predicted[i]), self._name(y[i])) for i in wrong]
        grid = mistakes_grid(images, titles)
        self.writer.add_image("test/misclassified", grid, step, dataformats="HWC")

    def _name(self, index):
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)

    def add_graph(self, sample_shape, warn=None):
        """The net's symbolic graph, for TensorBoard's Graphs tab."""
        import mxnet as mx
        from tensorboardX.proto import event_pb2
        try:
            symbol = self.net(mx.sym.var("data"))
        except Exception as err:  # a net that cannot be traced: the other tabs still work
            if warn:
                warn("warning: no graph in TensorBoard: %s" % str(err).splitlines()[0])
            return
        graph = symbol_graph(symbol.tojson(), sample_shape)
        self.writer._get_file_writer().add_event(  # pylint: disable=protected-access
            event_pb2.Event(graph_def=graph.SerializeToString()))
        self.writer.flush()

    def close(self):
        self.writer.close()


def _histogram(writer, tag, values, step):
    """A histogram of the finite ``values``, none where there are none: a diverged run's
    nan weights would stop tensorboardX ("The histogram is empty")."""
    finite = values[np.isfinite(values)]
    if finite.size:
        writer.add_histogram(tag, finite, step)


def symbol_graph(symbol_json, sample_shape):
    """A TensorBoard GraphDef of an MXNet symbol's JSON: one node per operator and
    variable, named ``block/operator`` so TensorBoard folds each block."""
    import json
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    nodes = json.loads(symbol_json)["nodes"]

    def scoped(name):
        block, _, rest = name.partition("_")
        return block + "/" + rest if rest else name
    graph = GraphDef()
    for node in nodes:
        attrs = {key: AttrValue(s=str(value).encode()) for key, value in
                 sorted((node.get("attrs") or {}).items())}
        if node["name"] == "data":
            attrs["shape"] = AttrValue(s=str(tuple(sample_shape)).encode())
        graph.node.append(NodeDef(name=scoped(node["name"]),
                                  op="Parameter" if node["op"] == "null" else node["op"],
                                  input=[scoped(nodes[i[0]]["name"]) for i in node["inputs"]],
                                  attr=attrs))
    return graph


def mistakes_grid(images, titles, columns=4):
    """An HWC uint8 grid of ``images`` (N, C, H, W; any range, each scaled to 0..255),
    each with its title below; one blank tile when there is none."""
    from PIL import Image, ImageDraw
    rows = max(1, -(-len(images) // columns))
    tile_h = _TILE + 24
    canvas = Image.new("RGB", (columns * _TILE, rows * tile_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, title) in enumerate(zip(images, titles)):
        low, high = float(image.min()), float(image.max())
        pixels = ((image - low) / (high - low or 1.0) * 255).astype(np.uint8)
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels[:3].transpose(1, 2, 0)
        tile = Image.fromarray(pixels).convert("RGB").resize((_TILE - 4, _TILE - 4))
        x, y = (i % columns) * _TILE, (i // columns) * tile_h
        canvas.paste(tile, (x + 2, y + 2))
        draw.multiline_text((x + 2, y + _TILE - 2), title, fill="black", spacing=1)
    return np.asarray(canvas)


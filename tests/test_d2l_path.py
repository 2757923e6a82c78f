"""`scripts/train.py --net googlenet` against the d2l MXNet code path it reproduces.

The book's figure comes from d2l-zh 1.x, section 5.9 (GoogLeNet): the net written as
``nn.Sequential`` blocks b1..b5, ``d2l.load_data_fashion_mnist(128, resize=96)`` (a
``DataLoader`` over ``Compose([Resize(96), ToTensor()])``) and ``d2l.train_ch5`` (per batch
``loss(net(X), y).sum()``, ``backward``, ``trainer.step(batch_size)``), SGD lr 0.1, Xavier.
That path is written here in plain, imperative Gluon, independent of the package. Started
from the weights the package's run initialized, on the images of its shuffled pass, it must
end at the package's parameters: whatever separates a run from the book's figure is then
not in this code.
"""
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.gluon.data.vision import transforms

from gluon_cnns import data
from gluon_cnns.cli import train as train_cli
from gluon_cnns.training.fit import fit
from test_data import REAL_FASHION_DIR, real_fashion_dir  # noqa: F401  (fixture)


class D2LInception(nn.Block):
    """d2l's Inception block, imperative: four paths, concatenated on channels."""

    def __init__(self, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation="relu")
        self.p2_1 = nn.Conv2D(c2[0], kernel_size=1, activation="relu")
        self.p2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation="relu")
        self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation="relu")
        self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation="relu")
        self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
        self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation="relu")

    def forward(self, x):
        return mx.nd.concat(self.p1_1(x), self.p2_2(self.p2_1(x)), self.p3_2(self.p3_1(x)),
                            self.p4_2(self.p4_1(x)), dim=1)


def d2l_googlenet():
    """d2l-zh 1.x section 5.9's net: b1..b5 and Dense(10)."""
    def block(*layers):
        b = nn.Sequential()
        b.add(*layers)
        return b
    pool = lambda: nn.MaxPool2D(pool_size=3, strides=2, padding=1)  # noqa: E731
    net = nn.Sequential()
    net.add(block(nn.Conv2D(64, kernel_size=7, strides=2, padding=3, activation="relu"), pool()),
            block(nn.Conv2D(64, kernel_size=1, activation="relu"),
                  nn.Conv2D(192, kernel_size=3, padding=1, activation="relu"), pool()),
            block(D2LInception(64, (96, 128), (16, 32), 32),
                  D2LInception(128, (128, 192), (32, 96), 64), pool()),
            block(D2LInception(192, (96, 208), (16, 48), 64),
                  D2LInception(160, (112, 224), (24, 64), 64),
                  D2LInception(128, (128, 256), (24, 64), 64),
                  D2LInception(112, (144, 288), (32, 64), 64),
                  D2LInception(256, (160, 320), (32, 128), 128), pool()),
            block(D2LInception(256, (160, 320), (32, 128), 128),
                  D2LInception(384, (192, 384), (48, 128), 128), nn.GlobalAvgPool2D()),
            nn.Dense(10))
    return net


def run_package(limit, seed):
    """The package's run (train.py's own path, 1 epoch on ``limit`` images): its initial
    weights, its pass's order and its final net."""
    args = train_cli.build_parser().parse_args(
        ["--net", "googlenet", "--epochs", "1", "--limit-train", str(limit), "--limit-test",
         "128", "--seed", str(seed), "--quiet"])
    run = train_cli.prepare(args)
    seen = {}

    def on_ready(train_iter, test_iter):
        run.net(mx.nd.zeros(run.sample_shape))           # runs the deferred Xavier draws
        seen["initial"] = [p.data().copy() for p in run.net.collect_params().values()]
        plan = train_iter._plan

        def recording_plan():
            order, first = plan()
            seen["order"] = np.array(order)
            return order, first
        train_iter._plan = recording_plan
    fit(run, on_ready=on_ready)
    return seen["initial"], seen["order"], run.net


def run_d2l(initial, order, batch_size=128, lr=0.1, short_step=False):
    """d2l's data pipeline and train_ch5 step over the images in ``order``; ``short_step``
    steps the short last batch with its own size instead (not what d2l does)."""
    images = data.read_idx(REAL_FASHION_DIR + "/train-images-idx3-ubyte.gz")[order]
    labels = data.read_idx(REAL_FASHION_DIR + "/train-labels-idx1-ubyte.gz")[order]
    dataset = gluon.data.ArrayDataset(mx.nd.array(images[:, :, :, None], dtype=np.uint8),
                                      labels.astype(np.float32))
    pipeline = transforms.Compose([transforms.Resize(96), transforms.ToTensor()])
    loader = gluon.data.DataLoader(dataset.transform_first(pipeline), batch_size)
    net = d2l_googlenet()
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 96, 96)))                     # infer the deferred shapes
    params = list(net.collect_params().values())
    assert [p.shape for p in params] == [a.shape for a in initial]
    for p, value in zip(params, initial):
        p.set_data(value)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for X, y in loader:
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        trainer.step(len(X) if short_step else batch_size)
    return [p.data() for p in params]


def _largest_change(after, before):
    return max(float((a - b).abs().max().asscalar()) for a, b in zip(after, before))


def test_googlenet_run_ends_where_d2ls_code_path_ends(real_fashion_dir):  # noqa: F811
    # 296 images: two full batches of 128 and a short one of 40, stepped as d2l steps it.
    initial, order, net = run_package(limit=296, seed=7)
    assert sorted(order) == list(range(296))
    ours = [p.data() for p in net.collect_params().values()]
    moved = _largest_change(ours, initial)
    assert moved > 1e-3                                  # three updates really happened
    # Hybridized vs imperative kernels sum in other orders: float noise, well under 1%.
    apart = _largest_change(ours, run_d2l(initial, order))
    assert apart < 0.01 * moved, (apart, moved)
    # The check can fail: stepping the short batch with its own size is a real difference.
    other = _largest_change(ours, run_d2l(initial, order, short_step=True))
    assert other > 0.05 * moved, (other, moved)

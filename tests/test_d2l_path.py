"""`scripts/train.py --net NAME` against the d2l MXNet code path it reproduces.

The book's figures come from d2l-zh 1.x, chapter 5: the net written as ``nn.Sequential``
blocks (section 5.6 AlexNet, 5.7 VGG with ``ratio = 4``, 5.9 GoogLeNet),
``d2l.load_data_fashion_mnist(128, resize=...)`` (a ``DataLoader`` over
``Compose([Resize(...), ToTensor()])``) and ``d2l.train_ch5`` (per batch
``loss(net(X), y).sum()``, ``backward``, ``trainer.step(batch_size)``), SGD, Xavier.
That path is written here in plain, imperative Gluon, independent of the package. Started
from the weights the package's run initialized, on the images of its shuffled pass, it must
end at the package's parameters: whatever separates a run from the book's figure is then
not in this code. For the nets with Dropout, the d2l loop reseeds MXNet's generator before
each batch as the package's run does, so both draw the same masks.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.gluon.data.vision import transforms

from gluon_cnns import data
from gluon_cnns.cli import train as train_cli
from gluon_cnns.training.engine import _draws_random_numbers, position_seed
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


def d2l_alexnet():
    """d2l-zh 1.x section 5.6's net."""
    net = nn.Sequential()
    net.add(nn.Conv2D(96, kernel_size=11, strides=4, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(256, kernel_size=5, padding=2, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(10))
    return net


def d2l_vgg11_small():
    """d2l-zh 1.x section 5.7's net: VGG-11's conv_arch with the channels divided by 4."""
    net = nn.Sequential()
    for num_convs, channels in ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)):
        block = nn.Sequential()
        for _ in range(num_convs):
            block.add(nn.Conv2D(channels // 4, kernel_size=3, padding=1, activation="relu"))
        block.add(nn.MaxPool2D(pool_size=2, strides=2))
        net.add(block)
    net.add(nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
            nn.Dense(10))
    return net


# name: (d2l's net, resize, lr, images: full batches of 128 and a short one, stepped as
# d2l steps it). Fewer images at 224x224, where a step costs 10x one at 96x96.
NETS = {"googlenet": (d2l_googlenet, 96, 0.1, 296), "alexnet": (d2l_alexnet, 224, 0.01, 168),
        "vgg11_small": (d2l_vgg11_small, 224, 0.05, 168)}


def run_package(name, limit, seed):
    """The package's run (train.py's own path, 1 epoch on ``limit`` images): its initial
    weights, its pass's order and its final net."""
    args = train_cli.build_parser().parse_args(
        ["--net", name, "--epochs", "1", "--limit-train", str(limit), "--limit-test",
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


def run_d2l(name, initial, order, seed, batch_size=128, short_step=False):
    """d2l's data pipeline and train_ch5 step over the images in ``order``; ``short_step``
    steps the short last batch with its own size instead (not what d2l does)."""
    build, resize, lr, _ = NETS[name]
    images = data.read_idx(REAL_FASHION_DIR + "/train-images-idx3-ubyte.gz")[order]
    labels = data.read_idx(REAL_FASHION_DIR + "/train-labels-idx1-ubyte.gz")[order]
    dataset = gluon.data.ArrayDataset(mx.nd.array(images[:, :, :, None], dtype=np.uint8),
                                      labels.astype(np.float32))
    pipeline = transforms.Compose([transforms.Resize(resize), transforms.ToTensor()])
    loader = gluon.data.DataLoader(dataset.transform_first(pipeline), batch_size)
    net = build()
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, resize, resize)))  # infer the deferred shapes
    params = list(net.collect_params().values())
    assert [p.shape for p in params] == [a.shape for a in initial]
    for p, value in zip(params, initial):
        p.set_data(value)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for batch, (X, y) in enumerate(loader, 1):
        mx.random.seed(position_seed(seed, 1, batch))
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        trainer.step(len(X) if short_step else batch_size)
    return [p.data() for p in params]


def _largest_change(after, before):
    return max(float((a - b).abs().max().asscalar()) for a, b in zip(after, before))


# The negative controls show that the comparison can fail. Its tolerance is the same for
# every net, so one net with Dropout carries them.
CONTROL_NET = "vgg11_small"


@pytest.mark.parametrize("name", sorted(NETS))
def test_a_run_ends_where_d2ls_code_path_ends(name, real_fashion_dir):  # noqa: F811
    limit = NETS[name][3]
    initial, order, net = run_package(name, limit=limit, seed=7)
    assert sorted(order) == list(range(limit))
    ours = [p.data() for p in net.collect_params().values()]
    moved = _largest_change(ours, initial)
    assert moved > 1e-4                                  # the updates really happened
    # Hybridized vs imperative kernels sum in other orders: float noise, well under 1%.
    apart = _largest_change(ours, run_d2l(name, initial, order, seed=7))
    assert apart < 0.01 * moved, (apart, moved)
    if name == CONTROL_NET:
        # Stepping the short batch with its own size is a real difference.
        other = _largest_change(ours, run_d2l(name, initial, order, seed=7, short_step=True))
        assert other > 0.05 * moved, (other, moved)
        # Other Dropout masks are one too: the same masks are what make the paths agree.
        assert _draws_random_numbers(net)
        masks = _largest_change(ours, run_d2l(name, initial, order, seed=8))
        assert masks > 0.05 * moved, (masks, moved)

#!/usr/bin/env python
"""What the predictor's fused graph costs and gains: a batch shape fused at its first
forward, when FUSE_SECONDS of plain forwards pay for it (the default), and never
(``fuse=False``).

    OMP_NUM_THREADS=1 python tools/predictor_timing.py --rounds 5

Per net (random weights, exported, loaded with ``load_predictor``): the time to the first
prediction -- loading the export and ``probabilities`` of N prepared images (an array
batch: decoding image files would add the same time to every side) -- and the images/s of
``probabilities`` on a batch of 2048 after one warm-up call. The sides alternate within
each round (then in reverse), in one process; a first round warms MXNet up and is not
counted. Prints medians and their ratios to ``fuse=False``.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NETS = {"lenet_bn": (1, 28, 28), "resnet20_cifar": (3, 32, 32)}
SIZES = (1, 64, 256, 512, 1024)
LARGE = 2048


def export_random(name, shape, folder):
    """Export ``name`` with random weights and BatchNorm statistics away from (0, 1)."""
    import mxnet as mx
    import gluon_cnns
    from gluon_cnns.inference.export import export_model
    net = gluon_cnns.get_model(name, classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1,) + shape))
    for key, param in net.collect_params().items():
        if key.endswith("running_mean"):
            param.set_data(mx.nd.random.normal(0, 0.1, shape=param.shape))
        elif key.endswith("running_var"):
            param.set_data(mx.nd.random.uniform(0.5, 1.5, shape=param.shape))
    prefix = os.path.join(folder, name)
    export_model(net, prefix, shape, formats=("symbol",), net_name=name)
    return prefix


def first_prediction(prefix, side, X):
    """Seconds from load_predictor to the probabilities of ``X``, and the predictor."""
    from gluon_cnns.inference import predict
    predict.FUSE_SECONDS = 0.0 if side == "fuse_first" else DEFAULT_SECONDS
    start = time.perf_counter()
    predictor = predict.load_predictor(prefix, fuse=side != "plain")
    predictor.probabilities(X)
    return time.perf_counter() - start, predictor


def throughput(predictor, X, repeat=3):
    predictor.probabilities(X)  # the warm-up call
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        predictor.probabilities(X)
        times.append(time.perf_counter() - start)
    return X.shape[0] / statistics.median(times)


def measure(name, shape, prefix, rounds, sides):
    import numpy as np
    rng = np.random.RandomState(0)
    firsts = {(n, s): [] for n in SIZES for s in sides}
    speeds = {s: [] for s in sides}
    large = rng.uniform(size=(LARGE,) + shape).astype("float32")
    for round_ in range(rounds + 1):
        order = sides if round_ % 2 else sides[::-1]
        for n in SIZES:
            X = rng.uniform(size=(n,) + shape).astype("float32")
            for side in order:
                seconds, _ = first_prediction(prefix, side, X)
                if round_:
                    firsts[(n, side)].append(seconds)
        for side in order:
            _, predictor = first_prediction(prefix, side, large[:1])
            speed = throughput(predictor, large)
            if round_:
                speeds[side].append(speed)
    print(name)
    for n in SIZES:
        med = {s: statistics.median(firsts[(n, s)]) for s in sides}
        print("  first prediction of %4d: %s; / plain: %s" % (n, ", ".join(
            "%s %.1f ms" % (s, 1e3 * med[s]) for s in sides), ", ".join(
            "%s %.2f" % (s, med[s] / med["plain"]) for s in sides if s != "plain")))
    med = {s: statistics.median(speeds[s]) for s in sides}
    print("  %d images after a warm-up call: %s; / plain: %s" % (LARGE, ", ".join(
        "%s %.0f img/s" % (s, med[s]) for s in sides), ", ".join(
        "%s %.2f" % (s, med[s] / med["plain"]) for s in sides if s != "plain")))


def main(argv=None):
    global DEFAULT_SECONDS  # pylint: disable=global-statement
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--net", choices=sorted(NETS), action="append")
    args = parser.parse_args(argv)
    from gluon_cnns.inference import predict
    DEFAULT_SECONDS = predict.FUSE_SECONDS
    print("OMP_NUM_THREADS=%s, FUSE_SECONDS=%g, %d rounds" % (
        os.environ.get("OMP_NUM_THREADS", "unset"), DEFAULT_SECONDS, args.rounds))
    with tempfile.TemporaryDirectory() as folder:
        for name in args.net or sorted(NETS):
            prefix = export_random(name, NETS[name], folder)
            measure(name, NETS[name], prefix, args.rounds, ["plain", "fuse_first", "default"])
    return 0


DEFAULT_SECONDS = None

if __name__ == "__main__":
    sys.exit(main())

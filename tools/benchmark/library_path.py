"""A plain user script's training speed: MXNet imported before gluon_cnns, a Gluon Trainer.

    python tools/benchmark/library_path.py mxnet resnet20_cifar 128 20
    GLUON_CNNS_NO_THREADS=1 python tools/benchmark/library_path.py mxnet resnet20_cifar 128 20
    python tools/benchmark/library_path.py configure resnet20_cifar 128 20

``mxnet``: ``import mxnet`` first, as a notebook does; ``configure``: the documented
fix, ``gluon_cnns.threads.configure(net)`` before ``import mxnet``. Then
``get_model``, ``hybridize(static_alloc=True)``, SGD with momentum 0.9 on one random
batch: 3 warm-up steps, then ``steps`` timed ones. Prints the OpenMP threads an
operator gets in the engine's worker (MXNet's kernels / oneDNN) and images/s. Run each
cell in a fresh process, alternating, with no thread variable set.
"""
import os
import sys
import time


def main(first, net_name, batch, steps):
    if first == "configure":
        import gluon_cnns.threads
        gluon_cnns.threads.configure(net_name)
    import mxnet as mx
    from mxnet import autograd, gluon
    import gluon_cnns
    from gluon_cnns.data import image_shape
    from gluon_cnns.loaded_threads import operator_threads
    net = gluon_cnns.get_model(net_name)
    recipe = gluon_cnns.model_spec(net_name).recipe
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.uniform(shape=(batch,) + image_shape(recipe.dataset, recipe.resize))
    y = mx.nd.array([i % 10 for i in range(batch)])

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
    for _ in range(3):
        step()
    mx.nd.waitall()
    load, start = os.getloadavg()[0], time.perf_counter()
    for _ in range(steps):
        step()
    mx.nd.waitall()
    seconds = time.perf_counter() - start
    print("%s %s threads (kernels, oneDNN) %s: %.0f img/s, load %.1f-%.1f" % (
        first, net_name, operator_threads(), steps * batch / seconds, load, os.getloadavg()[0]))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("mxnet", "configure"):
        sys.exit("usage: library_path.py mxnet|configure NET BATCH STEPS")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

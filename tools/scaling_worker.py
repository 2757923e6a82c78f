"""One process of a scaling measurement: time each step's compute and communication.

    python tools/scaling_worker.py --net resnet18 --side 96 --batch 8 --kvstore dist_sync \\
        --steps 10 --out /shared/run/rank{rank}.json

Started by tools/scaling.py on the namespace hosts, like the training script:
under ``scripts/launch.py`` (``dist_sync``), ``horovodrun`` (``horovod``) or alone
(``none``). ``--batch`` is this process's batch (weak scaling: W processes make a
global batch of W x batch). Synthetic images of ``--side`` pixels, fixed labels.

Each step is timed in three parts, with ``mx.nd.waitall()`` between them so that
MXNet's asynchronous engine does not move work across the boundaries:
forward and backward (``compute``), the gradient sum across the processes
(``trainer.allreduce_grads()``: ps-lite push and pull, or Horovod's allreduce;
``comm``) and the SGD update (``update``, counted as compute). The job set-up
(``training.distributed.setup``, the Trainer and rank 0's weights broadcast) is
the training script's own. Every rank writes its timings to ``--out``.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", required=True)
    p.add_argument("--side", type=int, required=True, help="input height and width")
    p.add_argument("--batch", type=int, required=True, help="this process's batch")
    p.add_argument("--kvstore", choices=("none", "dist_sync", "horovod"), default="none")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", required=True, help="JSON file; {rank} is the process's rank")
    return p.parse_args(argv)


def trainable_sizes(net):
    """Element counts of the parameters the Trainer sums, in its key order."""
    return [p.data().size for p in net.collect_params().values() if p.grad_req != "null"]


def timed_steps(net, trainer, batch, side, steps):
    """``(compute, comm, cpu)`` seconds of each of ``steps`` steps on one synthetic batch;
    ``cpu`` is the process's CPU time over the step (all its threads)."""
    import mxnet as mx
    from mxnet import autograd, gluon
    X = mx.nd.random.uniform(shape=(batch, 1, side, side))
    y = mx.nd.array([i % 10 for i in range(batch)])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    compute, comm, cpu = [], [], []
    for _ in range(steps):
        c0, t0 = time.process_time(), time.perf_counter()
        with autograd.record():
            loss = loss_fn(net(X), y)
        loss.backward()
        mx.nd.waitall()
        t1 = time.perf_counter()
        trainer.allreduce_grads()
        mx.nd.waitall()
        t2 = time.perf_counter()
        trainer.update(batch)
        mx.nd.waitall()
        t3 = time.perf_counter()
        compute.append((t1 - t0) + (t3 - t2))
        comm.append(t2 - t1)
        cpu.append(time.process_time() - c0)
    return compute, comm, cpu


def main(argv=None):
    args = parse_args(argv)
    import mxnet as mx  # a ps-lite scheduler or server never returns from this import
    from gluon_cnns import get_model
    from gluon_cnns.io import write_json
    from gluon_cnns.training.distributed import setup
    kvstore = None if args.kvstore == "none" else args.kvstore
    workers = int(os.environ.get("DMLC_NUM_WORKER") or os.environ.get("HOROVOD_SIZE") or 1)
    cluster = setup(kvstore, args.batch * workers)
    mx.random.seed(0)
    net = get_model(args.net, classes=10)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net.hybridize()
    trainer = cluster.trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    cluster.sync_parameters(net, trainer, (1, 1, args.side, args.side), mx.cpu())
    timed_steps(net, trainer, cluster.batch_size, args.side, args.warmup)
    compute, comm, cpu = timed_steps(net, trainer, cluster.batch_size, args.side, args.steps)
    write_json(args.out.format(rank=cluster.rank), {
        "net": args.net, "side": args.side, "batch": cluster.batch_size,
        "kvstore": args.kvstore, "rank": cluster.rank, "workers": cluster.num_workers,
        "threads": os.environ.get("OMP_NUM_THREADS"), "sizes": trainable_sizes(net),
        "compute": compute, "comm": comm, "cpu": cpu})
    return 0


if __name__ == "__main__":
    sys.exit(main())

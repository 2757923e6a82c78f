"""Data-parallel training on several devices and on MXNet's parameter server.

One rule holds everywhere: ``--batch-size`` is the *global* batch, the number
of examples behind one update. More devices or more workers split that batch;
they do not change what one update means, so a recipe's learning rate applies
unchanged (see docs/SCALING.md for the rule when you do change the batch).

* **Several devices, one process** (``--gpus N``, ``--cpus N``): each batch is
  split across the devices and the Trainer's ``device`` kvstore sums their
  gradients; ``trainer.step(batch)`` divides by the whole batch.
* **Several processes** (``--kvstore dist_sync`` under ``scripts/launch.py``):
  worker r of W trains on shard r of the training set with batch B / W. The
  servers sum the W gradients of every step; the optimizer's ``rescale_grad``
  of 1/W on top of ``step(B / W)`` makes that sum the mean over the global
  batch, so the step equals one process training on the W batches concatenated.
  The servers only sum (``update_on_kvstore=False``): every worker applies the
  same update to the same weights, so the workers stay identical and each keeps
  the optimizer state that rank 0 checkpoints.
* ``--kvstore dist_async``: each worker's push updates the weights on the
  servers at once (MXNet requires the update on the servers here), so the
  optimizer state lives there and cannot be checkpointed: no ``--save-dir``.
* ``--kvstore horovod`` (under ``horovodrun``): the ranks allreduce their
  gradients with no servers; see ``training.horovod`` (:class:`HorovodCluster`).

Process roles in MXNet 1.9.1: the launcher starts every process with the same
command and ``DMLC_ROLE`` = scheduler, server or worker. ``import mxnet`` in a
scheduler or server process never returns: ``mxnet/kvstore/kvstore_server.py``
runs the server loop at import time and calls ``sys.exit()`` when the workers
are done. Only workers get past the import and reach this module, where
``mx.kv.create('dist_sync')`` connects to the scheduler at
``DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT`` and learns the worker's rank.
"""
import os

from ..errors import GluonCNNsError

# --kvstore choices: the first two sum gradients inside one process.
KVSTORES = ("device", "local", "dist_sync", "dist_async", "horovod")
# What a worker needs to find the scheduler (set by scripts/launch.py).
DMLC_ENV = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
            "DMLC_NUM_WORKER")
# dist_sync: the servers only sum; dist_async: MXNet insists on updating there.
# None leaves MXNet's own choice (for the single-process kvstores).
_UPDATE_ON_KVSTORE = {"dist_sync": False, "dist_async": True}


class DistributedError(GluonCNNsError):
    """A distributed setting that cannot work; the CLI prints it as one line (exit 2)."""


class Cluster:
    """Where this process stands in a training job: kvstore, rank, workers, batch.

    A single-process run is a "cluster" of one worker of rank 0 without a
    distributed kvstore, so the training script needs no special cases.
    """

    def __init__(self, kvstore="device", kv=None, batch_size=None):
        self.kvstore = kvstore    # the --kvstore name
        self.kv = kv              # the mx.kv.KVStore of a distributed job, else None
        self.rank = kv.rank if kv is not None else 0
        self.num_workers = kv.num_workers if kv is not None else 1
        self.batch_size = batch_size  # this worker's share of the global batch

    @property
    def distributed(self):
        return self.kv is not None

    @property
    def updates_per_batch(self):
        """Optimizer updates per batch of a worker: every push is one under dist_async."""
        return self.num_workers if self.kvstore == "dist_async" else 1

    @property
    def is_chief(self):
        """Rank 0 writes the checkpoints, logs and plots; the others only train."""
        return self.rank == 0

    def shard(self, train_iter):
        """This worker's part of a BatchIterator (the iterator itself when alone)."""
        if not self.distributed:
            return train_iter
        part = train_iter.shard(self.num_workers, self.rank)
        # In dist_sync the servers wait for one push from every worker at each
        # step, so all workers must make the same number of steps per epoch. The
        # parts differ by at most one example, which adds a batch of one to the
        # bigger parts when the smaller ones end on a full batch: those drop
        # their last example (always the same one).
        steps = -(-(train_iter.num_examples // self.num_workers) // part.batch_size)
        if len(part) > steps:
            part = part.take(steps * part.batch_size)
        return part

    def devices(self, ctxs):
        """The contexts this worker trains on, given those the command line asked for."""
        return ctxs

    def trainer(self, params, optimizer, optimizer_params):
        """A ``gluon.Trainer`` that sums gradients over the devices and the workers."""
        from mxnet import gluon
        optimizer_params = dict(optimizer_params)
        if self.distributed:
            # step(b) divides by this worker's batch b; the servers add W such
            # gradients; 1/W more makes it the mean over the global batch W * b.
            optimizer_params["rescale_grad"] = 1.0 / self.num_workers
        return gluon.Trainer(params, optimizer, optimizer_params,
                             kvstore=self.kv if self.distributed else self.kvstore,
                             update_on_kvstore=_UPDATE_ON_KVSTORE.get(self.kvstore))

    def sync_parameters(self, net, trainer, sample_shape, ctx):
        """Give every worker rank 0's weights before the first batch.

        ``trainer.step`` would broadcast them at the first update, but only
        after each worker computed its first gradients on its own random
        initialization; doing it now makes even the first step exact.
        """
        if not self.distributed:
            return
        finish_deferred_init(net, sample_shape, ctx)
        # What step(batch_size) does before its first update (private API of
        # MXNet 1.9.1, the last 1.x release): set the gradient scale, which
        # dist_async sends to the servers with the optimizer, create the
        # kvstore, and broadcast rank 0's parameters.
        trainer._check_and_rescale_grad(trainer._scale / self.batch_size)
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        if trainer._params_to_init:
            trainer._init_params()

    def dump_params(self, net, path):
        """Save this worker's final weights to ``path`` ('{rank}' is replaced); for tests."""
        if path:
            from ..io import atomic_write
            atomic_write(path.format(rank=self.rank), net.save_parameters)

    def describe(self):
        """One line for the log: who this worker is and what it trains on."""
        return "%s: worker rank %d of %d, %s server(s); %s" % (
            self.kvstore, self.rank, self.num_workers, os.environ.get("DMLC_NUM_SERVER", "?"),
            self.share())

    def share(self):
        """What this worker trains on: its batch and its shard."""
        return "batch %d of the global %d, training shard %d of %d" % (
            self.batch_size, self.batch_size * self.num_workers, self.rank + 1, self.num_workers)


def finish_deferred_init(net, sample_shape, ctx):
    """Give every parameter of ``net`` its shape and initial value, without a forward pass.

    The shapes come from the input shape alone (the same random draws as a
    first forward pass). A real forward pass outside autograd would let oneDNN
    reorder conv weights in place into its own layout, which a kvstore then
    fails to send (server: "init N first").
    """
    import mxnet as mx
    net.infer_shape(mx.nd.zeros(sample_shape, ctx=ctx))
    for param in net.collect_params().values():
        param._finish_deferred_init()  # pylint: disable=protected-access


def local_batch_size(batch_size, num_workers):
    """Each worker's share of the global batch; it must split evenly."""
    if batch_size % num_workers:
        lower = batch_size - batch_size % num_workers
        fix = "%d or %d" % (lower, lower + num_workers) if lower else str(num_workers)
        raise DistributedError("--batch-size %d (the global batch) does not split evenly "
                               "across %d workers; use a multiple of %d, e.g. %s"
                               % (batch_size, num_workers, num_workers, fix))
    return batch_size // num_workers


def setup(args, batch_size):
    """The Cluster of this process, from ``--kvstore`` and the launcher's DMLC_* variables
    (or, for ``--kvstore horovod``, from horovodrun's: ``training.horovod``).

    A distributed kvstore is created here: ``mx.kv.create`` connects to the
    scheduler and blocks until every server and worker has joined.
    """
    kvstore = getattr(args, "kvstore", None) or "device"
    role = os.environ.get("DMLC_ROLE")
    if kvstore == "horovod" and role != "worker":
        from .horovod import setup_horovod
        return setup_horovod(args, batch_size)
    if not kvstore.startswith("dist"):
        if role == "worker":
            # The servers would wait forever for this worker's gradients.
            raise DistributedError("started by a launcher as a worker (DMLC_ROLE=worker) but "
                                   "--kvstore is %s; add --kvstore dist_sync" % kvstore)
        return Cluster(kvstore, batch_size=batch_size)
    missing = [name for name in DMLC_ENV if not os.environ.get(name)]
    if missing:
        raise DistributedError("--kvstore %s needs the environment that scripts/launch.py "
                               "sets (%s missing); run python scripts/launch.py -n 2 -s 1 -- "
                               "python scripts/train.py ... --kvstore %s"
                               % (kvstore, ", ".join(missing), kvstore))
    if kvstore == "dist_async" and getattr(args, "save_dir", None):
        raise DistributedError("--save-dir needs the optimizer state, which dist_async keeps "
                               "on the servers; use --kvstore dist_sync or drop --save-dir")
    # Checked before joining the job, so that a mistake ends every worker at once.
    local_batch = local_batch_size(batch_size, int(os.environ["DMLC_NUM_WORKER"]))
    import mxnet as mx
    cluster = Cluster(kvstore, mx.kv.create(kvstore), local_batch)
    print(cluster.describe(), flush=True)
    return cluster


def exit_failed_worker(code, show_traceback=False):
    """End a failed worker of a parameter-server job at once, with exit ``code``.

    A worker that returns from ``main`` normally runs MXNet's exit handlers,
    where the kvstore client waits in a barrier for every other worker; they,
    still training, wait for this worker's next gradients. Both would hang and
    the launcher would never see the failure. So a process started as a worker
    (``DMLC_ROLE=worker``) that has joined the job (a ``dist`` kvstore exists;
    the error being handled keeps it alive) prints the traceback of that error
    if ``show_traceback`` (an unexpected error), flushes its output and leaves
    with ``os._exit``: the launcher sees the exit code and stops the job.
    Anywhere else -- not a worker, or failed before joining -- this returns
    ``code``.
    """
    import gc
    import sys
    kvstore = getattr(sys.modules.get("mxnet.kvstore"), "KVStore", None)
    if os.environ.get("DMLC_ROLE") != "worker" or kvstore is None:
        return code
    try:
        joined = any(isinstance(o, kvstore) and o.type.startswith("dist")
                     for o in gc.get_objects())
    except Exception:  # a kvstore half torn down: the barrier may still wait
        joined = True
    if not joined:
        return code
    if show_traceback:
        import traceback
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing more to say
            pass
    os._exit(code)

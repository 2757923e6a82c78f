"""Where a process stands in a training job (:class:`Cluster`), and the rules every kind of
job shares: the global batch split evenly across the workers, and the parameters given
their shapes before rank 0's are broadcast. See ``training.distributed`` for the jobs
on MXNet's parameter server and ``training.horovod`` for Horovod's.
"""
import os

from ..errors import GluonCNNsError

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

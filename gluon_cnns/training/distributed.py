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

from .cluster import Cluster, DistributedError, finish_deferred_init, local_batch_size  # noqa: F401

# --kvstore choices: the first two sum gradients inside one process.
KVSTORES = ("device", "local", "dist_sync", "dist_async", "horovod")
# What a worker needs to find the scheduler (set by scripts/launch.py).
DMLC_ENV = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
            "DMLC_NUM_WORKER")
def setup(kvstore, batch_size, save_dir=None, gpus=None, cpus=None):
    """The Cluster of this process, from ``kvstore`` (``--kvstore``; None for "device") and
    the launcher's DMLC_* variables (or, for ``"horovod"``, from horovodrun's:
    ``training.horovod``). ``batch_size`` is the global batch; ``save_dir``, ``gpus`` and
    ``cpus`` are the run's ``--save-dir``, ``--gpus`` and ``--cpus``, checked against it.

    A distributed kvstore is created here: ``mx.kv.create`` connects to the
    scheduler and blocks until every server and worker has joined.
    """
    kvstore = kvstore or "device"
    role = os.environ.get("DMLC_ROLE")
    if kvstore == "horovod" and role != "worker":
        from .horovod import setup_horovod
        return setup_horovod(batch_size, gpus=gpus, cpus=cpus)
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
    if kvstore == "dist_async" and save_dir:
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

"""Data-parallel training on Horovod: ``--kvstore horovod`` under ``horovodrun``.

    horovodrun -np 4 -H host1:2,host2:2 python scripts/train.py --net resnet18 --kvstore horovod

The same rule as everywhere (``training.distributed``): ``--batch-size`` is the
global batch B. Rank r of W trains on shard r of the training set (cut as for
dist_sync, every rank making the same number of steps) with batch B / W.

* **Gradients.** ``hvd.DistributedTrainer`` sums the W gradients with an
  allreduce and divides its gradient scale by W, so ``step(B / W)`` scales the
  sum by 1 / B: one step equals one process training on the W batches
  concatenated (no ``rescale_grad`` of our own, unlike dist_sync). A plain
  ``gluon.Trainer`` with ``mx.kv.create('horovod')`` did not average in our
  checks: it is not used.
* **Start.** Rank 0's initial (or resumed) parameters are broadcast to every
  rank before the first batch, after the deferred initialization is finished
  from the input shape (``distributed.finish_deferred_init``).
* **BatchNorm.** Each rank's forward pass updates the running mean and
  variance from its own shard's batches. At the end of every epoch, before the
  evaluation, the ranks average them (``hvd.allreduce``): the running mean is
  linear in the batch means, so this gives the very running mean of the global
  batches, as if averaged after every step but at no per-step cost; the
  averaged variance leaves out the spread between the ranks' batch means (a
  slight underestimate). All ranks then hold identical weights and statistics,
  evaluate to identical test accuracies, and rank 0 saves what every rank has.
* **Evaluation.** Every rank evaluates the whole test set: the figures in each
  rank's epoch line are the full test set's, identical on all ranks.
* **Writing.** Rank 0 alone writes config, checkpoints, logs, plots and exports
  (``Cluster.is_chief``); the other ranks only print their epoch lines.
* **Resume.** Every rank reads rank 0's checkpoint (a shared or local folder).
  The checkpoint's trainer states record the number of ranks; resuming with
  another number is allowed (the optimizer state and the global batch carry
  over) with a one-line warning: the shards and per-rank batches differ, so the
  run goes on as a valid run of the same global batch, not with the numbers an
  uninterrupted run would have given.
* **Failure.** horovodrun stops every rank as soon as one exits with an error
  and exits non-zero itself; a rank that leaves makes Horovod shut down, so the
  others' pending allreduces fail instead of waiting. ``GLUON_CNNS_FAIL_AT_BATCH
  =N:RANK`` makes rank RANK raise at its N-th batch (counted from 1 in this
  process), to test this.
* **A host lost.** A killed rank's peers see its connections reset at once; a
  host cut off sends nothing, and Gloo waits ``HOROVOD_GLOO_TIMEOUT_SECONDS``
  (30 s by default in Horovod) before it fails the pending collective. Horovod's
  background loop exchanges a message every few milliseconds whatever Python
  does, so only a dead or unreachable peer can make it wait that long: the rank
  sets GLOO_TIMEOUT_S unless the user chose a value. The surviving ranks then
  end with one line (:func:`lost_peer_line`) naming the host that no longer
  answers, and horovodrun stops the job.
"""
import os
import sys

from .cluster import Cluster, DistributedError, finish_deferred_init, local_batch_size

INSTALL = ("HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 "
           "HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 pip install --no-build-isolation "
           "horovod==0.28.1")
# Set for every rank by horovodrun (Gloo), or by mpirun (Open MPI, MPICH, PMIx).
LAUNCHER_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
FAIL_ENV = "GLUON_CNNS_FAIL_AT_BATCH"
# The attribute of the optimizer (saved with the trainer states) naming the job's size.
_RANKS_ATTR = "horovod_num_workers"
# How long Gloo waits on a silent peer (HOROVOD_GLOO_TIMEOUT_SECONDS, unless set): the
# time a cut-off host takes to end the job. Rendezvous at start waits as long for the
# slowest rank to arrive, so it must cover the spread of the ranks' start-up times.
GLOO_TIMEOUT_ENV, GLOO_TIMEOUT_S = "HOROVOD_GLOO_TIMEOUT_SECONDS", 10
# The port a peer host answers on while it is up: horovodrun reached it over ssh.
_SSH_PORT, _PROBE_S = 22, 2.0
# This rank and every rank's host, gathered when the job starts (for lost_peer_line).
_job = {}


class InjectedFailure(RuntimeError):
    """The failure ``GLUON_CNNS_FAIL_AT_BATCH`` asks for (tests of fail-fast)."""


def import_horovod():
    """``horovod.mxnet``, or a DistributedError naming the install line."""
    try:
        import horovod.mxnet as hvd
    except (ImportError, OSError) as e:  # not installed, built without MXNet, or a bad build
        from ..errors import error_line
        raise DistributedError("--kvstore horovod needs Horovod built with MXNet support "
                               "(import horovod.mxnet: %s); install it with "
                               "scripts/install_horovod.sh, i.e. %s" % (error_line(e), INSTALL))
    return hvd


def failure_injection(text):
    """``(batch, rank)`` from ``GLUON_CNNS_FAIL_AT_BATCH``'s ``N:RANK``, or None when unset."""
    if not text:
        return None
    try:
        batch, rank = (int(part) for part in text.split(":"))
    except ValueError:
        batch = rank = -1
    if batch < 1 or rank < 0:
        raise DistributedError("%s must be BATCH:RANK, e.g. 3:1 (rank 1 fails at its 3rd "
                               "batch); got %r" % (FAIL_ENV, text))
    return batch, rank


class _EpochEnd:
    """A training iterator that calls ``at_end()`` each time a pass over it is finished.

    Everything else (``len``, ``batch_size``, ``state()``, ...) is the iterator's own.
    """

    def __init__(self, data, at_end):
        self._data, self._at_end = data, at_end

    def __iter__(self):
        yield from self._data
        self._at_end()

    def __len__(self):
        return len(self._data)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_data", "_at_end"):
            raise AttributeError(name)  # copy and pickle look for these before __init__
        return getattr(self._data, name)

    def __repr__(self):
        return "%r (BatchNorm statistics averaged after each pass)" % (self._data,)


def _trainer_class(hvd):
    """``hvd.DistributedTrainer`` that records the job's size in its saved states, warns
    when it resumes a checkpoint of another size, and can fail on purpose (tests)."""

    class HorovodTrainer(hvd.DistributedTrainer):
        def __init__(self, params, optimizer, optimizer_params, cluster):
            super().__init__(params, optimizer, optimizer_params)
            self._cluster = cluster
            self._batches = 0
            setattr(self._optimizer, _RANKS_ATTR, cluster.num_workers)

        def _allreduce_grads(self):  # step(), and allreduce_grads() of nan_policy skip
            self._batches += 1
            if self._cluster.fail_at == (self._batches, self._cluster.rank):
                raise InjectedFailure("injected failure at batch %d on rank %d (%s)"
                                      % (self._batches, self._cluster.rank, FAIL_ENV))
            super()._allreduce_grads()

        def load_states(self, fname):
            super().load_states(fname)
            saved = getattr(self._optimizer, _RANKS_ATTR, None)
            self._cluster.check_resumed_size(saved)
            setattr(self._optimizer, _RANKS_ATTR, self._cluster.num_workers)

    return HorovodTrainer


class HorovodCluster(Cluster):
    """This process's place in a Horovod job: rank, ranks, its share of the batch.

    The same interface as :class:`Cluster`: ``shard``, ``trainer``,
    ``sync_parameters``, ``devices``, ``rank``, ``num_workers``, ``is_chief``.
    """

    def __init__(self, hvd, batch_size, fail_at=None):
        super().__init__("horovod", None, batch_size)
        self.hvd = hvd
        self.rank, self.num_workers, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.fail_at = fail_at      # (batch, rank) of an injected failure, or None
        self._statistics = []       # the parameters without gradient: BatchNorm's statistics

    @property
    def distributed(self):
        return True

    def shard(self, train_iter):
        """This rank's part (the same number of steps on every rank); after each pass over
        it the ranks average their BatchNorm statistics."""
        return _EpochEnd(super().shard(train_iter), self.average_statistics)

    def devices(self, ctxs):
        """One device per rank: GPU ``local_rank`` on a GPU machine."""
        if ctxs[0].device_type == "gpu":
            import mxnet as mx
            return [mx.gpu(self.local_rank)]
        return ctxs

    def trainer(self, params, optimizer, optimizer_params):
        """An ``hvd.DistributedTrainer``: ``step(B / W)`` is the mean over the global batch."""
        self._statistics = [p for p in params.values() if p.grad_req == "null"]
        return _trainer_class(self.hvd)(params, optimizer, optimizer_params, self)

    def sync_parameters(self, net, trainer, sample_shape, ctx):
        """Give every rank rank 0's parameters (statistics included) before the first batch."""
        finish_deferred_init(net, sample_shape, ctx)
        self.hvd.broadcast_parameters(net.collect_params(), root_rank=0)

    def average_statistics(self):
        """Average the BatchNorm running statistics over the ranks (in place, asynchronously)."""
        for i, param in enumerate(self._statistics):
            self.hvd.allreduce_(param.data(), average=True, name="gluon_cnns.statistics.%d" % i)

    def check_resumed_size(self, saved):
        """Warn (rank 0) when the checkpoint was trained by another number of ranks
        (``saved``; None for a run without Horovod, taken as one process)."""
        if (saved or 1) == self.num_workers or not self.is_chief:
            return
        made_by = "%d Horovod rank%s" % (saved, "" if saved == 1 else "s") if saved else \
            "a run without Horovod"
        print("horovod: warning: the checkpoint was trained by %s, this job has %d: the shards "
              "and per-rank batches differ, so training goes on with the same global batch but "
              "not as the uninterrupted run would have" % (made_by, self.num_workers),
              file=sys.stderr, flush=True)

    def describe(self):
        return "horovod: rank %d of %d (local rank %d on %s); %s" % (
            self.rank, self.num_workers, self.local_rank,
            os.environ.get("HOROVOD_HOSTNAME", "this host"), self.share())


def setup_horovod(batch_size, gpus=None, cpus=None):
    """The HorovodCluster of this rank for the global ``batch_size``; a DistributedError
    (one line, exit 2) when Horovod is missing, the process was not started by horovodrun,
    the run asks for several devices (``gpus``/``cpus``), or the batch does not split."""
    hvd = import_horovod()
    if not any(os.environ.get(name) for name in LAUNCHER_ENV):
        # hvd.init() would make a job of one: N such processes would each train alone.
        raise DistributedError("--kvstore horovod runs under horovodrun (no HOROVOD_RANK in "
                               "the environment), e.g. horovodrun -np 2 -H localhost:2 sh -c "
                               "'exec python scripts/train.py ... --kvstore horovod' (see "
                               "docs/SCALING.md)")
    for flag, count in (("gpus", gpus), ("cpus", cpus)):
        if (count or 1) > 1:
            raise DistributedError("--kvstore horovod trains on one device per rank; drop --%s "
                                   "N and start N ranks per host (horovodrun -H host:N)" % flag)
    _check_interface(os.environ.get("HOROVOD_GLOO_IFACE"))
    fail_at = failure_injection(os.environ.get(FAIL_ENV))
    size = os.environ.get("HOROVOD_SIZE")
    if size:  # checked before joining, as Horovod's own size below
        local_batch_size(batch_size, int(size))
    os.environ.setdefault(GLOO_TIMEOUT_ENV, str(GLOO_TIMEOUT_S))  # read by hvd.init()
    hvd.init()
    cluster = HorovodCluster(hvd, local_batch_size(batch_size, hvd.size()), fail_at)
    _job.update(rank=cluster.rank, hosts=_gather_hosts(hvd))
    print(cluster.describe(), flush=True)
    return cluster


def _check_interface(name, where="/sys/class/net"):
    """Refuse an interface for Gloo (horovodrun --network-interface, HOROVOD_GLOO_IFACE)
    that this host does not have: Gloo would fail at hvd.init() with a C++ error."""
    if name and os.path.isdir(where) and not os.path.exists(os.path.join(where, name)):
        raise DistributedError("HOROVOD_GLOO_IFACE=%s names no network interface on %s (it "
                               "has %s); pass horovodrun --network-interface one of those"
                               % (name, _this_host(), ", ".join(sorted(os.listdir(where)))))


def _gather_hosts(hvd):
    """Every rank's host name, in rank order (one allgather of fixed-size byte rows)."""
    import mxnet as mx
    import numpy as np
    row = np.zeros((1, 256), dtype=np.int32)
    name = _this_host().encode()[:256]
    row[0, :len(name)] = list(name)
    rows = hvd.allgather(mx.nd.array(row, dtype="int32"), name="gluon_cnns.hosts").asnumpy()
    return [bytes(int(c) for c in r if c).decode(errors="replace") for r in rows]


def _this_host():
    import socket
    return os.environ.get("HOROVOD_HOSTNAME") or socket.gethostname()


def lost_peer_line(error):
    """The one line for a rank whose job lost a peer (``error`` says Horovod shut down
    under this rank), naming the hosts that no longer answer; None for any other error."""
    if not _job or "Horovod has been shut down" not in str(error):
        return None
    here = _job["hosts"][_job["rank"]]
    peers = sorted(set(_job["hosts"]) - {here})
    silent = _silent_hosts(peers)
    if silent:
        what = "; ".join("%s %s" % pair for pair in silent)
    elif peers:
        what = "a rank on %s ended (the hosts still answer: see that rank's lines)" % (
            " or ".join([here] + peers))
    else:
        what = "another rank on this host ended (see its lines)"
    return "horovod: rank %d on %s lost its peers: %s; stopping" % (_job["rank"], here, what)


def _silent_hosts(hosts):
    """[(host, why)] of the ``hosts`` whose ssh port does not accept a connection within
    _PROBE_S (probed together)."""
    import socket
    import threading
    found = {}

    def probe(host):
        try:
            socket.create_connection((host, _SSH_PORT), timeout=_PROBE_S).close()
        except socket.timeout:
            found[host] = "does not answer (down, or its link cut)"
        except OSError as e:  # refused: up, but its sshd is gone with its processes
            found[host] = "does not take ssh connections (%s)" % (e.strerror or e)

    threads = [threading.Thread(target=probe, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(_PROBE_S + 1)
    return [(h, found[h]) for h in hosts if h in found]

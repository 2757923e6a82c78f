"""What one data-parallel step sends, and the model fitted to measured steps.

    step time = compute + bytes / bandwidth + latency x messages

``bytes`` is what the busiest host's link carries in one direction during a
step, ``messages`` how many times one worker waits for the network
(ps-lite round trips, ring steps); both follow from the net's trainable
parameter sizes and the engine (``traffic``). The fit (``fit``) is non-negative
least squares of the communication time of each measured step, the step time
less the compute measured in the same step, on ``bytes / rate`` and
``messages``: its coefficients are the link's inefficiency (the effective
bandwidth is rate / ``per_byte``) and the time per message.

How the engines move gradients (MXNet 1.9.1 ``src/kvstore/kvstore_dist.h``,
Horovod 0.28.1 with Gloo):

* **ps-lite** (``dist_sync``, ``update_on_kvstore=False``): every worker pushes
  each gradient and pulls the sum back, so it sends and receives all B bytes
  (4 x trainable parameters) per step. A key of fewer than
  ``MXNET_KVSTORE_BIGARRAY_BOUND`` elements (1e6) goes whole to server
  ``key * 9973 % S``; a larger one is cut into S equal parts, one per server.
  The Trainer's ``pushpull`` sends one request per part, which the server
  answers with the sum (ps-lite's push-pull; counted with ``PS_VERBOSE=2`` in
  tests/test_scaling.py): a message here is one such round trip.
* **Horovod** ring allreduce: each rank sends and receives 2(N-1)/N x B bytes;
  the gradients ready in one cycle (all of them: the step waits for the
  backward pass) are fused into buffers of at most ``HOROVOD_FUSION_THRESHOLD``
  bytes (128 MiB), and the ring sends 2(N-1) messages per buffer
  (reduce-scatter, then all-gather; Patarasuk & Yuan 2009).
"""
import numpy as np

BIGARRAY_BOUND = 1000 * 1000            # MXNET_KVSTORE_BIGARRAY_BOUND, elements
FUSION_THRESHOLD = 128 * 1024 * 1024    # HOROVOD_FUSION_THRESHOLD, bytes
ENGINES = ("dist_sync", "horovod")


def server_bytes(sizes, servers, bound=BIGARRAY_BOUND):
    """Bytes of one worker's gradients that each of ``servers`` servers holds, and the
    worker's messages per step (one push-pull round trip per key part)."""
    load, parts = [0] * servers, 0
    for key, size in enumerate(sizes):
        if size < bound or servers == 1:
            load[key * 9973 % servers] += 4 * size
            parts += 1
        else:  # cut into near-equal slices, one per server
            for s in range(servers):
                load[s] += 4 * (size * (s + 1) // servers - size * s // servers)
            parts += servers
    return load, parts


def fused_buffers(sizes, fusion=FUSION_THRESHOLD):
    """How many buffers Horovod's tensor fusion makes of the gradients, packed in order
    while a buffer stays within ``fusion`` bytes (a larger tensor goes alone)."""
    buffers, filled = 0, fusion
    for size in sizes:
        if filled + 4 * size > fusion:
            buffers, filled = buffers + 1, 0
        filled += 4 * size
    return buffers


def traffic(sizes, engine, workers, servers=None, colocated=True,
            bound=BIGARRAY_BOUND, fusion=FUSION_THRESHOLD):
    """``{"bytes", "messages", "payload"}`` of one step of ``workers`` nodes.

    ``sizes``: the trainable parameters' element counts, in the Trainer's key order.
    ``bytes``: the most that one host's link carries in one direction. For ps-lite with
    ``colocated`` servers, host i runs worker i and server i (so ``servers`` must equal
    ``workers``); otherwise the servers have hosts of their own. ``messages``: what one
    worker (rank) sends per step. ``payload``: 4 x parameters x 2 (push and pull).
    """
    total = 4 * sum(sizes)
    if engine == "horovod":
        buffers = fused_buffers(sizes, fusion)
        return {"bytes": 2 * (workers - 1) * total / workers,
                "messages": 2 * (workers - 1) * buffers, "payload": 2 * total}
    if engine != "dist_sync":
        raise ValueError("engine %r is not one of %s" % (engine, ", ".join(ENGINES)))
    servers = servers or workers
    load, messages = server_bytes(sizes, servers, bound)
    if workers == 1:
        busiest = 0 if colocated else total
    elif colocated:
        if servers != workers:
            raise ValueError("colocated servers need servers == workers")
        # Host i sends its worker's pushes to the other servers and its server's sums to
        # the other workers.
        busiest = max(total - load[i] + (workers - 1) * load[i] for i in range(workers))
    else:
        busiest = max(total, workers * max(load))  # a worker's link, or a server's
    return {"bytes": busiest, "messages": messages, "payload": 2 * total}


def least_squares(X, y):
    """Coefficients of ``y ~ X @ coef``, none negative (a time per byte or per message
    cannot be), the residuals and R^2 (against the mean of y)."""
    from scipy.optimize import nnls
    X, y = np.asarray(X, float), np.asarray(y, float)
    coef = nnls(X, y)[0]
    residuals = y - X @ coef
    spread = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residuals ** 2).sum()) / spread if spread > 0 else float("nan")
    return coef, residuals, r2


def fit(rows, host=True):
    """Fit the communication time of measured 2-host steps of one engine.

    ``rows``: dicts with ``step``, ``compute`` (seconds), ``bytes``, ``messages`` and
    ``rate`` (bits/s). Returns ``{"per_byte", "host_per_byte", "per_message", "r2",
    "residuals"}``: comm = per_byte x 8 bytes / rate + host_per_byte x bytes +
    per_message x messages, in seconds. The bandwidth of the model is thus
    1 / (per_byte x 8 / rate + host_per_byte): the link's rate, and what the hosts
    can copy, sum and hand to the kernel per second, which no link rate removes.
    ``host=False`` fits the model without that term (``host_per_byte`` 0).
    """
    X = [[8.0 * r["bytes"] / r["rate"], r["bytes"] if host else 0.0, r["messages"]]
         for r in rows]
    y = [r["step"] - r["compute"] for r in rows]
    coef, residuals, r2 = least_squares(X, y)
    return {"per_byte": float(coef[0]), "host_per_byte": float(coef[1]),
            "per_message": float(coef[2]), "r2": r2,
            "residuals": [float(v) for v in residuals]}


def step_time(model, compute, flow, rate):
    """The model's step time: ``compute`` + the fitted cost of ``flow`` (from
    ``traffic``) on links of ``rate`` bits/s."""
    return (compute + model["per_byte"] * 8.0 * flow["bytes"] / rate
            + model["host_per_byte"] * flow["bytes"] + model["per_message"] * flow["messages"])


def predict(model, compute, sizes, engine, nodes, rate, servers=None, colocated=True,
            messages_of=None):
    """``(efficiency, comm)`` of ``nodes`` nodes on links of ``rate`` bits/s: images/s
    over ``nodes`` x one node's without communication, and the seconds of
    communication per step, for a step of ``compute`` seconds. ``messages_of``: count
    the messages of that many nodes instead (a per-message cost that does not grow)."""
    flow = traffic(sizes, engine, nodes, servers, colocated)
    if messages_of:
        flow["messages"] = traffic(sizes, engine, messages_of, servers, colocated)["messages"]
    comm = step_time(model, 0.0, flow, rate)
    return compute / (compute + comm), comm

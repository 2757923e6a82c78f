"""The tables of docs/SCALING.md from a measurement of tools/scaling.py (``report``).

The model is fitted per engine on the 2-host runs (``scaling_model.fit``), with the
rate a TCP stream reached on the shaped link in the same session as the run's rate.
Predictions take each net's compute per step as measured here: the CPU time of a
step of one process without communication on one thread (the median over its
runs), which is what the step takes on a core of its own; on the shared machine
the wall-clock time of that step was longer. Each cell also gives the predicted
communication time per step, so that another compute time (a GPU's) can be put
in: efficiency = compute / (compute + comm).
"""
import math
import statistics

from tools.scaling_model import fit, predict

NODES = (8, 32, 128)
RATES_GBIT = (10, 25, 100)
# (label, engine, servers for N nodes, servers beside the workers, messages of 2 nodes)
LAYOUTS = (("Horovod, ring allreduce, 2(N-1) messages per buffer", "horovod",
            lambda n: None, True, None),
           ("Horovod, ring allreduce, messages held at 2 hosts' count", "horovod",
            lambda n: None, True, 2),
           ("ps-lite, servers = workers (one beside each)", "dist_sync", lambda n: n, True, None),
           ("ps-lite, 1 server host", "dist_sync", lambda n: 1, False, None))


# The figures of a run of ``measure``: times and the link's rate > 0, counts >= 0.
_POSITIVE = ("step", "compute", "cpu", "rate_measured")
_COUNTS = ("bytes", "messages", "keys", "parameters")


def _number(v, low, strict):
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > low if strict else v >= low))


def check_runs(data):
    """ValueError naming the first run that is not one ``measure`` writes: the fit would
    divide by its zero step or report its negative or text times as if measured."""
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError("'runs' must be a non-empty list of runs")
    for i, r in enumerate(runs):
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("net",
                                                                                  "engine")):
            raise ValueError("run %d must be an object naming its 'net' and 'engine'" % i)
        hosts = r.get("hosts")
        if not (isinstance(hosts, int) and not isinstance(hosts, bool) and hosts >= 1):
            raise ValueError("run %d (%s, %s): 'hosts' must be a whole number >= 1, got %r"
                             % (i, r["net"], r["engine"], hosts))
        bad = ([k for k in _POSITIVE if not _number(r.get(k), 0, True)]
               + [k for k in ("comm",) + _COUNTS if not _number(r.get(k), 0, False)]
               + [k for k in ("rate_gbit",) if r.get(k) is not None
                  and not _number(r.get(k), 0, True)])
        if bad:
            raise ValueError("run %d (%s, %s): %r must be a finite number %s, got %r"
                             % (i, r["net"], r["engine"], bad[0],
                                "> 0" if bad[0] in _POSITIVE + ("rate_gbit",) else ">= 0",
                                r.get(bad[0])))


def _rows(runs, **where):
    return [r for r in runs if all(r[k] == v for k, v in where.items())]


def _rate(r):
    return "%s (%.2f)" % ("none" if r["rate_gbit"] is None else "%g" % r["rate_gbit"],
                          r["rate_measured"] / 1e9)


def measured_table(data):
    runs = data["runs"]
    lines = ["| net (input, batch per process) | link Gbit/s shaped (TCP measured) | no comm, "
             "1 process (step s, CPU s) | ps-lite 1 host | ps-lite 2 hosts | 2 vs 1 | "
             "Horovod 1 host | "
             "Horovod 2 hosts | 2 vs 1 |", "|---" * 9 + "|"]
    for alone in _rows(runs, engine="none"):
        cells = ["%s (%d px, %d)" % (alone["net"], alone["side"], alone["batch"]),
                 _rate(alone), "%.1f (%.2f, %.2f)" % (alone["images_per_s"], alone["step"],
                                                      alone["cpu"])]
        for engine in ("dist_sync", "horovod"):
            pair = [_rows(runs, net=alone["net"], rate_gbit=alone["rate_gbit"], engine=engine,
                          hosts=n) for n in (1, 2)]
            if not all(pair):
                cells += ["-"] * 3
                continue
            one, two = pair[0][0]["images_per_s"], pair[1][0]["images_per_s"]
            cells += ["%.1f" % one, "%.1f" % two, "%.2f" % (two / one)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def traffic_table(data):
    lines = ["| net | trainable parameters | keys | engine | bytes per step on the busiest "
             "link, one direction (MB) | messages per step per worker | compute s/step | "
             "comm s/step (TCP Gbit/s) |", "|---" * 8 + "|"]
    for r in _rows(data["runs"], hosts=2):
        lines.append("| %s | %d | %d | %s | %.1f | %d | %.3f | %.3f (%.2f) |" % (
            r["net"], r["parameters"], r["keys"], r["engine"], r["bytes"] / 1e6,
            r["messages"], r["compute"], r["comm"], r["rate_measured"] / 1e9))
    return lines


def _as_fit_rows(rows):
    return [dict(r, rate=r["rate_measured"]) for r in rows]


def fits(data):
    """{engine: fit} over the 2-host runs, with per-net residuals."""
    out = {}
    for engine in ("dist_sync", "horovod"):
        rows = _rows(data["runs"], engine=engine, hosts=2)
        if len(rows) < 2:
            continue
        model = fit(_as_fit_rows(rows))
        model["r2_without_host"] = fit(_as_fit_rows(rows), host=False)["r2"]
        model["per_net"] = {}
        for net in sorted({r["net"] for r in rows}):
            res = [e for e, r in zip(model["residuals"], rows) if r["net"] == net]
            steps = [r["step"] for r in rows if r["net"] == net]
            model["per_net"][net] = {
                "rms": statistics.mean(v * v for v in res) ** 0.5,
                "worst_of_step": max(abs(v) / s for v, s in zip(res, steps))}
        out[engine] = model
    return out


def fit_table(models):
    lines = ["| engine | link: per byte (x 8 bytes / rate) | host: ns per byte (Gbit/s it "
             "allows) | per message (ms) | R^2 of comm time (without h) | per net: RMS "
             "residual ms, worst % of step |", "|---" * 6 + "|"]
    for engine, m in models.items():
        nets = "; ".join("%s %.0f, %.0f%%" % (n, 1e3 * v["rms"], 100 * v["worst_of_step"])
                         for n, v in m["per_net"].items())
        host = m["host_per_byte"]
        lines.append("| %s | %.3f | %.2f (%s) | %.3f | %.3f (%.3f) | %s |" % (
            engine, m["per_byte"], 1e9 * host, "%.1f" % (8e-9 / host) if host else "no limit",
            1e3 * m["per_message"], m["r2"], m["r2_without_host"], nets))
    return lines


def compute_per_net(data):
    """{net: CPU seconds of one step without communication}, median over its runs."""
    return {net: statistics.median(r["cpu"] for r in _rows(data["runs"], net=net,
                                                             engine="none"))
            for net in sorted({r["net"] for r in data["runs"]})}


def prediction_table(data, models, host=True):
    """Predicted efficiencies; ``host=False`` leaves the hosts' per-byte cost out."""
    if not host:
        models = {e: dict(m, host_per_byte=0.0) for e, m in models.items()}
    sizes = {r["net"]: r["sizes"] for r in data["runs"] if "sizes" in r}
    header = "| net (compute s/step) | engine, layout | " + " | ".join(
        "N=%d @ %d Gbit/s" % (n, g) for n in NODES for g in RATES_GBIT) + " |"
    lines = [header, "|---" * (2 + len(NODES) * len(RATES_GBIT)) + "|"]
    for net, compute in compute_per_net(data).items():
        for label, engine, servers, colocated, messages_of in LAYOUTS:
            if engine not in models:
                continue
            cells = []
            for n in NODES:
                for g in RATES_GBIT:
                    eff, comm = predict(models[engine], compute, sizes[net], engine, n, g * 1e9,
                                        servers(n), colocated, messages_of)
                    cells.append("%.2f (%.0f ms)" % (eff, 1e3 * comm))
            lines.append("| %s (%.3f) | %s | %s |" % (net, compute, label, " | ".join(cells)))
    return lines


def report(path):
    from gluon_cnns.io import read_json
    data = read_json(path)
    check_runs(data)
    models = fits(data)
    for title, lines in (("Measured images/s", measured_table(data)),
                         ("Traffic and time per 2-host step", traffic_table(data)),
                         ("Fit: comm = per byte x 8 bytes / rate + host per byte x bytes "
                          "+ per message x messages",
                          fit_table(models)),
                         ("Predicted efficiency, images/s of N nodes / N x one node (comm per "
                          "step), as fitted: hosts that move bytes as these did",
                          prediction_table(data, models)),
                         ("Predicted efficiency, the network alone (the hosts' per-byte cost "
                          "left out)", prediction_table(data, models, host=False))):
        print("%s\n\n%s\n" % (title, "\n".join(lines)))
    return 0

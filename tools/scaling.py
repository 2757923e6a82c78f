#!/usr/bin/env python
"""Scaling across hosts, measured on namespace hosts with shaped links, and modelled.

    python tools/scaling.py measure --out docs/scaling.json       # root; minutes per net
    python tools/scaling.py measure --quick --out /tmp/s.json      # lenet, seconds
    python tools/scaling.py report docs/scaling.json              # tables for docs/SCALING.md

``measure`` builds two hosts (tools/netns_hosts.py) for each net in turn, releasing
them between nets, and for each link rate shapes both directions of every host's
link with a token bucket (``tc qdisc replace ... tbf rate R``, on the host's eth0 and
on its veth end on the bridge), checks the rate a TCP stream reaches, and runs in
turn: one process without communication, then per engine one host, then two
(tools/scaling_worker.py, ``OMP_NUM_THREADS=1`` per process). ps-lite runs as
``scripts/launch.py -n W -s W -H hosts`` (server i beside worker i); Horovod as
``horovodrun -np W -H gcnh0:1,... --gloo --network-interface eth0``. Each run's
per-step compute and communication, images/s and the derived bytes and messages
per step (tools/scaling_model.py) go into the JSON, written whole after each net.

``report`` fits the model per engine and prints the measured table, the fit and the
predicted efficiencies (markdown). Exit 2 for a usage error, 1 when hosts fail.
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.scaling_model import ENGINES, traffic  # noqa: E402

PY = sys.executable
WORKER = os.path.join(ROOT, "tools", "scaling_worker.py")
# net -> (input side, batch per process): the recipes' sides; batches small enough that a
# step takes well under a second on one thread.
NETS = {"resnet18": (96, 8), "googlenet": (96, 8), "alexnet": (224, 4), "lenet": (28, 16)}
RATES = (1.0, 2.5, None)          # Gbit/s; None: the link unshaped
# Pinned so that the message counts derived in scaling_model hold.
ENV = {"OMP_NUM_THREADS": "1", "MXNET_KVSTORE_BIGARRAY_BOUND": "1000000",
       "HOROVOD_FUSION_THRESHOLD": str(128 * 1024 * 1024), "HOROVOD_CYCLE_TIME": "1"}
# A TCP stream from host 0 to host 1, timed at the receiver (bits/s on stdout).
SINK = ("import socket,sys,time\ns=socket.socket();s.bind((sys.argv[1],5201));s.listen(1)\n"
        "c=s.accept()[0];n=0;t=None\nwhile True:\n b=c.recv(1<<20)\n if not b:break\n"
        " t=t or time.time();n+=len(b)\nprint(n*8/(time.time()-t))\n")
SOURCE = ("import socket,sys\nc=socket.create_connection((sys.argv[1],5201));b=b'x'*(1<<20)\n"
          "for i in range(int(sys.argv[2])):c.sendall(b)\n")


def shape(cluster, gbit):
    """Both directions of every host's link at ``gbit`` Gbit/s (None: unshaped)."""
    from tools.netns_hosts import _run
    for i, ns in enumerate(cluster.namespaces):
        for dev in (["ip", "netns", "exec", ns, "tc", "qdisc"], ["tc", "qdisc"]):
            name = "eth0" if "netns" in dev else cluster.link(i)
            if gbit is None:
                _run(*dev, "del", "dev", name, "root", check=False)
                continue
            rate = int(gbit * 1e9)
            # The bucket must hold a timer tick's worth of bytes (HZ 250 here): 4 ms.
            burst = max(rate // 8 // 250, 256 * 1024)
            _run(*dev, "replace", "dev", name, "root", "tbf", "rate", "%dbit" % rate,
                 "burst", str(burst), "latency", "50ms")


def link_rate(cluster, megabytes):
    """Bits/s of one TCP stream from host 0 to host 1."""
    sink = subprocess.Popen(["ip", "netns", "exec", cluster.namespaces[1], PY, "-c", SINK,
                             cluster.addresses[1]], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(["ip", "netns", "exec", cluster.namespaces[0], PY, "-c", SOURCE,
                    cluster.addresses[1], str(megabytes)], check=True, timeout=120)
    return float(sink.communicate(timeout=30)[0])


def _command(args, net, engine, out):
    side, batch = NETS[net]
    return [PY, WORKER, "--net", net, "--side", str(side), "--batch", str(batch),
            "--kvstore", engine, "--warmup", str(args.warmup), "--steps", str(args.steps),
            "--out", out]


def run_job(cluster, args, net, engine, nhosts, folder):
    """Start one measurement on the first ``nhosts`` hosts; the ranks' records."""
    out = os.path.join(folder, "%s-%s-%d-{rank}.json" % (net, engine, nhosts))
    worker = _command(args, net, "none" if engine == "none" else engine, out)
    env = dict(os.environ, **cluster.env)
    if engine == "dist_sync":
        hostfile = cluster.hostfile(os.path.join(folder, "hosts%d" % nhosts), range(nhosts))
        argv = [PY, os.path.join(ROOT, "scripts", "launch.py"), "-n", str(nhosts), "-s",
                str(nhosts), "-H", hostfile, "--host-ip", cluster.here, "--workdir", ROOT,
                "--timeout", "600"]
        argv += sum((["--env", "%s=%s" % kv] for kv in ENV.items()), []) + ["--"] + worker
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, timeout=660)
    else:
        exports = " ".join("%s=%s" % kv for kv in ENV.items())
        if engine == "horovod":
            hosts = ",".join("%s:1" % name for name in cluster.namespaces[:nhosts])
            # A job on one host is local to horovodrun, which then wants the loopback.
            nic = "eth0" if nhosts > 1 else "lo"
            worker = [os.path.join(os.path.dirname(PY), "horovodrun"), "-np", str(nhosts),
                      "-H", hosts, "--gloo", "--network-interface", nic,
                      "sh", "-c", "exec " + shlex.join(worker)]
        done = cluster.ssh(0, "cd %s; export PATH=%s %s; %s" % (
            shlex.quote(ROOT), shlex.quote(cluster.env["PATH"]), exports, shlex.join(worker)),
            timeout=660)
    if done.returncode:
        raise RuntimeError("%s on %d host(s) failed:\n%s" % (engine, nhosts, done.stdout[-3000:]))
    ranks = []
    for r in range(nhosts):
        with open(out.format(rank=r)) as f:
            ranks.append(json.load(f))
    return ranks


def summarize(ranks, engine, nhosts, gbit, measured_rate):
    """One run's record: medians over its steps, and the traffic derived for it."""
    per_rank = [[c + m for c, m in zip(r["compute"], r["comm"])] for r in ranks]
    steps = [max(s) for s in zip(*per_rank)]
    compute = [max(cs) for cs in zip(*[r["compute"] for r in ranks])]
    cpu = [max(cs) for cs in zip(*[r["cpu"] for r in ranks])]
    first = ranks[0]
    step = statistics.median(steps)
    flow = (traffic(first["sizes"], engine, nhosts) if engine in ENGINES
            else {"bytes": 0, "messages": 0, "payload": 0})
    return {"net": first["net"], "side": first["side"], "batch": first["batch"],
            "engine": engine, "hosts": nhosts, "servers": nhosts if engine == "dist_sync"
            else 0, "rate_gbit": gbit, "rate_measured": measured_rate,
            "parameters": sum(first["sizes"]), "keys": len(first["sizes"]),
            "sizes": first["sizes"],
            "steps": len(steps), "step": step, "compute": statistics.median(compute),
            "comm": step - statistics.median(compute), "cpu": statistics.median(cpu),
            "images_per_s": nhosts * first["batch"] / step, **flow}


def measure_net(args, net, records, link):
    """Every rate and setup of one net, taken in turns; two fresh hosts for each rate,
    released in between (other users of the machine wait for them)."""
    import tempfile
    from tools.netns_hosts import hosts
    setups = [("none", 1)] + [(e, n) for e in args.engines for n in (1, 2)]
    for gbit in args.rates:
        # The hosts share this machine's file system, /tmp included.
        with hosts(2) as cluster, tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
            shape(cluster, gbit)
            rate = link_rate(cluster, 50 if args.quick else int(200 * min(gbit or 4, 4)))
            link.append({"net": net, "rate_gbit": gbit, "tcp_bits_per_s": rate})
            print("%s: link %s Gbit/s shaped, one TCP stream %.2f Gbit/s"
                  % (net, gbit or "un", rate / 1e9), flush=True)
            for engine, nhosts in setups:
                ranks = run_job(cluster, args, net, engine, nhosts, tmp)
                records.append(summarize(ranks, engine, nhosts, gbit, rate))
                r = records[-1]
                print("  %-9s %d host(s): step %.3f s (compute %.3f), %.1f images/s"
                      % (engine, nhosts, r["step"], r["compute"], r["images_per_s"]), flush=True)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "load_average": os.getloadavg()}


def measure(args):
    from gluon_cnns.io import write_json
    result = {"command": "python tools/scaling.py " + " ".join(args.argv),
              "threads_per_process": 1, "env": ENV, "machine_before": machine(),
              "warmup": args.warmup, "link": [], "runs": []}
    for net in args.nets:
        measure_net(args, net, result["runs"], result["link"])
        result["machine_after"] = machine()
        write_json(args.out, result)
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tools/scaling.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure", help="measure on namespace hosts (root)")
    m.add_argument("--out", required=True, help="the JSON to write")
    m.add_argument("--nets", default="resnet18,googlenet,alexnet")
    m.add_argument("--rates", default="1,2.5,none", help="Gbit/s per link; none: unshaped")
    m.add_argument("--engines", default=",".join(ENGINES))
    m.add_argument("--steps", type=int, default=8, help="timed steps per run")
    m.add_argument("--warmup", type=int, default=2)
    m.add_argument("--quick", action="store_true",
                   help="lenet at 1 Gbit/s, 3 steps: checks the whole path in seconds")
    r = sub.add_parser("report", help="fit and print the tables for docs/SCALING.md")
    r.add_argument("json")
    args = p.parse_args(argv)
    args.argv = argv
    if args.what == "measure":
        if args.quick:
            args.nets, args.rates, args.steps, args.warmup = "lenet", "1", 3, 1
        args.nets = args.nets.split(",")
        args.engines = args.engines.split(",")
        bad = [n for n in args.nets if n not in NETS] + [e for e in args.engines
                                                           if e not in ENGINES]
        if bad:
            p.error("unknown net or engine %s; nets: %s; engines: %s"
                    % (", ".join(bad), ", ".join(NETS), ", ".join(ENGINES)))
        try:
            args.rates = [None if v == "none" else float(v) for v in args.rates.split(",")]
        except ValueError:
            p.error("--rates takes Gbit/s numbers or none, e.g. 1,2.5,none")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.what == "report":
        from gluon_cnns.errors import error_line
        from tools.scaling_report import report
        try:
            return report(args.json)
        except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable, or not ours
            print("scaling: %s is not a measurement of tools/scaling.py measure: %s"
                  % (args.json, error_line(e)), file=sys.stderr)
            return 2
    from tools.netns_hosts import HarnessError
    try:
        return measure(args)
    except HarnessError as e:
        print("scaling: namespace hosts: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

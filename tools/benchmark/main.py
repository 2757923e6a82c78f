"""The benchmark's command line: ``python scripts/benchmark.py`` (see ``--help``)."""
import argparse
import datetime
import json
import sys
import time

from gluon_cnns.cli.common import (OneLineParser, check_folder, check_output_file, check_program,
                                   parse, positive_float, positive_int)
from gluon_cnns.errors import GluonCNNsError

from . import __doc__ as _PACKAGE_DOC
from .argtypes import name_list, non_negative_int, per_net_dir, per_net_int, positive_int_list
from .end_to_end import E2E_TARGET_NETS, add_compute_floor, bench_e2e
from .library import LIBRARY_NETS, bench_library, library_targets
from .loader import bench_loader, check_loader_args, loader_targets
from .lowp import bench_bf16_training, bench_lowp, check_run, judge_lowp
from .machine import gemm_limit, load_average, machine_info, resolve_ctx
from .nets import bench_net
from .peer import PEER_NETS, bench_peer, peer_targets
from .profile import profile_train_step, profiler_session
from .report import render
from .threads import MACHINES, bench_threads, thread_targets

PROG = "gluon-cnns-benchmark"


def build_parser():
    """The benchmark's command line."""
    parser = OneLineParser(prog=PROG, description=_PACKAGE_DOC.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="Example: python scripts/benchmark.py --net lenet_bn,alexnet "
                                  "--repeat 5 --markdown")
    add = parser.add_argument
    add("--net", type=name_list, metavar="A,B", help="nets to time (default: all of the zoo)")
    add("--batch-size", type=per_net_int, default={}, metavar="N|NET=N,...",
        help="batch size, for every net or per net (default: each net's recipe)")
    add("--ctx", choices=("cpu", "gpu"), default="cpu", help="device (default: cpu)")
    add("--repeat", type=positive_int, default=3, metavar="N",
        help="timed samples per figure; the median is reported (default: 3)")
    add("--warmup", type=non_negative_int, default=1, metavar="N",
        help="untimed samples before them (default: 1)")
    add("--min-time", type=positive_float, default=0.5, metavar="S",
        help="a sample repeats the call until it lasts S seconds (default: 0.5)")
    add("--gemm-size", type=positive_int, default=2048, metavar="N",
        help="side of the square matrices of the GEMM-limit measurement (default: 2048)")
    add("--no-gluoncv", action="store_true", help="do not time GluonCV's nets")
    _add_suite_flags(add)
    _add_loader_flags(add)
    add("--data-dir", metavar="DIR", help="folder with the Fashion-MNIST files")
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    add("--json", metavar="FILE", help="write every figure to FILE (atomically)")
    add("--markdown", nargs="?", const="docs/BENCHMARKS.md", metavar="FILE",
        help="write the tables as Markdown (default file: docs/BENCHMARKS.md)")
    add("--render", metavar="JSON",
        help="measure nothing: print (and --markdown) the report saved in JSON by --json")
    return parser


def _add_suite_flags(add):
    """The flags of the optional suites: end to end, int8/bf16, bf16 training, profile."""
    add("--e2e-nets", type=name_list, metavar="A,B",
        help="nets for the end-to-end comparison with the tutorial loop (default: those of "
             "%s that are benchmarked; 'none' to skip)" % ", ".join(E2E_TARGET_NETS))
    add("--e2e-batches", type=per_net_int, default={None: 50}, metavar="N|NET=N,...",
        help="training batches per end-to-end sample (default: 50)")
    add("--e2e-repeat", type=positive_int, metavar="N",
        help="timed epochs per end-to-end figure (default: --repeat)")
    add("--e2e-workers", type=non_negative_int, default=4, metavar="N",
        help="DataLoader workers of the tutorial loop (default: 4, as in the tutorials)")
    add("--dtype", type=name_list, default=[], metavar="int8,bf16",
        help="also time int8 and/or bf16 inference of trained nets (trained in this run, "
             "or see --quant-runs)")
    add("--quant-nets", type=name_list, default=["lenet_bn"], metavar="A,B",
        help="nets trained for --dtype (default: lenet_bn)")
    add("--quant-runs", type=per_net_dir, default={}, metavar="NET=DIR,...",
        help="take these --dtype nets from a scripts/train.py --save-dir (its best.params) "
             "instead of training them here")
    add("--quant-train", type=per_net_int, default={None: 60000}, metavar="N|NET=N,...",
        help="training images for --dtype nets (default: 60000, all)")
    add("--quant-epochs", type=positive_int, default=1, metavar="N",
        help="epochs of that training (default: 1)")
    add("--quant-test", type=per_net_int, default={None: 10000}, metavar="N|NET=N,...",
        help="test images for the accuracies (default: 10000, all)")
    add("--calib-batches", type=positive_int, default=10, metavar="N",
        help="training batches for int8 calibration (default: 10)")
    add("--calib-mode", choices=("naive", "entropy"), default="naive",
        help="int8 calibration (default: naive = min/max)")
    add("--bf16-train", type=name_list, default=[], metavar="A,B",
        help="nets to train one epoch in fp32 and in bf16 (each in a fresh process)")
    add("--bf16-train-limit", type=per_net_int, default={None: 20000}, metavar="N|NET=N,...",
        help="training images for --bf16-train (default: 20000)")
    add("--profile", type=name_list, default=[], metavar="A,B",
        help="per-operator time of two training steps of these nets (mx.profiler)")
    _add_thread_flags(add)


def _add_thread_flags(add):
    """The flags of the thread matrix and of the PyTorch peer column."""
    add("--threads", type=name_list, default=[], metavar="A,B",
        help="thread matrix: epoch seconds of scripts/train.py for these nets under each "
             "thread policy, on a quiet and a busy machine (e.g. resnet_mnist,resnet18)")
    add("--threads-limit", type=per_net_int, default={None: 12800, "resnet18": 1024},
        metavar="N|NET=N,...", help="--limit-train of those epochs (default: 12800, "
                                    "resnet18 1024)")
    add("--threads-rounds", type=positive_int, default=2, metavar="N",
        help="interleaved rounds of the matrix; a cell is their median (default: 2)")
    add("--threads-machine", type=name_list, default=list(MACHINES), metavar="quiet,busy",
        help="machine states to measure (default: quiet,busy)")
    add("--threads-competitor", default="resnet18", metavar="NET",
        help="the second training that makes the machine busy, on all cores with libgomp's "
             "spinning (default: resnet18)")
    add("--peer", type=name_list, default=[], metavar="A,B",
        help="PyTorch peer column for these nets (%s), when torch is importable by "
             "--peer-python" % ",".join(PEER_NETS))
    add("--peer-python", metavar="PATH",
        help="the Python that runs PyTorch (default: this one)")
    add("--peer-rounds", type=positive_int, default=2, metavar="N",
        help="alternating rounds of ours / PyTorch processes (default: 2)")
    add("--library-path", type=name_list, default=[], metavar="A,B",
        help="a plain user script's training step against PyTorch's, for these nets (%s), "
             "when torch is importable by --peer-python" % ",".join(LIBRARY_NETS))
    add("--merge-into", metavar="JSON",
        help="put the thread, peer, loader and library-path sections this run measured (or "
             "--render read) into the report saved in JSON by --json, keeping its other "
             "sections; --markdown then renders that report")


def _add_loader_flags(add):
    """The flags of the own-image loader suite."""
    add("--loader", type=name_list, default=[], metavar="NET",
        help="own-image loader: images/s of ImageBatches (folder and pack) and of "
             "mx.io.ImageRecordIter against NET's training step, and NET's end-to-end "
             "slowdown when fed by the loader (e.g. resnet18)")
    add("--loader-images", type=positive_int, default=2048, metavar="N",
        help="photo-like JPEGs written for it, in 10 class folders (default: 2048)")
    add("--loader-photo-size", type=positive_int, default=256, metavar="PX",
        help="side of those JPEGs (default: 256)")
    add("--loader-side", type=positive_int, default=96, metavar="PX",
        help="side of the training input (default: 96)")
    add("--loader-batch-size", type=positive_int, default=64, metavar="N",
        help="batch size of the loaders and the training (default: 64)")
    add("--loader-workers", type=positive_int_list, default=[1, 2], metavar="N,M",
        help="decoding threads of ImageBatches to time; the default count is always added "
             "(default: 1,2)")
    add("--loader-record-threads", type=positive_int, default=2, metavar="N",
        help="preprocess_threads of mx.io.ImageRecordIter (default: 2)")
    add("--loader-steps", type=positive_int, default=8, metavar="N",
        help="training steps per end-to-end sample, from memory and from the folder "
             "(default: 8)")
    add("--loader-rounds", type=positive_int, default=5, metavar="N",
        help="interleaved rounds; each figure is their median (default: 5)")


def _check_names(names, what):
    """``names``, after checking that each is a net of the zoo."""
    from gluon_cnns.errors import UnknownModelError
    from gluon_cnns.models import model_spec
    for name in names:
        try:
            model_spec(name)
        except UnknownModelError as e:  # names the net and suggests close ones
            raise GluonCNNsError("%s: %s" % (what, e)) from None
    return names


def _quick(opts):
    """Under ``GLUON_CNNS_QUICK=EXAMPLES[,EPOCHS]`` (docs/TRAINING.md) every figure is one
    sample of one short call, on batches of at most EXAMPLES images: the same suites and
    report, in seconds. The data each suite trains on is cut by the loaders."""
    from gluon_cnns.data.quick import quick_caps
    examples, _ = quick_caps()
    if examples is None:
        return
    opts.repeat = opts.e2e_repeat = opts.threads_rounds = opts.peer_rounds = 1
    opts.loader_rounds = 1
    opts.warmup = 0
    opts.min_time = min(opts.min_time, 0.01)
    opts.gemm_size = min(opts.gemm_size, 256)
    opts.calib_batches = min(opts.calib_batches, 2)
    opts.loader_steps = min(opts.loader_steps, 2)
    opts.loader_images = min(opts.loader_images, max(examples, 20))
    opts.loader_batch_size = min(opts.loader_batch_size, examples)
    opts.batch_size = dict({None: examples}, **{k: min(v, examples)
                                                for k, v in opts.batch_size.items()})
    for flag in ("e2e_batches", "quant_train", "quant_test", "bf16_train_limit",
                 "threads_limit"):
        counts = getattr(opts, flag)
        setattr(opts, flag, {k: min(v, 2 if flag == "e2e_batches" else examples)
                             for k, v in counts.items()})


def _check_args(opts):
    """Fill in the defaults that depend on other flags; GluonCNNsError for a bad combination."""
    from gluon_cnns.models import list_models
    opts.net = _check_names(list_models() if opts.net is None else opts.net, "--net")
    if opts.e2e_repeat is None:
        opts.e2e_repeat = opts.repeat
    _quick(opts)
    if opts.e2e_nets is None:
        opts.e2e_nets = [n for n in E2E_TARGET_NETS if n in opts.net]
    _check_names(opts.e2e_nets, "--e2e-nets")
    bad = [d for d in opts.dtype if d not in ("int8", "bf16")]
    if bad:
        raise GluonCNNsError("--dtype takes int8 and/or bf16, got %s" % ", ".join(bad))
    _check_names(opts.quant_nets, "--quant-nets")
    extra = [n for n in opts.quant_runs if n not in opts.quant_nets]
    if extra:
        raise GluonCNNsError("--quant-runs names %s, which --quant-nets leaves out; add it: "
                             "--quant-nets %s" % (", ".join(extra),
                                                  ",".join(opts.quant_nets + extra)))
    if opts.quant_runs and not opts.dtype:
        raise GluonCNNsError("--quant-runs needs --dtype int8 and/or bf16")
    for name, folder in opts.quant_runs.items():
        check_run(name, folder)
    _check_names(opts.bf16_train, "--bf16-train")
    _check_names(opts.profile, "--profile")
    _check_names(opts.threads + [opts.threads_competitor], "--threads")
    bad = [m for m in opts.threads_machine if m not in MACHINES]
    if bad:
        raise GluonCNNsError("--threads-machine takes quiet and/or busy, got %s" % ", ".join(bad))
    _check_names(opts.loader, "--loader")
    check_loader_args(opts)
    bad = [n for n in opts.library_path if n not in LIBRARY_NETS]
    if bad:
        raise GluonCNNsError("--library-path: no comparison of %s; choose from %s"
                             % (", ".join(bad), ",".join(LIBRARY_NETS)))
    bad = [n for n in opts.peer if n not in PEER_NETS]
    if bad:
        raise GluonCNNsError("--peer: no PyTorch twin of %s; choose from %s"
                             % (", ".join(bad), ",".join(PEER_NETS)))
    for flag in ("batch_size", "e2e_batches", "quant_train", "quant_test", "bf16_train_limit",
                 "threads_limit"):
        _check_names([k for k in getattr(opts, flag) if k is not None],
                     "--" + flag.replace("_", "-"))


def _check_paths(opts):
    """Every path flag, checked before anything is measured (a bad output path would
    otherwise fail only after the whole run)."""
    if opts.merge_into is not None:
        load_report(opts.merge_into)  # one line now, not after the run, if it is no report
    for flag, path in (("--json", opts.json), ("--markdown", opts.markdown),
                       ("--merge-into", opts.merge_into)):
        if path is not None:
            check_output_file(path, flag)
    if opts.data_dir is not None:
        check_folder(opts.data_dir, "--data-dir",
                     "pass the folder holding the Fashion-MNIST files")
    if opts.peer_python is not None:
        check_program(opts.peer_python, "--peer-python",
                      "give a Python that can import torch, e.g. /tmp/torch-venv/bin/python "
                      "(see docs/SPEED_NOTES.md)")


def _say(*parts):
    """Progress on stderr, so that stdout holds only the report."""
    print(*parts, file=sys.stderr, flush=True)


def _new_report(opts, command, ctx):
    """The report before any measurement: the run's command, machine and settings."""
    settings = {k: v for k, v in vars(opts).items() if k not in ("json", "markdown")}
    return {"schema": 1, "command": command, "started":
            datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine_info(), "ctx": str(ctx),
            "settings": json.loads(json.dumps(settings, default=str)),
            "nets": [], "e2e": [], "low_precision": [], "bf16_training": [], "profiles": {},
            "threads": None, "peer": None, "loader": None, "library_path": None, "notes": [],
            "section_seconds": {}}


def run(opts, command):
    """Run every measurement ``opts`` asks for; returns the report dict."""
    import mxnet as mx
    _check_args(opts)
    ctx = resolve_ctx(opts.ctx)
    start = time.time()
    report = _new_report(opts, command, ctx)

    def timed(section, label, fn, *args):
        """``fn(*args)``, announced on stderr, its time added to section_seconds."""
        _say(label + " ...")
        begin = time.time()
        result = fn(*args)
        seconds = report["section_seconds"]
        seconds[section] = seconds.get(section, 0.0) + time.time() - begin
        return result

    def gemm():
        return gemm_limit(ctx, opts.gemm_size, opts.warmup, opts.repeat, opts.min_time)

    report["gemm"] = timed("gemm", "measuring the GEMM limit", gemm)
    for name in opts.net:
        report["nets"].append(timed("nets", "timing %s" % name, bench_net, name, ctx, opts))
    by_name = {r["net"]: r for r in report["nets"]}
    for name in opts.e2e_nets:
        record = timed("e2e", "end to end: %s" % name, bench_e2e, name, ctx, opts)
        report["e2e"].append(add_compute_floor(record, by_name.get(name)))
    if opts.dtype and ctx.device_type != "cpu":
        report["notes"].append("--dtype skipped: int8/bf16 need the CPU (oneDNN)")
    elif opts.dtype:
        for name in opts.quant_nets:
            report["low_precision"].append(timed("low_precision", "int8/bf16: training and "
                                                 "converting %s" % name, bench_lowp, name, ctx,
                                                 opts))
    for name in opts.bf16_train:
        report["bf16_training"].append(timed("bf16_training", "bf16 training: %s" % name,
                                             bench_bf16_training, name, opts))
    if opts.profile:
        with profiler_session():
            for name in opts.profile:
                report["profiles"][name] = timed("profiles", "profiling %s" % name,
                                                 profile_train_step, name, ctx, opts)
    if opts.threads:
        report["threads"] = timed("threads", "thread matrix", bench_threads, opts.threads, opts,
                                  _say)
    if opts.peer:
        report["peer"] = timed("peer", "PyTorch peer column", bench_peer, opts.peer, opts, _say)
    if opts.library_path:
        report["library_path"] = timed("library_path", "library path", bench_library,
                                       opts.library_path, opts, _say)
    if opts.loader:
        report["loader"] = timed("loader", "own-image loader", bench_loader, opts.loader[0], ctx,
                                 opts, _say)
    # Once more at the end: on a shared machine the ceiling moves.
    report["gemm_end"] = timed("gemm", "measuring the GEMM limit again", gemm)
    report["machine"]["load_average_end"] = load_average()
    report["seconds"] = time.time() - start
    report["targets"] = targets(report)
    mx.nd.waitall()
    return report


def targets(report):
    """Every target this run measured: [{what, target, measured, met}]."""
    rows = []
    for r in report["e2e"]:
        if r.get("target") and "speedup" in r:
            rows.append({"what": "end to end %s" % r["net"], "target": r["target"],
                         "measured": r["speedup"], "met": r["met"],
                         "measured_static": r["speedup_static"], "met_static": r["met_static"]})
    for r in report["low_precision"]:
        for variant in ("int8", "bf16"):
            v = r["variants"].get(variant)
            if v is not None:
                rows.append({"what": "%s %s inference" % (r["net"], variant),
                             "target": v["target_speedup"], "measured": v["speedup_vs_fp32"],
                             "accuracy_change_points": v["accuracy_change_points"],
                             "accuracy_judged": r.get("accuracy_judged", True),
                             "met": v["met"]})
    return (rows + thread_targets(report.get("threads")) + peer_targets(report.get("peer"))
            + loader_targets(report.get("loader"))
            + library_targets(report.get("library_path"), report.get("machine")))


def load_report(path):
    """A report saved with --json, its verdicts recomputed with the current rules."""
    from gluon_cnns.io import read_json
    try:
        report = read_json(path)
    except (OSError, ValueError) as e:
        raise GluonCNNsError("--render: cannot read %s (%s); pass a file written by --json"
                             % (path, e)) from None
    report["low_precision"] = [judge_lowp(r) for r in report.get("low_precision", [])]
    report["targets"] = targets(report)
    return report


MERGED = ("threads", "peer", "loader", "library_path")


def merge_into(path, report):
    """The report saved in ``path`` with the sections of :data:`MERGED` that ``report``
    measured (each keeps the command and machine of its run), written back to ``path``."""
    from gluon_cnns.io import write_json
    saved = load_report(path)
    for section in MERGED:
        if report.get(section):
            saved[section] = dict(report[section], command=report["command"],
                                  machine=report["machine"])
    saved["targets"] = targets(saved)
    write_json(path, saved)
    return saved


def main(argv=None):
    """Entry point; returns the exit code."""
    from gluon_cnns.cli.common import configure_threads
    failed = configure_threads(PROG)  # before MXNet is imported: all cores, short spinning
    if failed:
        return failed
    argv = sys.argv[1:] if argv is None else list(argv)
    opts, code = parse(build_parser(), argv)
    if opts is None:  # --help, or a usage error already printed by the parser
        return code
    command = " ".join(["python scripts/benchmark.py"] + argv)
    try:
        _check_paths(opts)
        report = load_report(opts.render) if opts.render else run(opts, command)
        if opts.merge_into:
            report = merge_into(opts.merge_into, report)
    except GluonCNNsError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 2
    print(render(report))
    from gluon_cnns.io import write_json, write_text
    if opts.json and not opts.render:
        write_json(opts.json, report)
    if opts.markdown:
        write_text(opts.markdown, render(report, markdown=True))
    return 0

"""The report: the figures of a run (or of a saved --json file) as text or Markdown tables."""
from .library import library_lines
from .lowp import MAX_ACCURACY_LOSS
from .nets import TRAIN_FLOPS_FACTOR


def _fmt_stats(stats, digits=0):
    """'median (min-max)' of a stats dict."""
    fmt = "%%.%df" % digits
    return "%s (%s-%s)" % (fmt % stats["median"], fmt % stats["min"], fmt % stats["max"])


def _table(header, rows, markdown):
    """An aligned text table, or a Markdown one."""
    rows = [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def _shape_text(shape):
    """(1, 28, 28) -> '1x28x28'."""
    return "x".join(map(str, shape))


def _net_rows(nets):
    """Header and rows of the per-net table."""
    header = ["net", "input", "batch", "params", "MFLOP/img", "fwd imperative img/s",
              "fwd hybrid img/s", "hybrid/imp", "train step img/s", "GEMM limit GFLOP/s",
              "fwd GFLOP/s (% limit)", "train GFLOP/s (% limit)"]
    rows = [[r["net"], _shape_text(r["input_shape"]), r["batch_size"],
             "{:,}".format(r["params"]), "%.1f" % (r["flops_per_image"] / 1e6),
             _fmt_stats(r["forward_imperative"]), _fmt_stats(r["forward_hybrid"]),
             "%.2fx" % r["hybrid_speedup"], _fmt_stats(r["train_step"]),
             "%.0f" % r["gemm_limit_gflops"],
             "%.1f (%.0f%%)" % (r["gflops"]["forward_hybrid"],
                                r["pct_of_gemm_limit"]["forward_hybrid"]),
             "%.1f (%.0f%%)" % (r["gflops"]["train_step"], r["pct_of_gemm_limit"]["train_step"])]
            for r in nets]
    return header, rows


def _gluoncv_rows(nets):
    """Header and rows of the GluonCV table."""
    header = ["net", "GluonCV net", "params ours / theirs", "fwd imperative ours/theirs",
              "fwd hybrid ours/theirs", "train step ours/theirs", "difference"]
    rows = []
    for r in nets:
        g = r["gluoncv"]
        if g is None:
            if r["gluoncv_note"]:
                rows.append([r["net"], "-", "-", "-", "-", "-", r["gluoncv_note"]])
            continue
        rows.append([r["net"], g["model"], "{:,} / {:,}".format(r["params"], g["params"]),
                     "%.2f" % g["ratio"]["forward_imperative"],
                     "%.2f" % g["ratio"]["forward_hybrid"], "%.2f" % g["ratio"]["train_step"],
                     g["note"]])
    return header, rows


def _e2e_rows(e2e):
    """Header and rows of the end-to-end table."""
    header = ["net", "input", "batches x batch", "tutorial s", "ours s (hybridize())",
              "speed-up", "ours s (static_alloc, as scripts/train.py)", "speed-up",
              "train steps alone s", "largest possible speed-up", "target",
              "met (plain / static)"]
    rows = []
    for r in e2e:
        if "skipped" in r:
            rows.append([r["net"], _shape_text(r["input_shape"])] + ["-"] * 9 + [r["skipped"]])
            continue
        floor = "-" if r.get("compute_floor_seconds") is None else "%.2f" % (
            r["compute_floor_seconds"])
        best = "-" if r.get("max_speedup") is None else "%.2fx" % r["max_speedup"]
        target = "%.1fx" % r["target"] if r["target"] else "-"
        met = "-" if r["met"] is None else "%s / %s" % (
            "yes" if r["met"] else "NO", "yes" if r["met_static"] else "NO")
        rows.append([r["net"], _shape_text(r["input_shape"]),
                     "%d x %d" % (r["batches"], r["batch_size"]),
                     _fmt_stats(r["tutorial_seconds"], 2), _fmt_stats(r["ours_seconds"], 2),
                     "%.2fx" % r["speedup"], _fmt_stats(r["ours_static_seconds"], 2),
                     "%.2fx" % r["speedup_static"], floor, best, target, met])
    return header, rows


def _lowp_rows(lowp):
    """Header and rows of the int8/bf16 inference table."""
    header = ["net", "variant", "img/s", "x fp32 hybrid", "x fp32 fused", "test acc",
              "acc change (points)", "agrees with fp32", "target", "met", "trained"]
    rows = []
    order = ("fp32", "fp32_fused", "int8", "bf16")  # JSON files keep keys sorted, not in order
    for r in lowp:
        for name in sorted(r["variants"], key=lambda n: order.index(n) if n in order else 9):
            v = r["variants"][name]
            target = "%.1fx, >= -%.1f pt" % (v["target_speedup"], MAX_ACCURACY_LOSS) \
                if "target_speedup" in v else "-"
            met = ("yes" if v["met"] else "NO") if "met" in v else "-"
            if "met" in v and not r.get("accuracy_judged", True):
                met += " (speed only: fp32 net at %.0f%%, too weakly trained to judge "\
                       "accuracy)" % (100 * r["variants"]["fp32"]["test_acc"])
            rows.append([r["net"], name, _fmt_stats(v["images_per_sec"]),
                         "%.2f" % v["speedup_vs_fp32"], "%.2f" % v["speedup_vs_fp32_fused"],
                         "%.4f" % v["test_acc"], "%+.2f" % v["accuracy_change_points"],
                         "%.2f%%" % (100 * v["agreement_with_fp32"]), target, met,
                         _trained_text(r.get("training")) if name == "fp32" else ""])
    return header, rows


def _trained_text(info):
    """How the fp32 net of an int8/bf16 record was trained, in a few words."""
    if not info:
        return "-"
    where = "by %s" % info["run"] if info.get("run") else "in this run"
    epochs = info.get("epochs")
    return "%s epoch(s) on %d images, %s" % (epochs if epochs else "?", info["train_images"],
                                            where)


def _bf16_train_rows(runs):
    """Header and rows of the bf16 training table."""
    header = ["net", "train images", "fp32 img/s", "bf16 img/s", "bf16/fp32",
              "fp32 img/s (static)", "bf16 img/s (static)", "bf16/fp32 (static)",
              "fp32 test acc (1 epoch)", "bf16 test acc (1 epoch)", "change (points)"]
    speed = "images_per_sec_epoch2"
    rows = [[r["net"], r["fp32"]["train_images"], "%.0f" % r["fp32"][speed],
             "%.0f" % r["bf16"][speed], "%.2fx" % r["speedup"],
             "%.0f" % r["fp32_static"][speed], "%.0f" % r["bf16_static"][speed],
             "%.2fx" % r["speedup_static"],
             "%.4f" % r["fp32"]["test_acc_epoch1"], "%.4f" % r["bf16"]["test_acc_epoch1"],
             "%+.2f" % r["accuracy_change_points"]] for r in runs]
    return header, rows


def _thread_rows(section):
    """Header and rows of the thread matrix: epoch seconds per policy, the default's ratio."""
    labels = section["policies"]
    header = ["net", "machine"] + labels + ["default's threads", "best", "default / best",
                                            "met (<= 1.15)"]
    rows = []
    for r in section["rows"]:
        cells = [_fmt_stats(r["cells"][label]["seconds"], 1) for label in labels]
        threads = "/".join(map(str, r["cells"]["default"]["threads"]))
        rows.append([r["net"], r["machine"]] + cells + [
            threads, r["best"], "%.2fx" % r["default_vs_best"], "yes" if r["met"] else "NO"])
    return header, rows


def _thread_lines(section):
    """What the matrix's columns set (in the columns' order: a JSON file keeps keys
    sorted), and its load averages."""
    variables = section["policy_variables"]
    lines = ["%s: %s" % (label, " ".join("%s=%s" % kv for kv in sorted(variables[label].items()))
                         or "no thread variable: gluon_cnns.threads decides")
             for label in section["policies"]]
    loads = [run[0] for r in section["rows"] for c in r["cells"].values() for run in c["load"]]
    lines.append("%d physical cores; busy = scripts/train.py --net %s on %d threads spinning "
                 "(GOMP_SPINCOUNT=300000) in the background; %d interleaved rounds; 1-minute "
                 "load average %.1f-%.1f during the runs"
                 % (section["cores"], section["competitor"], section["cores"],
                    section["rounds"], min(loads), max(loads)))
    lines.append("epochs: --limit-train %s, --limit-test 256, --seed 1; seconds as "
                 "scripts/train.py prints them (test evaluation included), median (min-max)"
                 % ", ".join("%s %d" % kv for kv in sorted(section["limits"].items())))
    return lines


def _peer_rows(section):
    """Header and rows of the PyTorch peer column."""
    header = ["net", "input", "batch", "params ours = theirs", "threads ours / PyTorch",
              "train ours img/s", "train PyTorch img/s", "ours/PyTorch", "inference ours img/s",
              "inference PyTorch img/s", "ours/PyTorch", "target", "met (train / inference)",
              "ours/PyTorch with our thread variables (train / inference)",
              "inference ours fuse_for_cpu img/s (ours/PyTorch)"]
    predictor = any("inference_predictor" in r["ours"] for r in section.get("nets", []))
    if predictor:
        header.append("inference ours load_predictor img/s (ours/PyTorch)")
    rows = []
    for r in section.get("nets", []):
        o, t = r["ours"], r["pytorch"]
        rows.append([r["net"] + ("" if not r["kwargs"] else " (%s)" % ", ".join(
                        "%s=%s" % kv for kv in sorted(r["kwargs"].items()))),
                     _shape_text(r["input_shape"]), r["batch_size"],
                     "{:,} {} {:,}".format(o["params"], "=" if r["params_equal"] else "!=",
                                           t["params"]),
                     "%d / %d" % (o["threads"], t["threads"]),
                     _fmt_stats(o["train_step"]), _fmt_stats(t["train_step"]),
                     "%.2fx" % r["train_step_ratio"], _fmt_stats(o["inference"]),
                     _fmt_stats(t["inference"]), "%.2fx" % r["inference_ratio"],
                     ">= %.1fx" % r["target"], "%s / %s" % (
                         "yes" if r["train_step_met"] else "NO",
                         "yes" if r["inference_met"] else "NO"),
                     "%.2fx / %.2fx" % (r["train_step_ratio_our_threads"],
                                        r["inference_ratio_our_threads"]),
                     _ratio_cell(r, "inference_fused")] + (
                         [_ratio_cell(r, "inference_predictor")] if predictor else []))
    return header, rows


def _ratio_cell(record, figure):
    """'2,345 (2,300-2,400) (1.23x)' of our ``figure`` and its ratio to PyTorch, or '-'."""
    if figure not in record["ours"]:
        return "-"
    return "%s (%.2fx)" % (_fmt_stats(record["ours"][figure]), record[figure + "_ratio"])


def _ratio_stats(stats):
    """'25.6x (18.0-30.1)' of a stats dict of ratios."""
    return "%.2fx (%.2f-%.2f)" % (stats["median"], stats["min"], stats["max"])


def _loader_rows(section):
    """Header and rows of the own-image loader: images/s, each over the training step's, and
    the cores the process kept busy meanwhile."""
    net, threads = section["training"]["net"], section["threads"]["omp_threads"]
    rec, e2e = section["record_iter"], section["end_to_end"]
    header = ["what", "source", "threads", "img/s", "/ training step (per round)",
              "cores used"]

    def row(what, source, threads_, figures, ratio):
        return [what, source, threads_, _fmt_stats(figures["images_per_sec"]), ratio,
                "%.1f" % figures["cores_used"]["median"]]
    rows = [row("ImageBatches alone (Pillow, thread pool)",
                {"folder": "folder of JPEGs", "rec": "its RecordIO pack"}[r["source"]],
                "%d worker%s%s" % (r["workers"], "" if r["workers"] == 1 else "s",
                                   " (default)" if r["default"] else ""),
                r, _ratio_stats(r["vs_training"])) for r in section["runs"]]
    rows.append(row("mx.io.ImageRecordIter alone (C++)", "its RecordIO pack",
                    "preprocess_threads %d (MXNet runs %d)" % (rec["preprocess_threads"],
                                                                rec["threads_used"]),
                    rec, _ratio_stats(rec["vs_training"])))
    rows.append(row("%s training step, %d steps" % (net, e2e["steps"]),
                    "one random batch in memory", "%d OpenMP" % threads, section["training"],
                    "1.00x"))
    rows.append(row("%s training, %d steps" % (net, e2e["steps"]), "ImageBatches, folder",
                    "%d OpenMP + %d workers" % (threads, e2e["workers"]),
                    dict(e2e, images_per_sec=e2e["loader_images_per_sec"]),
                    _ratio_stats(e2e["vs_training"])))
    return header, rows


def _loader_lines(section):
    """The loader's verdict, what it decoded, and its threads and load."""
    v, e2e, p, t = (section["verdict"], section["end_to_end"], section["photos"],
                    section["threads"])
    loads = [load[0] for load in section["loads"] if load]
    return [
        "verdict: the folder loader (%d workers, the default) decodes %.0f img/s, %.1fx %s's "
        "training step (%.0f img/s): target >= %.1fx %s; %d training steps fed by it take "
        "%s the time of the same steps from memory (medians %.2f s vs %.2f s)"
        % (section["default_workers"], v["loader_images_per_sec"], v["ratio"],
           section["training"]["net"], v["training_images_per_sec"], v["target"],
           "met" if v["met"] else "NOT met", e2e["steps"],
           _ratio_stats(e2e["slowdown_per_round"]), e2e["loader_seconds"]["median"],
           e2e["memory_seconds"]["median"]),
        "ratios are medians of the rounds' own ratios (min-max): the two figures of a round "
        "share its load; 'cores used' is this process's CPU seconds (all threads) per second",
        "images: %d JPEGs of %dx%d RGB, quality %d, %.1f KB on average, in 10 class folders: "
        "Fashion-MNIST test images upscaled, colourised, film grain %.0f (the decode cost of "
        "a small photo); input %dx%dx%d, random resized crop + mirror, ImageNet mean/std, "
        "batch %d" % (p["count"], p["size"], p["size"], p["quality"], p["mean_bytes"] / 1000,
                      p["grain"], section["side"], section["side"], section["channels"],
                      section["batch_size"]),
        "threads: MXNet %d OpenMP thread%s (%s), %d cores; %d interleaved round%s, median "
        "(min-max); 1-minute load average %s during the rounds"
        % (t["omp_threads"], "" if t["omp_threads"] == 1 else "s",
           " ".join("%s=%s" % kv for kv in sorted(t["env"].items())) or "no variable",
           t["cores"], section["rounds"], "" if section["rounds"] == 1 else "s",
           "%.1f-%.1f" % (min(loads), max(loads)) if loads else "unknown")]


def _target_rows(targets_):
    """Header and rows of the targets table."""
    header = ["target", "wanted", "measured", "met"]
    rows = []
    for t in targets_:
        measured = "%.2fx" % t["measured"]
        if "measured_static" in t:
            measured += " (%.2fx with static_alloc)" % t["measured_static"]
        if "accuracy_change_points" in t:
            measured += ", accuracy %+.2f points" % t["accuracy_change_points"]
            if not t.get("accuracy_judged", True):
                measured += " (not judged: weakly trained net)"
        wanted = t.get("wanted") or ">= %.1fx" % t["target"]
        if "accuracy_change_points" in t:
            wanted += ", loss <= %.1f points" % MAX_ACCURACY_LOSS
        met = "yes" if t["met"] else "NO"
        if "met_static" in t:
            met += " / %s" % ("yes" if t["met_static"] else "NO")
        rows.append([t["what"], wanted, measured, met])
    return header, rows


def _profile_rows(profiles, order=()):
    """Header and rows of the profile table, nets in ``order`` (as asked for) first."""
    header = ["net", "operator", "ms (2 steps)", "calls", "share"]
    rows = []
    names = [n for n in order if n in profiles] + [n for n in profiles if n not in order]
    for name in names:
        p = profiles[name]
        for o in p["operators"]:
            rows.append([name, o["op"], "%.1f" % o["ms"], o["calls"],
                         "%.0f%%" % (100 * o["share"])])
        conv = "-" if p["conv_gflops"] is None else "%.1f" % p["conv_gflops"]
        rows.append([name, "(convolutions: %.0f%% of the time, %s GFLOP/s; all operators: "
                     "%.1f GFLOP/s)" % (100 * p["conv_share"], conv, p["all_ops_gflops"]),
                     "%.1f" % p["total_ms"], "", ""])
    return header, rows


def machine_lines(report):
    """The header: command, date, machine, GEMM limit."""
    m, g = report["machine"], report["gemm"]
    lines = ["command: %s" % report["command"],
             "date: %s, %.0f s" % (report["started"], report.get("seconds", 0)),
             "machine: %s, %s cores; Python %s, MXNet %s, numpy %s"
             % (m["cpu"], m["cores"], m["python"], m["mxnet"], m["numpy"]),
             "MXNet features: %s" % " ".join(m["mxnet_features"])]
    if "threads" in m:
        lines.append("threads: %d OpenMP (%s; gluon_cnns.threads' default unless the command "
                     "set them)" % (m["threads"], " ".join(
                         "%s=%s" % kv for kv in sorted(m["thread_env"].items())) or "no variable"))
    lines += ["bf16 instructions: %s; load average at start %s, at end %s"
              % ("yes" if m["bf16_instructions"] else "no",
                 _load_text(m.get("load_average_start")), _load_text(m.get("load_average_end"))),
              "GEMM limit (float32 %dx%d) at the start: %.1f GFLOP/s = best sample of "
              "mx.nd.dot %s and oneDNN FullyConnected %s" % (
                  g["size"], g["size"], g["limit_gflops"], _fmt_stats(g["dot_gflops"], 1),
                  _fmt_stats(g["onednn_gflops"], 1))]
    end = report.get("gemm_end")
    if end:
        lines.append("GEMM limit at the end: %.1f GFLOP/s (mx.nd.dot %s, oneDNN %s)" % (
            end["limit_gflops"], _fmt_stats(end["dot_gflops"], 1),
            _fmt_stats(end["onednn_gflops"], 1)))
    return lines


def _load_text(load):
    """Load averages as '1.00/0.50/0.20'."""
    return "-" if not load else "/".join("%.2f" % x for x in load)


_NOTES = [
    "Figures are medians of the samples, min-max in parentheses; images/s unless noted. "
    "What limits each net, and what was changed to get here: docs/SPEED_NOTES.md.",
    "End to end: both loops train the same net from the same initial weights on the same "
    "real Fashion-MNIST images; the tutorial's DataLoader workers start before the clock. "
    "'train steps alone' is batches / the per-net table's training-step speed (random data, "
    "static_alloc): a loader and loop can only add to it, up to the noise of the machine, so "
    "tutorial / that time is the largest speed-up any loader and loop could show.",
    "Training GFLOP/s count a training step as %dx the forward FLOPs (forward, plus the "
    "input-gradient and weight-gradient products of the backward pass)." % TRAIN_FLOPS_FACTOR,
    "FLOPs count conv, dense and pooling layers (a multiply-add is 2 FLOPs); '% limit' is of "
    "the GEMM limit measured again just before each net (the machine is shared; a figure "
    "above 100% means the load changed during the net's measurement).",
    "Ratios ours/theirs > 1 mean ours is faster. Our net and its GluonCV twin are timed "
    "together, their samples interleaved (ours, theirs, ours, ...), so that a change in the "
    "machine's load hits both alike. The machine may be shared: compare ratios within one "
    "run only.",
]


def render(report, markdown=False):
    """The whole report as text (or Markdown)."""
    out = []
    heading = (lambda t: "\n## " + t + "\n") if markdown else (lambda t: "\n== " + t + " ==")
    if markdown:
        out.append("# Benchmarks\n")
        out.append("Produced by `scripts/benchmark.py` (`tools/benchmark/`).\n")
        out.append("```\n" + "\n".join(machine_lines(report)) + "\n```")
    else:
        out.extend(machine_lines(report))
    sections = [("Per net (random data, recipe input size and batch)", report["nets"], _net_rows),
                ("GluonCV model zoo, same input and batch", report["nets"], _gluoncv_rows),
                ("End to end: our loader + loop (hybridized) vs the tutorial's DataLoader + "
                 "loop", report["e2e"], _e2e_rows),
                ("int8 / bf16 inference of a trained net", report["low_precision"],
                 _lowp_rows),
                ("bf16 vs fp32 training (fresh process each)", report["bf16_training"],
                 _bf16_train_rows)]
    for title, data, rows_fn in sections:
        if data:
            header, rows = rows_fn(data)
            if rows:
                out.append(heading(title))
                out.append(_table(header, rows, markdown))
    threads, peer = report.get("threads"), report.get("peer")
    if threads:
        out.append(heading("Thread policies: epoch seconds of scripts/train.py"))
        out.append(_table(*_thread_rows(threads), markdown))
        out.extend(("* " if markdown else "- ") + line for line in _thread_lines(threads))
    if peer:
        out.append(heading("PyTorch peer (eager, same architecture, batch and SGD momentum 0.9)"))
        if "skipped" in peer:
            out.append("skipped: %s" % peer["skipped"])
        else:
            out.append(_table(*_peer_rows(peer), markdown))
            out.append(("* " if markdown else "- ") + "PyTorch %s under %s; %d alternating "
                       "rounds of fresh processes, each figure the median of the rounds' "
                       "medians" % (peer["torch"], peer["python"], peer["rounds"]))
    if report.get("library_path"):
        out.append(heading("Library path: a plain user script vs PyTorch eager"))
        out.extend(library_lines(report["library_path"],
                                 lambda header, rows: _table(header, rows, markdown),
                                 report.get("machine")))
    if report.get("loader"):
        out.append(heading("Own-image loader"))
        out.append(_table(*_loader_rows(report["loader"]), markdown))
        out.extend(("* " if markdown else "- ") + line for line in _loader_lines(report["loader"]))
    if report.get("targets"):
        out.append(heading("Targets of the issue"))
        out.append(_table(*_target_rows(report["targets"]), markdown))
    if report.get("profiles"):
        out.append(heading("Training-step profile (mx.profiler, operator bulking off)"))
        # A JSON file keeps keys sorted: the order asked for is in the settings.
        order = report.get("settings", {}).get("profile") or ()
        out.append(_table(*_profile_rows(report["profiles"], order), markdown))
    out.append(heading("Notes"))
    out.extend(("* " if markdown else "- ") + n for n in _NOTES + report.get("notes", []))
    return "\n".join(out) + "\n"


"""Tests of the benchmark, int8 quantization and the bf16 paths (correctness only, no timings)."""
import json
import os
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import gluon_cnns
from gluon_cnns.cpu import bf16_supported
from gluon_cnns.data import load_data_fashion_mnist
from gluon_cnns.errors import GluonCNNsError
from gluon_cnns.inference.quantize import fuse_for_cpu, quantize_net, to_bfloat16
from gluon_cnns.training import train
from tools.benchmark import argtypes, lowp, nets, timing
from tools.benchmark import main as benchmark  # the command line: benchmark.main(argv)


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")

# The smallest settings that still run every code path.
QUICK = ["--repeat", "1", "--warmup", "0", "--min-time", "0.01", "--gemm-size", "128"]

STATS_KEYS = {"median", "min", "max", "samples"}
NET_KEYS = {"net", "input_shape", "batch_size", "params", "learnable_params", "flops_per_image",
            "forward_imperative", "forward_hybrid", "train_step", "hybrid_speedup", "gflops",
            "pct_of_gemm_limit", "gluoncv", "gluoncv_note", "gemm_limit_gflops"}
E2E_KEYS = {"net", "batches", "batch_size", "input_shape", "target", "ours_seconds",
            "ours_static_seconds", "tutorial_seconds", "speedup", "speedup_static", "met",
            "met_static", "compute_floor_seconds", "max_speedup"}
VARIANT_KEYS = {"images_per_sec", "test_acc", "agreement_with_fp32", "speedup_vs_fp32",
                "speedup_vs_fp32_fused", "accuracy_change_points"}


# ---------------------------------------------------------------- the benchmark run

def test_benchmark_writes_json_with_every_field(tmp_path, capsys):
    out, md = tmp_path / "bench.json", tmp_path / "BENCH.md"
    code = benchmark.main(["--net", "lenet,resnet_mnist"] + QUICK + [
        "--e2e-nets", "lenet", "--e2e-batches", "2", "--e2e-workers", "1",
        "--json", str(out), "--markdown", str(md)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"schema", "command", "started", "seconds", "machine", "ctx", "settings", "gemm",
            "nets", "e2e", "low_precision", "bf16_training", "profiles", "targets", "gemm_end",
            "section_seconds"} <= set(report)
    assert {"cpu", "cores", "mxnet", "mxnet_features"} <= set(report["machine"])
    assert "MKLDNN" in report["machine"]["mxnet_features"]
    gemm = report["gemm"]
    assert STATS_KEYS <= set(gemm["dot_gflops"]) and gemm["limit_gflops"] > 0
    assert [r["net"] for r in report["nets"]] == ["lenet", "resnet_mnist"]
    for r in report["nets"]:
        assert NET_KEYS <= set(r)
        for key in ("forward_imperative", "forward_hybrid", "train_step"):
            assert STATS_KEYS <= set(r[key]) and r[key]["median"] > 0
        assert r["input_shape"] == [1, 28, 28]
        assert r["flops_per_image"] == gluon_cnns.flops(gluon_cnns.get_model(r["net"]),
                                                        (1, 1, 28, 28))
        assert r["gflops"]["train_step"] > 0 and r["gluoncv"] is None
    assert report["nets"][0]["batch_size"] == 256      # lenet's recipe
    assert report["nets"][1]["batch_size"] == 64       # the lecture recipe
    (e2e,) = report["e2e"]
    assert E2E_KEYS <= set(e2e) and e2e["batches"] == 2
    # The speedup is the tutorial loop's time over ours, and its verdict follows the target.
    assert e2e["speedup"] == pytest.approx(e2e["tutorial_seconds"]["median"]
                                           / e2e["ours_seconds"]["median"])
    assert e2e["met"] == (None if e2e["target"] is None else e2e["speedup"] >= e2e["target"])
    assert e2e["compute_floor_seconds"] > 0  # lenet was timed in the same run
    printed = capsys.readouterr().out
    assert "Per net" in printed and "End to end" in printed and "3x the forward FLOPs" in printed
    text = md.read_text()
    assert text.startswith("# Benchmarks") and "| lenet |" in text and "command:" in text
    # --render re-prints a saved report without measuring anything.
    md.unlink()
    assert benchmark.main(["--render", str(out), "--markdown", str(md)]) == 0
    assert md.read_text() == text


def test_committed_benchmarks_md_is_the_rendering_of_its_json(tmp_path, capsys):
    """docs/BENCHMARKS.md is what --render makes of docs/benchmark.json, byte for byte."""
    md = tmp_path / "BENCHMARKS.md"
    assert benchmark.main(["--render", os.path.join(DOCS, "benchmark.json"),
                           "--markdown", str(md)]) == 0
    with open(os.path.join(DOCS, "BENCHMARKS.md"), "rb") as f:
        assert md.read_bytes() == f.read()


def test_render_of_a_missing_file_is_one_line(tmp_path, capsys):
    assert benchmark.main(["--render", str(tmp_path / "nope.json")]) == 2
    assert "--render" in capsys.readouterr().err


def test_weakly_trained_net_is_judged_on_speed_only():
    speed = {"median": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]}
    record = {"variants": {
        "fp32": {"images_per_sec": speed, "test_acc": 0.2},
        "fp32_fused": {"images_per_sec": speed, "test_acc": 0.2},
        "int8": {"images_per_sec": dict(speed, median=3.0), "test_acc": 0.17}}}
    lowp.judge_lowp(record)
    assert not record["accuracy_judged"] and record["variants"]["int8"]["met"]
    record["variants"]["fp32"]["test_acc"] = 0.8
    record["variants"]["int8"]["test_acc"] = 0.79
    lowp.judge_lowp(record)
    assert record["accuracy_judged"] and not record["variants"]["int8"]["met"]


def test_batch_size_flag_overrides_the_recipe(tmp_path):
    out = tmp_path / "b.json"
    assert benchmark.main(["--net", "lenet", "--batch-size", "8", "--e2e-nets", "none",
                           "--json", str(out)] + QUICK) == 0
    (net,) = json.loads(out.read_text())["nets"]
    assert net["batch_size"] == 8


def test_unknown_net_is_one_line_and_exit_code_2(capsys):
    assert benchmark.main(["--net", "lenett"] + QUICK) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lenet" in err[0]


def test_unknown_net_in_a_per_net_flag_is_refused(capsys):
    assert benchmark.main(["--net", "lenet", "--batch-size", "lenet=8,vgg1=4"] + QUICK) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_bad_dtype_is_refused(capsys):
    assert benchmark.main(["--net", "lenet", "--dtype", "fp8"] + QUICK) == 2
    assert "--dtype" in capsys.readouterr().err


def test_samples_of_several_calls_are_interleaved():
    order = []
    stats = timing.measure_throughputs([lambda: order.append("a"), lambda: order.append("b")],
                                       images=4, warmup=1, repeat=3, min_time=1e-9)
    assert len(stats) == 2 and all(STATS_KEYS <= set(s) for s in stats)
    assert all(len(s["samples"]) == 3 for s in stats)
    # Warm-up a, b, then one call per sample, alternating: a load change hits both.
    assert "".join(order) == "ab" * 4


def test_per_net_counts_parse():
    assert argtypes.per_net_int("50") == {None: 50}
    counts = argtypes.per_net_int("lenet_bn=100,alexnet=10,20")
    assert argtypes.for_net(counts, "alexnet", 1) == 10
    assert argtypes.for_net(counts, "vgg11", 1) == 20
    assert argtypes.name_list("none") == []


# ---------------------------------------------------------------- PyTorch peer: our side

def test_our_peer_worker_times_the_default_prediction_path():
    # The worker as the benchmark runs it, in its own process; 70 images: chunks of 64 and 6.
    from types import SimpleNamespace
    from gluon_cnns.inference.predict import BATCH_SIZE
    from tools.benchmark.peer import _sides, run_result, worker_spec
    opts = SimpleNamespace(warmup=1, repeat=3, min_time=0.001, seed=0)
    spec = worker_spec("lenet_bn", opts, BATCH_SIZE + 6)
    (_, argv, variables), = [side for side in _sides(spec, sys.executable) if side[0] == "ours"]
    result = run_result(argv, "our lenet_bn worker", variables)
    for figure in ("inference", "inference_fused", "inference_predictor"):
        assert STATS_KEYS <= set(result[figure]) and result[figure]["median"] > 0
    # Which chunk shapes ran fused hangs on how long their forwards took: recorded.
    assert set(map(tuple, result["inference_predictor"]["fused_shapes"])) <= {
        (BATCH_SIZE, 1, 28, 28), (6, 1, 28, 28)}


def _peer_side(**figures):
    stats = {"median": 100.0, "min": 90.0, "max": 110.0, "samples": [100.0]}
    side = {"framework": "f", "threads": 2, "params": 10, "learnable_params": 8,
            "train_step": stats, "inference": dict(stats, median=200.0)}
    side.update({k: dict(stats, median=v) for k, v in figures.items()})
    return side


def test_peer_record_judges_the_prediction_path_against_pytorch_inference():
    from tools.benchmark.peer import _peer_record, peer_targets
    from tools.benchmark.report import _peer_rows
    spec = {"shape": [128, 3, 32, 32], "kwargs": {}}
    runs = {"ours": [_peer_side(inference_fused=320.0, inference_predictor=270.0)],
            "pytorch": [_peer_side()], "pytorch_our_threads": [_peer_side()]}
    record = _peer_record("resnet20_cifar", spec, runs)
    assert record["ours"]["inference_predictor"]["median"] == 270.0
    assert record["inference_predictor_ratio"] == pytest.approx(1.35)  # over PyTorch's 200
    assert record["inference_predictor_met"] and not record["inference_met"]  # 1.0x < 1.3x
    rows = peer_targets({"nets": [record]})
    assert [(r["what"], r["met"]) for r in rows][-1] == (
        "resnet20_cifar inference through load_predictor vs PyTorch eager", True)
    header, (row,) = _peer_rows({"nets": [record]})
    assert header[-1] == "inference ours load_predictor img/s (ours/PyTorch)"
    assert row[-1] == "270 (270-270) (1.35x)" and row[-2] == "320 (320-320) (1.60x)"
    # A record measured before the prediction path: no such column, row or target.
    del runs["ours"][0]["inference_predictor"]
    old = _peer_record("resnet20_cifar", spec, runs)
    assert "inference_predictor_ratio" not in old and len(peer_targets({"nets": [old]})) == 2
    header, (row,) = _peer_rows({"nets": [old]})
    assert header[-1].startswith("inference ours fuse_for_cpu") and len(row) == len(header)


# ---------------------------------------------------------------- GluonCV pairing

@pytest.mark.parametrize("ours,theirs", [("resnet20_cifar", "cifar_resnet20_v1"),
                                         ("vgg11", "vgg11")])
def test_gluoncv_pairs_have_the_same_parameter_count(ours, theirs):
    from gluon_cnns.gluoncv_import import import_gluoncv
    get_model = import_gluoncv("gluoncv.model_zoo").get_model
    assert nets.GLUONCV_PAIRS[ours][0] == theirs
    shape = nets.input_shape(ours, 1)
    for learnable_only in (False, True):
        twin = gluon_cnns.get_model(ours, **nets.GLUONCV_PAIRS[ours][2])
        assert (gluon_cnns.count_parameters(twin, shape, learnable_only)
                == gluon_cnns.count_parameters(get_model(theirs, classes=10), shape,
                                               learnable_only))


def test_gluoncv_twin_is_timed_in_the_same_run(tmp_path):
    out = tmp_path / "b.json"
    assert benchmark.main(["--net", "resnet20_cifar", "--batch-size", "4", "--e2e-nets", "none",
                           "--json", str(out)] + QUICK) == 0
    (net,) = json.loads(out.read_text())["nets"]
    theirs = net["gluoncv"]
    assert theirs["model"] == "cifar_resnet20_v1" and theirs["same_param_count"]
    for key in ("forward_imperative", "forward_hybrid", "train_step"):
        assert theirs[key]["median"] > 0
        # Ours as the twin (shortcut B, no stem ReLU), timed beside the default net.
        assert theirs["ours_as"] == {"shortcut": "B", "stem_relu": False}
        assert theirs["ratio"][key] == pytest.approx(theirs["ours"][key]["median"]
                                                     / theirs[key]["median"])


def test_nets_that_differ_from_gluoncv_are_not_called_identical():
    assert "alexnet" not in nets.GLUONCV_PAIRS
    assert nets.GLUONCV_PAIRS["resnet18"][1].startswith("NOT identical")


# ---------------------------------------------------------------- int8 / bf16 inference

@pytest.fixture(scope="module")
def trained_lenet_bn():
    """lenet_bn after one pass over 20,000 real Fashion-MNIST images (a few seconds)."""
    mx.random.seed(0)
    np.random.seed(0)
    train_iter, test_iter = load_data_fashion_mnist(256, limit_train=20000, limit_test=512)
    net = gluon_cnns.get_model("lenet_bn")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    train(train_iter, [], net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, mx.cpu(), 1,
          progress=False)
    X, y = next(iter(test_iter))
    reference = net(X)
    assert (reference.argmax(axis=1) == y).mean().asscalar() > 0.6, "training failed"
    return net, train_iter, X, reference


@pytest.mark.parametrize("calib_mode", ["naive", "entropy"])
def test_int8_lenet_bn_agrees_with_fp32(trained_lenet_bn, calib_mode):
    net, train_iter, X, reference = trained_lenet_bn
    qnet = quantize_net(net, train_iter, mx.cpu(), calib_batches=4, calib_mode=calib_mode)
    out = qnet(X)
    assert out.shape == reference.shape and out.dtype == np.float32
    agree = (out.argmax(axis=1) == reference.argmax(axis=1)).mean().asscalar()
    assert agree >= 0.98
    # The fp32 net is left as it was.
    assert np.allclose(net(X).asnumpy(), reference.asnumpy(), atol=1e-5)
    # The dense layers' BatchNorms (oneDNN's int8 batch norm is its slow reference
    # code) and the pools after sigmoid stay fp32; the convs and dense layers are int8.
    with mx.autograd.predict_mode():
        qnet(X)
    ops = [n["op"] for n in json.loads(qnet._cached_graph[1].tojson())["nodes"]]
    assert "_contrib_quantized_batch_norm" not in ops and "_contrib_quantized_pooling" not in ops
    assert ops.count("BatchNorm") == 2 and ops.count("Pooling") == 2
    assert "_contrib_quantize_v2" in ops and ops.count("_sg_mkldnn_conv") == 2


def test_int8_keeps_the_relu_after_a_residual_addition_out_of_the_conv():
    # Fused into the int8 conv + add, that ReLU cost resnet_mnist 1.2 points of accuracy.
    train_iter, _ = load_data_fashion_mnist(64, limit_train=256, limit_test=64)
    net = gluon_cnns.get_model("resnet_mnist")
    net.initialize(mx.init.Xavier())
    X = next(iter(train_iter))[0]
    qnet = quantize_net(net, train_iter, mx.cpu(), calib_batches=2)
    with mx.autograd.predict_mode():
        qnet(X)
    nodes = json.loads(qnet._cached_graph[1].tojson())["nodes"]
    convs = [n.get("attrs", {}) for n in nodes if n["op"] == "_sg_mkldnn_conv"]
    assert sum(a.get("with_sum") == "true" for a in convs) == 2   # conv + add, in int8
    assert not any(a.get("with_postsum_act") == "true" for a in convs)
    assert [n["op"] for n in nodes].count("relu") == 2             # the two ReLU(x + y)


def test_bf16_inference_mostly_matches_fp32(trained_lenet_bn):
    net, _, X, reference = trained_lenet_bn
    bnet = to_bfloat16(net, X)
    out = bnet(X)
    assert out.dtype == np.float32  # fp32 out, so callers can compare with labels
    agree = (out.argmax(axis=1) == reference.argmax(axis=1)).mean().asscalar()
    assert agree >= 0.95
    assert np.abs(out.asnumpy() - reference.asnumpy()).max() < 0.5


def test_fused_fp32_gives_the_same_outputs():
    net = gluon_cnns.get_model("resnet_mnist")
    net.initialize(mx.init.Xavier())
    X = mx.nd.random.uniform(shape=(8, 1, 28, 28))
    reference = net(X)
    fused = fuse_for_cpu(net, X)
    assert np.allclose(fused(X).asnumpy(), reference.asnumpy(), rtol=1e-4, atol=1e-4)


def _with_batchnorm_statistics(net, X):
    """Give every BatchNorm of ``net`` running statistics far from (0, 1), as after training."""
    net(X)  # shapes
    rng = np.random.RandomState(0)
    for name, param in net.collect_params().items():
        if name.endswith(("running_mean", "beta")):
            param.set_data(mx.nd.array(rng.uniform(-1, 1, param.shape)))
        elif name.endswith(("running_var", "gamma")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 2, param.shape)))


@pytest.mark.parametrize("name,batchnorm", [("lenet_bn", True), ("resnet_mnist", False)])
def test_fused_fp32_runs_activations_outside_the_convolutions(name, batchnorm):
    # Inside a fused conv oneDNN 1.9.1 ran lenet_bn's sigmoid 30x slower than on its own.
    from gluon_cnns.inference.quantize import _activations_out_of_convs
    net = gluon_cnns.get_model(name)
    net.initialize(mx.init.Xavier())
    X = mx.nd.random.uniform(shape=(8, 1, 28, 28))
    _with_batchnorm_statistics(net, X)
    reference = net(X)
    fused = fuse_for_cpu(net, X)
    assert np.allclose(fused(X).asnumpy(), reference.asnumpy(), rtol=1e-4, atol=1e-4)
    with mx.autograd.predict_mode():
        fused(X)
    nodes = json.loads(fused._cached_graph[1].tojson())["nodes"]
    convs = [n for n in nodes if n["op"] == "_sg_mkldnn_conv"]
    assert convs and not any(n.get("attrs", {}).get(flag) == "true" for n in convs
                             for flag in ("with_act", "with_postsum_act"))
    # BatchNorm is still folded into the conv kernels.
    assert any(n.get("attrs", {}).get("with_bn") == "true" for n in convs) == batchnorm
    activations = [n for n in nodes if n["op"] == "Activation"]
    assert len(activations) >= 2
    # The rewrite leaves a graph without fused activations as it is.
    again = json.loads(_activations_out_of_convs(fused._cached_graph[1]).tojson())["nodes"]
    assert [n["op"] for n in again] == [n["op"] for n in nodes]


def test_quantize_refuses_bad_arguments(trained_lenet_bn):
    net, train_iter, _, _ = trained_lenet_bn
    with pytest.raises(GluonCNNsError, match="calib_mode"):
        quantize_net(net, train_iter, mx.cpu(), calib_mode="kl")
    with pytest.raises(GluonCNNsError, match="CPU"):
        quantize_net(net, train_iter, mx.gpu(0))
    with pytest.raises(GluonCNNsError, match="no batches"):
        quantize_net(net, [], mx.cpu())


def test_quant_runs_takes_the_net_of_a_training_run(tmp_path, capsys):
    from gluon_cnns.cli import train as train_cli
    run = tmp_path / "run"
    assert train_cli.main(["--net", "lenet_bn", "--epochs", "1", "--limit-train", "1024",
                           "--limit-test", "256", "--seed", "0", "--quiet",
                           "--save-dir", str(run)]) == 0
    out = tmp_path / "q.json"
    assert benchmark.main(["--net", "lenet", "--e2e-nets", "none", "--dtype", "int8",
                           "--quant-runs", "lenet_bn=%s" % run, "--quant-test", "256",
                           "--calib-batches", "2", "--json", str(out)] + QUICK) == 0
    (record,) = json.loads(out.read_text())["low_precision"]
    assert record["training"]["run"] == str(run) and record["training"]["epochs"] == 1
    assert record["training"]["train_images"] == 1024 and record["training"]["test_images"] == 256
    logged = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["variants"]["fp32"]["test_acc"] == pytest.approx(logged["test_acc"], abs=2 / 256)
    assert VARIANT_KEYS <= set(record["variants"]["int8"])
    assert "by %s" % run in capsys.readouterr().out
    # The run must be of the named net, and the net one of --quant-nets.
    assert benchmark.main(["--net", "lenet", "--dtype", "int8", "--quant-nets", "resnet18",
                           "--quant-runs", "resnet18=%s" % run] + QUICK) == 2
    assert benchmark.main(["--net", "lenet", "--dtype", "int8",
                           "--quant-runs", "resnet18=%s" % run] + QUICK) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "trained lenet_bn, not resnet18" in err[0]
    assert "--quant-nets lenet_bn,resnet18" in err[1]


# ---------------------------------------------------------------- bf16 training

def test_bf16_training_runs_in_its_own_process():
    # AMP changes MXNet process-wide, so it is tested in a worker process.
    result = lowp._run_worker({"net": "lenet_bn", "dtype": "bf16", "seed": 0,
                               "limit_train": 2048, "limit_test": 512, "data_dir": None})
    assert result["dtype"] == "bf16" and result["train_images"] == 2048
    assert result["param_dtype"] == "<class 'numpy.float32'>"  # fp32 master weights
    assert np.isfinite(result["loss_epoch1"]) and result["test_acc_epoch1"] > 0.1
    # Read independently of gluon_cnns.cpu: the kernel's list of this CPU's flags.
    with open("/proc/cpuinfo") as f:
        flags = set(next(l for l in f if l.startswith("flags")).split(":", 1)[1].split())
    assert bf16_supported() is bool(flags & {"avx512_bf16", "amx_bf16"})


def test_bf16_training_refuses_a_gpu():
    from gluon_cnns.training.amp import check_bf16_context
    check_bf16_context(mx.cpu())
    with pytest.raises(GluonCNNsError, match="CPU only"):
        check_bf16_context([mx.cpu(), mx.gpu(0)])


# ---------------------------------------------------------------- own-image loader

# The loader suite at its smallest: 64 small photos, one round, two steps.
LOADER_QUICK = ["--net", "none", "--loader", "resnet18", "--loader-images", "64",
                "--loader-photo-size", "48", "--loader-side", "32", "--loader-batch-size", "16",
                "--loader-rounds", "1", "--loader-steps", "2", "--loader-workers", "1"] + QUICK


def test_loader_suite_measures_and_renders(tmp_path, capsys):
    from tools.benchmark.loader import record_iter_threads
    out, md = tmp_path / "loader.json", tmp_path / "LOADER.md"
    assert benchmark.main(LOADER_QUICK + ["--json", str(out), "--markdown", str(md)]) == 0
    section = json.loads(out.read_text())["loader"]
    assert {"runs", "default_workers", "record_iter", "training", "end_to_end", "verdict",
            "photos", "train_images", "side", "channels", "batch_size", "rounds", "loads",
            "threads"} <= set(section)
    assert section["train_images"] == 64 and section["side"] == 32 and section["channels"] == 3
    assert section["photos"]["count"] == 64 and section["photos"]["mean_bytes"] > 0
    default = section["default_workers"]
    # Folder and pack, each with 1 worker and the default count (1 only when it is 1).
    assert sorted((r["source"], r["workers"]) for r in section["runs"]) == sorted(
        (source, w) for source in ("folder", "rec") for w in {1, default})
    figures = [r["images_per_sec"] for r in section["runs"]] + [
        section["record_iter"]["images_per_sec"], section["training"]["images_per_sec"],
        section["end_to_end"]["memory_seconds"], section["end_to_end"]["loader_seconds"]]
    assert all(STATS_KEYS <= set(f) and f["median"] > 0 and len(f["samples"]) == 1
               for f in figures)
    e2e = section["end_to_end"]
    assert e2e["steps"] == 2 and e2e["slowdown"] == e2e["slowdown_per_round"]["median"] > 0
    assert all(r["vs_training"]["median"] > 0 and r["cores_used"]["median"] >= 0
               for r in section["runs"] + [section["record_iter"]])
    assert section["record_iter"]["threads_used"] == record_iter_threads(2)
    assert section["threads"]["omp_threads"] >= 1
    verdict = section["verdict"]
    assert verdict["target"] == 2.0
    (folder,) = [r for r in section["runs"] if r["source"] == "folder" and r["default"]]
    assert verdict["ratio"] == folder["vs_training"]["median"]
    # One round: the ratio is the folder loader's images/s over the training step's.
    assert verdict["ratio"] == pytest.approx(verdict["loader_images_per_sec"]
                                             / verdict["training_images_per_sec"])
    assert verdict["met"] is (verdict["ratio"] >= verdict["target"])
    printed = capsys.readouterr().out
    assert "== Own-image loader ==" in printed and "verdict: the folder loader" in printed
    text = md.read_text()
    assert "## Own-image loader" in text and "| ImageBatches alone" in text
    assert "own-image loader vs resnet18 training step" in text  # the targets table
    md.unlink()
    assert benchmark.main(["--render", str(out), "--markdown", str(md)]) == 0
    assert md.read_text() == text


@pytest.mark.parametrize("flags,words", [
    (["--loader", "resnet18,lenet"], "--loader takes one net"),
    (["--loader", "resnet19"], "--loader"),
    (["--loader", "resnet18", "--loader-images", "8"], "--loader-images 8 is too few"),
    (["--loader", "resnet18", "--loader-side", "300"], "--loader-side 300 is larger"),
    (["--loader", "resnet18", "--loader-workers", "1,0"], "--loader-workers"),
    (["--loader", "resnet18", "--loader-rounds", "0"], "--loader-rounds"),
])
def test_bad_loader_flags_are_one_line(flags, words, capsys):
    assert benchmark.main(["--net", "none"] + flags + QUICK) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_photo_folder_is_ten_classes_of_rgb_jpegs(tmp_path):
    from PIL import Image
    from tools.benchmark.loader import write_photo_folder
    info = write_photo_folder(str(tmp_path), 20, 40)
    assert info["count"] == 20 and info["quality"] == 90 and info["mean_bytes"] > 0
    for split, per_class in (("train", 2), ("val", 1)):
        classes = sorted(p for p in (tmp_path / split).iterdir())
        assert len(classes) == 10
        assert all(len(list(c.glob("*.jpg"))) == per_class for c in classes)
    with Image.open(next((tmp_path / "train").glob("*/*.jpg"))) as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (40, 40)


def test_record_iter_threads_follow_mxnet_cap():
    from tools.benchmark.loader import record_iter_threads
    assert record_iter_threads(2, cpus=2) == 1      # max(2 // 2 - 1, 1)
    assert record_iter_threads(2, cpus=8) == 2
    assert record_iter_threads(8, cpus=8) == 3
    assert argtypes.positive_int_list("1, 2") == [1, 2]

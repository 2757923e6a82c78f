"""Export to MXNet symbol files and ONNX: same numbers, atomic files, clear errors."""
import json
import os
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

import gluon_cnns
from gluon_cnns.errors import GluonCNNsError, InputTooSmallError
from gluon_cnns.inference.export import (ExportError, checkpoint_meta, export_checkpoint, export_model,
                               load_checkpoint_net, load_exported, read_export_meta)
from gluon_cnns.models.base import ClassicNet
from gluon_cnns.data import CIFAR10_CLASSES, CIFAR10_MEAN, FASHION_MNIST_CLASSES
from gluon_cnns.io import write_json

BN_NETS = ("lenet_bn", "resnet18", "densenet", "resnet20_cifar", "resnet110_cifar")


def _channels(name):
    return 3 if name.endswith("_cifar") else 1


def _side(net, channels):
    """The smallest side the net takes, but at least the data set's own (28 or 32)."""
    return max(net.min_input_size(channels), 32 if channels == 3 else 28)


def _zero_bn_momentum(block):
    """BatchNorm momentum 0: one training step sets the running stats to the batch's."""
    if isinstance(block, nn.BatchNorm):
        block._kwargs["momentum"] = 0.0  # pylint: disable=protected-access


def make_net(name, seed=0):
    """A net with He-initialized weights and BatchNorm running stats of real-looking data.

    The running statistics come from a calibration batch of other images than
    the returned test batch ``x``, so an export that normalized ``x`` with its
    own statistics (training mode) would give other numbers. BatchNorm scales
    below 1 keep the 54 residual blocks of resnet110_cifar from adding up to
    logits far larger than a trained net's, whose float32 rounding alone
    would then exceed the tolerances.
    """
    mx.random.seed(seed)
    np.random.seed(seed)
    net = gluon_cnns.get_model(name, classes=10)
    channels = _channels(name)
    side = _side(net, channels)
    net.apply(_zero_bn_momentum)
    net.initialize(mx.init.MSRAPrelu(factor_type="in"))  # keeps the activations O(1)
    calibration = mx.nd.random.uniform(shape=(16, channels, side, side))
    with mx.autograd.record(train_mode=True):
        out = net(calibration)
    out.backward()  # MXNet updates BatchNorm's running stats in the backward pass
    for pname, param in net.collect_params().items():
        if pname.endswith("gamma"):
            param.set_data(mx.nd.random.uniform(0.25, 0.75, shape=param.shape))
        elif pname.endswith("beta"):
            param.set_data(mx.nd.random.uniform(-0.2, 0.2, shape=param.shape))
    x = mx.nd.random.uniform(shape=(2, channels, side, side))
    return net, x


def _listing(folder):
    return sorted(os.listdir(folder))


def _contents(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in _listing(folder)}


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("name", ["lenet", "lenet_bn", "alexnet", "googlenet", "resnet20_cifar",
                                  "densenet", "resnet_mnist"])
def test_load_exported_reproduces_the_net(tmp_path, name):
    net, x = make_net(name)
    expected = net(x).asnumpy()
    export_model(net, str(tmp_path / name), x.shape, formats="symbol", net_name=name)
    block = load_exported(str(tmp_path / name))
    assert isinstance(block, mx.gluon.SymbolBlock)
    np.testing.assert_allclose(block(x).asnumpy(), expected, rtol=0, atol=1e-5)
    assert block.meta["net"] == name
    # The batch size is free: one image gives the first row.
    np.testing.assert_allclose(block(x[:1]).asnumpy(), expected[:1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", gluon_cnns.list_models())
def test_onnx_matches_gluon(tmp_path, name):
    import onnxruntime as ort
    net, x = make_net(name)
    expected = net(x).asnumpy()
    files = export_model(net, str(tmp_path / name), x.shape, formats=["onnx"], net_name=name)
    assert sorted(files) == ["meta", "onnx"]
    session = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    # Only the image is an input: the weights are constants, not inputs to feed.
    assert [i.name for i in session.get_inputs()] == ["data"]
    got = session.run(None, {"data": x.asnumpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4, (name, np.abs(got - expected).max())
    assert np.abs(expected).max() > 0.1  # the numbers compared are not all ~0


@pytest.mark.parametrize("name", BN_NETS)
def test_bn_nets_export_inference_mode(tmp_path, name):
    """Running statistics, not the batch's: training mode gives other numbers, the export not."""
    import onnxruntime as ort
    net, x = make_net(name)
    inference = net(x).asnumpy()
    with mx.autograd.record(train_mode=True):
        training = net(x).asnumpy()
    assert np.abs(training - inference).max() > 1e-2  # so the comparison below means something
    files = export_model(net, str(tmp_path / name), x.shape, net_name=name)
    session = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"data": x.asnumpy()})[0] - inference).max() <= 1e-4
    assert np.abs(load_exported(files["meta"])(x).asnumpy() - inference).max() <= 1e-5


def test_onnx_batch_size_is_free(tmp_path):
    import onnxruntime as ort
    net, _ = make_net("lenet_bn")
    x = mx.nd.random.uniform(shape=(5, 1, 28, 28))
    files = export_model(net, str(tmp_path / "m"), (1, 1, 28, 28), formats="onnx")
    session = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": x.asnumpy()})[0]
    np.testing.assert_allclose(got, net(x).asnumpy(), rtol=0, atol=1e-4)


# ---------------------------------------------------------------- files and sidecar

def test_export_writes_all_files_and_the_sidecar(tmp_path):
    net, x = make_net("resnet20_cifar")
    prefix = str(tmp_path / "sub" / "r20")  # a folder that does not exist yet
    files = export_model(net, prefix, (3, 32, 32), net_name="resnet20_cifar",
                         class_names=CIFAR10_CLASSES,
                         normalization=(CIFAR10_MEAN, (0.2, 0.2, 0.2)))
    assert files == {"symbol": prefix + "-symbol.json", "params": prefix + "-0000.params",
                     "onnx": prefix + ".onnx", "meta": prefix + ".json"}
    assert _listing(tmp_path / "sub") == ["r20-0000.params", "r20-symbol.json", "r20.json",
                                          "r20.onnx"]  # no temporary files left
    meta = json.load(open(prefix + ".json"))
    assert meta["net"] == "resnet20_cifar"
    assert meta["input_shape"] == [1, 3, 32, 32] and meta["channels"] == 3
    assert meta["input_size"] == [32, 32]
    assert meta["normalization"] == {"divide_by": 255, "mean": list(CIFAR10_MEAN),
                                     "std": [0.2, 0.2, 0.2]}
    assert meta["class_names"] == CIFAR10_CLASSES
    assert meta["files"] == {"symbol": "r20-symbol.json", "params": "r20-0000.params",
                             "onnx": "r20.onnx"}
    # Any of the export's files names the export too.
    for path in files.values():
        assert read_export_meta(path)["net"] == "resnet20_cifar"
    # GlobalAvgPool (there for training speed) is exported as a global Pooling.
    ops = [n["op"] for n in json.load(open(files["symbol"]))["nodes"]]
    assert "_contrib_AdaptiveAvgPooling2D" not in ops and ops.count("Pooling") == 1


def test_sidecar_defaults_and_onnx_metadata(tmp_path):
    import onnx
    net, _ = make_net("lenet")
    export_model(net, str(tmp_path / "lenet"), (1, 1, 28, 28))
    meta = read_export_meta(str(tmp_path / "lenet"))
    assert meta["net"] == type(net).__name__
    assert meta["class_names"] == FASHION_MNIST_CLASSES
    assert meta["normalization"] == {"divide_by": 255, "mean": None, "std": None}
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "lenet.onnx")).metadata_props}
    assert json.loads(props["gluon_cnns.meta"])["class_names"] == FASHION_MNIST_CLASSES


def test_failed_export_keeps_the_previous_one(tmp_path, monkeypatch):
    net, _ = make_net("lenet")
    prefix = str(tmp_path / "lenet")
    export_model(net, prefix, (1, 1, 28, 28))
    before = _contents(tmp_path)

    other, _ = make_net("lenet", seed=1)  # different weights: a clobbered file would show

    def broken_exporter(*args, **kwargs):
        with open(args[4], "wb") as f:  # a half-written .onnx in the staging folder
            f.write(b"partial")
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(mx.onnx, "export_model", broken_exporter)
    with pytest.raises(ExportError, match="cannot export LeNet to ONNX: disk on fire"):
        export_model(other, prefix, (1, 1, 28, 28))
    assert _contents(tmp_path) == before


def test_unsupported_op_fails_with_one_line_naming_the_net(tmp_path):

    class Log1p(nn.HybridBlock):
        def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
            return F.log1p(x)

    net = ClassicNet()
    net.add(Log1p(), nn.Flatten(), nn.Dense(10))
    net.initialize()
    with pytest.raises(ExportError) as info:
        export_model(net, str(tmp_path / "odd"), (1, 1, 4, 4), net_name="oddnet")
    message = str(info.value)
    assert "\n" not in message and "oddnet" in message and "log1p" in message
    assert isinstance(info.value, GluonCNNsError)
    assert _listing(tmp_path) == []
    # The symbol format alone has no such limit.
    export_model(net, str(tmp_path / "odd"), (1, 1, 4, 4), formats="symbol")
    assert _listing(tmp_path) == ["odd-0000.params", "odd-symbol.json", "odd.json"]


def test_missing_onnx_package_says_what_to_install(tmp_path, monkeypatch):
    net, _ = make_net("lenet")
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ExportError, match=r"pip install 'gluon_cnns\[onnx\]'"):
        export_model(net, str(tmp_path / "m"), (1, 1, 28, 28))
    assert _listing(tmp_path) == []
    export_model(net, str(tmp_path / "m"), (1, 1, 28, 28), formats="symbol")
    assert _listing(tmp_path) == ["m-0000.params", "m-symbol.json", "m.json"]


def test_bad_arguments_raise_export_errors_and_write_nothing(tmp_path):
    net, _ = make_net("lenet")
    prefix = str(tmp_path / "m")
    with pytest.raises(InputTooSmallError):
        export_model(net, prefix, (1, 1, 8, 8))
    with pytest.raises(ExportError, match="10 outputs but 3 class names"):
        export_model(net, prefix, (1, 1, 28, 28), class_names=["a", "b", "c"])
    with pytest.raises(ExportError, match="10 outputs but 11 class names"):
        export_model(net, prefix, (1, 1, 28, 28), class_names=list("abcdefghijk"))
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(net, prefix, (1, 1, 28, 28), formats="tflite")
    for shape in ((28, 28), (1, 1, 1, 28, 28)):
        with pytest.raises(ExportError, match=r"input_shape must be \(N, C, H, W\) or \(C, H, "):
            export_model(net, prefix, shape)
    with pytest.raises(ExportError, match="per channel"):
        export_model(net, prefix, (1, 1, 28, 28), normalization=((0.1, 0.2), (1, 1)))
    uninitialized = gluon_cnns.get_model("lenet")
    with pytest.raises(ExportError, match="initialize or load"):
        export_model(uninitialized, prefix, (1, 1, 28, 28))
    class_maps = nn.HybridSequential()  # a plain Gluon net ending in (batch, 10, 8, 8) maps
    class_maps.add(nn.Conv2D(10, 1))
    class_maps.initialize()
    with pytest.raises(ExportError, match="must return one \\(batch, classes\\) array"):
        export_model(class_maps, prefix, (1, 1, 8, 8))
    assert _listing(tmp_path) == []


def test_load_exported_errors_are_one_line(tmp_path):
    with pytest.raises(ExportError, match="no such file") as info:
        load_exported(str(tmp_path / "nothing"))
    assert "\n" not in str(info.value)
    net, _ = make_net("lenet")
    export_model(net, str(tmp_path / "onnx_only"), (1, 1, 28, 28), formats="onnx")
    with pytest.raises(ExportError, match="no symbol format"):
        load_exported(str(tmp_path / "onnx_only"))
    export_model(net, str(tmp_path / "broken"), (1, 1, 28, 28), formats="symbol")
    with open(str(tmp_path / "broken-0000.params"), "wb") as f:
        f.write(b"not parameters")
    with pytest.raises(ExportError, match="cannot load the export"):
        load_exported(str(tmp_path / "broken"))


# ---------------------------------------------------------------- training runs

def _fake_run(folder, net, config, params=("best.params",)):
    """A --save-dir as scripts/train.py writes it: config.json and parameter files."""
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "config.json"), config)
    for name in params:
        net.save_parameters(os.path.join(folder, name))


def test_load_checkpoint_net_prefers_best_then_the_newest_epoch(tmp_path):
    old, x = make_net("lenet", seed=1)
    new, _ = make_net("lenet", seed=2)
    best, _ = make_net("lenet", seed=3)
    run = str(tmp_path / "run")
    config = {"net": "lenet", "dataset": "fashion-mnist", "resize": None}
    _fake_run(run, old, config, ["epoch-0009.params"])
    new.save_parameters(os.path.join(run, "epoch-0010.params"))  # 10 > 9, not by string order
    loaded, got_config = load_checkpoint_net(run)
    assert got_config == config
    np.testing.assert_allclose(loaded(x).asnumpy(), new(x).asnumpy(), atol=1e-6)
    best.save_parameters(os.path.join(run, "best.params"))
    loaded, _ = load_checkpoint_net(run)
    np.testing.assert_allclose(loaded(x).asnumpy(), best(x).asnumpy(), atol=1e-6)


def test_load_checkpoint_net_errors(tmp_path):
    with pytest.raises(ExportError, match="no such folder"):
        load_checkpoint_net(str(tmp_path / "missing"))
    with pytest.raises(ExportError, match="has no config.json"):
        load_checkpoint_net(str(tmp_path))
    write_json(str(tmp_path / "config.json"), {"net": "lenet"})
    with pytest.raises(ExportError, match="no best.params and no epoch-NNNN.params"):
        load_checkpoint_net(str(tmp_path))
    with open(str(tmp_path / "best.params"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ExportError, match="cannot load"):
        load_checkpoint_net(str(tmp_path))
    write_json(str(tmp_path / "config.json"), {"dataset": "mnist"})
    with pytest.raises(ExportError, match="does not name the trained net"):
        load_checkpoint_net(str(tmp_path))


def test_checkpoint_meta_follows_the_dataset():
    meta = checkpoint_meta({"net": "alexnet", "dataset": "fashion-mnist", "resize": 224})
    assert meta["input_shape"] == [1, 1, 224, 224] and meta["normalization"]["mean"] is None
    meta = checkpoint_meta({"net": "resnet20_cifar", "dataset": "cifar10", "resize": None})
    assert meta["input_shape"] == [1, 3, 32, 32]
    assert meta["normalization"]["mean"] == list(CIFAR10_MEAN)
    assert meta["class_names"] == CIFAR10_CLASSES
    with pytest.raises(ExportError, match="dataset"):
        checkpoint_meta({"net": "lenet", "dataset": "imagenet"})


def test_export_checkpoint(tmp_path):
    net, x = make_net("resnet20_cifar")
    run = str(tmp_path / "run")
    _fake_run(run, net, {"net": "resnet20_cifar", "dataset": "cifar10", "resize": None})
    files = export_checkpoint(run, str(tmp_path / "out" / "r20"), formats=["symbol"])
    block = load_exported(files["meta"])
    np.testing.assert_allclose(block(x).asnumpy(), net(x).asnumpy(), rtol=0, atol=1e-5)
    assert block.meta["net"] == "resnet20_cifar"
    assert block.meta["normalization"]["std"] == pytest.approx(
        [0.2023, 0.1994, 0.2010])
    assert block.meta["class_names"] == CIFAR10_CLASSES


# ---------------------------------------------------------------- publishing as a whole

# Exports a net to a prefix in a fresh interpreter that SIGKILLs itself instead of
# making its (LIMIT + 1)-th os.replace: a kill between any two renames of a publication.
_KILLED_EXPORT = r"""
import os, signal, sys
sys.path.insert(0, %r)
import gluon_cnns
from gluon_cnns.inference.export import export_model
params, prefix, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls, real_replace = [0], os.replace
def replace(*args, **kwargs):
    if calls[0] >= limit:
        os.kill(os.getpid(), signal.SIGKILL)
    calls[0] += 1
    return real_replace(*args, **kwargs)
os.replace = replace
net = gluon_cnns.get_model("lenet")
net.load_parameters(params)
export_model(net, prefix, (1, 1, 28, 28), net_name="lenet",
             class_names=["new%%d" %% i for i in range(10)])
print(calls[0])
"""


def _export_killed_after(tmp_path, params, prefix, limit):
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "killed_export.py"
    script.write_text(_KILLED_EXPORT % root)
    return subprocess.run([sys.executable, str(script), params, prefix, str(limit)],
                          capture_output=True, text=True, timeout=300)


def test_an_export_killed_between_any_two_renames_is_the_old_or_the_new_one(tmp_path):
    """Issue 15 case 4: never the new weights with the old sidecar, never a broken export."""
    import onnx
    import signal
    from gluon_cnns.artifacts.layout import export_files
    old, x = make_net("lenet", seed=1)
    new, _ = make_net("lenet", seed=2)
    new_params = str(tmp_path / "new.params")
    new.save_parameters(new_params)
    expected = {"old": old(x).asnumpy(), "new": new(x).asnumpy()}
    assert np.abs(expected["old"] - expected["new"]).max() > 1e-2
    old_names = ["old%d" % i for i in range(10)]

    done = _export_killed_after(tmp_path, new_params, str(tmp_path / "whole" / "lenet"), 10 ** 6)
    assert done.returncode == 0, done.stderr
    renames = int(done.stdout.split()[-1])
    assert renames >= 3
    seen = set()
    for limit in range(renames + 1):
        prefix = str(tmp_path / ("kill%d" % limit) / "lenet")
        export_model(old, prefix, (1, 1, 28, 28), net_name="lenet", class_names=old_names)
        proc = _export_killed_after(tmp_path, new_params, prefix, limit)
        assert proc.returncode == (0 if limit == renames else -signal.SIGKILL), proc.stderr
        block = load_exported(prefix)
        which = block.meta["class_names"][0][:3]
        seen.add(which)
        np.testing.assert_allclose(block(x).asnumpy(), expected[which], rtol=0, atol=1e-5,
                                   err_msg="killed after %d renames" % limit)
        # The ONNX file the sidecar names belongs to the same export.
        files = export_files(prefix, block.meta)
        props = {p.key: p.value for p in onnx.load(files["onnx"]).metadata_props}
        assert json.loads(props["gluon_cnns.meta"])["class_names"][0][:3] == which
        # The next export finishes the job and leaves no staging folder behind.
        export_model(new, prefix, (1, 1, 28, 28), net_name="lenet", class_names=old_names)
        assert _listing(os.path.dirname(prefix)) == ["lenet-0000.params", "lenet-symbol.json",
                                                     "lenet.json", "lenet.onnx"]
        np.testing.assert_allclose(load_exported(prefix)(x).asnumpy(), expected["new"],
                                   rtol=0, atol=1e-5)
    assert seen == {"old", "new"}


def test_an_export_with_fewer_formats_removes_the_previous_ones(tmp_path):
    """The old .onnx would otherwise stay beside a symbol-only export of other weights."""
    old, _ = make_net("lenet", seed=1)
    new, x = make_net("lenet", seed=2)
    prefix = str(tmp_path / "m")
    export_model(old, prefix, (1, 1, 28, 28))
    export_model(new, prefix, (1, 1, 28, 28), formats="symbol")
    assert _listing(tmp_path) == ["m-0000.params", "m-symbol.json", "m.json"]
    np.testing.assert_allclose(load_exported(prefix)(x).asnumpy(), new(x).asnumpy(), atol=1e-5)


@pytest.mark.parametrize("out", ["{tmp}/dir/", "{tmp}/dir/.", "{tmp}/dir/sub/"])
def test_an_export_path_naming_a_folder_writes_inside_it(tmp_path, out):
    """Issue 15 case 5: ``dir/`` means "in this folder", never dir-symbol.json beside it."""
    net, _ = make_net("lenet")
    os.makedirs(str(tmp_path / "dir"))
    out = out.format(tmp=tmp_path)
    files = export_model(net, out, (1, 1, 28, 28), formats="symbol", net_name="lenet")
    folder = os.path.abspath(out)
    assert files["meta"] == os.path.join(folder, "lenet.json")
    assert _listing(folder)[-3:] == ["lenet-0000.params", "lenet-symbol.json", "lenet.json"]
    assert _listing(tmp_path) == ["dir"]


def test_an_empty_export_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net, _ = make_net("lenet")
    with pytest.raises(ExportError, match="the export path is empty"):
        export_model(net, "", (1, 1, 28, 28))
    assert _listing(tmp_path) == [] and _listing(tmp_path.parent).count(tmp_path.name + ".json") == 0


def _sidecar_with(tmp_path, **changes):
    net, _ = make_net("lenet")
    prefix = str(tmp_path / "m")
    export_model(net, prefix, (1, 1, 28, 28), formats="symbol")
    meta = json.load(open(prefix + ".json"))
    meta.update(changes)
    write_json(prefix + ".json", meta)
    return prefix


@pytest.mark.parametrize("changes, fragment", [
    ({"input_size": "abc"}, '"input_size" must be [height, width]'),
    ({"input_size": [28, 0]}, '"input_size" must be [height, width]'),
    ({"input_size": [10 ** 9, 28]}, '"input_size" must be [height, width]'),
    ({"input_shape": [1, 1, 28]}, '"input_shape" must be [N, C, H, W]'),
    ({"channels": True}, '"channels" must be a positive integer'),
    ({"normalization": None}, '"normalization" must be'),
    ({"normalization": {"divide_by": 255, "mean": [0.5], "std": [0.0]}}, '"normalization"'),
    ({"normalization": {"divide_by": 255, "mean": "x", "std": [1]}}, '"normalization"'),
    ({"normalization": {"divide_by": 1, "mean": None, "std": None}}, "divide_by 1"),
    ({"class_names": "abc"}, '"class_names" must be a non-empty list'),
    ({"class_names": [1, 2]}, '"class_names"'),
    ({"net": 7}, '"net" must be a non-empty string'),
    ({"format_version": 99}, "newer than the 1"),
    ({"files": {"symbol": "../../etc/passwd"}}, "not a file of this export"),
    ({"files": {"symbol": ".m.export-x/model-0000.params"}}, "not a file of this export"),
    ({"files": ["m-symbol.json"]}, '"files" must map'),
])
def test_read_export_meta_checks_every_field(tmp_path, changes, fragment):
    """Issue 15 case 9: a hand-edited sidecar is one ExportError naming the field."""
    prefix = _sidecar_with(tmp_path, **changes)
    for call in (read_export_meta, load_exported):
        with pytest.raises(ExportError) as info:
            call(prefix)
        message = str(info.value)
        assert fragment in message and "\n" not in message, message
        assert message.startswith(prefix + ".json: ")


def test_a_sidecar_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    import threading
    os.mkfifo(str(tmp_path / "m.json"))  # reading it would wait for a writer forever
    raised = []

    def read():
        try:
            read_export_meta(str(tmp_path / "m"))
        except ExportError as err:
            raised.append(str(err))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "read_export_meta waits on a FIFO"
    assert len(raised) == 1 and "not a regular file" in raised[0], raised


@pytest.mark.parametrize("config, fragment", [
    ({"net": "lenet", "resize": "big"}, '"resize": \'big\''),
    ({"net": "lenet", "resize": -3}, '"resize": -3'),
    ({"net": "lenet", "resize": 1.5}, '"resize": 1.5'),
])
def test_checkpoint_meta_checks_the_config(config, fragment):
    with pytest.raises(ExportError) as info:
        checkpoint_meta(config)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_load_checkpoint_net_checks_classes(tmp_path):
    write_json(str(tmp_path / "config.json"), {"net": "lenet", "classes": "ten"})
    make_net("lenet")[0].save_parameters(str(tmp_path / "best.params"))
    # config.json's fields are type-checked when it is read (training/records.py).
    with pytest.raises(ExportError, match="'classes' is 'ten', not a positive whole number"):
        load_checkpoint_net(str(tmp_path))


def test_center_crop_is_recorded_for_a_square_input_and_refused_for_another(tmp_path):
    net, _ = make_net("lenet")
    files = export_model(net, str(tmp_path / "m"), (1, 1, 28, 28), formats="symbol",
                         center_crop=0.875)
    with open(files["meta"]) as f:
        assert json.load(f)["center_crop"] == 0.875
    with pytest.raises(ExportError, match=r"center_crop needs a square input \(H == W\), got "
                                          r"input_shape \(1, 1, 28, 32\)"):
        export_model(net, str(tmp_path / "wide"), (1, 1, 28, 32), center_crop=0.875)


def test_an_export_leaves_no_descriptor_open(tmp_path):
    """The staging folder's lock is released: an export in a loop does not run out of files."""
    net, _ = make_net("lenet")
    export_model(net, str(tmp_path / "m"), (1, 1, 28, 28), formats="symbol")  # warm-up
    before = len(os.listdir("/proc/self/fd"))
    for n in range(3):
        export_model(net, str(tmp_path / "m"), (1, 1, 28, 28), formats="symbol")
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_export_of_more_classes_than_small_ints_is_accepted(tmp_path):
    """300 outputs and 300 names (own image folders may hold up to 100,000 classes):
    beyond the 256 ints CPython caches, two equal counts are not the same object."""
    net = nn.HybridSequential()
    net.add(nn.Dense(300))
    net.initialize()
    names = ["class %d" % i for i in range(300)]
    files = export_model(net, str(tmp_path / "m"), (1, 1, 4, 4), formats="symbol",
                         class_names=names)
    with open(files["meta"]) as f:
        assert json.load(f)["class_names"] == names

"""Training on your own images: an image folder of real pictures (the Fashion-MNIST test set
written out as PNG and JPEG files), fine-tuning, and what bad folders give."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from gluon_cnns.cli.train import main
from gluon_cnns.data.image_batches import ImageBatches
from gluon_cnns.data.image_folder import scan_folder
from gluon_cnns.data.images import scan_images
from image_folders import CLASS_FOLDERS, copy_folder, write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp("images") / "fashion"),
                              per_class=20, val_per_class=6)


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def log_of(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- scanning

def test_classes_are_the_sorted_folder_names(folder):
    data = scan_images("folder", folder)
    assert data.class_names == sorted(CLASS_FOLDERS)
    assert (len(data.train), len(data.val)) == (200, 60)
    assert data.grey and data.default_channels == 1
    # Each file is labelled with its own folder's class.
    for path, label in zip(data.train.sources, data.train.labels):
        assert os.path.basename(os.path.dirname(path)) == data.class_names[label]


def test_without_val_a_stable_fraction_is_held_out(tmp_path):
    root = write_image_folder(str(tmp_path / "flat"), per_class=30, val_per_class=0,
                              with_val=False)
    data = scan_folder(root, val_split=0.2)
    assert 30 <= len(data.val) <= 90 and len(data.train) + len(data.val) == 300
    assert any("held out" in note for note in data.notes)
    # The same files whatever else is in the folder: add a file, the others keep their split.
    held = set(data.val.sources)
    shutil.copy(data.train.sources[0], os.path.join(os.path.dirname(data.train.sources[0]),
                                                     "zz-extra.png"))
    again = scan_folder(root, val_split=0.2)
    assert held <= set(again.val.sources)


def test_batches_are_repeatable_and_independent_of_the_workers(folder):
    data = scan_images("folder", folder)

    def one_pass(workers):
        np.random.seed(3)
        it = ImageBatches(data.train, 16, 24, 1, training=True, workers=workers)
        return [(X.asnumpy(), y.asnumpy()) for X, y in it]
    a, b = one_pass(1), one_pass(4)
    assert len(a) == 13 and a[0][0].shape == (16, 1, 24, 24)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    # Augmented: the same images differ from one pass to the next.
    np.random.seed(3)
    it = ImageBatches(data.train, 16, 24, 1, training=True)
    first, second = [x.asnumpy() for x, _ in it], [x.asnumpy() for x, _ in it]
    assert not np.array_equal(first[0], second[0])


def test_a_pass_continues_from_its_state(folder):
    data = scan_images("folder", folder)
    np.random.seed(5)
    it = ImageBatches(data.train, 16, 28, 1, training=True)
    whole = [x.asnumpy() for x, _ in it]
    np.random.seed(5)
    it = ImageBatches(data.train, 16, 28, 1, training=True)
    passing = iter(it)
    head = [next(passing)[0].asnumpy() for _ in range(4)]
    state = it.state()
    resumed = ImageBatches(data.train, 16, 28, 1, training=True)
    resumed.set_state(state)
    tail = [x.asnumpy() for x, _ in resumed]
    assert all(np.array_equal(p, q) for p, q in zip(head + tail, whole))


def test_evaluation_is_the_centre_crop_normalized(folder):
    data = scan_images("folder", folder)
    X, _ = next(iter(ImageBatches(data.val, 4, 32, 3, mean=[0.5] * 3, std=[0.25] * 3)))
    assert X.shape == (4, 3, 32, 32)
    x = X.asnumpy()
    assert np.allclose(x[:, 0], x[:, 1]) and x.min() >= -2.0 - 1e-6 and x.max() <= 2.0 + 1e-6


# ---------------------------------------------------------------- the command line

def test_train_from_a_folder_records_the_classes(folder, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    code, out, err = run_cli(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", folder,
                              "--epochs", "4", "--batch-size", "32", "--lr", "0.3",
                              "--augment", "none", "--center-crop", "1", "--seed", "0",
                              "--save-dir", run_dir], capsys)
    assert code == 0, err
    assert "folder %s, 10 classes (200 train / 60 test images, 28x28)" % folder in out
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["class_names"] == sorted(CLASS_FOLDERS) and config["classes"] == 10
    assert (config["channels"], config["resize"], config["mean"]) == (1, 28, None)
    log = log_of(run_dir)
    assert len(log) == 4 and log[-1]["test_acc"] > 0.3  # 10 classes: chance is 0.1


def test_rgb_gets_imagenet_normalization(folder, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    code, _, err = run_cli(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", folder,
                            "--epochs", "1", "--channels", "3", "--resize", "32",
                            "--save-dir", run_dir, "--quiet"], capsys)
    assert code == 0, err
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["channels"] == 3 and config["resize"] == 32
    assert config["mean"] == [0.485, 0.456, 0.406] and config["std"] == [0.229, 0.224, 0.225]


def test_kill_9_mid_epoch_then_resume_is_bit_identical(folder, tmp_path):
    args = ["--net", "lenet_bn", "--dataset", "folder", "--data-dir", folder, "--epochs", "2",
            "--batch-size", "4", "--lr", "0.1", "--seed", "2", "--quiet",
            "--checkpoint-every", "3"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    reference = str(tmp_path / "reference")
    subprocess.run([sys.executable, SCRIPT] + args + ["--save-dir", reference], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
    run_dir = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, SCRIPT] + args + ["--save-dir", run_dir], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    index = os.path.join(run_dir, "checkpoint.json")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(index) and json.load(open(index))["batch"] > 0:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert json.load(open(index))["batch"] > 0, "not killed mid-epoch"
    subprocess.run([sys.executable, SCRIPT, "--save-dir", run_dir, "--resume", "--quiet"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    final = json.load(open(index))["params"]
    ours = mx.nd.load(os.path.join(run_dir, final))
    theirs = mx.nd.load(os.path.join(reference, final))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert np.array_equal(ours[name].asnumpy(), theirs[name].asnumpy()), name
    assert [r["loss"] for r in log_of(run_dir)] == [r["loss"] for r in log_of(reference)]


# ---------------------------------------------------------------- fine-tuning

@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """lenet_bn trained on (part of) the real Fashion-MNIST training set."""
    run_dir = str(tmp_path_factory.mktemp("source") / "run")
    assert main(["--net", "lenet_bn", "--epochs", "1", "--limit-train", "12000",
                 "--limit-test", "500", "--seed", "0", "--save-dir", run_dir, "--quiet"]) == 0
    return run_dir


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """T-shirts, trousers and ankle boots not in the fixture folder above."""
    return write_image_folder(str(tmp_path_factory.mktemp("three") / "images"), per_class=40,
                              val_per_class=40, classes=[0, 1, 9], start=100)


FINETUNE = ["--net", "lenet_bn", "--dataset", "folder", "--epochs", "3", "--batch-size", "32",
            "--lr", "0.1", "--augment", "none", "--center-crop", "1", "--seed", "0"]


def test_finetuning_beats_training_from_scratch(fashion_run, three_classes, tmp_path, capsys):
    tuned, scratch = str(tmp_path / "tuned"), str(tmp_path / "scratch")
    code, out, err = run_cli(FINETUNE + ["--data-dir", three_classes, "--save-dir", tuned,
                                         "--finetune", fashion_run], capsys)
    assert code == 0, err
    assert "fine-tuning from %s" % fashion_run in out
    code, _, err = run_cli(FINETUNE + ["--data-dir", three_classes, "--save-dir", scratch],
                           capsys)
    assert code == 0, err
    tuned_acc, scratch_acc = log_of(tuned)[-1]["test_acc"], log_of(scratch)[-1]["test_acc"]
    assert tuned_acc > 0.85 and tuned_acc > scratch_acc + 0.1, (tuned_acc, scratch_acc)
    with open(os.path.join(tuned, "config.json")) as f:
        source = json.load(f)["finetune_source"]
    assert source["from"] == os.path.abspath(fashion_run) and source["kind"] == "run"
    assert source["class_names"][9] == "Ankle boot" and len(source["params_sha256"]) == 64


def test_frozen_features_do_not_change(fashion_run, three_classes, tmp_path, capsys,
                                       monkeypatch):
    import gluon_cnns.training.fit as fit_module
    from gluon_cnns.inference.export import load_checkpoint_net
    trained = []
    fit = fit_module.fit

    def keep_the_run(run, **kwargs):
        trained.append(run)
        return fit(run, **kwargs)
    monkeypatch.setattr(fit_module, "fit", keep_the_run)
    run_dir = str(tmp_path / "frozen")
    code, out, err = run_cli(FINETUNE + ["--data-dir", three_classes, "--save-dir", run_dir,
                                         "--finetune", fashion_run, "--freeze-features"], capsys)
    assert code == 0, err
    assert "features frozen" in out
    source, _ = load_checkpoint_net(fashion_run)
    tuned, _ = load_checkpoint_net(run_dir)
    # BatchNorm's running statistics included: the features are a fixed function.
    weights = lambda net: [p.data().asnumpy() for p in net.features.collect_params().values()]
    assert len(weights(source)) == 24  # 4 conv/dense layers, 4 BatchNorms
    for a, b in zip(weights(source), weights(tuned)):
        assert np.array_equal(a, b)
    assert tuned.output.weight.shape == (3, 84)
    # Fixed while training too: a training-mode forward of the fine-tuned net's features
    # normalizes with the source's running statistics, not the batch's own.
    X = mx.nd.array(np.random.RandomState(0).randn(16, 1, 28, 28).astype("float32"))
    with mx.autograd.record(train_mode=True):
        during_training = trained[0].net.features(X)
    assert np.allclose(during_training.asnumpy(), source.features(X).asnumpy(),
                       rtol=1e-4, atol=1e-5)


def _built(name, channels, classes=10):
    from gluon_cnns import get_model
    net = get_model(name, classes=classes)
    net.initialize()
    net(mx.nd.zeros((1, channels, 28, 28)))
    return net


def test_transfer_copies_every_feature_parameter_of_a_deep_net():
    """More than 256 feature parameters (beyond CPython's cached small ints): all copied,
    the classifier left as drawn."""
    from gluon_cnns.training.finetune import transfer_features
    source, net = _built("resnet56_cifar", 3, classes=10), _built("resnet56_cifar", 3, classes=2)
    output = [p.data().asnumpy() for p in net.output.collect_params().values()]
    transfer_features(source, net, (1, 3, 28, 28), [mx.cpu()])
    theirs = list(source.features.collect_params().values())
    ours = list(net.features.collect_params().values())
    assert len(ours) == len(theirs) > 256
    for mine, src in zip(ours, theirs):
        assert np.array_equal(mine.data().asnumpy(), src.data().asnumpy()), mine.name
    for a, p in zip(output, net.output.collect_params().values()):
        assert np.array_equal(a, p.data().asnumpy())


@pytest.mark.parametrize("source, target, counts", [("lenet", "lenet_bn", (6, 24)),
                                                    ("lenet_bn", "lenet", (24, 6))])
def test_transfer_refuses_another_architecture(source, target, counts):
    from gluon_cnns.errors import UsageError
    from gluon_cnns.training.finetune import transfer_features
    net = _built(target, 1, classes=3)
    with pytest.raises(UsageError, match="the --finetune net has %d feature parameters, this "
                                         "one %d: not the same architecture" % counts):
        transfer_features(_built(source, 1), net, (1, 1, 28, 28), [mx.cpu()])


@pytest.mark.parametrize("source_channels, channels", [(3, 1), (1, 3)])
def test_transfer_refuses_features_of_another_input(source_channels, channels):
    """The first convolution's weight has the input's channels: (20, C, 5, 5)."""
    from gluon_cnns.errors import UsageError
    from gluon_cnns.training.finetune import transfer_features
    net = _built("lenet", channels, classes=3)
    with pytest.raises(UsageError, match=r"has shape \(20, %d, 5, 5\), this net's \(20, %d, 5, "
                                         r"5\); train at the source's input size and channels"
                                         % (source_channels, channels)):
        transfer_features(_built("lenet", source_channels), net, (1, channels, 28, 28),
                          [mx.cpu()])


def test_finetune_from_an_export(fashion_run, three_classes, tmp_path, capsys):
    from gluon_cnns.inference.export import export_checkpoint
    prefix = str(tmp_path / "exp" / "lenet_bn")
    export_checkpoint(fashion_run, prefix, formats=("symbol",))
    code, _, err = run_cli(FINETUNE + ["--data-dir", three_classes, "--finetune", prefix,
                                       "--quiet"], capsys)
    assert code == 0, err
    code, _, err = run_cli(FINETUNE[2:] + ["--net", "resnet_mnist", "--data-dir", three_classes,
                                           "--finetune", prefix], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "holds a lenet_bn, not a resnet_mnist" in err


# ---------------------------------------------------------------- bad folders

def _error(capsys, args):
    code, _, err = run_cli(["--net", "lenet_bn", "--epochs", "1", "--quiet"] + args, capsys)
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_an_empty_class_folder(folder, tmp_path, capsys):
    root = copy_folder(folder, tmp_path)
    os.makedirs(os.path.join(root, "train", "Zebra"))
    err = _error(capsys, ["--dataset", "folder", "--data-dir", root])
    assert "class folder %s holds no images" % os.path.join(root, "train", "Zebra") in err


def test_a_class_only_in_val(folder, tmp_path, capsys):
    root = copy_folder(folder, tmp_path)
    shutil.move(os.path.join(root, "train", "Bag"), os.path.join(root, "Bag-train"))
    err = _error(capsys, ["--dataset", "folder", "--data-dir", root])
    assert "class 'Bag' is in the val folder but not in" in err


def test_fewer_than_two_classes(tmp_path, capsys):
    root = write_image_folder(str(tmp_path / "one"), per_class=4, val_per_class=2, classes=[3])
    err = _error(capsys, ["--dataset", "folder", "--data-dir", root])
    assert "has only the class 'Dress'" in err and "at least two" in err


def test_unreadable_images_are_skipped_with_a_count_or_stop(folder, tmp_path, capsys):
    root = copy_folder(folder, tmp_path)
    bag = os.path.join(root, "train", "Bag")
    with open(os.path.join(bag, "notes.jpg"), "w") as f:
        f.write("not a picture")
    os.mkfifo(os.path.join(bag, "pipe.png"))
    good = sorted(os.listdir(bag))[0]
    with open(os.path.join(bag, good), "rb") as f:
        head = f.read()
    truncated = os.path.join(bag, "truncated" + os.path.splitext(good)[1])
    with open(truncated, "wb") as f:  # the header reads; the pixels do not
        f.write(head[:len(head) // 2])
    code, out, err = run_cli(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", root,
                              "--epochs", "1", "--quiet", "--batch-size", "64"], capsys)
    assert code == 0, err
    assert "skipped 2 image files that cannot be read" in err
    assert "skipped 1 image that cannot be decoded in this pass" in err
    assert "truncated" in err and "Traceback" not in err
    err = _error(capsys, ["--dataset", "folder", "--data-dir", root, "--bad-images", "stop"])
    assert "2 image files cannot be read" in err and "--bad-images skip" in err


def test_mixed_channel_counts_are_read_as_rgb(folder, tmp_path, capsys):
    from PIL import Image
    root = copy_folder(folder, tmp_path)
    shirt = os.path.join(root, "train", "Shirt")
    path = os.path.join(shirt, sorted(os.listdir(shirt))[0])
    Image.open(path).convert("RGB").save(os.path.join(shirt, "colour.png"))
    code, out, err = run_cli(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", root,
                              "--epochs", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "260 grey and 1 colour images: all are read as RGB unless --channels 1" in err


@pytest.mark.parametrize("args, message", [
    (["--channels", "3"], "--channels applies to --dataset folder or rec"),
    (["--dataset", "folder"], "--dataset folder needs --data-dir DIR"),
    (["--freeze-features"], "--freeze-features needs --finetune"),
    (["--dataset", "folder", "--data-dir", "/nonexistent"], "/nonexistent does not exist"),
    (["--finetune", "/nonexistent"], "no such run folder or export"),
    (["--val-split", "1.5"], "--val-split: must be in 0..1"),
])
def test_image_flag_mistakes(args, message, capsys):
    assert message in _error(capsys, args)


# ---------------------------------------------------------------- the RecordIO pack

@pytest.fixture(scope="module")
def pack(folder, tmp_path_factory):
    from gluon_cnns.cli.pack import main as pack_main
    out = str(tmp_path_factory.mktemp("pack") / "fashion-rec")
    assert pack_main([folder, "--out", out]) == 0
    return out


def test_the_pack_gives_the_folders_batches(folder, pack):
    by_folder, by_pack = scan_images("folder", folder), scan_images("rec", pack)
    assert by_pack.class_names == by_folder.class_names and by_pack.grey

    def one_pass(data):
        np.random.seed(11)
        it = ImageBatches(data.train, 32, 28, 1, training=True)
        return [(X.asnumpy(), y.asnumpy()) for X, y in it]
    for (xa, ya), (xb, yb) in zip(one_pass(by_folder), one_pass(by_pack)):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_training_from_the_pack_equals_training_from_the_folder(folder, pack, tmp_path,
                                                                capsys):
    runs = []
    for kind, where in (("folder", folder), ("rec", pack)):
        run_dir = str(tmp_path / kind)
        code, _, err = run_cli(["--net", "lenet_bn", "--dataset", kind, "--data-dir", where,
                                "--epochs", "2", "--batch-size", "32", "--seed", "4",
                                "--save-dir", run_dir, "--quiet"], capsys)
        assert code == 0, err
        runs.append(log_of(run_dir))
    for key in ("loss", "train_acc", "test_acc"):
        assert [r[key] for r in runs[0]] == [r[key] for r in runs[1]], key


def test_a_damaged_pack_is_one_line(pack, tmp_path, capsys):
    broken = str(tmp_path / "broken")
    shutil.copytree(pack, broken)
    with open(os.path.join(broken, "train.idx"), "a") as f:
        f.write("999\t123456789\n")  # an index entry past the end of train.rec
    err = _error(capsys, ["--dataset", "rec", "--data-dir", broken])
    assert "train.idx" in err and "pack the folder again" in err
    os.remove(os.path.join(broken, "val.rec"))
    err = _error(capsys, ["--dataset", "rec", "--data-dir", broken])
    assert "val.rec not found" in err or "pack the folder again" in err


def test_load_data_images_feeds_a_plain_gluon_loop(folder):
    from mxnet import autograd, gluon

    from gluon_cnns import get_model
    from gluon_cnns.data import load_data_images
    train_iter, test_iter = load_data_images(folder, 32, 28, augment="none")
    assert train_iter.class_names == sorted(CLASS_FOLDERS)
    assert (train_iter.num_examples, test_iter.num_examples) == (200, 60)
    net = get_model("lenet_bn", classes=10)
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for _ in range(3):
        for X, y in train_iter:
            with autograd.record():
                batch_loss = loss(net(X), y)
            batch_loss.backward()
            trainer.step(X.shape[0])
            losses.append(batch_loss.mean().asscalar())
    assert np.mean(losses[-7:]) < np.mean(losses[:7])
    X, y = next(iter(test_iter))
    assert X.shape == (32, 1, 28, 28) and y.dtype == np.float32

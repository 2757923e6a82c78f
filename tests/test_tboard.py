"""TensorBoard events of ``scripts/train.py``, read back with TensorBoard's own reader.

Runs train LeNet on the first 512 Fashion-MNIST images (8 batches of 64 per epoch, two
epochs): every curve's x is the batch count, so epoch 1 ends at step 8, epoch 2 at 16,
and the running loss (every 2 batches) is at 2, 4, ..., 16.
"""
import os

import mxnet as mx
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gluon_cnns.artifacts.rundir import RunDir
from gluon_cnns.cli.train import main
from gluon_cnns.data import FASHION_MNIST_CLASSES
from gluon_cnns.training import cluster as cluster_module
from gluon_cnns.training import distributed, tboard

DATA = "/usr/share/datasets/fashion-mnist"
RUN = ["--net", "lenet", "--data-dir", DATA, "--limit-train", "512", "--limit-test", "256",
       "--batch-size", "64", "--lr", "0.1", "--momentum", "0.9", "--seed", "3",
       "--epochs", "2", "--quiet", "--tensorboard-every", "2"]
RUNNING = list(range(2, 17, 2))
EPOCH_ENDS = [8, 16]
EPOCH_TAGS = ("loss", "train_acc", "test_acc", "lr", "time", "images_per_sec")


def events(folder):
    acc = EventAccumulator(folder, size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def steps(acc, tag):
    return [e.step for e in acc.Scalars(tag)]


def values(acc, tag):
    return [e.value for e in acc.Scalars(tag)]


def final_params(run_dir):
    entry = RunDir(run_dir).load_checkpoint(warn=print)[1]
    path = os.path.join(run_dir, entry["params"])
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run with its events (default folder), and the class names the grid
    of mistakes was titled with."""
    run_dir = str(tmp_path_factory.mktemp("tb") / "run")
    titles = []
    original = tboard.mistakes_grid
    tboard.mistakes_grid = lambda images, names: titles.extend(names) or original(images, names)
    try:
        assert main(RUN + ["--save-dir", run_dir]) == 0
    finally:
        tboard.mistakes_grid = original
    return run_dir, events(os.path.join(run_dir, "tensorboard")), titles


def test_events_hold_the_curves_histograms_graph_and_mistakes(reference):
    run_dir, acc, titles = reference
    assert steps(acc, "batch/running_loss") == RUNNING
    for tag in EPOCH_TAGS:
        assert steps(acc, "epoch/" + tag) == EPOCH_ENDS, tag
    log = RunDir(run_dir).read_log()
    for tag in ("loss", "train_acc", "test_acc", "lr"):
        assert values(acc, "epoch/" + tag) == pytest.approx([r[tag] for r in log], rel=1e-6)
    tags = acc.Tags()
    weight_tags = [t for t in tags["histograms"] if t.startswith("weights/")]
    assert len(weight_tags) == len(final_params(run_dir)) == 8  # 4 layers' weights and biases
    assert "grad_norm/all_parameters" in tags["histograms"]
    norms = values(acc, "grad_norm/0.weight")
    assert len(norms) == 2 and all(n > 0 for n in norms)
    weights = acc.Histograms("weights/0.weight")[-1].histogram_value
    assert weights.num == final_params(run_dir)["0.weight"].size
    ops = {node.op for node in acc.Graph().node}
    assert {"Convolution", "FullyConnected", "Pooling"} <= ops
    images = acc.Images("test/misclassified")
    assert [i.step for i in images] == EPOCH_ENDS and images[-1].width > 100
    # Titled "predicted\n(true)" with Fashion-MNIST's class names.
    assert titles and all(set(t.split("\n")[0:1]) <= set(FASHION_MNIST_CLASSES) for t in titles)
    assert all(t.split("\n")[1].strip("()") in FASHION_MNIST_CLASSES for t in titles)


def test_the_weights_are_the_same_without_tensorboard(reference, tmp_path):
    run_dir = str(tmp_path / "quiet")
    assert main(RUN + ["--save-dir", run_dir, "--no-tensorboard"]) == 0
    assert not os.path.exists(os.path.join(run_dir, "tensorboard"))
    with_board = final_params(reference[0])
    without = final_params(run_dir)
    assert sorted(with_board) == sorted(without)
    for name in without:
        assert np.array_equal(with_board[name], without[name]), name  # bit for bit


class Crash(Exception):
    """The process dies while saving this checkpoint."""


@pytest.mark.parametrize("extra, crash_at, done_at", [
    ([], (2, 0), (1, 0)),                              # epoch 2 ran, its checkpoint did not
    (["--checkpoint-every", "3"], (0, 6), (0, 3)),     # mid-epoch: batch 3 saved, 6 not
])
def test_a_resumed_run_continues_the_same_curves(reference, tmp_path, monkeypatch,
                                                 extra, crash_at, done_at):
    run_dir = str(tmp_path / "run")
    write = RunDir.write_checkpoint

    def crashing(self, epoch, batch, *args):
        if (epoch, batch) == crash_at:
            raise Crash()
        return write(self, epoch, batch, *args)
    monkeypatch.setattr(RunDir, "write_checkpoint", crashing)
    with pytest.raises(Crash):
        main(RUN + ["--save-dir", run_dir] + extra)
    monkeypatch.setattr(RunDir, "write_checkpoint", write)
    entry = RunDir(run_dir).load_checkpoint(warn=print)[1]
    assert (entry["epoch"], entry["batch"]) == done_at
    before = events(os.path.join(run_dir, "tensorboard"))
    # The stopped run wrote points past its checkpoint: these must not show twice.
    assert steps(before, "batch/running_loss")[-1] > done_at[0] * 8 + done_at[1]

    assert main(["--save-dir", run_dir, "--resume", "--quiet", "--tensorboard-every", "2"]) == 0
    acc = events(os.path.join(run_dir, "tensorboard"))
    assert steps(acc, "batch/running_loss") == RUNNING
    for tag in EPOCH_TAGS:
        assert steps(acc, "epoch/" + tag) == EPOCH_ENDS, tag
    assert [i.step for i in acc.Images("test/misclassified")] == EPOCH_ENDS
    assert [h.step for h in acc.Histograms("weights/0.weight")] == EPOCH_ENDS
    # The same curves as the uninterrupted run, point for point.
    ref = reference[1]
    for tag in ("batch/running_loss", "epoch/loss", "epoch/test_acc"):
        assert values(acc, tag) == values(ref, tag), tag


def test_a_fresh_run_after_one_killed_before_its_first_checkpoint_starts_over(
        reference, tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    write = RunDir.write_checkpoint

    def crashing(self, epoch, batch, *args):
        raise Crash()
    monkeypatch.setattr(RunDir, "write_checkpoint", crashing)
    with pytest.raises(Crash):
        main(RUN + ["--save-dir", run_dir])
    monkeypatch.setattr(RunDir, "write_checkpoint", write)
    assert steps(events(os.path.join(run_dir, "tensorboard")), "epoch/loss") == [8]
    assert main(RUN + ["--save-dir", run_dir]) == 0  # no checkpoint: a fresh run
    acc = events(os.path.join(run_dir, "tensorboard"))
    assert steps(acc, "batch/running_loss") == RUNNING
    assert steps(acc, "epoch/loss") == EPOCH_ENDS
    assert values(acc, "epoch/loss") == values(reference[1], "epoch/loss")


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_writes_events(tmp_path, monkeypatch, rank):
    setup = distributed.setup

    def ranked(*args, **kwargs):
        cluster = setup(*args, **kwargs)
        assert isinstance(cluster, cluster_module.Cluster)
        cluster.rank = rank
        return cluster
    monkeypatch.setattr(distributed, "setup", ranked)
    folder = tmp_path / "board"
    assert main(RUN + ["--epochs", "1", "--tensorboard", str(folder)]) == 0
    written = sorted(os.listdir(folder)) if folder.exists() else []
    assert bool(written) == (rank == 0)


def test_tensorboard_and_no_tensorboard_is_one_usage_line(tmp_path, capsys):
    code = main(RUN + ["--tensorboard", str(tmp_path / "b"), "--no-tensorboard"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--tensorboard and --no-tensorboard" in err


def test_an_own_image_run_titles_its_mistakes_with_its_folder_names(tmp_path, monkeypatch):
    from image_folders import CLASS_FOLDERS, write_image_folder
    folder = write_image_folder(str(tmp_path / "images"), per_class=8, val_per_class=4,
                                classes=range(4))
    titles = []
    original = tboard.mistakes_grid
    monkeypatch.setattr(tboard, "mistakes_grid",
                        lambda images, names: titles.extend(names) or original(images, names))
    assert main(["--net", "lenet_bn", "--dataset", "folder", "--data-dir", folder, "--epochs",
                 "1", "--batch-size", "8", "--augment", "none", "--seed", "0", "--quiet",
                 "--save-dir", str(tmp_path / "run")]) == 0
    acc = events(str(tmp_path / "run" / "tensorboard"))
    assert steps(acc, "epoch/test_acc") == [4]  # 32 images, batches of 8
    names = set(CLASS_FOLDERS[:4])
    assert titles and all(set(t.replace("(", "").replace(")", "").split("\n")) <= names
                          for t in titles)

"""gluon_cnns.data: IDX/CIFAR readers, where data is found, and the batches it yields."""
import gzip
import os
import pickle
import socket
import struct
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.data.vision import transforms

from gluon_cnns.errors import DataError
import dataclasses

from gluon_cnns import data
from gluon_cnns.data import datasets, locate

# The real Fashion-MNIST from Debian's dataset-fashion-mnist package (CI installs it).
# Captured before the autouse fixture below points the module constant elsewhere.
REAL_FASHION_DIR = datasets.INFO["fashion-mnist"].system_folders[0]
MEAN = np.array(data.CIFAR10_MEAN, dtype=np.float32)
STD = np.array(data.CIFAR10_STD, dtype=np.float32)


# ---------------------------------------------------------------------------
# Helpers: write small data sets in the real on-disk formats
# ---------------------------------------------------------------------------

def idx_bytes(array):
    """An IDX file's bytes for a uint8 array."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">%dI" % array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path, array, gz=True):
    raw = idx_bytes(array)
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


def numbered_images(n, side=28):
    """Images whose every pixel is the example's index (mod 256): the image tells who it is."""
    return np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None],
                           (n, side, side)).copy()


def make_idx_folder(folder, n_train=200, n_test=50, gz=True):
    """Write the four (Fashion-)MNIST IDX files; labels are index % 10."""
    os.makedirs(folder, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": numbered_images(n_train),
              "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte": numbered_images(n_test),
              "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8)}
    for name, array in arrays.items():
        write_idx(os.path.join(str(folder), name + (".gz" if gz else "")), array, gz)
    return arrays


def make_cifar_folder(folder, binary, per_batch=12, n_test=20, seed=0):
    """Write six CIFAR-10 batches (python pickles or MXNet's .bin records) of random images.

    Returns the NHWC uint8 train and test images with their labels.
    """
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    sizes = [per_batch] * 5 + [n_test]
    rows = [rng.randint(0, 256, size=(n, 3072)).astype(np.uint8) for n in sizes]
    labels = [rng.randint(0, 10, size=n).astype(np.uint8) for n in sizes]
    for name, row, label in zip(data.CIFAR10_NAMES, rows, labels):
        if binary:
            with open(os.path.join(str(folder), name + ".bin"), "wb") as f:
                f.write(np.concatenate([label[:, None], row], axis=1).tobytes())
        else:
            with open(os.path.join(str(folder), name), "wb") as f:
                pickle.dump({b"data": row, b"labels": label.tolist(),
                             b"batch_label": name.encode()}, f, protocol=2)

    def nhwc(r):
        return r.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return (nhwc(np.concatenate(rows[:5])), np.concatenate(labels[:5]),
            nhwc(rows[5]), labels[5])


def normalized(images_nhwc):
    """The expected CIFAR batch: (x / 255 - mean) / std, as NCHW float32."""
    x = images_nhwc.astype(np.float32) / 255
    return ((x - MEAN) / STD).transpose(0, 3, 1, 2)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's folders or the network.

    HOME and the Debian folders point into tmp_path, the environment variables
    are cleared, and the downloader fails like an offline machine.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MXNET_HOME", raising=False)
    monkeypatch.delenv("GLUON_CNNS_DATA", raising=False)
    for name, folder in (("fashion-mnist", "debian-fashion"), ("mnist", "debian-mnist")):
        monkeypatch.setitem(datasets.INFO, name, dataclasses.replace(
            datasets.INFO[name], system_folders=(str(tmp_path / folder),)))
    calls = []

    def offline(name, folder):
        calls.append((name, folder))
        raise OSError("cannot reach apache-mxnet.example:443 (no network)")
    monkeypatch.setattr(locate, "mxnet_download", offline)
    return calls


@pytest.fixture
def real_fashion_dir(fashion_mnist_dir):
    """The Debian folder the package looks in: the suite's Fashion-MNIST (tests/conftest.py)."""
    assert REAL_FASHION_DIR == fashion_mnist_dir
    return REAL_FASHION_DIR


def collect(iterator):
    """All batches of one pass as numpy arrays (X, y)."""
    xs, ys = zip(*[(X.asnumpy(), y.asnumpy()) for X, y in iterator])
    return np.concatenate(xs), np.concatenate(ys)


# ---------------------------------------------------------------------------
# IDX reader
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.random.RandomState(1).randint(0, 256, size=(7, 5, 3)).astype(np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(str(tmp_path / "img"), images, gz)
    write_idx(str(tmp_path / "lbl"), labels, gz)
    got_images = data.read_idx(str(tmp_path / "img"))
    got_labels = data.read_idx(str(tmp_path / "lbl"))
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 5, 3)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_caches_until_the_file_changes(tmp_path):
    path = str(tmp_path / "lbl.gz")
    write_idx(path, np.arange(5, dtype=np.uint8))
    first = data.read_idx(path)
    assert data.read_idx(path) is first          # decoded once
    write_idx(path, np.arange(9, dtype=np.uint8))
    os.utime(path, ns=(time.time_ns() + 10 ** 9,) * 2)  # a new mtime even on coarse clocks
    assert data.read_idx(path).shape == (9,)


def _bad_magic(raw):
    return b"\x01\x02" + raw[2:]


def _bad_type(raw):
    return raw[:2] + b"\x0d" + raw[3:]


@pytest.mark.parametrize("damage, words", [
    (_bad_magic, "magic"),
    (_bad_type, "0x0d"),
    (lambda raw: raw + b"\x00", "damaged"),          # one byte too many
    (lambda raw: raw[:-1], "damaged"),               # one byte short
    (lambda raw: raw[:6], "truncated"),              # header cut inside the dims
    (lambda raw: b"", "magic"),
])
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_malformed(tmp_path, damage, words, gz):
    path = str(tmp_path / "broken-idx")
    raw = damage(idx_bytes(np.zeros((4, 3, 3), np.uint8)))
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError) as info:
        data.read_idx(path)
    message = str(info.value)
    assert path in message and words in message and "\n" not in message


def test_read_idx_truncated_gzip(tmp_path):
    path = str(tmp_path / "cut.gz")
    packed = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    with open(path, "wb") as f:
        f.write(packed[:len(packed) // 2])
    with pytest.raises(DataError, match="gzip") as info:
        data.read_idx(path)
    assert path in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.read_idx(str(tmp_path / "nothing.gz"))


def test_image_and_label_counts_must_agree(tmp_path):
    make_idx_folder(tmp_path, n_train=20)
    write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        data.load_data_fashion_mnist(8, root=str(tmp_path))


# ---------------------------------------------------------------------------
# Where the data is found
# ---------------------------------------------------------------------------

def test_search_order(tmp_path, monkeypatch):
    """root > $GLUON_CNNS_DATA > $MXNET_HOME/datasets > ~/.mxnet/datasets > Debian."""
    debian = tmp_path / "debian-fashion"
    make_idx_folder(debian, n_train=11)
    home_cache = tmp_path / "home" / ".mxnet" / "datasets" / "fashion-mnist"

    def found():
        train_iter, _ = data.load_data_fashion_mnist(4)
        return train_iter.num_examples
    assert found() == 11                                   # only Debian has it
    make_idx_folder(home_cache, n_train=12)
    assert found() == 12                                   # ~/.mxnet beats Debian
    mxnet_home = tmp_path / "mxhome"
    make_idx_folder(mxnet_home / "datasets" / "fashion-mnist", n_train=13)
    monkeypatch.setenv("MXNET_HOME", str(mxnet_home))
    assert found() == 13                                   # $MXNET_HOME replaces ~/.mxnet
    env = tmp_path / "env"
    make_idx_folder(env / "fashion-mnist", n_train=14)     # the <name> subfolder counts
    monkeypatch.setenv("GLUON_CNNS_DATA", str(env))
    assert found() == 14
    make_idx_folder(env, n_train=15)                       # the folder itself comes first
    assert found() == 15
    root = tmp_path / "root"
    make_idx_folder(root, n_train=16, gz=False)            # raw files count too
    train_iter, _ = data.load_data_fashion_mnist(4, root=str(root))
    assert train_iter.num_examples == 16


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch):
    env = tmp_path / "env"
    make_idx_folder(env, n_train=21)
    os.remove(str(env / "t10k-labels-idx1-ubyte.gz"))
    make_idx_folder(tmp_path / "debian-fashion", n_train=22)
    monkeypatch.setenv("GLUON_CNNS_DATA", str(env))
    train_iter, _ = data.load_data_fashion_mnist(4)
    assert train_iter.num_examples == 22


def test_explicit_root_without_files_is_an_error(tmp_path, monkeypatch, isolated):
    root = tmp_path / "root"
    make_idx_folder(root)
    os.remove(str(root / "train-labels-idx1-ubyte.gz"))
    os.remove(str(root / "t10k-images-idx3-ubyte.gz"))
    make_idx_folder(tmp_path / "debian-fashion")          # would work, but must not be used
    monkeypatch.setenv("GLUON_CNNS_DATA", str(tmp_path / "debian-fashion"))
    with pytest.raises(DataError) as info:
        data.load_data_fashion_mnist(4, root=str(root))
    message = str(info.value)
    assert str(root) in message
    assert "train-labels-idx1-ubyte" in message and "t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte" not in message     # present files are not listed
    assert isolated == []                               # and no download was tried


def test_root_subfolder_named_after_the_dataset(tmp_path):
    make_idx_folder(tmp_path / "mnist", n_train=17)
    train_iter, _ = data.load_data_mnist(4, root=str(tmp_path))
    assert train_iter.num_examples == 17


@pytest.mark.parametrize("name, loader, apt", [
    ("fashion-mnist", data.load_data_fashion_mnist, True),
    ("mnist", data.load_data_mnist, False),
    ("cifar10", data.load_data_cifar10, False),
])
def test_offline_error_is_one_line_naming_the_folders(tmp_path, monkeypatch, isolated,
                                                      name, loader, apt):
    monkeypatch.setenv("GLUON_CNNS_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        loader(8)
    message = str(info.value)
    assert "\n" not in message
    cache = str(tmp_path / "home" / ".mxnet" / "datasets" / name)
    for folder in [str(tmp_path / "env"), str(tmp_path / "env" / name), cache]:
        assert folder in message
    if name != "cifar10":
        assert datasets.INFO[name].system_folders[0] in message
    assert "no network" in message and "--data-dir" in message
    assert ("apt-get install dataset-fashion-mnist" in message) == apt
    assert isolated == [(name, cache)]                  # the download went to MXNet's cache


def test_download_fallback_reads_what_the_downloader_wrote(monkeypatch, isolated):
    def fake_download(name, folder):
        make_idx_folder(folder, n_train=23, n_test=9)
    monkeypatch.setattr(locate, "mxnet_download", fake_download)
    train_iter, test_iter = data.load_data_mnist(4)
    assert (train_iter.num_examples, test_iter.num_examples) == (23, 9)


def test_unreachable_host_fails_fast():
    """The probe in front of MXNet's downloader gives up at once on a closed port."""
    with socket.socket() as sock:                       # find a local port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.time()
    with pytest.raises(OSError, match="cannot reach 127.0.0.1"):
        locate._check_reachable("https://127.0.0.1:%d/" % port, timeout=5)
    assert time.time() - start < 3


# ---------------------------------------------------------------------------
# Real Fashion-MNIST: parity with the tutorial transforms, shapes, order
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("resize", [None, 96, 224])
def test_matches_mxnet_transforms(real_fashion_dir, resize):
    n = 12
    _, test_iter = data.load_data_fashion_mnist(n, resize=resize, root=real_fashion_dir,
                                                limit_test=n)
    X, y = next(iter(test_iter))
    images = data.read_idx(os.path.join(real_fashion_dir, "t10k-images-idx3-ubyte.gz"))
    labels = data.read_idx(os.path.join(real_fashion_dir, "t10k-labels-idx1-ubyte.gz"))
    steps = ([transforms.Resize(resize)] if resize else []) + [transforms.ToTensor()]
    pipeline = transforms.Compose(steps)
    expected = mx.nd.stack(*[pipeline(mx.nd.array(images[i][:, :, None], dtype=np.uint8))
                             for i in range(n)])
    side = resize or 28
    assert X.shape == expected.shape == (n, 1, side, side)
    assert float((X - expected).abs().max().asscalar()) <= 1e-6
    np.testing.assert_array_equal(y.asnumpy(), labels[:n].astype(np.float32))


def test_real_fashion_mnist_batches(real_fashion_dir):
    train_iter, test_iter = data.load_data_fashion_mnist(256, root=real_fashion_dir)
    assert (train_iter.num_examples, test_iter.num_examples) == (60000, 10000)
    assert (len(train_iter), len(test_iter)) == (235, 40)
    X, y = next(iter(train_iter))
    assert isinstance(X, mx.nd.NDArray) and X.context == mx.cpu()
    assert X.shape == (256, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (256,) and y.dtype == np.float32
    Xt, yt = collect(test_iter)                      # last batch (16) kept
    assert Xt.shape == (10000, 1, 28, 28) and 0 <= Xt.min() and Xt.max() <= 1
    assert Xt.max() == 1.0 and Xt.mean() > 0.1       # really pixels/255, not all zeros
    np.testing.assert_array_equal(np.bincount(yt.astype(int)), [1000] * 10)


def test_second_load_reuses_the_decoded_arrays(real_fashion_dir):
    first, _ = data.load_data_fashion_mnist(64, root=real_fashion_dir)
    second, _ = data.load_data_fashion_mnist(128, root=real_fashion_dir, limit_train=500)
    assert np.shares_memory(first.images, second.images)


# ---------------------------------------------------------------------------
# Batching: shuffling, order, limits, partial batches
# ---------------------------------------------------------------------------

def test_train_shuffles_each_pass_and_test_keeps_order(tmp_path):
    make_idx_folder(tmp_path, n_train=200, n_test=50)
    train_iter, test_iter = data.load_data_fashion_mnist(64, root=str(tmp_path))
    np.random.seed(3)
    X1, y1 = collect(train_iter)
    X2, y2 = collect(train_iter)
    index1 = np.rint(X1[:, 0, 0, 0] * 255).astype(int)    # which example each row is
    index2 = np.rint(X2[:, 0, 0, 0] * 255).astype(int)
    assert not np.array_equal(index1, index2)             # a fresh order each pass
    assert sorted(index1) == sorted(index2) == list(range(200))
    np.testing.assert_array_equal(y1, index1 % 10)        # labels travel with their images
    np.random.seed(3)
    np.testing.assert_array_equal(collect(train_iter)[1], y1)   # np.random.seed repeats it
    for _ in range(2):
        Xt, yt = collect(test_iter)
        np.testing.assert_array_equal(np.rint(Xt[:, 0, 0, 0] * 255), np.arange(50))
        np.testing.assert_array_equal(yt, np.arange(50) % 10)


def test_last_partial_batch_is_kept(tmp_path):
    make_idx_folder(tmp_path, n_train=200, n_test=50)
    train_iter, test_iter = data.load_data_mnist(64, root=str(tmp_path))
    assert len(train_iter) == 4 and len(test_iter) == 1
    assert [X.shape[0] for X, _ in train_iter] == [64, 64, 64, 8]
    assert [y.shape[0] for _, y in test_iter] == [50]


def test_limits_take_the_first_examples(tmp_path):
    make_idx_folder(tmp_path, n_train=200, n_test=50)
    train_iter, test_iter = data.load_data_fashion_mnist(
        16, root=str(tmp_path), limit_train=40, limit_test=20)
    assert (train_iter.num_examples, test_iter.num_examples) == (40, 20)
    assert (len(train_iter), len(test_iter)) == (3, 2)
    X, _ = collect(train_iter)
    assert sorted(np.rint(X[:, 0, 0, 0] * 255).astype(int)) == list(range(40))
    big, _ = data.load_data_fashion_mnist(16, root=str(tmp_path), limit_train=10 ** 6)
    assert big.num_examples == 200                        # a limit above N keeps everything


def test_resize_shapes_on_synthetic_data(tmp_path):
    make_idx_folder(tmp_path, n_train=10, n_test=10)
    _, test_iter = data.load_data("mnist", 4, resize=40, root=str(tmp_path))
    X, y = next(iter(test_iter))
    assert X.shape == (4, 1, 40, 40) and X.dtype == np.float32
    # A flat image stays flat through bilinear resizing.
    np.testing.assert_allclose(X.asnumpy()[1], 1 / 255, rtol=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"batch_size": "64"}, "batch_size"),
    ({"batch_size": 8, "resize": 0}, "resize"),
    ({"batch_size": 8, "resize": 96.0}, "resize"),
    ({"batch_size": 8, "limit_train": 0}, "limit_train"),
    ({"batch_size": 8, "limit_test": -1}, "limit_test"),
    ({"batch_size": 8, "ctx": "gpu"}, "ctx"),
])
def test_bad_arguments(tmp_path, kwargs, words):
    make_idx_folder(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DataError, match=words) as info:
        data.load_data_fashion_mnist(root=str(tmp_path), **kwargs)
    assert "e.g." in str(info.value)


def test_numpy_integers_are_accepted(tmp_path):
    make_idx_folder(tmp_path, n_train=10, n_test=10)
    train_iter, _ = data.load_data_fashion_mnist(np.int64(4), resize=np.int32(30),
                                                 root=str(tmp_path))
    assert next(iter(train_iter))[0].shape == (4, 1, 30, 30)


def test_load_data_dispatch(tmp_path):
    make_idx_folder(tmp_path / "fashion-mnist", n_train=31)
    make_idx_folder(tmp_path / "mnist", n_train=32)
    make_cifar_folder(tmp_path / "cifar10", binary=True, per_batch=7)
    counts = [data.load_data(name, 4, root=str(tmp_path))[0].num_examples
              for name in ("fashion-mnist", "FASHION_MNIST", "mnist", "cifar10")]
    assert counts == [31, 31, 32, 35]
    with pytest.raises(DataError, match="fashion-mnist, mnist, cifar10"):
        data.load_data("imagenet", 4, root=str(tmp_path))


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("binary, subfolder", [
    (False, "cifar-10-batches-py"),   # the python download, extracted
    (False, ""),
    (True, ""),                       # what MXNet's downloader writes
    (True, "cifar-10-batches-bin"),   # the binary download, extracted
])
def test_cifar_formats_and_normalization(tmp_path, binary, subfolder):
    folder = tmp_path / "c" / subfolder if subfolder else tmp_path / "c"
    train_x, train_y, test_x, test_y = make_cifar_folder(folder, binary)
    train_iter, test_iter = data.load_data_cifar10(16, augment=False, root=str(tmp_path / "c"))
    assert (train_iter.num_examples, test_iter.num_examples) == (60, 20)
    assert (len(train_iter), len(test_iter)) == (4, 2)
    Xt, yt = collect(test_iter)
    assert Xt.shape == (20, 3, 32, 32) and Xt.dtype == np.float32
    np.testing.assert_allclose(Xt, normalized(test_x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(yt, test_y)
    np.random.seed(5)                                    # the pass's order, reproduced
    order = np.random.permutation(60)
    np.random.seed(5)
    X, y = collect(train_iter)
    np.testing.assert_allclose(X, normalized(train_x[order]), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y, train_y[order])


def test_cifar_search_uses_mxnet_cache(tmp_path):
    cache = tmp_path / "home" / ".mxnet" / "datasets" / "cifar10"
    make_cifar_folder(cache, binary=True, per_batch=3)
    train_iter, _ = data.load_data_cifar10(4)
    assert train_iter.num_examples == 15


def test_cifar_augmentation_in_the_loader(tmp_path):
    train_x, _, _, _ = make_cifar_folder(tmp_path, binary=False, per_batch=40)
    plain, _ = data.load_data_cifar10(200, augment=False, root=str(tmp_path))
    augmented, _ = data.load_data_cifar10(200, augment=True, root=str(tmp_path))
    np.random.seed(7)
    X_plain, y_plain = collect(plain)
    np.random.seed(7)
    X_aug, y_aug = collect(augmented)
    np.testing.assert_array_equal(y_plain, y_aug)       # same order, same labels
    assert X_aug.shape == X_plain.shape == (200, 3, 32, 32)
    changed = np.abs(X_aug - X_plain).reshape(200, -1).max(axis=1) > 1e-6
    assert changed.sum() > 150                          # 1 in 162 draws is the identity
    # Padding brings in black pixels: exactly (0 - mean) / std, never below it.
    black = (-MEAN / STD)[None, :, None, None]
    assert np.isclose(X_aug, black, atol=1e-5).any()
    white = ((1 - MEAN) / STD)[None, :, None, None]
    assert (X_aug >= black - 1e-5).all() and (X_aug <= white + 1e-5).all()
    # The statistics stay close: at most 4 of 32 rows/columns are padding.
    assert abs(X_aug.mean() - X_plain.mean()) < 0.5
    assert 0.5 < X_aug.std() / X_plain.std() < 1.5


def test_cifar_resize(tmp_path):
    make_cifar_folder(tmp_path, binary=True, per_batch=2)
    train_iter, test_iter = data.load_data("cifar10", 4, resize=48, root=str(tmp_path))
    assert next(iter(train_iter))[0].shape == (4, 3, 48, 48)
    assert next(iter(test_iter))[0].shape == (4, 3, 48, 48)


def test_random_crop_flip_without_padding_only_mirrors():
    images = np.random.RandomState(0).randint(0, 256, size=(64, 8, 8, 3)).astype(np.uint8)
    np.random.seed(0)
    out = data.random_crop_flip(images, pad=0)
    assert out.shape == images.shape and out.dtype == np.uint8
    same = (out == images).all(axis=(1, 2, 3))
    mirrored = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all()
    assert 10 < mirrored.sum() < 54                      # about half are flipped
    np.random.seed(0)
    np.testing.assert_array_equal(data.random_crop_flip(images, pad=0), out)


def test_random_crop_flip_is_a_random_window_of_the_padded_image():
    images = np.random.RandomState(1).randint(1, 256, size=(40, 32, 32, 3)).astype(np.uint8)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    np.random.seed(2)
    out = data.random_crop_flip(images)
    assert out.shape == (40, 32, 32, 3)
    placements = []                                  # (top, left, mirrored) of each crop
    for image, crop in zip(padded, out):
        found = [(top, left, mirrored) for top in range(9) for left in range(9)
                 for mirrored in (False, True)
                 if (crop == image[top:top + 32, left:left + 32][:, ::-1 if mirrored else 1]).all()]
        assert len(found) == 1
        placements += found
    tops, lefts, mirrors = zip(*placements)
    assert len(set(tops)) > 3 and len(set(lefts)) > 3 and 5 < sum(mirrors) < 35


def test_cifar_malformed_files(tmp_path):
    make_cifar_folder(tmp_path / "bin", binary=True, per_batch=2)
    with open(str(tmp_path / "bin" / "test_batch.bin"), "ab") as f:
        f.write(b"\x00" * 10)
    with pytest.raises(DataError, match="3073"):
        data.load_data_cifar10(4, root=str(tmp_path / "bin"))
    make_cifar_folder(tmp_path / "py", binary=False, per_batch=2)
    with open(str(tmp_path / "py" / "data_batch_3"), "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match="data_batch_3.*3072"):
        data.load_data_cifar10(4, root=str(tmp_path / "py"))


class _Evil:
    """A pickle that would run a command when loaded."""
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_pickle_may_not_run_code(tmp_path):
    make_cifar_folder(tmp_path, binary=False, per_batch=2)
    with open(str(tmp_path / "test_batch"), "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load"):
        data.load_data_cifar10(4, root=str(tmp_path))


def test_cifar_root_without_files(tmp_path):
    with pytest.raises(DataError, match="CIFAR-10 not found in the data folder .*data_batch_1"):
        data.load_data_cifar10(4, root=str(tmp_path))


# ---------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------

def test_get_text_labels():
    # As d2l's get_fashion_mnist_labels writes them; the capitalized names on request.
    assert data.get_text_labels([0, 9, 6]) == ["t-shirt", "ankle boot", "shirt"]
    assert data.get_fashion_mnist_labels([0, 9, 6]) == ["t-shirt", "ankle boot", "shirt"]
    assert data.get_text_labels(mx.nd.array([1, 7]), data.FASHION_MNIST_CLASSES) == \
        ["Trouser", "Sneaker"]
    assert data.get_text_labels(np.array([3.0]), data.CIFAR10_CLASSES) == ["cat"]
    assert len(data.FASHION_MNIST_CLASSES) == len(data.CIFAR10_CLASSES) == 10
    with pytest.raises(DataError, match="outside"):
        data.get_text_labels([10])


# ---------------------------------------------------------------------------
# Issue 15 case 13: data that would train silently to nothing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["train", "t10k"])
def test_idx_labels_beyond_the_classes_are_refused(tmp_path, which):
    make_idx_folder(tmp_path, n_train=20, n_test=10)
    labels = (np.arange(20 if which == "train" else 10) % 10).astype(np.uint8)
    labels[-1] = 12  # one label beyond Fashion-MNIST's ten classes
    write_idx(str(tmp_path / ("%s-labels-idx1-ubyte.gz" % which)), labels)
    with pytest.raises(DataError) as info:
        data.load_data_fashion_mnist(4, root=str(tmp_path))
    message = str(info.value)
    assert "%s-images-idx3-ubyte.gz: labels span 0..12, but Fashion-MNIST has classes 0..9" \
        % which in message and "\n" not in message, message
    with pytest.raises(DataError, match="but MNIST has classes 0..9"):
        data.load_data_mnist(4, root=str(tmp_path))


@pytest.mark.parametrize("which", ["train", "t10k"])
def test_idx_files_without_images_are_refused(tmp_path, which):
    make_idx_folder(tmp_path, n_train=20, n_test=10)
    write_idx(str(tmp_path / ("%s-images-idx3-ubyte.gz" % which)), np.zeros((0, 28, 28), np.uint8))
    write_idx(str(tmp_path / ("%s-labels-idx1-ubyte.gz" % which)), np.zeros((0,), np.uint8))
    with pytest.raises(DataError, match="%s-images-idx3-ubyte.gz holds no examples" % which):
        data.load_data_fashion_mnist(4, root=str(tmp_path))


def test_cifar_batches_without_images_are_refused(tmp_path):
    for name in data.CIFAR10_NAMES:
        with open(str(tmp_path / name), "wb") as f:
            pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, f, protocol=4)
    with pytest.raises(DataError, match="holds no examples"):
        data.load_data_cifar10(4, root=str(tmp_path))


def test_read_idx_pair_checks_labels_only_when_given_the_classes(tmp_path):
    from gluon_cnns.data.readers import read_idx_pair
    write_idx(str(tmp_path / "i"), np.zeros((3, 2, 2), np.uint8), gz=False)
    write_idx(str(tmp_path / "l"), np.array([0, 5, 200], np.uint8), gz=False)
    images, labels = read_idx_pair(str(tmp_path / "i"), str(tmp_path / "l"))
    assert images.shape == (3, 2, 2, 1) and labels.tolist() == [0, 5, 200]
    with pytest.raises(DataError, match="labels span 0..200, but the data set has classes 0..5"):
        read_idx_pair(str(tmp_path / "i"), str(tmp_path / "l"), classes=6)

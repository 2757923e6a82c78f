"""Finding a dataset's files without a network where they exist, downloading only where not.

The order: ``root`` (if given, nothing else is tried), ``$GLUON_CNNS_DATA`` (and
its ``<name>`` subfolder), MXNet's cache ``$MXNET_HOME/datasets/<name>`` (default
``~/.mxnet``), the record's system folders (Debian's ``dataset-fashion-mnist``
installs ``/usr/share/datasets/fashion-mnist``); only then MXNet's downloader is
asked to fetch the files into its cache.
"""
import os
import socket
import time
import urllib.parse
import urllib.request

from ..errors import DataError
from .datasets import CIFAR10_NAMES, IDX_NAMES, dataset_info


def _idx_files(folder):
    """{name: path} of the four IDX files in `folder` (.gz or raw), or None."""
    found = {}
    for name in IDX_NAMES:
        for candidate in (name + ".gz", name):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                found[name] = path
                break
    return found if len(found) == len(IDX_NAMES) else None


def _cifar_files(folder):
    """The six CIFAR-10 batches in `folder` or its cifar-10-batches-* subfolder, or None."""
    layouts = ((folder, "", False),
               (os.path.join(folder, "cifar-10-batches-py"), "", False),
               (folder, ".bin", True),
               (os.path.join(folder, "cifar-10-batches-bin"), ".bin", True))
    for where, suffix, binary in layouts:
        paths = [os.path.join(where, name + suffix) for name in CIFAR10_NAMES]
        if all(os.path.isfile(p) for p in paths):
            return {"train": paths[:5], "test": paths[5:], "binary": binary}
    return None


def _locate(info, folder):
    """What `folder` holds of the dataset (a dict of paths), or None."""
    return _cifar_files(folder) if info.layout == "cifar" else _idx_files(folder)


def _missing_files(info, folder):
    """A short description of the files `folder` lacks, for error messages."""
    if info.layout == "cifar":
        return ("data_batch_1..5 and test_batch (python format, also accepted in a "
                "cifar-10-batches-py subfolder) or data_batch_1..5.bin and test_batch.bin")
    missing = [n + "[.gz]" for n in IDX_NAMES
               if not any(os.path.isfile(os.path.join(folder, n + ext)) for ext in (".gz", ""))]
    return ", ".join(missing)


def mxnet_cache_dir(name):
    """MXNet's own download folder for dataset `name` ($MXNET_HOME/datasets/<name>)."""
    # As mx.base.data_dir() does, read at call time; without importing MXNet.
    home = os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet"))
    return os.path.join(os.path.expanduser(home), "datasets", name)


def search_folders(name):
    """The folders searched for dataset `name` when no root is given, in order."""
    folders = []
    env = os.environ.get("GLUON_CNNS_DATA")
    if env:
        env = os.path.expanduser(env)
        folders += [env, os.path.join(env, name)]
    folders.append(mxnet_cache_dir(name))
    folders += dataset_info(name).system_folders
    return list(dict.fromkeys(folders))  # drop repeats, keep the order


def _check_reachable(url, timeout):
    """Raise OSError within about `timeout` seconds when `url`'s host cannot be reached.

    MXNet's downloader calls requests without a timeout and retries five
    times; behind a firewall that drops packets that can hang for minutes.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.getproxies().get(parts.scheme):
        return  # a local mirror, or a proxy we cannot probe through: let MXNet try
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    problem = "no address"
    try:
        # One deadline for all addresses of the host (a CDN name has several).
        for family, kind, proto, _, address in socket.getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM):
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    sock.connect(address)
                    return
                except OSError as err:
                    problem = err
            if time.monotonic() >= deadline:
                break
    except OSError as err:  # the name does not resolve
        problem = err
    raise OSError("cannot reach %s:%d (%s)" % (parts.hostname, port, problem))


def mxnet_download(name, folder, timeout=5.0):
    """Let MXNet's downloader fetch dataset `name` (train and test) into `folder`.

    Tests replace this function; it raises (OSError, requests errors, ...) when
    the download fails.
    """
    import mxnet as mx
    # _get_repo_url honours $MXNET_GLUON_REPO, exactly like the download itself.
    _check_reachable(mx.gluon.utils._get_repo_url(), timeout)
    dataset_class = getattr(mx.gluon.data.vision, dataset_info(name).mxnet_class)
    for train in (True, False):
        dataset_class(root=folder, train=train)


def _not_found_message(info, folders, err):
    """One line: what was searched, why the download failed, how to get the data."""
    cause = " ".join(("%s: %s" % (type(err).__name__, err)).split())  # one line
    if len(cause) > 200:
        cause = cause[:197] + "..."
    return ("%s not found in %s, and MXNet's download into %s failed (%s); to get it, %s, "
            "or pass the folder as --data-dir (root=)"
            % (info.title, ", ".join(folders), mxnet_cache_dir(info.name), cause,
               info.how_to_get))


def find_data(name, root=None):
    """Locate dataset `name` ('fashion-mnist', 'mnist' or 'cifar10'); return its paths.

    An explicit `root` (or its `<name>` subfolder) must hold the files.  Without
    it the search folders are tried in order and, when none has the data,
    MXNet's downloader fetches it into MXNet's cache.
    """
    info = dataset_info(name)
    if root is not None:
        root = os.path.expanduser(str(root))
        found = _locate(info, root) or _locate(info, os.path.join(root, info.name))
        if found is None:
            raise DataError("%s not found in the data folder %s: missing %s"
                            % (info.title, root, _missing_files(info, root)))
        return found
    folders = search_folders(info.name)
    for folder in folders:
        found = _locate(info, folder)
        if found is not None:
            return found
    cache = mxnet_cache_dir(info.name)
    try:
        mxnet_download(info.name, cache)
    except Exception as err:  # any failure means "no data"; say so in one line
        raise DataError(_not_found_message(info, folders, err)) from None
    found = _locate(info, cache)
    if found is None:
        raise DataError("MXNet's download of %s finished but %s still lacks %s"
                        % (info.title, cache, _missing_files(info, cache)))
    return found

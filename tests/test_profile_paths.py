"""The benchmark's profile path writes nothing outside a private temporary folder.

MXNet's profiler unlinks and recreates the file it is given, and writes to it
again when the process exits. The run is a fresh interpreter with its own
working folder, HOME and TMPDIR; every file there and in the repository is
compared before and after, and so is the machine's /dev/null. ``os.devnull``
is pointed at a FIFO in the working folder: code that hands os.devnull to a C
library replaces that FIFO (seen below) instead of the machine's device.
"""
import os
import stat
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN = ("import os, sys; os.devnull = sys.argv[1]; sys.path.insert(0, %r); "
       "from tools.benchmark.main import main; sys.exit(main(sys.argv[2:]))" % ROOT)


def snapshot(*folders):
    """{path: (kind, mtime, size, inode)} of everything below ``folders`` (.git left out).

    A folder is recorded by its kind only: creating and removing the private folder
    inside TMPDIR touches TMPDIR's own mtime, and that is allowed.
    """
    seen = {}
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in dirs + files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                kind = stat.S_IFMT(st.st_mode)
                seen[path] = ((kind,) if stat.S_ISDIR(st.st_mode)
                              else (kind, st.st_mtime_ns, st.st_size, st.st_ino))
    return seen


def device(path):
    st = os.stat(path)
    return stat.S_ISCHR(st.st_mode), st.st_rdev, st.st_ino


def test_profile_writes_only_into_its_private_folder(tmp_path):
    folders = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for folder in folders.values():
        folder.mkdir()
    fifo = folders["cwd"] / "devnull"
    os.mkfifo(str(fifo))
    env = dict(os.environ, HOME=str(folders["home"]), TMPDIR=str(folders["tmp"]),
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    before = snapshot(ROOT, *map(str, folders.values()))
    null_before = device("/dev/null")
    assert null_before[0]
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(fifo), "--net", "none", "--profile", "lenet_bn",
         "--batch-size", "8", "--repeat", "1", "--warmup", "0", "--min-time", "0.01",
         "--gemm-size", "64"],
        cwd=str(folders["cwd"]), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Training-step profile" in proc.stdout and "Convolution" in proc.stdout
    assert device("/dev/null") == null_before
    assert stat.S_ISFIFO(os.lstat(str(fifo)).st_mode), "the FIFO named by os.devnull was replaced"
    after = snapshot(ROOT, *map(str, folders.values()))
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert changed == []

"""A hostile user, third pass: a run writes only where it owns; a failed export keeps the
weights; a changed pack is refused; JSON files are read within bounds; the environment
is checked before MXNet reads it; --resume mistakes are one line each."""
import errno
import json
import os
import resource
import signal
import struct
import subprocess
import sys

import pytest

from gluon_cnns.cli import export as export_cli
from gluon_cnns.cli import pack as pack_cli
from gluon_cnns.cli.train import main as train_main
from gluon_cnns.errors import UsageError
from gluon_cnns.io import read_json
from image_folders import write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
DATA = "/usr/share/datasets/fashion-mnist"
MARKER = ".gluon_cnns"  # gluon_cnns.ownership.MARKER
TINY = ["--net", "lenet_bn", "--data-dir", DATA, "--limit-train", "64", "--limit-test", "32",
        "--batch-size", "32", "--epochs", "1", "--seed", "3", "--quiet"]


def one_line(capsys, code, expected=2):
    err = capsys.readouterr().err
    assert code == expected, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    found = {}
    for where, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(where, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("trained") / "run")
    assert train_main(TINY + ["--save-dir", run_dir]) == 0
    return run_dir


def _users_run_files(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"net": "lenet", "lr": 0.1}\n')
    (folder / "best.params").write_bytes(b"my weights")
    (folder / "log.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')


def _other_files(folder):
    folder.mkdir()
    (folder / "thesis.tex").write_text("chapter 1")
    (folder / "data").mkdir()
    (folder / "data" / "x.csv").write_text("1,2")


# ---------------------------------------------------------------- 1. ownership

@pytest.mark.parametrize("make", [_users_run_files, _other_files])
@pytest.mark.parametrize("tool", ["train --save-dir", "train --export", "export --out",
                                  "pack --out"])
def test_a_folder_the_package_did_not_make_is_refused_and_unchanged(tmp_path, capsys, trained,
                                                                    make, tool):
    target = tmp_path / "users"
    make(target)
    before = snapshot(str(target))
    if tool == "train --save-dir":
        code = train_main(TINY + ["--save-dir", str(target)])
    elif tool == "train --export":
        code = train_main(TINY + ["--export", str(target / "net")])
    elif tool == "export --out":
        code = export_cli.main(["--save-dir", trained, "--out", str(target / "net")])
    else:
        photos = write_image_folder(str(tmp_path / "photos"), per_class=2, val_per_class=1)
        code = pack_cli.main([photos, "--out", str(target)])
    line = one_line(capsys, code)
    assert str(target) in line and "choose another folder" in line
    assert snapshot(str(target)) == before


def test_the_filesystem_root_is_refused_as_a_run_folder(capsys):
    before = sorted(os.listdir("/"))
    line = one_line(capsys, train_main(TINY + ["--save-dir", "/"]))
    assert "--save-dir / holds files" in line
    assert sorted(os.listdir("/")) == before


def test_a_run_folder_of_an_unmarked_version_still_resumes(trained, tmp_path, capsys):
    old = str(tmp_path / "old")
    subprocess.run(["cp", "-a", trained, old], check=True)
    os.remove(os.path.join(old, MARKER))
    assert train_main(["--save-dir", old, "--resume", "--epochs", "2", "--quiet"]) == 0
    assert os.path.isfile(os.path.join(old, MARKER))


def test_a_marked_run_folder_and_a_new_one_are_written(tmp_path):
    new = tmp_path / "new"
    assert train_main(TINY + ["--save-dir", str(new)]) == 0
    assert read_json(str(new / MARKER))["made_by"] == "gluon_cnns"


def test_a_folder_of_our_exports_takes_another_but_not_with_a_stranger(trained, tmp_path,
                                                                       capsys):
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cp", "-a", trained, str(out / "run")], check=True)  # a run: ours too
    for name in ("a", "b"):  # the second finds only the first's files and the run: ours
        assert export_cli.main(["--save-dir", trained, "--out", str(out / name)]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    line = one_line(capsys, export_cli.main(["--save-dir", trained, "--out", str(out / "c")]))
    assert "holds files that gluon_cnns did not write" in line
    assert not os.path.exists(str(out / "c.json"))


@pytest.mark.parametrize("flag", ["--export", "--out"])
def test_an_export_to_dash_writes_nothing_into_the_working_folder(tmp_path, monkeypatch, capsys,
                                                                 trained, flag):
    monkeypatch.chdir(tmp_path)
    if flag == "--export":
        code = train_main(TINY + ["--export", "-"])
    else:
        code = export_cli.main(["--save-dir", trained, "--out", "-"])
    assert "not a stream" in one_line(capsys, code)
    assert os.listdir(str(tmp_path)) == []


# ---------------------------------------------------------------- 2. failed writes keep weights

def _fail(exc):
    def raiser(*args, **kwargs):
        raise exc
    return raiser


def _mxnet_error():
    import mxnet as mx
    return mx.base.MXNetError("[12:00:00] src/io/local_filesys.cc:166: Check failed: "
                              "FileStream.Write incomplete")


FAILED_WRITES = [  # (what fails, module attribute, error)
    ("params", "mxnet.gluon.HybridBlock.export", _mxnet_error),
    ("symbol", "gluon_cnns.inference.export._global_pooling_for_inference",
     lambda: OSError(errno.ENOSPC, "No space left on device")),
    ("onnx", "gluon_cnns.inference.export._export_onnx",
     lambda: OSError(errno.EFBIG, "File too large")),
    ("sidecar", "gluon_cnns.artifacts.layout._replace_json",
     lambda: OSError(errno.ENOSPC, "No space left on device")),
]


@pytest.mark.parametrize("what,attribute,error", FAILED_WRITES, ids=[c[0] for c in FAILED_WRITES])
def test_a_failed_export_write_after_training_keeps_the_weights(tmp_path, monkeypatch, capsys,
                                                                what, attribute, error):
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(attribute, _fail(error()))
        line = one_line(capsys, train_main(TINY + ["--export", str(tmp_path / "out" / "net")]))
    assert "the trained weights are kept in" in line
    kept = line.split("kept in ")[1].split(":")[0]
    assert os.path.isfile(os.path.join(kept, "best.params"))
    # ... and they export with the command the line gives.
    assert export_cli.main(["--save-dir", kept, "--out", str(tmp_path / "again" / "net")]) == 0
    assert os.path.isfile(str(tmp_path / "again" / "net.onnx"))


@pytest.mark.parametrize("what,attribute,error", FAILED_WRITES, ids=[c[0] for c in FAILED_WRITES])
def test_a_failed_export_write_of_a_run_is_one_line(trained, tmp_path, monkeypatch, capsys,
                                                    what, attribute, error):
    monkeypatch.setattr(attribute, _fail(error()))
    line = one_line(capsys, export_cli.main(["--save-dir", trained, "--out",
                                             str(tmp_path / "out" / "net")]))
    assert "the weights stay in %s" % trained in line


def _sizes_of_lenet_bn(tmp_path):
    """(save_parameters size, export params size) of lenet_bn."""
    import mxnet as mx
    from gluon_cnns.models import get_model
    net = get_model("lenet_bn")
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 1, 28, 28)))
    net.save_parameters(str(tmp_path / "a.params"))
    net.export(str(tmp_path / "b"))
    return (os.path.getsize(str(tmp_path / "a.params")),
            os.path.getsize(str(tmp_path / "b-0000.params")))


def test_a_file_size_limit_on_the_params_write_keeps_the_weights(tmp_path):
    kept_size, export_size = _sizes_of_lenet_bn(tmp_path)
    assert kept_size < export_size  # a limit between them fails the export alone
    limit = (kept_size + export_size) // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, TRAIN] + TINY + ["--export", str(work / "out" / "net")],
                          cwd=str(work), capture_output=True, text=True, timeout=300,
                          preexec_fn=limited, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    kept = [n for n in os.listdir(str(work)) if n.startswith("lenet_bn-trained-")]
    assert kept and os.path.getsize(str(work / kept[0] / "best.params")) == kept_size


# ---------------------------------------------------------------- 3. packs verified before use

@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    photos = write_image_folder(str(tmp_path_factory.mktemp("photos")), per_class=4,
                                val_per_class=2)
    out = str(tmp_path_factory.mktemp("packs") / "pack")
    assert pack_cli.main([photos, "--out", out]) == 0
    return out


def _record_offset(pack, key):
    with open(os.path.join(pack, "train.idx")) as f:
        return dict(tuple(map(int, line.split())) for line in f)[key]


def _change_label(pack):
    offset = _record_offset(pack, 0) + 8 + 4  # the frame, then IRHeader's flag
    with open(os.path.join(pack, "train.rec"), "r+b") as f:
        f.seek(offset)
        label = struct.unpack("<f", f.read(4))[0]
        f.seek(offset)
        f.write(struct.pack("<f", (label + 1) % 10))  # in range


def _flip_image_byte(pack):
    """Flip a byte in the IHDR chunk of the first PNG record (its CRC then fails); its key."""
    with open(os.path.join(pack, "train.idx")) as f:
        offsets = sorted(tuple(map(int, line.split())) for line in f)
    with open(os.path.join(pack, "train.rec"), "r+b") as f:
        for key, offset in offsets:
            f.seek(offset + 8 + 24)  # the frame, then IRHeader
            if f.read(4) == b"\x89PNG":
                f.seek(offset + 8 + 24 + 18)  # IHDR's width
                byte = f.read(1)
                f.seek(offset + 8 + 24 + 18)
                f.write(bytes([byte[0] ^ 0xFF]))
                return key
    raise AssertionError("no PNG record")


def _rec_train(pack, epochs=1):
    return train_main(["--net", "lenet_bn", "--dataset", "rec", "--data-dir", pack,
                       "--resize", "28", "--batch-size", "8", "--epochs", str(epochs),
                       "--seed", "3", "--quiet"])


@pytest.mark.parametrize("change", [_change_label, _flip_image_byte])
def test_a_changed_pack_is_refused_before_training(packed, tmp_path, capsys, change):
    pack = str(tmp_path / "pack")
    subprocess.run(["cp", "-a", packed, pack], check=True)
    change(pack)
    line = one_line(capsys, _rec_train(pack))
    assert "train.rec was changed after it was packed" in line and "pack.json" in line


def test_a_bad_image_in_a_pack_without_checksums_is_named_once(packed, tmp_path, capsys):
    pack = str(tmp_path / "pack")
    subprocess.run(["cp", "-a", packed, pack], check=True)
    meta = read_json(os.path.join(pack, "pack.json"))
    for info in meta["files"].values():
        del info["sha256"]  # as in a pack of an older version: nothing to check against
    with open(os.path.join(pack, "pack.json"), "w") as f:
        json.dump(meta, f)
    key = _flip_image_byte(pack)
    assert _rec_train(pack, epochs=3) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "skipped" in line]
    assert len(warnings) == 1, err
    assert "train.rec record %d" % key in warnings[0] and pack in warnings[0]


# ---------------------------------------------------------------- 4. JSON read within bounds

def _nested(depth):
    return "[" * depth + "]" * depth


JSON_CASES = {  # id: (file, text, fragment)
    "index-list": ("checkpoint.json", "[1, 2]", "holds a JSON list, not a JSON object"),
    "index-deep": ("checkpoint.json", _nested(100000), "nested more than"),
    "index-string": ("checkpoint.json", '"just a string"', "holds a JSON string"),
    "config-list": ("config.json", "[]", "holds a JSON list"),
    "config-deep": ("config.json", '{"a": %s}' % _nested(5000), "nested more than"),
}


@pytest.mark.parametrize("name,text,fragment", JSON_CASES.values(), ids=list(JSON_CASES))
def test_a_malformed_json_file_of_a_run_is_one_line(trained, tmp_path, capsys, name, text,
                                                    fragment):
    run = str(tmp_path / "run")
    subprocess.run(["cp", "-a", trained, run], check=True)
    with open(os.path.join(run, name), "w") as f:
        f.write(text)
    line = one_line(capsys, train_main(["--save-dir", run, "--resume", "--epochs", "2",
                                        "--quiet"]))
    assert fragment in line


def test_an_epoch_that_is_true_is_named_not_taken_for_a_failed_write(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert train_main(TINY + ["--save-dir", run, "--epochs", "2"]) == 0
    index = read_json(os.path.join(run, "checkpoint.json"))
    index["epoch"] = True
    with open(os.path.join(run, "checkpoint.json"), "w") as f:
        json.dump(index, f)
    capsys.readouterr()
    assert train_main(["--save-dir", run, "--resume", "--epochs", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint.json is malformed ('epoch' and 'batch' must be whole numbers" in err
    assert "resuming from the checkpoint at epoch 1" in err and "write failed" not in err


@pytest.mark.parametrize("text,expect,fragment", [
    ("[1]", dict, "holds a JSON list, not a JSON object"),
    ("{}", list, "holds a JSON object, not a JSON list"),
    ('{"a": "[[[[[[[["}', dict, None),  # brackets inside a string do not nest
    (_nested(101), list, "nested more than 100"),
    ("x" * 2000, dict, "larger than"),
], ids=["list", "object", "brackets-in-string", "deep", "large"])
def test_read_json_checks_size_depth_and_type(tmp_path, text, expect, fragment):
    path = str(tmp_path / "f.json")
    with open(path, "w") as f:
        f.write(text)
    if fragment is None:
        assert read_json(path, expect) == json.loads(text)
        return
    with pytest.raises(ValueError, match=fragment):
        read_json(path, expect, max_bytes=1000)


def test_a_sidecar_and_a_pack_json_are_read_within_bounds(packed, tmp_path, capsys):
    pack = str(tmp_path / "pack")
    subprocess.run(["cp", "-a", packed, pack], check=True)
    with open(os.path.join(pack, "pack.json"), "w") as f:
        f.write(_nested(100000))
    assert "nested more than" in one_line(capsys, _rec_train(pack))


# ---------------------------------------------------------------- 5. the environment

ENVIRONMENT = [  # (variable, value, exit code, fragment)
    ("OMP_NUM_THREADS", "abc", 2, "OMP_NUM_THREADS='abc'"),
    ("OMP_NUM_THREADS", "1,2", 2, "1..4096"),
    ("OMP_NUM_THREADS", "100000", 2, "1..4096"),
    ("OMP_NUM_THREADS", "0", 0, "ignoring OMP_NUM_THREADS='0'"),
    ("MXNET_OMP_MAX_THREADS", "-1", 2, "MXNET_OMP_MAX_THREADS='-1'"),
    ("MXNET_CPU_WORKER_NTHREADS", "-1", 2, "1..1024"),
    ("MXNET_CPU_WORKER_NTHREADS", "0", 2, "1..1024"),
    ("MXNET_CPU_PRIORITY_NTHREADS", "abc", 2, "MXNET_CPU_PRIORITY_NTHREADS"),
    ("MXNET_ENGINE_TYPE", "Bogus", 2, "NaiveEngine"),
    ("MKL_NUM_THREADS", "abc", 0, "ignoring MKL_NUM_THREADS"),
    ("OMP_WAIT_POLICY", "bogus", 0, "active or passive"),
    ("GOMP_SPINCOUNT", "1e99", 0, "ignoring GOMP_SPINCOUNT"),
]


@pytest.mark.parametrize("name,value,code,fragment", ENVIRONMENT)
def test_the_environment_is_checked_before_mxnet(name, value, code, fragment):
    # --list stops right after the check; a value let through would reach MXNet in a run.
    env = dict(os.environ, PYTHONPATH=ROOT, **{name: value})
    proc = subprocess.run([sys.executable, TRAIN, "--list"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert fragment in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("script,argv", [
    ("export.py", ["--save-dir", "x", "--out", "y"]),
    ("predict.py", ["--model", "x", "img.png"]),
    ("pack.py", ["photos"]),
    ("launch.py", ["-n", "1", "--", "true"]),
])
def test_every_entry_point_checks_the_environment(script, argv):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="abc")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + argv,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "OMP_NUM_THREADS='abc'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "ParamError" not in proc.stderr


def test_configure_checks_the_environment_and_removes_what_is_ignored():
    from gluon_cnns.envcheck import check_environment
    environ = {"OMP_NUM_THREADS": "-1", "GOMP_SPINCOUNT": "abc"}
    assert check_environment(environ, warn=lambda line: None) == ["OMP_NUM_THREADS",
                                                                  "GOMP_SPINCOUNT"]
    assert environ == {}
    with pytest.raises(UsageError, match="MXNET_CPU_WORKER_NTHREADS='-1'"):
        check_environment({"MXNET_CPU_WORKER_NTHREADS": "-1"})
    code = ("import os; os.environ['OMP_NUM_THREADS'] = 'abc'; import gluon_cnns.threads as t\n"
            "try: t.configure()\nexcept ValueError as e: print('refused', e)")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("refused OMP_NUM_THREADS='abc'"), proc.stderr


@pytest.mark.parametrize("argv,fragment", [
    (["--cpus", "100000"], "--cpus 100000: at most"),
    (["--gpus", "100000"], "--gpus 100000 but only"),
])
def test_device_counts_beyond_the_machine_are_one_line(capsys, argv, fragment):
    assert fragment in one_line(capsys, train_main(TINY + argv))


# ---------------------------------------------------------------- 6. --resume mistakes

def test_resume_on_a_missing_folder_is_one_line(tmp_path, capsys):
    line = one_line(capsys, train_main(["--save-dir", str(tmp_path / "nowhere"), "--resume"]))
    assert "no such folder" in line and "Errno" not in line


def test_resume_on_a_read_only_folder_is_one_line(trained, tmp_path, monkeypatch, capsys):
    run = str(tmp_path / "run")
    subprocess.run(["cp", "-a", trained, run], check=True)

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr("gluon_cnns.artifacts.rundir.take_lock", read_only)
    line = one_line(capsys, train_main(["--save-dir", run, "--resume", "--epochs", "2",
                                        "--quiet"]))
    assert "Read-only file system" in line and "writable" in line and "Errno" not in line

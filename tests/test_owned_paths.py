"""Files are written only where the package owns the path: never through a symbolic link
that someone left at a name the package would use (a victim file must stay as it was)."""
import os
import types

import mxnet as mx
import pytest

import gluon_cnns
from gluon_cnns.errors import CheckpointError, ExportError, UsageError
from gluon_cnns.artifacts.rundir import LOG, RunDir

VICTIM_TEXT = "someone else's file\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def test_the_log_is_not_appended_through_a_link(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(str(victim), str(run / LOG))
    with pytest.raises(CheckpointError) as info:
        RunDir(str(run)).append_log({"epoch": 1, "loss": 0.5})
    assert LOG in str(info.value) and len(str(info.value).splitlines()) == 1
    assert victim.read_text() == VICTIM_TEXT
    RunDir(str(tmp_path)).append_log({"epoch": 1})  # a regular log is appended to
    assert (tmp_path / LOG).read_text() == '{"epoch": 1}\n'


def test_the_docs_write_probe_does_not_follow_a_link(tmp_path, victim):
    from tools import reproduce
    docs = tmp_path / "docs"
    docs.mkdir()
    os.symlink(str(victim), str(docs / ".reproduce-write-test"))
    reproduce._check_docs_dir(str(docs))
    assert victim.read_text() == VICTIM_TEXT
    assert os.path.islink(str(docs / ".reproduce-write-test"))  # not ours: left alone
    assert sorted(os.listdir(str(docs))) == [".reproduce-write-test", "results"]


def test_a_failed_export_keeps_the_weights_in_a_new_folder(tmp_path, monkeypatch):
    """The fallback run folder is made by the package (mkdtemp: created exclusively), not
    a guessable name that a link to someone else's folder could already occupy."""
    from gluon_cnns.cli import train
    from gluon_cnns.inference import export

    def fail(*args, **kwargs):
        raise ExportError("no room")
    monkeypatch.setattr(export, "export_trained", fail)
    work, theirs = tmp_path / "work", tmp_path / "theirs"
    work.mkdir()
    theirs.mkdir()
    monkeypatch.chdir(str(work))
    os.symlink(str(theirs), str(work / ("lenet-trained-%d" % os.getpid())))
    net = gluon_cnns.get_model("lenet")
    net.initialize()
    net(mx.nd.zeros((1, 1, 28, 28)))
    run = types.SimpleNamespace(net=net, settings={"net": "lenet"}, config=None)
    with pytest.raises(UsageError) as info:
        train._export(run, str(tmp_path / "exports" / "lenet"))
    assert os.listdir(str(theirs)) == []
    (kept,) = [name for name in os.listdir(str(work)) if not os.path.islink(str(work / name))]
    assert kept.startswith("lenet-trained-") and str(work / kept) in str(info.value)
    again = gluon_cnns.get_model("lenet")
    again.load_parameters(str(work / kept / "best.params"))
    for mine, loaded in zip(net.collect_params().values(), again.collect_params().values()):
        assert (mine.data().asnumpy() == loaded.data().asnumpy()).all()

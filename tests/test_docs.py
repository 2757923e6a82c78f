"""The documentation runs as written: every command and Python block of README.md and
docs/*.md, through ``tools/check_docs.py --short`` (one case each, on a little data),
and the quick mode that makes that cheap."""
import os
import subprocess
import sys

import pytest

from tools import check_docs, doc_cases
from tools.check_docs import Checker
from tools.doc_cases import Case, all_cases, split_commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = all_cases()


@pytest.fixture(scope="module")
def checker(request):
    """One checker for the module: each document's cases share its scratch folder, and
    the documents of the selected cases run in the background, two at a time."""
    checker = Checker("short")
    checker.start([item.callspec.params["case"] for item in request.session.items
                   if isinstance(getattr(getattr(item, "callspec", None), "params", {})
                                 .get("case"), Case)])  # other modules have "case"s too
    yield checker
    checker.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_documented_case_runs_as_written(checker, case):
    result = checker.run(case)
    assert result.ok, "%s (line %d) failed:\n%s" % (case.id, case.line, "\n".join(result.lines))


def test_readme_python_blocks_are_cases():
    blocks = [c for c in CASES if c.doc == "README.md" and c.kind == "python"]
    assert len(blocks) == 3
    assert "gluon_cnns.get_model" in blocks[0].text
    assert "gluon_cnns.load_predictor" in blocks[1].text and ".predict(" in blocks[1].text
    assert "utils.train(" in blocks[2].text


def test_readme_is_short_and_keeps_the_quickstart():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(text.splitlines()) <= 250
    quickstart = [c for c in CASES if c.doc == "README.md"][0]
    assert quickstart.commands == [
        "pip install -r requirements.txt", "bash scripts/install_horovod.sh",
        "python scripts/train.py --net lenet_bn --epochs 2", "python -m pytest"]


def test_every_documented_command_is_run_or_listed_with_a_reason():
    """What does not run is named with its reason, never dropped silently."""
    commands = [command for case in CASES for command in case.commands]
    listed = [command for command in commands if command in doc_cases.NOT_RUN]
    assert listed and all(doc_cases.NOT_RUN[command].strip() for command in listed)
    assert "python scripts/train.py --net lenet_bn --epochs 2" not in doc_cases.NOT_RUN
    assert not doc_cases.stale_entries(CASES)


def test_a_document_not_run_exists_and_none_of_it_runs():
    """docs/FLAGS.md quotes each script's synopsis (`python scripts/train.py [--net NAME]
    ...`), which is not a command; every other document runs."""
    assert set(doc_cases.NOT_RUN_DOCS) <= set(doc_cases.doc_paths())
    assert all(why.strip() for why in doc_cases.NOT_RUN_DOCS.values())
    run = {case.doc for case in CASES}
    assert not run & set(doc_cases.NOT_RUN_DOCS)
    assert "docs/EXPORT.md" in run


def test_no_developer_paths_in_the_docs():
    for doc in doc_cases.doc_paths() + ["docs/benchmark.json", "docs/scaling.json",
                                        "tests/README.md"]:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for path in ("/root/", "/work/", "/home/"):
            assert path not in text, "%s names %s" % (doc, path)


def test_bash_blocks_split_into_commands():
    block = ("A=1  # a comment\n\npython scripts/train.py --net lenet \\\n"
             "    --epochs 2 && echo '# not a comment && not split'\n")
    assert split_commands(block) == ["A=1", "python scripts/train.py --net lenet --epochs 2",
                                     "echo '# not a comment && not split'"]


def _folder(tmp_path):
    """A scratch folder with the repo's package and scripts (linked, not copied)."""
    for name in ("gluon_cnns", "scripts"):
        os.symlink(os.path.join(ROOT, name), str(tmp_path / name))
    return str(tmp_path)


def test_a_failing_command_fails_its_case(tmp_path):
    case = Case("README.md", 99, "inline", 1, "x", ["python scripts/train.py --net nosuchnet"])
    result = check_docs.run_case(case, _folder(tmp_path), check_docs.QUICK["short"], "")
    assert not result.ok
    assert "nosuchnet" in "\n".join(result.lines)


def test_output_that_no_longer_says_what_the_docs_say_fails(tmp_path, monkeypatch):
    command = "python scripts/train.py --net lenet_bn --epochs 1 --quiet"
    monkeypatch.setitem(doc_cases.EXPECT, command, ["training on gpu(N)", "epoch N, loss ..."])
    case = Case("README.md", 98, "inline", 1, command, [command])
    result = check_docs.run_case(case, _folder(tmp_path), check_docs.QUICK["short"],
                                 "it prints `training on gpu(N)` and `epoch N, loss ...`")
    assert not result.ok
    report = "\n".join(result.lines)
    assert "does not show 'training on gpu(N)'" in report and "epoch N" not in report


def test_quick_mode_caps_examples_and_epochs():
    code = ("import mxnet as mx\n"
            "from mxnet import gluon\n"
            "from gluon_cnns import get_model, utils\n"
            "train, test = utils.load_data_fashion_mnist(8)\n"
            "print(len(train.labels), len(test.labels))\n"
            "net = get_model('lenet_bn'); net.initialize()\n"
            "trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})\n"
            "h = utils.train(train, test, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,\n"
            "                mx.cpu(), 5, progress=False)\n"
            "print(len(h))\n")
    env = dict(os.environ, GLUON_CNNS_QUICK="24,2", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    assert out[0] == "24 24" and out[-1] == "2"
    env["GLUON_CNNS_QUICK"] = "24,x"
    bad = subprocess.run([sys.executable, "scripts/train.py", "--epochs", "1"], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "gluon-cnns-train: error: GLUON_CNNS_QUICK='24,x' is not EXAMPLES[,EPOCHS] (positive "
        "integers), e.g. GLUON_CNNS_QUICK=64,2; unset it for full runs"]

"""One declaration per setting: the table of gluon_cnns.settings is what the training command's
flags and --help, config.json's type checks, --resume's rules and the recipe come from."""
import json
import os
import subprocess
import sys

import pytest

from gluon_cnns import settings as table
from gluon_cnns.cli.train_args import build_parser, check_resume_changes, resolve_settings
from gluon_cnns.errors import CheckpointError, UsageError
from gluon_cnns.io import write_json
from gluon_cnns.models import Recipe, model_spec
from gluon_cnns.training.prepare import resolve_data, run_settings
from gluon_cnns.artifacts.records import config_problem
from gluon_cnns.artifacts.rundir import RunDir

from image_folders import write_image_folder
from train_help import GOLDEN, train_help

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist"

# A flag the project does not have, declared the one way a new flag is.
DROP_PATH = table.Setting("drop_path", float, parse=table.positive_float, metavar="E",
                          may_be_none=True, fixed_on_resume=True,
                          help="drop each residual branch with probability E")


@pytest.fixture
def one_more_setting(monkeypatch):
    monkeypatch.setattr(table, "SETTINGS", table.SETTINGS + (DROP_PATH,))


def parse(argv):
    return build_parser().parse_args(argv)


def test_help_is_the_golden_help():
    """The generated --help is the hand-written parser's, word for word."""
    with open(GOLDEN, encoding="utf-8") as f:
        assert train_help() == f.read()


def test_help_imports_no_mxnet():
    code = ("import sys; from gluon_cnns.cli.train_args import build_parser; "
            "build_parser().format_help(); assert 'mxnet' not in sys.modules, 'mxnet'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=ROOT))


def test_a_new_setting_is_one_declaration(one_more_setting, tmp_path):
    # The parser has the flag, with its help and its value check.
    assert "--drop-path E" in build_parser().format_help()
    args = parse(["--net", "lenet", "--drop-path", "0.1"])
    with pytest.raises(UsageError, match="argument --drop-path: must be a positive number"):
        parse(["--drop-path", "-1"])
    # The settings and config.json keep it; a resumed run takes it from there.
    settings = resolve_settings(args)
    resolve_data(settings)
    assert settings["drop_path"] == 0.1
    run_dir = RunDir(str(tmp_path))
    write_json(run_dir.file("config.json"), settings)
    saved = run_dir.read_config()
    assert saved == settings
    assert resolve_settings(parse([]), saved)["drop_path"] == 0.1
    # config.json's type check knows its type; None is allowed, a string is not.
    assert config_problem(dict(saved, drop_path=None)) is None
    assert config_problem(dict(saved, drop_path="0.1")) == \
        "'drop_path' is '0.1', not a number"
    write_json(run_dir.file("config.json"), dict(saved, drop_path="0.1"))
    with pytest.raises(CheckpointError, match="'drop_path' is '0.1', not a number"):
        run_dir.read_config()
    # --resume refuses to change it; the same value passes.
    check_resume_changes(parse(["--drop-path", "0.1"]), saved, "runs/x")
    with pytest.raises(UsageError) as refused:
        check_resume_changes(parse(["--drop-path", "0.2"]), saved, "runs/x")
    assert str(refused.value) == ("--drop-path cannot change on --resume (the checkpoint "
                                  "in runs/x used 0.1); start a new --save-dir instead")


def test_a_setting_free_on_resume_may_change(monkeypatch):
    free = table.Setting("drop_path", float, parse=table.positive_float, help="h")
    monkeypatch.setattr(table, "SETTINGS", table.SETTINGS + (free,))
    saved = resolve_settings(parse(["--net", "lenet", "--drop-path", "0.1"]))
    check_resume_changes(parse(["--drop-path", "0.2"]), saved, "runs/x")
    assert resolve_settings(parse(["--drop-path", "0.2"]), saved)["drop_path"] == 0.2


def test_the_recipe_is_the_recipe_settings():
    recipe_settings = [s.name for s in table.SETTINGS if s.recipe]
    assert list(Recipe._fields) == recipe_settings
    # A net's recipe fills every recipe setting the command line leaves out.
    settings = resolve_settings(parse(["--net", "resnet20_cifar", "--recipe", "gluoncv"]))
    recipe = model_spec("resnet20_cifar").recipes["gluoncv"]
    for name in recipe_settings:
        value = getattr(recipe, name)
        assert settings[name] == (list(value) if isinstance(value, tuple) else value), name
    with pytest.raises(TypeError, match="drop_path"):
        table.recipe(drop_path=0.1)


def test_every_kept_flag_is_taken_from_config_json_on_resume():
    """A flag left out on --resume is the run's saved value, for every kept setting."""
    saved = resolve_settings(parse(["--net", "lenet", "--dataset", "folder",
                                    "--data-dir", "/d", "--seed", "7", "--lr", "0.3"]))
    marked = dict(saved, **{s.name: "saved-%s" % s.name for s in table.kept_flags()
                            if s.name not in ("net", "recipe", "dataset", "data_dir")})
    marked.update(lr_schedule="none", optimizer="sgd", lr_steps=[], lr_step_iters=[],
                  warmup_iters=0, warmup_epochs=0, mean=None, std=None, freeze_features=None,
                  epochs=10, mixup_off_epoch=2)  # numbers, not the recipe's: compared below
    # --last-gamma and --finetune refuse each other: each is checked with the other off.
    for off in ({"finetune": None}, {"last_gamma": False}):
        run = dict(marked, **off)
        resumed = resolve_settings(parse([]), run)
        for spec in table.kept_flags():
            assert resumed[spec.name] == run[spec.name], spec.name


def test_config_json_of_a_real_run_passes_the_checks(tmp_path):
    from gluon_cnns.cli.train import main
    run_dir = str(tmp_path / "run")
    assert main(["--net", "lenet", "--data-dir", DATA, "--limit-train", "256",
                 "--limit-test", "128", "--epochs", "1", "--batch-size", "64", "--seed", "0",
                 "--save-dir", run_dir, "--quiet"]) == 0
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config_problem(config) is None
    assert {s.name for s in table.kept()} <= set(config)
    # Every kept setting is type-checked: a wrong type in any of them is named.
    for spec in table.kept():
        assert config_problem(dict(config, **{spec.name: {}})).startswith(
            "%r is {}, not " % spec.name)


def test_the_library_builds_what_the_command_line_builds(tmp_path):
    """run_settings + resolve_data, without the command line, give the settings that
    gluon-cnns-train prepares for the same own-image run."""
    from gluon_cnns.cli.train import prepare
    root = write_image_folder(str(tmp_path / "images"), per_class=2, val_per_class=1,
                              classes=range(3))
    argv = ["--net", "lenet", "--dataset", "folder", "--data-dir", root, "--seed", "3",
            "--epochs", "1"]
    prepared = prepare(parse(argv)).settings
    settings = run_settings({"net": "lenet", "dataset": "folder", "data_dir": root, "seed": 3,
                             "epochs": 1})
    images = resolve_data(settings)
    assert settings == prepared
    assert sorted(images.class_names) == ["Pullover", "T-shirt-top", "Trouser"]
    assert (settings["classes"], settings["channels"], settings["resize"]) == (3, 1, 28)
    assert settings["data_fingerprint"] and settings["mean"] is None


def test_resume_refusals_keep_their_words():
    saved = resolve_settings(parse(["--net", "lenet", "--seed", "4"]))
    with pytest.raises(UsageError, match=r"^checkpoint in d is for net lenet, not lenet_bn; use "
                                         r"--net lenet or another --save-dir$"):
        check_resume_changes(parse(["--net", "lenet_bn"]), saved, "d")
    with pytest.raises(UsageError, match=r"^--seed cannot change on --resume \(the run's data "
                                         r"order and dropout masks follow seed 4\); drop --seed$"):
        check_resume_changes(parse(["--seed", "5"]), saved, "d")
    with pytest.raises(UsageError, match=r"^--lr-steps cannot change on --resume \(the "
                                         r"checkpoint in d used none\)"):
        check_resume_changes(parse(["--lr-steps", "3"]), dict(saved, lr_steps=None), "d")


def test_a_run_refuses_incomplete_or_mistyped_settings():
    from gluon_cnns.errors import GluonCNNsError
    from gluon_cnns.training.fit import Run
    settings = run_settings({"net": "lenet"})
    with pytest.raises(GluonCNNsError, match="Run.settings: it has no 'classes', 'class_names', "
                                             "'data_fingerprint'; build them with"):
        Run(dict(settings), [], None, (1, 1, 28, 28), None)
    resolve_data(settings)
    Run(dict(settings), [], None, (1, 1, 28, 28), None)
    with pytest.raises(GluonCNNsError, match="Run.settings: 'lr' is '0.1', not a number"):
        Run(dict(settings, lr="0.1"), [], None, (1, 1, 28, 28), None)


def test_every_setting_the_package_reads_is_declared():
    """A key read from a ``settings`` dict anywhere in the package is an entry of the table."""
    import glob
    import re
    read = set()
    for path in glob.glob(os.path.join(ROOT, "gluon_cnns", "**", "*.py"), recursive=True):
        text = open(path, encoding="utf-8").read()
        read |= set(re.findall(r"\bsettings(?:\[|\.get\()\"(\w+)\"", text))
    assert len(read) > 20  # the pattern finds the reads
    assert read <= {spec.name for spec in table.kept()}, read - {s.name for s in table.kept()}


def test_a_library_run_trains_as_the_command_line_does(tmp_path):
    """fit() on settings built without the command line: the same epoch as gluon-cnns-train."""
    import mxnet as mx
    from gluon_cnns.cli.train import main
    from gluon_cnns.models import get_model
    from gluon_cnns.training.distributed import Cluster
    from gluon_cnns.training.fit import Run, fit
    given = {"net": "lenet", "data_dir": DATA, "limit_train": 256, "limit_test": 128,
             "epochs": 1, "batch_size": 64, "seed": 0}
    settings = run_settings(given)
    resolve_data(settings)
    net = get_model("lenet", classes=settings["classes"])
    history = fit(Run(settings, [mx.cpu()], net, (1, 1, 28, 28), Cluster(batch_size=64),
                      progress=False))
    run_dir = str(tmp_path / "run")
    argv = sum((["--" + k.replace("_", "-"), str(v)] for k, v in given.items()), [])
    assert main(argv + ["--save-dir", run_dir, "--quiet"]) == 0
    logged = json.loads(open(os.path.join(run_dir, "log.jsonl")).readline())
    assert (history[0]["loss"], history[0]["test_acc"]) == (logged["loss"], logged["test_acc"])

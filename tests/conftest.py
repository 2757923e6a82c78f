"""Shared pytest setup: the repo root on sys.path, so tests run from a plain clone too, and
the real Fashion-MNIST files, whose absence fails a test rather than skipping it."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def fashion_mnist_dir():
    """The Debian Fashion-MNIST folder; a missing one is a failure, not a skip."""
    assert os.path.isfile(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")), (
        "%s is missing: apt-get install dataset-fashion-mnist" % FASHION_MNIST)
    return FASHION_MNIST


# ---------------------------------------------------------------- the quick tier
# `python -m pytest -m "not slow"` is the edit-test loop: at most 2 minutes on 2 cores.
# These modules train real runs, launch processes or export every net; they run in the
# full suite (`python -m pytest`, what CI runs) only.
SLOW_MODULES = {
    "test_benchmark", "test_cli_predict", "test_cli_train", "test_d2l_path",
    "test_distributed", "test_docs", "test_hosts", "test_export", "test_gluon_citizen", "test_horovod",
    "test_hostile_round3", "test_library_threads", "test_own_images", "test_own_images_hostile",
    "test_own_images_im2rec", "test_own_images_predict", "test_owned_paths", "test_pack",
    "test_predictor", "test_profile_paths", "test_reproduce_hostile", "test_reproduction",
    "test_resume", "test_run_folder", "test_scaling", "test_threads", "test_viz_maps", "test_viz_report",
}
# In the tests run for every net of the zoo, a net whose tutorial input is larger than
# CIFAR's 3x32x32 costs seconds per case; the quick tier keeps the small ones.
QUICK_INPUT_VALUES = 3 * 32 * 32


def _large_net(item):
    name = getattr(item, "callspec", None) and item.callspec.params.get("name")
    if not isinstance(name, str):
        return False
    from gluon_cnns.data import image_shape
    from gluon_cnns.models import list_models, model_spec
    if name not in list_models():
        return False
    recipe = model_spec(name).recipe
    channels, height, width = image_shape(recipe.dataset, recipe.resize)
    return channels * height * width > QUICK_INPUT_VALUES


# ---------------------------------------------------------------- two processes
# pytest.ini runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup`): most
# tests use one core or wait on their subprocesses. A test goes to whichever worker is
# free, except that the tests sharing a module-scoped fixture (a trained run, a pack, the
# docs checker) run on one worker, which builds it once, and the tests holding the
# machine-wide namespace-host lock run on one worker (on the other they would only wait).
def _xdist_group(item, module):
    if "netns_hosts" in item.fixturenames:
        return "netns_hosts"
    definitions = item._fixtureinfo.name2fixturedefs.values()
    if any(d[-1].scope == "module" for d in definitions):
        return module
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES or _large_net(item):
            item.add_marker(pytest.mark.slow)
        group = _xdist_group(item, module)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


# ---------------------------------------------------------------- namespace hosts
@pytest.fixture
def netns_hosts():
    """``netns_hosts(n)``: n hosts of tools/netns_hosts.py, removed when the test ends.
    A machine that cannot build them fails the test with the harness's one line."""
    import contextlib
    from tools.netns_hosts import HarnessError, hosts
    with contextlib.ExitStack() as stack:
        def make(n):
            try:
                return stack.enter_context(hosts(n))
            except HarnessError as e:
                pytest.fail("namespace hosts: %s" % e, pytrace=False)
        yield make

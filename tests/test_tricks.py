"""The mathematics of the training tricks (gluon_cnns.training.tricks): label smoothing's loss,
mixup's convex combinations, the parameters that escape weight decay, the zeroed last
gammas, the linear warm-up and the weight EMA's update. Each is checked against numbers
worked out by hand or by NumPy, or against GluonCV's own rule where it has one."""
import json
import math
import pickle
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_cnns import get_model
from gluon_cnns.errors import UsageError
from gluon_cnns.models.registry import list_models
from gluon_cnns.settings import recipe
from gluon_cnns.training.engine import position_seed
from gluon_cnns.training.optim import make_lr_scheduler, make_trainer
from gluon_cnns.training.tricks import (Targets, WeightEMA, check_last_gamma, last_gammas,
                                        no_decay_parameters, zero_last_gammas)


# ---------------------------------------------------------------- label smoothing

def test_smoothed_loss_on_a_hand_computed_case():
    # Logits log(1, 2, 1): softmax (1/4, 1/2, 1/4). eps 0.3 over K=3 classes, label 1:
    # targets (0.1, 0.8, 0.1); loss -(0.1 ln 1/4 + 0.8 ln 1/2 + 0.1 ln 1/4) = 1.2 ln 2.
    targets = Targets(classes=3, seed=0, smoothing=0.3)
    X, y = mx.nd.zeros((1, 1)), mx.nd.array([1])
    _, soft, labels = targets(X, y, epoch=1, batch=1)
    np.testing.assert_allclose(soft.asnumpy(), [[0.1, 0.8, 0.1]], rtol=1e-6)
    logits = mx.nd.log(mx.nd.array([[1.0, 2.0, 1.0]]))
    assert targets.loss(logits, soft).asscalar() == pytest.approx(1.2 * math.log(2), rel=1e-5)
    assert labels.asnumpy().tolist() == [1]  # the accuracy counts the true labels


# ---------------------------------------------------------------- mixup

def _beta_draw(seed, alpha, epoch, batch):
    """lam as documented: Beta(alpha, alpha) from a generator seeded by the position."""
    return np.random.RandomState(position_seed(seed, epoch, batch)).beta(alpha, alpha)


def test_a_mixup_batch_is_a_convex_combination_of_two_examples_and_their_labels():
    rng = np.random.RandomState(0)
    X = rng.rand(6, 1, 4, 4).astype("float32")
    y = np.array([0, 3, 1, 4, 2, 3])
    targets = Targets(classes=5, seed=11, smoothing=0.0, alpha=0.4)
    mixed, soft, labels = targets(mx.nd.array(X), mx.nd.array(y), epoch=2, batch=3)
    lam = _beta_draw(11, 0.4, 2, 3)
    assert 0 < lam < 1 and lam != 0.5
    onehot = np.eye(5)[y]
    for i in range(6):
        j = 5 - i  # each example is paired with its mirror in the batch
        np.testing.assert_allclose(mixed[i].asnumpy(), lam * X[i] + (1 - lam) * X[j], rtol=1e-5)
        np.testing.assert_allclose(soft[i].asnumpy(), lam * onehot[i] + (1 - lam) * onehot[j],
                                   rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(soft.sum(axis=1).asnumpy(), 1, rtol=1e-6)
    # The accuracy counts the mix's larger part.
    assert labels.asnumpy().tolist() == (y if lam >= 0.5 else y[::-1]).tolist()
    # The same position mixes alike (a resumed run, another worker); the next one not.
    again, _, _ = Targets(classes=5, seed=11, alpha=0.4)(mx.nd.array(X), mx.nd.array(y), 2, 3)
    assert np.array_equal(again.asnumpy(), mixed.asnumpy())
    other, _, _ = targets(mx.nd.array(X), mx.nd.array(y), 2, 4)
    assert not np.allclose(other.asnumpy(), mixed.asnumpy())


def test_mixup_with_smoothing_mixes_the_smoothed_labels_and_stops_in_the_last_epochs():
    X, y = mx.nd.array(np.arange(8, dtype="float32").reshape(4, 2)), mx.nd.array([0, 1, 2, 0])
    targets = Targets(classes=3, seed=5, smoothing=0.3, alpha=1.0, mixup_off_epoch=2, epochs=5)
    lam = _beta_draw(5, 1.0, 3, 1)
    smoothed = np.full((4, 3), 0.1)
    smoothed[np.arange(4), [0, 1, 2, 0]] = 0.8
    _, soft, _ = targets(X, y, epoch=3, batch=1)
    np.testing.assert_allclose(soft.asnumpy(), lam * smoothed + (1 - lam) * smoothed[::-1],
                               rtol=1e-5)
    for epoch in (4, 5):  # GluonCV's --mixup-off-epoch 2 of 5: epochs 4 and 5 are plain
        plain, soft, labels = targets(X, y, epoch=epoch, batch=1)
        assert np.array_equal(plain.asnumpy(), X.asnumpy())
        np.testing.assert_allclose(soft.asnumpy(), smoothed, rtol=1e-6)
        assert labels is y


# ---------------------------------------------------------------- no weight decay

# lenet_bn: conv, BN, sigmoid, pool, conv, BN, ..., dense, BN, dense, BN, dense.
LENET_BN_NO_DECAY = {"0.bias", "1.gamma", "1.beta", "4.bias", "5.gamma", "5.beta", "9.bias",
                     "10.gamma", "10.beta", "12.bias", "13.gamma", "13.beta", "15.bias"}


def test_the_exact_parameters_that_escape_weight_decay():
    net = get_model("lenet_bn")
    assert set(no_decay_parameters(net)) == LENET_BN_NO_DECAY
    # GluonCV's rule, '.*beta|.*gamma|.*bias' on the parameter names, picks the same ones in
    # every net of the zoo (the running statistics are not trained, so not decayed).
    pattern = re.compile(".*beta|.*gamma|.*bias")
    for name in list_models():
        net = get_model(name)
        ours = {p.name for p in no_decay_parameters(net).values()}
        theirs = {p.name for p in net.collect_params().values()
                  if pattern.match(p.name) and p.grad_req != "null"}
        assert ours == theirs, name


def test_the_selection_goes_by_role_not_by_name():
    """A layer whose name holds "beta" keeps its decayed weight; only BatchNorm's gamma and
    beta are spared (LayerNorm's are a layer's own weights, and decay)."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(4, prefix="betagate_"), gluon.nn.BatchNorm(), gluon.nn.LayerNorm())
    assert set(no_decay_parameters(net)) == {"0.bias", "1.gamma", "1.beta"}
    assert re.compile(".*beta|.*gamma|.*bias").match("betagate_weight")  # GluonCV's would


def _settings(**changes):
    return dict(recipe(lr=1.0, wd=0.5, momentum=0.0)._asdict(), **changes)


def test_no_wd_leaves_exactly_those_parameters_undecayed_also_on_a_kvstore_server():
    mx.random.seed(1)
    net = get_model("lenet_bn")
    net.initialize(mx.init.Xavier())
    net(mx.nd.ones((2, 1, 28, 28)))
    trainer = make_trainer(net, _settings(no_wd=True), batches_per_epoch=1)
    params = net._collect_params_with_prefix()
    before = {k: p.data().copy() for k, p in params.items()}
    with autograd.record():  # zero gradients: only the decay moves a weight, w -= lr wd w
        (net(mx.nd.ones((2, 1, 28, 28))).sum() * 0).backward()
    trainer.step(1)
    for name, p in params.items():
        if p.grad_req == "null":
            continue
        expected = before[name] * (1.0 if name in LENET_BN_NO_DECAY else 0.5)
        assert np.array_equal(p.data().asnumpy(), expected.asnumpy()), name
    # The optimizer a dist kvstore server unpickles has no param_dict: it must know too.
    served = pickle.loads(pickle.dumps(trainer._optimizer))
    names = [n for n, p in params.items() if p.grad_req != "null"]
    index = {p.name: i for i, p in enumerate(trainer._params)}
    wds = served._get_wds([index[params[n].name] for n in names])
    assert {n for n, wd in zip(names, wds) if wd == 0} == LENET_BN_NO_DECAY
    assert all(wd == 0.5 for n, wd in zip(names, wds) if n not in LENET_BN_NO_DECAY)


# ---------------------------------------------------------------- last gamma

@pytest.mark.parametrize("name, blocks", [("resnet18", 8), ("resnet20_cifar", 9)])
def test_last_gammas_are_zero_and_the_rest_untouched(name, blocks):
    # One net, before and after, with a constant initializer: MXNet's threaded engine does
    # not draw a seeded random initialization of a deep net the same way twice (plain
    # Gluon's model-zoo resnet18_v1 too), and its 512x512x3x3 draws were seen still
    # changing after a read. The values are then set from NumPy's generator.
    shape = (1, 3 if "cifar" in name else 1, 32, 32)
    net = get_model(name)
    net.initialize(mx.init.Constant(0.25))
    net(mx.nd.ones(shape))
    rng = np.random.RandomState(0)  # distinct values, so that a re-initialization shows
    for p in net.collect_params().values():
        p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    before = {p.name: p.data().asnumpy().copy() for p in net.collect_params().values()}
    zero_last_gammas(net)
    gammas = {g.name for g in last_gammas(net)}
    assert len(gammas) == blocks
    # In each block, the BatchNorm just before the addition: bn2 / the body's last.
    assert all(re.search(r"(residual|cifarbasicblock)\d+_batchnorm1_gamma$", g) for g in gammas)
    for p in net.collect_params().values():
        if p.name in gammas:
            assert not p.data().asnumpy().any() and before[p.name].all()
        else:
            assert np.array_equal(before[p.name], p.data().asnumpy()), p.name
    # Before the first forward pass (deferred shapes), as training calls it: the last
    # gammas come out zero, every other gamma keeps its initial ones.
    fresh = get_model(name)
    fresh.initialize(mx.init.Constant(0.25))
    zero_last_gammas(fresh)
    fresh(mx.nd.ones(shape))
    for p in fresh.collect_params(".*gamma").values():
        assert (p.data().asnumpy() == (0 if p.name.replace(fresh.prefix, net.prefix, 1)
                                       in gammas else 1)).all(), p.name


@pytest.mark.parametrize("name", ["lenet_bn", "resnet_mnist", "densenet"])
def test_last_gamma_is_refused_without_batchnormed_residual_blocks(name):
    with pytest.raises(UsageError, match="--last-gamma .* %s has none" % name):
        check_last_gamma(get_model(name), name)


# ---------------------------------------------------------------- warm-up

def test_warmup_epochs_rise_linearly_from_zero_then_the_schedule_runs():
    schedule = make_lr_scheduler(_settings(lr=0.4, epochs=4, lr_schedule="cosine",
                                           warmup_epochs=2), batches_per_epoch=5)
    lrs = [schedule(u) for u in range(1, 21)]  # MXNet counts updates from 1
    np.testing.assert_allclose(lrs[:10], [0.4 * u / 10 for u in range(1, 11)], rtol=1e-12)
    # Then cosine from 0.4 over the 10 updates left, down to 0 at the last.
    np.testing.assert_allclose(lrs[10:], [0.2 * (1 + math.cos(math.pi * t / 9))
                                          for t in range(10)], rtol=1e-12, atol=1e-15)
    constant = make_lr_scheduler(_settings(lr=0.4, epochs=4, warmup_epochs=1), 5)
    assert [constant(u) for u in (1, 5, 6, 20)] == pytest.approx([0.08, 0.4, 0.4, 0.4])


def test_a_warmup_trainer_starts_without_mxnets_overwritten_lr_line(capsys):
    # MXNet's Optimizer prints a line when the schedule's base_lr is not --lr; with a
    # warm-up the schedule is GluonCV's LRSequential, and the run's lr is its own.
    net = gluon.nn.Dense(2)
    net.initialize()
    net(mx.nd.zeros((1, 3)))
    for warmup in ({"warmup_epochs": 1}, {"warmup_iters": 2, "warmup_lr": 0.01}):
        make_trainer(net, _settings(lr=0.4, epochs=4, **warmup), 5)
    assert "overwritten" not in capsys.readouterr().out


# ---------------------------------------------------------------- weight EMA

def test_ema_follows_the_update_formula_and_is_applied_only_for_a_while():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(3, in_units=2), gluon.nn.BatchNorm(in_channels=3))
    net.initialize(mx.init.Xavier())
    params = list(net.collect_params().values())
    w0 = [p.data().asnumpy() for p in params]
    ema = WeightEMA(net, 0.75)
    ema.begin()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    expected = [w.copy() for w in w0]
    for step in range(3):
        with autograd.record():
            loss = net(mx.nd.array(np.random.RandomState(step).rand(4, 2))).square().sum()
        loss.backward()
        trainer.step(4)
        ema.update()
        expected = [0.75 * e + 0.25 * p.data().asnumpy() for e, p in zip(expected, params)]
    for e, s in zip(expected, ema.shadow):
        np.testing.assert_allclose(s.asnumpy(), e, rtol=1e-6)
    # BatchNorm's running statistics moved, and are averaged like the weights.
    assert not np.array_equal(params[-1].data().asnumpy(), w0[-1])
    own = [p.data().asnumpy() for p in params]
    with ema.applied():
        for e, p in zip(expected, params):
            np.testing.assert_allclose(p.data().asnumpy(), e, rtol=1e-6)
    for o, p in zip(own, params):
        assert np.array_equal(p.data().asnumpy(), o)  # the net's own weights, bit for bit


# ---------------------------------------------------------------- on your own images

@pytest.mark.slow
def test_a_run_folder_without_best_params_gives_its_weight_average(tmp_path):
    # A run with --ema tests and saves the average; when best.params is gone, its newest
    # epoch's average -- not the raw weights kept for --resume -- is the trained net.
    from gluon_cnns import load_checkpoint_net
    net = get_model("lenet")
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 28, 28)))
    net.save_parameters(str(tmp_path / "epoch-0002.params"))
    ema = WeightEMA(net, 0.5)
    ema.begin()
    for average in ema.shadow:
        average[:] = 0.25
    ema.save(str(tmp_path / "epoch-0002.ema.params"))
    (tmp_path / "config.json").write_text(json.dumps({"net": "lenet", "epochs": 2,
                                                      "batch_size": 64}))
    loaded, _ = load_checkpoint_net(str(tmp_path))
    for param in loaded.collect_params().values():
        assert (param.data().asnumpy() == 0.25).all(), param.name


def test_mixup_and_smoothing_train_from_a_folder_and_its_pack_alike(tmp_path, capsys):
    """The tricks act on the batches, whatever reads them: a folder of images and its
    RecordIO pack train to the same figures and weights, and not to those of a plain run."""
    from gluon_cnns.cli.pack import main as pack_main
    from gluon_cnns.cli.train import main as train_main
    from image_folders import write_image_folder
    folder = write_image_folder(str(tmp_path / "images"), per_class=12, val_per_class=4)
    pack = str(tmp_path / "pack")
    assert pack_main([folder, "--out", pack]) == 0
    common = ["--net", "lenet_bn", "--epochs", "2", "--batch-size", "32", "--seed", "4",
              "--quiet"]
    tricks = ["--mixup", "0.4", "--label-smoothing", "0.1", "--ema", "0.8"]
    runs = {}
    for name, kind, where, extra in (("folder", "folder", folder, tricks),
                                     ("rec", "rec", pack, tricks),
                                     ("plain", "folder", folder, [])):
        run_dir = str(tmp_path / name)
        assert train_main(common + extra + ["--dataset", kind, "--data-dir", where,
                                            "--save-dir", run_dir]) == 0, capsys.readouterr()
        with open(str(tmp_path / name / "log.jsonl")) as f:
            log = [json.loads(line) for line in f]
        runs[name] = ([(r["loss"], r["train_acc"], r["test_acc"]) for r in log],
                      {k: v.asnumpy() for k, v in mx.nd.load(run_dir + "/best.params").items()})
    assert runs["folder"][0] == runs["rec"][0]
    for k, v in runs["folder"][1].items():
        assert np.array_equal(v, runs["rec"][1][k]), k
    assert [r[0] for r in runs["folder"][0]] != [r[0] for r in runs["plain"][0]]
    assert any(not np.array_equal(v, runs["plain"][1][k]) for k, v in runs["folder"][1].items())


@pytest.mark.slow
def test_the_training_command_starts_the_last_gammas_at_zero(tmp_path):
    """--last-gamma through scripts/train.py: after one update at the rate 1e-30 the dumped
    weights have each block's last gamma at 0 (give or take 1e-30 of a gradient) and every
    other gamma at 1."""
    from gluon_cnns.cli.train import main as train_main
    dump = str(tmp_path / "w.params")
    assert train_main(["--net", "resnet14_cifar", "--dataset", "fashion-mnist", "--data-dir",
                       "/usr/share/datasets/fashion-mnist", "--limit-train", "16",
                       "--limit-test", "16", "--batch-size", "16", "--epochs", "1", "--lr",
                       "1e-30", "--seed", "1", "--quiet", "--last-gamma",
                       "--dump-params", dump]) == 0
    weights = {k: v.asnumpy() for k, v in mx.nd.load(dump).items()}
    net = get_model("resnet14_cifar")
    by_param = {p: n for n, p in net._collect_params_with_prefix().items()}
    last = {by_param[g] for g in last_gammas(net)}
    gammas = {n for n in weights if n.endswith("gamma")}
    assert len(last) == 6 and last < gammas
    assert all(np.abs(weights[n]).max() < 1e-25 for n in last)
    assert all((weights[n] == 1).all() for n in gammas - last)

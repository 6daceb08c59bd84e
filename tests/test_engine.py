"""Tests for jaxreg.lab.engine: one compiled run, traced hparams, padded last batch, metrics.

Compilation dominates the cost of these tests, so a few tiny configurations are built once per
module and shared; each test states which compiled function it reuses.
"""

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg import models
from jaxreg.lab import data, engine

DROPOUT_HP = {"lr": 0.5, "dropout1": 0.2, "dropout2": 0.5}


@pytest.fixture(scope="module")
def blobs():
    # 200 = 3 full batches of 64 + a partial batch of 8; 50 test rows = 3 eval chunks of 20, padded.
    return data.synthetic_classification(200, 50, num_features=20, noise=0.3, seed=0)


@pytest.fixture(scope="module")
def tiny(blobs):
    model = models.DropoutMLP(num_inputs=20, num_hiddens1=16, num_hiddens2=16)
    cfg = engine.TrainConfig(model=model, epochs=3, batch_size=64, eval_batch_size=20)
    train = engine.make_train(cfg, blobs)
    return train, train(jax.random.key(0), DROPOUT_HP)


def test_metrics_shapes_and_values(tiny):
    train, result = tiny
    assert train.steps_per_epoch == 4
    for name in engine.EPOCH_METRICS:
        values = np.asarray(result.metrics[name])
        assert values.shape == (3,) and np.isfinite(values).all(), name
    assert int(result.metrics["diverged_step"]) == -1
    acc = np.asarray(result.metrics["test_acc"])
    assert ((0 <= acc) & (acc <= 1)).all()
    # 50 test rows: an accuracy is a multiple of 1/50 only if the padded rows were masked out.
    np.testing.assert_allclose(acc * 50, np.round(acc * 50), atol=1e-4)
    # No penalty configured: the objective is the data loss.
    np.testing.assert_allclose(result.metrics["train_objective"], result.metrics["train_loss"])
    loss = np.asarray(result.metrics["train_loss"])
    assert loss[-1] < loss[0]  # it learns


def test_traced_hparams_do_not_recompile(tiny):
    train, first = tiny
    results = [
        train(jax.random.key(0), {"lr": lr, "dropout1": d1, "dropout2": 0.5})
        for lr, d1 in ((0.1, 0.0), (0.3, 0.7), (0.5, 0.2))
    ]
    assert train.compile_count() == 1
    # Same key and hparams as the fixture: the same numbers.
    np.testing.assert_array_equal(results[-1].metrics["train_loss"], first.metrics["train_loss"])
    assert not np.allclose(results[0].metrics["train_loss"], results[1].metrics["train_loss"])


def test_fit_matches_one_jit_run_and_compiles_epoch_once(tiny):
    train, result = tiny
    seen = []
    fitted = train.fit(jax.random.key(0), DROPOUT_HP, on_epoch=lambda e, m: seen.append(e))
    assert seen == [0, 1, 2]
    assert train._jit_epoch._cache_size() == 1
    # Same program cut at epoch boundaries; XLA may fuse differently, hence the tolerance.
    for name in engine.EPOCH_METRICS:
        np.testing.assert_allclose(fitted.metrics[name], result.metrics[name], rtol=2e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
        fitted.params,
        result.params,
    )
    # Continuing from a result (seed 004 --faithful trains one network on): it starts where the
    # first run ended, so its first epoch is better than a fresh first epoch.
    more = train.fit(jax.random.key(1), DROPOUT_HP, init_state=fitted)
    assert float(more.metrics["train_loss"][0]) < float(result.metrics["train_loss"][0])
    assert train._jit_epoch._cache_size() == 1


def test_step_reproduces_the_scan_bit_for_bit(tiny):
    # Stepping through the engine's own batches, epoch by epoch, is the compiled run exactly.
    train, result = tiny
    key = jax.random.key(0)
    step = jax.jit(train.step)
    x, y = train.data["x_train"], train.data["y_train"]
    state = train.init(key, DROPOUT_HP)
    for epoch in range(3):
        order, mask = train.batch_order(key, state.epoch)
        weighted = []
        for idx, rows in zip(order, mask, strict=True):
            state, out = step(state, (x[idx], y[idx], rows), key, DROPOUT_HP)
            weighted.append(out["loss"] * jnp.sum(rows))
        state = state._replace(epoch=state.epoch + 1)
        np.testing.assert_allclose(
            jnp.sum(jnp.stack(weighted)) / 200, result.metrics["train_loss"][epoch], rtol=1e-6
        )
    jax.tree.map(np.testing.assert_array_equal, state.params, result.params)
    assert int(state.step) == int(result.step) == 12 and int(result.epoch) == 3


def test_step_dropout_key_follows_the_step_counter(tiny):
    train, _ = tiny
    key = jax.random.key(0)
    state = train.init(key, DROPOUT_HP)
    batch = (train.data["x_train"][:64], train.data["y_train"][:64])
    _, at0 = train.step(state, batch, key, DROPOUT_HP)
    _, again = train.step(state, batch, key, DROPOUT_HP)
    _, at8 = train.step(state._replace(step=jnp.int32(8)), batch, key, DROPOUT_HP)
    assert float(at0["loss"]) == float(again["loss"])
    assert float(at0["loss"]) != float(at8["loss"])  # another mask, same params and batch


@pytest.fixture(scope="module")
def one_epoch(tiny, blobs):
    train, _ = tiny
    return engine.make_train(dataclasses.replace(train.config, epochs=1), blobs)


@pytest.mark.slow
def test_continuation_is_the_longer_run(tiny, one_epoch, blobs):
    # Design: the state carries the run's step and epoch counters, so with the same key
    # train(2 epochs) then continue(1 epoch) IS train(3 epochs), bit for bit.
    train3, result3 = tiny
    train2 = engine.make_train(dataclasses.replace(train3.config, epochs=2), blobs)
    first = train2(jax.random.key(0), DROPOUT_HP)
    assert (int(first.step), int(first.epoch)) == (8, 2)
    more = one_epoch(jax.random.key(0), DROPOUT_HP, init_state=first)
    jax.tree.map(np.testing.assert_array_equal, more.params, result3.params)
    for name in engine.EPOCH_METRICS:
        np.testing.assert_array_equal(more.metrics[name][0], result3.metrics[name][2], err_msg=name)
    assert (int(more.step), int(more.epoch)) == (12, 3)


@pytest.mark.slow
def test_continuation_never_replays_orders_or_masks(one_epoch):
    key = jax.random.key(0)
    first = one_epoch(key, DROPOUT_HP)
    first_epoch, start = int(first.epoch), jax.tree.map(jnp.copy, first.params)
    # Bare parameters start a NEW run (counters 0): it replays epoch 0's order and masks.
    replay = one_epoch(key, DROPOUT_HP, init_state=start)
    continued = one_epoch(key, DROPOUT_HP, init_state=first)
    assert float(continued.metrics["train_loss"][0]) != float(replay.metrics["train_loss"][0])
    order0, _ = one_epoch.batch_order(key, 0)
    order1, _ = one_epoch.batch_order(key, first_epoch)
    assert not np.array_equal(order0, order1)
    assert np.array_equal(np.sort(order0.ravel()[:200]), np.sort(order1.ravel()[:200]))
    # A result built by hand without counters (benchmarks/sweep_rows) starts them at 0.
    bare = engine.TrainResult(replay.params, replay.opt_state, {})
    again = one_epoch(key, DROPOUT_HP, init_state=bare)
    assert int(again.step) == one_epoch.steps_per_epoch


@pytest.mark.slow
def test_eval_with_dropout_and_activation_variance(tiny, blobs):
    train, result = tiny
    cfg = dataclasses.replace(
        train.config, eval_dropout_active=True, track_activation_variance=True, probe_size=32
    )
    other = engine.make_train(cfg, blobs)(jax.random.key(0), DROPOUT_HP)
    # Training is the same stream; only evaluation differs (seed 004's --faithful defect).
    np.testing.assert_allclose(other.metrics["train_loss"], result.metrics["train_loss"], rtol=1e-6)
    assert not np.allclose(other.metrics["test_loss"], result.metrics["test_loss"])
    for name in ("act_var", "act_var_train"):
        values = np.asarray(other.metrics[name])
        assert values.shape == (3, 2) and (values >= 0).all()
    # Hidden layer 1 sees the raw input in both modes; layer 2 sees layer 1 after dropout, whose
    # survivors are scaled by 1/keep, so its train-mode variance is larger.
    train_var, eval_var = (np.asarray(other.metrics[k]) for k in ("act_var_train", "act_var"))
    np.testing.assert_allclose(train_var[:, 0], eval_var[:, 0], rtol=1e-6)
    assert (train_var[:, 1] > eval_var[:, 1]).all()


# ---- step-for-step against a hand-written loop (and torch): padded last batch, penalty, decay --
LR, L2, WD, EPOCHS = 0.2, 0.5, 0.01, 2


@pytest.fixture(scope="module")
def wd_run(blobs):
    model = models.WeightDecayMLP(num_inputs=20, num_hidden=16, weight_std=0.1)
    cfg = engine.TrainConfig(
        model=model, epochs=EPOCHS, batch_size=64, shuffle=False, penalty="l2_mean"
    )
    train = engine.make_train(cfg, blobs)
    init = train.init(jax.random.key(3))
    start = jax.tree.map(np.array, init.params)
    result = train(jax.random.key(3), {"lr": LR, "l2": L2, "weight_decay": WD}, init.params)
    return train, start, result, init


def _manual_sgd(params, x, y):
    """Seed 004's loop in plain JAX: CE mean + l2_penalty(W1) + l2_penalty(W2), decay on W."""

    def loss_fn(p):
        h = jax.nn.relu(xb @ p["W1"] + p["b1"])
        logits = h @ p["W2"] + p["b2"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return ce + L2 * sum(0.5 * jnp.mean(p[w] ** 2) for w in ("W1", "W2"))

    for _ in range(EPOCHS):
        for start in range(0, len(x), 64):
            xb, yb = jnp.asarray(x[start : start + 64]), jnp.asarray(y[start : start + 64])
            grads = jax.grad(loss_fn)(params)
            params = {
                k: params[k] - LR * (grads[k] + (WD * params[k] if k.startswith("W") else 0))
                for k in params
            }
    return params


def test_matches_hand_written_loop_with_partial_batch(wd_run, blobs):
    _, start, result, init = wd_run
    expected = _manual_sgd(start, blobs.x_train, blobs.y_train)
    for k in expected:
        np.testing.assert_allclose(result.params[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # The caller's initial parameters are not consumed by the run (donate=False by default).
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(init.params))
    penalty = np.asarray(result.metrics["train_objective"] - result.metrics["train_loss"])
    assert (penalty > 0).all()


def test_matches_torch_sgd_param_groups(wd_run, blobs):
    torch = pytest.importorskip("torch")
    _, start, result, _ = wd_run
    p = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    opt = torch.optim.SGD(
        [{"params": [p["W1"], p["W2"]], "weight_decay": WD}, {"params": [p["b1"], p["b2"]]}],
        lr=LR,
    )
    x, y = torch.tensor(blobs.x_train), torch.tensor(blobs.y_train, dtype=torch.long)
    for _ in range(EPOCHS):
        # DataLoader(shuffle=False, batch_size=64) keeps the short last batch of 8.
        for s in range(0, len(x), 64):
            logits = torch.relu(x[s : s + 64] @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
            loss = torch.nn.functional.cross_entropy(logits, y[s : s + 64])
            loss = loss + L2 * ((p["W1"] ** 2).mean() / 2 + (p["W2"] ** 2).mean() / 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for k, v in p.items():
        np.testing.assert_allclose(result.params[k], v.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_divergence_is_reported_with_its_step(wd_run):
    train, *_ = wd_run
    start = train.init(jax.random.key(3)).params
    bad = train(jax.random.key(3), {"lr": 1e30, "l2": L2, "weight_decay": WD}, start)
    step = int(bad.metrics["diverged_step"])
    assert 0 <= step < EPOCHS * train.steps_per_epoch
    assert train.compile_count() == 1


# ---- regression (seed 002): full batch, MSE, Adam, eval every k, snapshots -------------------
@pytest.mark.slow
def test_regression_eval_every_and_snapshots():
    cfg = engine.TrainConfig(
        model=models.RegressionNet(hidden=8),
        loss="mse",
        optimizer="adam",
        lr=0.01,
        batch_size=None,
        epochs=5,
        eval_every=2,
        snapshot_every=2,
    )
    train = engine.make_train(cfg, data.regression_data(seed=1))
    result = train(jax.random.key(0))
    assert train.eval_epochs.tolist() == [0, 2, 4] == train.snapshot_epochs.tolist()
    test_loss = np.asarray(result.metrics["test_loss"])
    assert np.isnan(test_loss[[1, 3]]).all() and np.isfinite(test_loss[[0, 2, 4]]).all()
    assert np.isnan(np.asarray(result.metrics["test_acc"])).all()
    assert np.isnan(np.asarray(result.metrics["train_acc"])).all()
    jax.tree.map(
        lambda snap, final: np.testing.assert_array_equal(snap[-1], final),
        result.snapshots,
        result.params,
    )
    # The test loss at an evaluated epoch is the MSE of that epoch's snapshot.
    d = data.regression_data(seed=1)
    snap2 = jax.tree.map(lambda s: s[1], result.snapshots)
    pred = cfg.model.apply({"params": snap2}, d.x_test)
    np.testing.assert_allclose(test_loss[2], np.mean((pred - d.y_test) ** 2), rtol=1e-5)


# ---- activity penalties (seed 001) ------------------------------------------------------------
def test_activity_penalties_enter_the_objective():
    x = np.asarray(jax.random.uniform(jax.random.key(1), (8, 128)))
    y = np.ones(8, np.int32)
    cfg = engine.TrainConfig(
        model=models.ActivityMLP(),
        lr=1e-4,
        batch_size=8,
        epochs=1,
        shuffle=False,
        activity=(("l1", 1), ("l2_norm", 2)),
    )
    train = engine.make_train(cfg, {"x_train": x, "y_train": y})
    hp = {"act_l1": 0.5, "act_l2": 0.01}
    params = train.init(jax.random.key(0), hp).params
    out, layer1, layer2 = cfg.model.apply({"params": params}, x)
    ce = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
    expected = ce + 0.5 * jnp.abs(layer1).sum() + 0.01 * jnp.sqrt((layer2**2).sum())
    result = train(jax.random.key(0), hp)
    np.testing.assert_allclose(result.metrics["train_loss"][0], ce, rtol=1e-6)
    np.testing.assert_allclose(result.metrics["train_objective"][0], expected, rtol=1e-6)
    assert np.isnan(np.asarray(result.metrics["test_acc"])).all()  # no test split given


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, match",
    [
        ("loss", "hinge", "loss='hinge'"),
        ("optimizer", "rmsprop", "optimizer"),
        ("penalty", "l3", "penalty"),
        ("batch_size", 0, "batch_size"),
        ("epochs", 0, "epochs"),
        ("activity", (("l3", 1),), "activity"),
    ],
)
def test_bad_config_raises(field, value, match):
    with pytest.raises(ValueError, match=match):
        engine.TrainConfig(model=models.ActivityMLP(), **{field: value})


@pytest.mark.parametrize(
    "hparams, match",
    [
        ({"momentum": 0.9}, "unknown keys"),
        ({"dropout1": 1.5}, "dropout1"),
        ({"lr": -1.0}, "lr"),
        ({"weight_decay": float("nan")}, "finite"),
    ],
)
def test_bad_hparams_raise(tiny, hparams, match):
    train, _ = tiny
    with pytest.raises(ValueError, match=match):
        train.normalize_hparams(hparams)


def test_dropout_hparams_need_a_rates_argument(wd_run):
    train, *_ = wd_run
    with pytest.raises(ValueError, match="hyperparameter 'dropout1' is not used.*rates"):
        train.normalize_hparams({"dropout1": 0.5})


@pytest.mark.parametrize(
    "overrides, used",
    [
        ({"model": models.DropoutMLP()}, ("lr", "weight_decay", "dropout1", "dropout2")),
        ({"model": models.WeightDecayMLP(), "penalty": "l1"}, ("lr", "weight_decay", "l1")),
        ({"model": models.WeightDecayMLP(), "penalty": "l2_mean"}, ("lr", "weight_decay", "l2")),
        ({"model": models.WeightDecayMLP(), "penalty": "l2_norm"}, ("lr", "weight_decay", "l2")),
        (
            {"model": models.ActivityMLP(), "activity": (("l1", 1), ("l2_norm", 2))},
            ("lr", "weight_decay", "act_l1", "act_l2"),
        ),
        (
            {"model": models.ActivityMLP(), "activity": (("l2", 2),)},
            ("lr", "weight_decay", "act_l2"),
        ),
        ({"model": models.TwoLayerNet(), "optimizer": "adamw"}, ("lr", "weight_decay")),
    ],
)
def test_used_hparams(overrides, used):
    assert engine.TrainConfig(**overrides).used_hparams() == used


@pytest.mark.parametrize(
    "name, reason",
    [
        ("l1", r"\(penalty='none'\); used: lr, weight_decay, dropout1, dropout2$"),
        ("l2", r"\(penalty='none'\)"),
        ("act_l1", r"\(activity=\(\)\)"),
    ],
)
def test_unused_hparam_is_an_error_naming_it(tiny, name, reason):
    train, _ = tiny
    with pytest.raises(
        ValueError, match=f"^hyperparameter '{name}' is not used by this run {reason}"
    ):
        train.normalize_hparams({name: 0.1})
    # Zero does nothing either: the check is on the name, not the value.
    with pytest.raises(ValueError, match=name):
        train(jax.random.key(0), {name: 0.0})


def test_normalized_hparams_hold_only_used_names(tiny, wd_run):
    train, _ = tiny
    assert set(train.normalize_hparams(DROPOUT_HP)) == {
        "lr",
        "weight_decay",
        "dropout1",
        "dropout2",
    }
    assert set(train.normalize_hparams({})) == {"lr", "weight_decay"}
    wd_train, *_ = wd_run
    normalized = wd_train.normalize_hparams({"l2": 1.0})
    assert set(normalized) == {"lr", "weight_decay", "l2"}
    # A normalized dict is accepted again (sweeps normalize once, then call the pure function).
    assert set(wd_train.normalize_hparams(normalized)) == set(normalized)


def test_bad_data_raises():
    cfg = engine.TrainConfig(model=models.ActivityMLP())
    with pytest.raises(ValueError, match="len"):
        engine.make_train(cfg, {"x_train": np.zeros((4, 128)), "y_train": np.zeros(3)})
    with pytest.raises(ValueError, match="x_train"):
        engine.make_train(cfg, {"y_train": np.zeros(3)})


def test_no_recompile_logged_between_calls(tiny, caplog):
    train, _ = tiny
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        train(jax.random.key(5), {"lr": 0.05, "dropout1": 0.1, "dropout2": 0.9})
    assert not [r for r in caplog.records if "Compiling jit(pure)" in r.getMessage()]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bce", "nll"])
def test_bce_and_nll_losses_at_initialization(loss, blobs):
    # One full-batch step per epoch: epoch 0's train loss is the loss at the initial params.
    if loss == "bce":
        model = models.Seed000Net(dropout_rate=0.0)  # train-mode loss == eval-mode loss
        x = np.asarray(jax.random.uniform(jax.random.key(2), (16, 8)))
        y = (x[:, 0] > 0.5).astype(np.float32)
    else:
        model = models.TwoLayerNet(dim_in=20, dim_hid=8, dropout_rate=0.0)
        x, y = blobs.x_train[:16], blobs.y_train[:16]
    cfg = engine.TrainConfig(model=model, loss=loss, batch_size=None, epochs=1, lr=1e-3)
    train = engine.make_train(cfg, {"x_train": x, "y_train": y, "x_test": x, "y_test": y})
    params = train.init(jax.random.key(0)).params
    out = np.asarray(model.apply({"params": params}, x), np.float64)
    if loss == "bce":
        p = out[:, 0]
        expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        acc = np.mean((p > 0.5) == (y > 0.5))
    else:
        expected = -np.mean(out[np.arange(16), y])
        acc = np.mean(out.argmax(1) == y)
    result = train(jax.random.key(0))
    np.testing.assert_allclose(result.metrics["train_loss"][0], expected, rtol=1e-5)
    np.testing.assert_allclose(result.metrics["train_acc"][0], acc, atol=1e-6)

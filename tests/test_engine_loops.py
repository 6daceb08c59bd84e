"""The engine's two loop forms, per-step losses, and non-donation of the caller's arrays.

``loop="scan"`` runs the whole training as one compiled program, ``loop="stepped"`` as a Python
loop over the compiled step; both run the same step function on the same batches, keys and
counters. Tiny data: 200 rows in batches of 64 (three full batches and a partial one of 8).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import models
from jaxreg.lab import data, engine

HP = {"lr": 0.5, "dropout1": 0.2, "dropout2": 0.5}


@pytest.fixture(scope="module")
def blobs():
    return data.synthetic_classification(200, 50, num_features=20, noise=0.3, seed=0)


def _mlp_config(loop, **overrides):
    model = models.DropoutMLP(num_inputs=20, num_hiddens1=16, num_hiddens2=16)
    fields = dict(model=model, epochs=3, batch_size=64, eval_batch_size=20, snapshot_every=2)
    return engine.TrainConfig(loop=loop, **{**fields, **overrides})


@pytest.fixture(scope="module")
def mlp_runs(blobs):
    """Both forms of one dropout MLP run: ``{loop: (train, init state, result)}``."""
    runs = {}
    for loop in ("scan", "stepped"):
        train = engine.make_train(_mlp_config(loop), blobs)
        init = train.init(jax.random.key(0), HP)
        runs[loop] = (train, init, train(jax.random.key(0), HP, init))
    return runs


def _assert_same_run(a, b):
    assert set(a.metrics) == set(b.metrics)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)
    jax.tree.map(np.testing.assert_array_equal, a.snapshots, b.snapshots)
    assert (int(a.step), int(a.epoch)) == (int(b.step), int(b.epoch))


def test_loop_forms_are_bit_identical_on_an_mlp(mlp_runs):
    (scan, _, a), (stepped, _, b) = mlp_runs["scan"], mlp_runs["stepped"]
    assert (scan.loop, stepped.loop) == ("scan", "stepped")
    _assert_same_run(a, b)
    assert scan.compile_count() == stepped.compile_count() == 1
    # Dropout is on: the same loss at another step counter would differ.
    assert a.metrics["step_loss"].shape == (3, 4)


def test_step_losses_are_each_steps_loss_before_its_update(mlp_runs):
    train, init, result = mlp_runs["stepped"]
    key = jax.random.key(0)
    step = jax.jit(train.step)
    x, y = train.data["x_train"], train.data["y_train"]
    state, losses, objectives = init, [], []
    for _ in range(3):
        order, rows = train.batch_order(key, state.epoch)
        for idx, mask in zip(order, rows, strict=True):
            state, out = step(state, (x[idx], y[idx], mask), key, HP)
            losses.append(out["loss"])
            objectives.append(out["objective"])
        state = state._replace(epoch=state.epoch + 1)
    np.testing.assert_array_equal(result.metrics["step_loss"], np.reshape(losses, (3, 4)))
    np.testing.assert_array_equal(result.metrics["step_objective"], np.reshape(objectives, (3, 4)))
    # The epoch's train_loss is the example-weighted mean of its steps (last batch: 8 rows).
    weights = np.array([64, 64, 64, 8]) / 200
    np.testing.assert_allclose(
        result.metrics["step_loss"] @ weights, result.metrics["train_loss"], rtol=1e-6
    )


@pytest.mark.parametrize("loop", ["scan", "stepped"])
def test_init_state_is_not_consumed_unless_asked(mlp_runs, loop):
    train, init, first = mlp_runs[loop]
    # The fixture's run started from `init`: its buffers are alive, and a second run from the
    # same state (and from its bare params, and through fit) is the same run.
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(init))
    again = train(jax.random.key(0), HP, init)
    _assert_same_run(first, again)
    params_only = train(jax.random.key(0), HP, init.params)
    np.testing.assert_array_equal(params_only.metrics["step_loss"], first.metrics["step_loss"])
    fitted = train.fit(jax.random.key(0), HP, init)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(init))
    # Continuing from a result leaves the result usable too.
    more = train(jax.random.key(0), HP, first)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(first.params))
    assert int(more.step) == 2 * int(first.step)
    if loop == "stepped":
        _assert_same_run(first, fitted)  # fit is the stepped run with callbacks
    # Asked to, the run consumes the state it was given.
    copy = jax.tree.map(jnp.copy, init)
    donated = train(jax.random.key(0), HP, copy, donate=True)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(copy.params))
    _assert_same_run(first, donated)


@pytest.mark.slow
def test_stepped_continuation_and_fit_callbacks(blobs, mlp_runs):
    # Two epochs then one more is the three-epoch run, in the stepped form as in the scan.
    _, _, whole = mlp_runs["stepped"]
    cfg = _mlp_config("stepped", snapshot_every=0)
    two = engine.make_train(dataclasses.replace(cfg, epochs=2), blobs)
    one = engine.make_train(dataclasses.replace(cfg, epochs=1), blobs)
    seen = []
    first = two.fit(jax.random.key(0), HP, on_epoch=lambda e, m: seen.append((e, sorted(m))))
    assert [e for e, _ in seen] == [0, 1] and "step_loss" not in seen[0][1]
    more = one(jax.random.key(0), HP, first)
    jax.tree.map(np.testing.assert_array_equal, more.params, whole.params)
    np.testing.assert_array_equal(more.metrics["step_loss"][0], whole.metrics["step_loss"][2])


@pytest.mark.slow
def test_vmapped_pure_is_the_scan_form_with_step_losses(mlp_runs):
    # Under vmap there is no Python loop to step: `pure` is the traceable scan form.
    train, _, result = mlp_runs["stepped"]
    keys = jax.vmap(jax.random.key)(jnp.arange(2, dtype=jnp.uint32))
    hp = train.normalize_hparams(HP)
    batched = jax.jit(jax.vmap(train.pure, in_axes=(None, 0, None, None)))(
        train.data, keys, hp, None
    )
    assert batched.metrics["step_loss"].shape == (2, 3, 4)
    np.testing.assert_allclose(batched.metrics["step_loss"][0], result.metrics["step_loss"], 1e-5)


class TinyCNN(nn.Module):
    """conv3x3-4, max-pool, spatial dropout, conv3x3-8, max-pool, dense 16, dropout, dense 3."""

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        x = x.reshape((-1, 8, 8, 1))
        x = nn.max_pool(nn.relu(nn.Conv(4, (3, 3), padding=1)(x)), (2, 2), (2, 2))
        x = nn.Dropout(0.2, broadcast_dims=(1, 2))(x, deterministic=deterministic)
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), padding=1)(x)), (2, 2), (2, 2))
        x = nn.relu(nn.Dense(16)(x.reshape((x.shape[0], -1))))
        x = nn.Dropout(0.5)(x, deterministic=deterministic)
        return nn.Dense(3)(x)


@pytest.fixture
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.mark.slow
def test_cnn_loop_forms_agree_and_auto_steps_on_cpu(x64):
    # 40 images of 8x8 in batches of 16: two full batches and a partial one of 8, dropout on.
    cnn = data.synthetic_classification(40, 8, num_features=64, num_classes=3, seed=1)
    cfg = engine.TrainConfig(
        model=TinyCNN(), optimizer="adamw", lr=1e-2, epochs=2, batch_size=16, dtype="float64"
    )
    auto = engine.make_train(cfg, cnn)  # loop="auto": resolved from the model's primitives
    assert auto.loop == ("stepped" if jax.default_backend() == "cpu" else "scan")
    stepped = auto(jax.random.key(0))
    other = "scan" if auto.loop == "stepped" else "stepped"
    scan = engine.make_train(dataclasses.replace(cfg, loop=other), cnn)(jax.random.key(0))
    # On CPU XLA computes the kernel-gradient convolution with another kernel inside the scan's
    # loop body (jax-ml/jax#12868), so the forms agree to float64 rounding, not bit for bit.
    for name in ("step_loss", "train_loss", "test_loss", "param_norm"):
        np.testing.assert_allclose(stepped.metrics[name], scan.metrics[name], rtol=1e-12)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), stepped.params, scan.params
    )
    assert stepped.metrics["step_loss"].shape == (2, 3)
    assert stepped.metrics["step_loss"].dtype == np.float64


def test_auto_resolution_by_primitives_and_backend(blobs):
    assert engine.make_train(_mlp_config("auto"), blobs).loop == "scan"
    assert engine.make_train(_mlp_config("stepped"), blobs).loop == "stepped"
    assert engine.resolve_loop("auto", "cpu", {"conv_general_dilated"}) == "stepped"
    assert engine.resolve_loop("auto", "gpu", {"conv_general_dilated"}) == "scan"
    assert engine.resolve_loop("auto", "cpu", {"dot_general"}) == "scan"
    assert engine.resolve_loop("scan", "cpu", {"conv_general_dilated"}) == "scan"
    with pytest.raises(ValueError, match="loop='fast'.*'auto', 'scan', 'stepped'"):
        _mlp_config("fast")

"""Tests for jaxreg.transforms: add_l1, l1_prox, coupled/decoupled weight decay."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxreg
from jaxreg.penalties import l1_penalty, l2_penalty
from jaxreg.transforms import (
    ScheduleState,
    add_l1,
    coupled_weight_decay,
    decoupled_weight_decay,
    l1_prox,
)

RNG = np.random.default_rng(0)
TARGET = {"w": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32), "b": jnp.ones(3)}


def _params():
    return {
        "w": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32),
        "b": jnp.zeros(3, jnp.float32),
    }


def _loss(params):
    return sum(jnp.sum((params[k] - TARGET[k]) ** 2) for k in params) / 2


def _run(tx, params, loss=_loss, steps=10, jit=True):
    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    def run(params):
        return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[0][0]

    return (jax.jit(run) if jit else run)(params)


def _assert_trees_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **kw)


# --- add_l1 ---


def test_add_l1_chained_with_sgd_is_sgd_on_penalized_loss():
    params, lam, lr = _params(), 0.3, 0.1
    ours = _run(optax.chain(add_l1(lam), optax.sgd(lr)), params)
    reference = _run(optax.sgd(lr), params, loss=lambda p: _loss(p) + lam * l1_penalty(p))
    _assert_trees_close(ours, reference, rtol=1e-6, atol=1e-7)


def test_add_l1_sign_of_zero_is_zero():
    tx = add_l1(0.5)
    params = {"w": jnp.array([-2.0, 0.0, 3.0])}
    updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], [-0.5, 0.0, 0.5])


def test_add_l1_mask_bool_tree_and_predicate():
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    for mask in ({"w": True, "b": False}, jaxreg.path_mask(lambda path: path == "w")):
        tx = add_l1(0.5, mask=mask)
        updates, _ = tx.update(grads, tx.init(params), params)
        np.testing.assert_array_equal(updates["b"], np.ones(3))
        np.testing.assert_allclose(updates["w"], 1 + 0.5 * np.sign(params["w"]))


def test_add_l1_jit_matches_no_jit():
    params, tx = _params(), optax.chain(add_l1(0.2), optax.sgd(0.05))
    _assert_trees_close(_run(tx, params), _run(tx, params, jit=False), rtol=1e-6)


def test_add_l1_traced_strength_no_recompile_and_vmap():
    params = _params()

    @jax.jit
    def train(lam):
        return _run(optax.chain(add_l1(lam), optax.sgd(0.1)), params, jit=False)

    a, b = train(jnp.float32(0.1)), train(jnp.float32(0.4))
    assert train._cache_size() == 1
    assert not np.allclose(a["w"], b["w"])
    batched = jax.vmap(train)(jnp.array([0.1, 0.4], jnp.float32))
    np.testing.assert_allclose(batched["w"][1], b["w"], rtol=1e-6)


def test_add_l1_schedule_keeps_count():
    tx = add_l1(lambda count: 0.1 * (count + 1))
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    assert isinstance(state, ScheduleState)
    for expected in (0.1, 0.2, 0.3):
        updates, state = tx.update({"w": jnp.zeros(2)}, state, params)
        np.testing.assert_allclose(updates["w"], [expected] * 2, rtol=1e-6)
    assert int(state.count) == 3
    assert isinstance(add_l1(0.1).init(params), optax.EmptyState)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), np.ones(2), "x"])
def test_add_l1_invalid_strength_raises(bad):
    with pytest.raises(ValueError, match="add_l1: l1 must be"):
        add_l1(bad)


def test_add_l1_requires_params():
    tx = add_l1(0.1)
    with pytest.raises(ValueError, match=r"add_l1 needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


# --- l1_prox ---


def _soft_threshold(z, t):
    return np.sign(z) * np.maximum(np.abs(z) - t, 0)


def test_l1_prox_yields_exact_zeros_where_subgradient_does_not():
    params, lam, lr = _params(), 2.0, 0.1
    prox = _run(optax.chain(optax.sgd(lr), l1_prox(lam, lr)), params, steps=50)
    subgrad = _run(optax.chain(add_l1(lam), optax.sgd(lr)), params, steps=50)
    w_prox, w_sub = np.asarray(prox["w"]), np.asarray(subgrad["w"])
    target_small = np.abs(np.asarray(TARGET["w"])) < lam
    assert target_small.any()
    # minimizer of 0.5 (w - t)^2 + lam |w| is soft_threshold(t, lam): exact zeros
    np.testing.assert_array_equal(w_prox[target_small], 0.0)
    np.testing.assert_allclose(w_prox, _soft_threshold(np.asarray(TARGET["w"]), lam), atol=1e-5)
    assert (w_sub != 0).all()


def test_l1_prox_one_step_formula_and_mask():
    params = _params()
    grads = jax.tree.map(lambda p: jnp.asarray(RNG.normal(size=p.shape), p.dtype), params)
    lr, lam = 0.1, 0.5
    tx = optax.chain(optax.sgd(lr), l1_prox(lam, lr, mask=jaxreg.path_mask(r"^w$")))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    z = np.asarray(params["w"]) - lr * np.asarray(grads["w"])
    np.testing.assert_allclose(new["w"], _soft_threshold(z, lr * lam), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(new["b"], params["b"] - lr * grads["b"], rtol=1e-6)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(
    hnp.arrays(np.float64, (5,), elements=st.floats(-10, 10, allow_subnormal=False)),
    hnp.arrays(np.float64, (5,), elements=st.floats(-10, 10, allow_subnormal=False)),
    st.floats(0, 5),
)
def test_l1_prox_property_soft_threshold(w, u, threshold):
    with jax.enable_x64(True):
        tx = l1_prox(threshold, 1.0)
        updates, _ = tx.update(jnp.asarray(u), tx.init(jnp.asarray(w)), jnp.asarray(w))
        new = np.asarray(w + updates)
        expected = _soft_threshold(w + u, threshold)
        np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-12)
        assert (new[expected == 0] == 0).all()


def test_l1_prox_traced_and_scheduled_hparams():
    params = _params()

    @jax.jit
    def train(lam, lr):
        return _run(optax.chain(optax.sgd(lr), l1_prox(lam, lr)), params, jit=False)

    train(jnp.float32(0.5), jnp.float32(0.1))
    train(jnp.float32(1.5), jnp.float32(0.05))
    assert train._cache_size() == 1

    sched = optax.linear_schedule(0.2, 0.0, 4)
    tx = l1_prox(1.0, sched)
    state = tx.init(jnp.ones(1))
    thresholds = []
    for _ in range(3):
        updates, state = tx.update(jnp.zeros(1), state, jnp.ones(1))
        thresholds.append(-float(updates[0]))
    np.testing.assert_allclose(thresholds, [0.2, 0.15, 0.1], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"l1": -1.0, "learning_rate": 0.1}, "l1"),
        ({"l1": 1.0, "learning_rate": -0.1}, "learning_rate"),
    ],
)
def test_l1_prox_invalid_raises(kwargs, name):
    with pytest.raises(ValueError, match=f"l1_prox: {name} must be a finite number >= 0"):
        l1_prox(**kwargs)


# --- coupled_weight_decay ---


def test_coupled_weight_decay_equals_l2_loss_term():
    params, wd, lr = _params(), 0.05, 0.1
    ours = _run(optax.chain(coupled_weight_decay(wd), optax.sgd(lr, momentum=0.9)), params)
    reference = _run(
        optax.sgd(lr, momentum=0.9), params, loss=lambda p: _loss(p) + wd * l2_penalty(p)
    )
    _assert_trees_close(ours, reference, rtol=1e-6, atol=1e-7)


def test_coupled_weight_decay_adam_matches_torch_adam():
    torch = pytest.importorskip("torch")
    params, wd, lr = _params(), 0.1, 0.01
    tparams = {k: torch.nn.Parameter(torch.tensor(np.asarray(v))) for k, v in params.items()}
    opt = torch.optim.Adam(tparams.values(), lr=lr, weight_decay=wd)
    for _ in range(10):
        opt.zero_grad()
        loss = (
            sum(((tparams[k] - torch.tensor(np.asarray(TARGET[k]))) ** 2).sum() for k in tparams)
            / 2
        )
        loss.backward()
        opt.step()
    ours = _run(optax.chain(coupled_weight_decay(wd), optax.adam(lr)), params)
    for k in params:
        np.testing.assert_allclose(ours[k], tparams[k].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_coupled_weight_decay_mask_and_schedule():
    params = {"W1": jnp.ones((2, 2)), "b1": jnp.ones(2)}
    tx = coupled_weight_decay(lambda count: 0.1 * (count + 1), mask=jaxreg.weights_only(params))
    state = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, state = tx.update(zeros, state, params)
    updates, state = tx.update(zeros, state, params)
    np.testing.assert_allclose(updates["W1"], 0.2 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(updates["b1"], np.zeros(2))


def test_coupled_weight_decay_invalid_raises():
    with pytest.raises(ValueError, match=r"coupled_weight_decay: weight_decay must be .*-0.5"):
        coupled_weight_decay(-0.5)


# --- decoupled_weight_decay ---


def test_decoupled_equals_coupled_for_sgd_but_not_for_adam():
    params, wd, lr = _params(), 0.1, 0.05
    coupled_sgd = _run(optax.chain(coupled_weight_decay(wd), optax.sgd(lr)), params)
    decoupled_sgd = _run(optax.chain(optax.sgd(lr), decoupled_weight_decay(wd, lr)), params)
    _assert_trees_close(coupled_sgd, decoupled_sgd, rtol=1e-5, atol=1e-6)

    coupled_adam = _run(optax.chain(coupled_weight_decay(wd), optax.adam(lr)), params)
    decoupled_adam = _run(optax.chain(optax.adam(lr), decoupled_weight_decay(wd, lr)), params)
    assert np.abs(np.asarray(coupled_adam["w"]) - np.asarray(decoupled_adam["w"])).max() > 1e-3


def test_decoupled_weight_decay_adam_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    params, wd, lr = _params(), 0.1, 0.01
    tparams = {k: torch.nn.Parameter(torch.tensor(np.asarray(v))) for k, v in params.items()}
    opt = torch.optim.AdamW(
        [{"params": [tparams["w"]]}, {"params": [tparams["b"]], "weight_decay": 0.0}],
        lr=lr,
        weight_decay=wd,
    )
    for _ in range(10):
        opt.zero_grad()
        loss = (
            sum(((tparams[k] - torch.tensor(np.asarray(TARGET[k]))) ** 2).sum() for k in tparams)
            / 2
        )
        loss.backward()
        opt.step()
    mask = {"w": True, "b": False}
    ours = _run(optax.chain(optax.adam(lr), decoupled_weight_decay(wd, lr, mask=mask)), params)
    for k in params:
        np.testing.assert_allclose(ours[k], tparams[k].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_decoupled_weight_decay_one_step_and_traced():
    params = {"w": jnp.array([1.0, -2.0])}

    @jax.jit
    def step(wd, lr):
        tx = decoupled_weight_decay(wd, lr)
        return tx.update({"w": jnp.zeros(2)}, tx.init(params), params)[0]

    np.testing.assert_allclose(step(0.5, 0.1)["w"], [-0.05, 0.1], rtol=1e-6)
    np.testing.assert_allclose(step(0.25, 0.1)["w"], [-0.025, 0.05], rtol=1e-6)
    assert step._cache_size() == 1


def test_decoupled_weight_decay_invalid_raises():
    with pytest.raises(ValueError, match=r"decoupled_weight_decay: learning_rate must be"):
        decoupled_weight_decay(0.1, float("nan"))
    with pytest.raises(ValueError, match=r"decoupled_weight_decay: weight_decay must be"):
        decoupled_weight_decay(-1.0, 0.1)


# --- where a jaxreg transform is an optax one (the docstrings say so; these prove it) ---


def _optax_run(tx, dtype, steps=25):
    rng = np.random.default_rng(3)
    params = {
        "w": jnp.asarray(rng.normal(size=(12, 7)), dtype),
        "b": jnp.asarray(rng.normal(size=7), dtype),
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=(steps, *p.shape)), dtype), params)

    def step(carry, g):
        p, state = carry
        updates, state = tx.update(g, state, p)
        return (optax.apply_updates(p, updates), state), None

    return jax.jit(lambda p, g: jax.lax.scan(step, (p, tx.init(p)), g)[0][0])(params, grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coupled_weight_decay_is_optax_add_decayed_weights(dtype):
    mask = {"w": True, "b": False}
    with jax.enable_x64(dtype == np.float64):
        ours = _optax_run(
            optax.chain(coupled_weight_decay(0.1, mask=mask), optax.adam(1e-2)), dtype
        )
        theirs = _optax_run(
            optax.chain(optax.add_decayed_weights(0.1, mask=mask), optax.adam(1e-2)), dtype
        )
        for k in ours:  # bit-identical
            np.testing.assert_array_equal(ours[k], theirs[k])


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_adam_then_decoupled_weight_decay_is_optax_adamw(dtype, rtol):
    mask = {"w": True, "b": False}
    with jax.enable_x64(dtype == np.float64):
        ours = _optax_run(
            optax.chain(optax.adam(1e-2), decoupled_weight_decay(0.1, 1e-2, mask=mask)), dtype
        )
        theirs = _optax_run(optax.adamw(1e-2, weight_decay=0.1, mask=mask), dtype)
        undecayed = _optax_run(optax.adam(1e-2), dtype)
        for k in ours:
            # equal to rounding: -lr * (a + wd * w) vs -lr * a - (lr * wd) * w
            np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=rtol)
        # the decay acted (the comparison is not between two undecayed runs)
        assert float(jnp.abs(ours["w"] - undecayed["w"]).max()) > 1e-3
        np.testing.assert_array_equal(ours["b"], undecayed["b"])


def test_public_names_exported():
    for name in ("add_l1", "l1_prox", "coupled_weight_decay", "decoupled_weight_decay"):
        assert getattr(jaxreg, name) is getattr(jaxreg.transforms, name)

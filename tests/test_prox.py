"""Tests for jaxreg.prox: group_lasso_prox and elastic_net_prox."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jaxreg
from jaxreg.prox import elastic_net_prox, group_lasso_prox
from jaxreg.transforms import ScheduleState, l1_prox

RNG = np.random.default_rng(0)


def _apply(tx, params, updates):
    """One update from a zero-count state: the new parameters."""
    new_updates, _ = tx.update(updates, tx.init(params), params)
    return optax.apply_updates(params, new_updates)


def _block_soft_threshold(z, t, axes):
    norms = np.sqrt((z**2).sum(axis=axes, keepdims=True))
    return z * np.maximum(1 - t / np.where(norms > 0, norms, 1.0), 0.0)


def _soft_threshold(z, t):
    return np.sign(z) * np.maximum(np.abs(z) - t, 0.0)


# --- group_lasso_prox ---


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, (0, 1, 2)])
def test_group_lasso_prox_closed_form_and_exact_zero_groups(dtype, axis):
    shape = (6, 5) if axis == 0 else (3, 3, 2, 5)
    w = RNG.normal(size=shape).astype(dtype)
    u = RNG.normal(size=shape).astype(dtype) * 0.1
    axes = (axis,) if isinstance(axis, int) else axis
    norms = np.sqrt(((w + u) ** 2).sum(axis=axes))
    t = float(np.median(norms))  # about half of the units switch off
    with jax.enable_x64(dtype == np.float64):
        new = np.asarray(
            _apply(group_lasso_prox(t, 1.0, axis=axis), jnp.asarray(w), jnp.asarray(u))
        )
    expected = _block_soft_threshold(w + u, t, axes)
    np.testing.assert_allclose(new, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    off = norms <= t
    assert off.any() and (~off).any()
    assert (np.moveaxis(new, -1, 0)[off] == 0.0).all()  # exactly zero, not 1e-8
    assert (np.abs(np.moveaxis(new, -1, 0)[~off]) > 0).any()


# XLA's CPU backend flushes subnormal floats to zero: a unit of entries below ~1e-154 has a
# squared norm that flushes (norm 0), so the property is stated for entries 0 or above 1e-100.
_ENTRY = st.floats(-5, 5).filter(lambda v: v == 0 or abs(v) > 1e-100)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(hnp.arrays(np.float64, (4, 3), elements=_ENTRY), st.floats(0, 6))
@example(np.full((4, 3), 6.85671675e-157), 0.0)  # t = 0 is the identity, even there
def test_group_lasso_prox_is_the_argmin(z, t):
    # prox_{t||.||}(z) = argmin_x 0.5 ||x - z||^2 + t sum_g ||x_g||, per column
    with jax.enable_x64(True):
        x = np.asarray(_apply(group_lasso_prox(t, 1.0), jnp.zeros((4, 3)), jnp.asarray(z)))
    for g in range(3):
        xg, zg = x[:, g], z[:, g]
        if np.linalg.norm(xg) == 0:
            # 0 is optimal iff z_g lies in the subdifferential t * unit ball at 0
            assert np.linalg.norm(zg) <= t * (1 + 1e-12)
        else:  # gradient of the objective vanishes: x - z + t x / ||x|| = 0
            np.testing.assert_allclose(xg - zg + t * xg / np.linalg.norm(xg), 0, atol=1e-9)

    def objective(v):
        return 0.5 * ((v - z) ** 2).sum() + t * np.linalg.norm(v, axis=0).sum()

    rng = np.random.default_rng(1)
    for scale in (1e-1, 1e-3):
        for _ in range(20):
            assert objective(x) <= objective(x + scale * rng.normal(size=x.shape)) + 1e-12


def test_group_lasso_prox_proximal_sgd_finds_the_group_sparse_minimizer():
    target = jnp.asarray(RNG.normal(size=(5, 6)), jnp.float32) * jnp.linspace(0.1, 2.0, 6)
    params = {"kernel": jnp.zeros((5, 6)), "bias": jnp.zeros(6)}
    strength, lr = 1.5, 0.3

    def loss(p):
        return 0.5 * jnp.sum((p["kernel"] - target) ** 2) + 0.5 * jnp.sum((p["bias"] - 1) ** 2)

    tx = optax.chain(
        optax.sgd(lr), group_lasso_prox(strength, lr, mask={"kernel": True, "bias": False})
    )

    def step(carry, _):
        p, s = carry
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, updates), s), None

    final = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=200)[0][0])(params)
    expected = _block_soft_threshold(np.asarray(target), strength, (0,))
    np.testing.assert_allclose(final["kernel"], expected, atol=1e-5)
    dead = np.linalg.norm(np.asarray(target), axis=0) <= strength
    assert dead.any() and (~dead).any()
    assert (np.asarray(final["kernel"])[:, dead] == 0.0).all()
    np.testing.assert_allclose(final["bias"], np.ones(6), atol=1e-5)  # masked out: plain SGD


def test_group_lasso_prox_mask_leaves_others_untouched():
    params = {"w": jnp.ones((3, 2)), "b": jnp.full(2, 0.01)}
    grads = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
    tx = optax.chain(optax.sgd(0.1), group_lasso_prox(20.0, 0.1, mask=jaxreg.weights_only(params)))
    new = _apply(tx, params, grads)
    np.testing.assert_array_equal(new["w"], np.zeros((3, 2)))
    np.testing.assert_array_equal(new["b"], params["b"])


def test_group_lasso_prox_traced_strength_no_recompile_and_vmap():
    w = jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32)

    @jax.jit
    def step(strength, lr):
        return _apply(group_lasso_prox(strength, lr), w, jnp.zeros_like(w))

    a, b = step(jnp.float32(0.5), jnp.float32(1.0)), step(jnp.float32(2.0), jnp.float32(0.5))
    assert step._cache_size() == 1
    np.testing.assert_allclose(a, _block_soft_threshold(np.asarray(w), 0.5, (0,)), rtol=1e-5)
    np.testing.assert_allclose(b, _block_soft_threshold(np.asarray(w), 1.0, (0,)), rtol=1e-5)
    batched = jax.vmap(step, in_axes=(0, None))(jnp.array([0.5, 1.0]), jnp.float32(1.0))
    np.testing.assert_allclose(batched[0], a, rtol=1e-6)
    np.testing.assert_allclose(batched[1], b, rtol=1e-6)


def test_group_lasso_prox_schedule_keeps_count():
    tx = group_lasso_prox(1.0, optax.linear_schedule(0.2, 0.0, 4))
    w = jnp.array([[1.0]])
    state = tx.init(w)
    assert isinstance(state, ScheduleState)
    steps = []
    for _ in range(3):
        updates, state = tx.update(jnp.zeros((1, 1)), state, w)
        steps.append(-float(updates[0, 0]))
    np.testing.assert_allclose(steps, [0.2, 0.15, 0.1], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strength": -1.0, "learning_rate": 0.1}, "strength must be a finite number >= 0"),
        ({"strength": 1.0, "learning_rate": float("nan")}, "learning_rate must be a finite"),
        ({"strength": 1.0, "learning_rate": 0.1, "axis": 0.5}, "axis must be an int"),
    ],
)
def test_group_lasso_prox_invalid_raises(kwargs, match):
    with pytest.raises(ValueError, match=f"group_lasso_prox: {match}"):
        group_lasso_prox(**kwargs)


def test_group_lasso_prox_needs_params_and_axis_in_range():
    tx = group_lasso_prox(1.0, 0.1)
    with pytest.raises(ValueError, match="group_lasso_prox needs the current parameters"):
        tx.update(jnp.ones((2, 2)), tx.init(jnp.ones((2, 2))))
    tx = group_lasso_prox(1.0, 0.1, axis=1)
    with pytest.raises(ValueError, match=r"axis 1 is out of range for a leaf of shape \(3,\)"):
        _apply(tx, jnp.ones(3), jnp.zeros(3))
    with pytest.raises(TypeError):
        group_lasso_prox(1.0, 0.1, 0)  # axis and mask are keyword-only


# --- elastic_net_prox ---


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elastic_net_prox_closed_form_and_exact_zeros(dtype):
    w = RNG.normal(size=(7, 3)).astype(dtype)
    u = RNG.normal(size=(7, 3)).astype(dtype) * 0.1
    l1, l2, lr = 0.8, 0.5, 0.6
    with jax.enable_x64(dtype == np.float64):
        new = np.asarray(_apply(elastic_net_prox(l1, l2, lr), jnp.asarray(w), jnp.asarray(u)))
    expected = _soft_threshold(w + u, lr * l1) / (1 + lr * l2)
    np.testing.assert_allclose(new, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)
    zero = np.abs(w + u) <= lr * l1
    assert zero.any() and (~zero).any()
    assert (new[zero] == 0.0).all()


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.floats(-5, 5), st.floats(0, 3), st.floats(0, 3), st.floats(0.01, 1))
def test_elastic_net_prox_is_the_argmin_on_a_fine_grid(z, l1, l2, lr):
    # argmin_x 0.5 (x - z)^2 + lr (l1 |x| + l2/2 x^2), checked by brute force
    with jax.enable_x64(True):
        x = float(_apply(elastic_net_prox(l1, l2, lr), jnp.zeros(1), jnp.array([z]))[0])
    grid = np.linspace(-6, 6, 1_200_001)  # spacing 1e-5
    objective = 0.5 * (grid - z) ** 2 + lr * (l1 * np.abs(grid) + l2 / 2 * grid**2)
    assert abs(x - grid[np.argmin(objective)]) <= 1e-5
    value = 0.5 * (x - z) ** 2 + lr * (l1 * abs(x) + l2 / 2 * x**2)
    assert value <= objective.min() + 1e-12


def test_elastic_net_prox_with_zero_l2_is_l1_prox():
    w = jnp.asarray(RNG.normal(size=(5, 4)), jnp.float32)
    u = jnp.asarray(RNG.normal(size=(5, 4)), jnp.float32) * 0.3
    np.testing.assert_array_equal(
        _apply(elastic_net_prox(0.7, 0.0, 0.5), w, u), _apply(l1_prox(0.7, 0.5), w, u)
    )


def test_elastic_net_prox_mask_traced_and_vmap():
    params = {"w": jnp.asarray(RNG.normal(size=(3, 3)), jnp.float32), "b": jnp.full(3, 0.01)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    # (|w| - 0.2) / 1.5 cancels where |w| is near 0.2: compiled with or without vmap, XLA may
    # fold it as |w| / 1.5 - 0.2 / 1.5, whose rounding is an ulp of 0.13 (7.5e-9), not of the
    # result; atol is a few such ulps (a wrong threshold or scale is off by > 1e-3).
    atol = 4 * float(np.spacing(np.float32(0.2)))

    @jax.jit
    def step(l1, l2):
        return _apply(elastic_net_prox(l1, l2, 0.5, mask={"w": True, "b": False}), params, zeros)

    a = step(jnp.float32(0.4), jnp.float32(1.0))
    step(jnp.float32(0.1), jnp.float32(0.0))
    assert step._cache_size() == 1
    np.testing.assert_array_equal(a["b"], params["b"])
    np.testing.assert_allclose(
        a["w"], _soft_threshold(np.asarray(params["w"]), 0.2) / 1.5, rtol=1e-6, atol=atol
    )
    batched = jax.vmap(step, in_axes=(0, None))(jnp.array([0.4, 0.1]), jnp.float32(1.0))
    np.testing.assert_allclose(batched["w"][0], a["w"], rtol=1e-6, atol=atol)


@pytest.mark.parametrize("name", ["l1", "l2", "learning_rate"])
def test_elastic_net_prox_invalid_raises(name):
    kwargs = {"l1": 0.1, "l2": 0.1, "learning_rate": 0.1, name: -0.5}
    with pytest.raises(ValueError, match=f"elastic_net_prox: {name} must be a finite number >= 0"):
        elastic_net_prox(**kwargs)


def test_public_names_exported():
    for name in ("group_lasso_prox", "elastic_net_prox"):
        assert getattr(jaxreg, name) is getattr(jaxreg.prox, name)


def test_group_lasso_prox_keeps_a_nan_unit_nan():
    # torch's w.mul_(clamp(1 - t / vector_norm(w), min=0)) gives NaN for a unit holding a NaN;
    # switching the unit off (0) would hide it. The other units are shrunk as usual.
    w = jnp.array([[3.0, 0.1], [4.0, jnp.nan]])  # columns are units: norms 5 and NaN
    new = np.asarray(_apply(group_lasso_prox(1.0, 1.0), w, jnp.zeros_like(w)))
    assert np.isnan(new[:, 1]).all()
    np.testing.assert_allclose(new[:, 0], [3.0 * 0.8, 4.0 * 0.8], rtol=1e-6)

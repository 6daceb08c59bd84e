"""Tests for jaxreg.constraints: max_norm."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg.constraints import max_norm

RNG = np.random.default_rng(0)


def _apply(tx, params, updates):
    new_updates, _ = tx.update(updates, tx.init(params), params)
    return optax.apply_updates(params, new_updates)


def _renorm_numpy(z, c, axes):
    norms = np.sqrt((z**2).sum(axis=axes, keepdims=True))
    return np.where(norms > c, z * (c / (norms + 1e-7)), z)


def test_max_norm_bound_holds_after_every_step():
    # a regression whose least-squares weights lie far outside the bound: without the
    # constraint the unit norms grow to ~10, with it every step ends inside
    x = jnp.asarray(RNG.normal(size=(64, 8)), jnp.float32)
    y = x @ jnp.asarray(RNG.normal(size=(8, 4)) * 4, jnp.float32)
    params = {"kernel": jnp.asarray(RNG.normal(size=(8, 4)) * 0.1, jnp.float32)}
    bound = 2.0

    def loss(p):
        return jnp.mean((x @ p["kernel"] - y) ** 2)

    def run(tx):
        def step(carry, _):
            p, s = carry
            updates, s = tx.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, updates)
            return (p, s), jnp.linalg.norm(p["kernel"], axis=0)

        return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=100))(params)

    _, norms = run(optax.chain(optax.sgd(0.05, momentum=0.9), max_norm(bound)))
    _, free = run(optax.sgd(0.05, momentum=0.9))
    assert float(free.max()) > 3 * bound
    # a rescaled unit ends at bound * (1 - 1e-7 / norm); the final add may round up an ulp
    assert float(norms.max()) <= bound * (1 + 2 * np.finfo(np.float32).eps)
    assert float(norms[-1].min()) > 0.99 * bound  # the bound is active, not trivially met


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, (0, 1, 2)])
def test_max_norm_closed_form_and_units_inside_untouched(dtype, axis):
    shape = (6, 5) if axis == 0 else (3, 3, 2, 5)
    axes = (axis,) if isinstance(axis, int) else axis
    w = RNG.normal(size=shape).astype(dtype)
    u = (RNG.normal(size=shape) * 0.1).astype(dtype)
    norms = np.sqrt(((w + u) ** 2).sum(axis=axes))
    c = float(np.median(norms))
    with jax.enable_x64(dtype == np.float64):
        new = np.asarray(_apply(max_norm(c, axis=axis), jnp.asarray(w), jnp.asarray(u)))
        plain = np.asarray(jnp.asarray(w) + jnp.asarray(u))
    np.testing.assert_allclose(
        new, _renorm_numpy(w + u, c, axes), rtol=1e-6 if dtype == np.float32 else 1e-13
    )
    inside = norms <= c
    assert inside.any() and (~inside).any()
    # units inside the bound are exactly what the step made them
    np.testing.assert_array_equal(
        np.moveaxis(new, -1, 0)[inside], np.moveaxis(plain, -1, 0)[inside]
    )


def test_max_norm_matches_torch_renorm():
    torch = pytest.importorskip("torch")
    kernel = RNG.normal(size=(7, 5)) * np.linspace(0.2, 2.0, 5)  # Flax (in, out)
    with jax.enable_x64(True):
        ours = np.asarray(_apply(max_norm(1.5), jnp.asarray(kernel), jnp.zeros((7, 5))))
    # torch Linear.weight is (out, in): units are rows, renorm over dim 0
    theirs = torch.renorm(torch.tensor(kernel.T.copy()), 2, 0, 1.5).numpy().T
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-15)


def test_max_norm_mask_leaves_biases_alone():
    params = {"kernel": jnp.full((4, 2), 3.0), "bias": jnp.full(2, 30.0)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    new = _apply(max_norm(1.0, mask=jaxreg.weights_only(params)), params, zeros)
    np.testing.assert_array_equal(new["bias"], params["bias"])
    np.testing.assert_allclose(jnp.linalg.norm(new["kernel"], axis=0), [1.0, 1.0], rtol=1e-6)


def test_max_norm_traced_bound_no_recompile_vmap_and_schedule():
    w = jnp.asarray(RNG.normal(size=(5, 3)) * 2, jnp.float32)

    @jax.jit
    def step(c):
        return _apply(max_norm(c), w, jnp.zeros_like(w))

    a, b = step(jnp.float32(1.0)), step(jnp.float32(2.0))
    assert step._cache_size() == 1
    np.testing.assert_allclose(jnp.linalg.norm(a, axis=0).max(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(b, axis=0).max(), 2.0, rtol=1e-6)
    batched = jax.vmap(step)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(batched[1], b, rtol=1e-6)

    tx = max_norm(lambda count: 1.0 + count)  # bound 1, then 2
    state = tx.init(w)
    new = []
    for _ in range(2):
        updates, state = tx.update(jnp.zeros_like(w), state, w)
        new.append(jnp.linalg.norm(optax.apply_updates(w, updates), axis=0).max())
    np.testing.assert_allclose(new, [1.0, 2.0], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_value": -1.0}, r"max_norm: max_value must be a finite number >= 0, got -1.0"),
        ({"max_value": float("inf")}, r"max_norm: max_value must be a finite number >= 0"),
        ({"max_value": 1.0, "axis": "0"}, r"max_norm: axis must be an int"),
    ],
)
def test_max_norm_invalid_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        max_norm(**kwargs)


def test_max_norm_needs_params_and_axis_in_range():
    tx = max_norm(1.0)
    with pytest.raises(ValueError, match="max_norm needs the current parameters"):
        tx.update(jnp.ones((2, 2)), tx.init(jnp.ones((2, 2))))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a leaf of shape \(2, 2\)"):
        _apply(max_norm(1.0, axis=2), jnp.ones((2, 2)), jnp.zeros((2, 2)))


def test_public_name_exported():
    assert jaxreg.max_norm is max_norm

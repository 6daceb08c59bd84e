"""Tests of jaxreg.nn: the Linen Dropout and VanillaDropout modules."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg.nn import Dropout, VanillaDropout

SHAPE = (16, 12)
X = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, SHAPE), jnp.float32)


def _rngs(seed):
    return {"dropout": jax.random.key(seed)}


class NetDropped(nn.Module):
    """Seed 002's net_dropped shape: dropout BEFORE the activation, with a traced rate."""

    @nn.compact
    def __call__(self, x, *, deterministic, rate=None):
        x = nn.Dense(8)(x)
        x = Dropout(0.5)(x, deterministic=deterministic, rate=rate)
        x = nn.relu(x)
        return nn.Dense(1)(x)


def test_exported_as_submodule():
    assert jaxreg.nn.Dropout is Dropout and jaxreg.nn.VanillaDropout is VanillaDropout


def test_train_mode_invariant_and_scale():
    y = Dropout(0.25).apply({}, X, deterministic=False, rngs=_rngs(0))
    scale = np.float32(1) / np.float32(0.75)
    assert bool(jnp.all((y == 0) | (y == X * scale)))
    assert 0 < float(jnp.mean(y != 0)) < 1


def test_same_mask_as_flax_dropout():
    # A drop-in replacement: the same key stream and the same Bernoulli draw as flax's layer.
    ours = Dropout(0.3).apply({}, X, deterministic=False, rngs=_rngs(3))
    flax = nn.Dropout(0.3).apply({}, X, deterministic=False, rngs=_rngs(3))
    np.testing.assert_array_equal(np.asarray(ours) != 0, np.asarray(flax) != 0)
    np.testing.assert_allclose(ours, flax, rtol=2e-7)


def test_module_matches_functional_core():
    key = jax.random.key(4)
    layer = Dropout(0.4, broadcast_dims=(0,))
    y = layer.apply({}, X, deterministic=False, rngs={"dropout": key})
    # The module draws its key with make_rng; replaying that key through the function agrees.
    sub = layer.apply({}, method=lambda m: m.make_rng("dropout"), rngs={"dropout": key})
    np.testing.assert_array_equal(y, jaxreg.dropout(X, 0.4, key=sub, broadcast_dims=(0,)))
    assert bool(jnp.all((y == 0).all(axis=0) | (y != 0).all(axis=0)))


def test_keys_and_reproducibility():
    a = Dropout(0.5).apply({}, X, deterministic=False, rngs=_rngs(1))
    b = Dropout(0.5).apply({}, X, deterministic=False, rngs=_rngs(1))
    c = Dropout(0.5).apply({}, X, deterministic=False, rngs=_rngs(2))
    np.testing.assert_array_equal(a, b)
    assert bool(jnp.any((a != 0) != (c != 0)))


def test_deterministic_paths():
    assert Dropout(0.5).apply({}, X, deterministic=True) is X
    assert Dropout(0.5, deterministic=True).apply({}, X) is X
    y = Dropout(0.5, deterministic=False).apply({}, X, rngs=_rngs(0))
    assert bool(jnp.any(y == 0))
    # rate 0 needs no key and draws none, like flax.linen.Dropout.
    assert Dropout(0.0).apply({}, X, deterministic=False) is X


def test_deterministic_must_be_given_exactly_once():
    with pytest.raises(ValueError, match="deterministic"):
        Dropout(0.5).apply({}, X, rngs=_rngs(0))
    with pytest.raises(ValueError, match="deterministic"):
        Dropout(0.5, deterministic=True).apply({}, X, deterministic=True)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"'dropout' collection.*rngs="):
        Dropout(0.5).apply({}, X, deterministic=False)
    with pytest.raises(ValueError, match=r"'noise' collection"):
        Dropout(0.5, rng_collection="noise").apply({}, X, deterministic=False, rngs=_rngs(0))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got"):
            Dropout(bad).apply({}, X, deterministic=True)
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got"):
            Dropout(0.5).apply({}, X, deterministic=False, rate=bad, rngs=_rngs(0))
        with pytest.raises(ValueError, match=r"keep_prob must be in \[0, 1\], got"):
            VanillaDropout(bad).apply({}, X, deterministic=True)


def test_init_with_one_key_and_explicit_rng_like_flax():
    class M(nn.Module):
        layer: type

        @nn.compact
        def __call__(self, x):
            return self.layer(0.5)(nn.Dense(3)(x), deterministic=False)

    # Flax falls back to the "params" stream when "dropout" is absent: same key, same result.
    ours = M(Dropout).init_with_output(jax.random.key(0), X)
    flax = M(nn.Dropout).init_with_output(jax.random.key(0), X)
    np.testing.assert_array_equal(np.asarray(ours[0]) != 0, np.asarray(flax[0]) != 0)
    key = jax.random.key(8)
    np.testing.assert_array_equal(
        Dropout(0.5).apply({}, X, deterministic=False, rng=key), jaxreg.dropout(X, 0.5, key=key)
    )


def test_custom_rng_collection():
    y = Dropout(0.5, rng_collection="noise").apply(
        {}, X, deterministic=False, rngs={"noise": jax.random.key(0)}
    )
    assert bool(jnp.any(y == 0))


def test_call_time_rate_overrides_attribute():
    layer = Dropout(0.9)
    np.testing.assert_array_equal(
        layer.apply({}, X, deterministic=False, rate=0.0, rngs=_rngs(0)), X
    )
    zeros = layer.apply({}, X, deterministic=False, rate=1.0, rngs=_rngs(0))
    assert bool(jnp.all(zeros == 0))
    half = layer.apply({}, X, deterministic=False, rate=0.5, rngs=_rngs(0))
    np.testing.assert_array_equal(
        half, Dropout(0.5).apply({}, X, deterministic=False, rngs=_rngs(0))
    )


def test_model_init_apply_and_traced_rate_sweep():
    model = NetDropped()
    params = model.init({"params": jax.random.key(0)}, X, deterministic=True)
    eval_out = model.apply(params, X, deterministic=True)
    # In evaluation the dropout layer is the identity: same as the model at rate 0.
    np.testing.assert_array_equal(
        eval_out, model.apply(params, X, deterministic=False, rate=0.0, rngs=_rngs(0))
    )
    traces = []

    @jax.jit
    def loss(params, key, rate):
        traces.append(1)
        out = model.apply(params, X, deterministic=False, rate=rate, rngs={"dropout": key})
        return jnp.mean(out**2)

    values = [loss(params, jax.random.key(1), jnp.float32(r)) for r in (0.1, 0.5, 0.9)]
    grads = jax.grad(lambda p: loss(p, jax.random.key(1), jnp.float32(1.0)))(params)
    assert len(traces) == 1  # grad reuses the jitted trace; a new rate never retraces
    assert all(bool(jnp.isfinite(v)) for v in values)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # At rate 1 the first layer's output is dropped entirely: its kernel gets no gradient.
    assert bool(jnp.all(grads["params"]["Dense_0"]["kernel"] == 0))
    swept = jax.vmap(lambda r: loss(params, jax.random.key(1), r))(jnp.array([0.1, 0.5, 0.9]))
    np.testing.assert_allclose(swept, jnp.stack(values), rtol=1e-6)


def test_in_sequential_with_attribute_mode():
    seq = nn.Sequential([nn.Dense(6), Dropout(0.5, deterministic=False), nn.relu])
    params = seq.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, X)
    y = seq.apply(params, X, rngs=_rngs(2))
    assert y.shape == (SHAPE[0], 6)


def test_vanilla_module_predict_scaling():
    np.testing.assert_array_equal(
        VanillaDropout(0.25).apply({}, X, deterministic=True), X * np.float32(0.25)
    )
    y = VanillaDropout(0.25).apply({}, X, deterministic=False, rngs=_rngs(0))
    assert bool(jnp.all((y == 0) | (y == X)))
    override = VanillaDropout(0.25).apply({}, X, deterministic=True, keep_prob=0.5)
    np.testing.assert_array_equal(override, X * np.float32(0.5))
    with pytest.raises(ValueError, match="'dropout' collection"):
        VanillaDropout(0.5).apply({}, X, deterministic=False)


def test_vanilla_expectation_matches_predict():
    x = jnp.ones((200_000,))
    y = VanillaDropout(0.3).apply({}, x, deterministic=False, rngs=_rngs(5))
    pred = VanillaDropout(0.3).apply({}, x, deterministic=True)
    assert abs(float(y.mean()) - float(pred[0])) <= 5 * np.sqrt(0.3 * 0.7 / x.size)

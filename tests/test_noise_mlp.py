"""Tests of jaxreg.models.NoiseMLP: one architecture, five techniques, a traced strength."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.models import NOISE_TECHNIQUES, NoiseMLP

X = jnp.asarray(np.random.default_rng(0).uniform(0.0, 1.0, (8, 784)), jnp.float32)
NOISY = [t for t in NOISE_TECHNIQUES if t != "none"]


def _init(technique="dropout", **kw):
    model = NoiseMLP(technique=technique, **kw)
    return model, model.init(jax.random.key(0), X)


def _train(model, params, strength, key=1, x=X):
    return model.apply(
        params,
        x,
        deterministic=False,
        strength=strength,
        rngs={"dropout": jax.random.key(key)},
    )


def test_same_initial_weights_for_every_technique_and_torch_bounds():
    _, ref = _init("none")
    for tech in NOISY:
        _, params = _init(tech)
        assert jax.tree.structure(params) == jax.tree.structure(ref), tech
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=tech)
    # torch.nn.Linear's default: weight and bias in U(+-1/sqrt(fan_in)).
    for name, fan_in in (("lin1", 784), ("lin2", 256), ("lin3", 256)):
        layer = ref["params"][name]
        bound = 1 / math.sqrt(fan_in)
        assert float(jnp.max(jnp.abs(layer["kernel"]))) <= bound
        assert float(jnp.max(jnp.abs(layer["bias"]))) <= bound
        assert float(jnp.max(jnp.abs(layer["kernel"]))) > 0.9 * bound


def test_evaluation_is_the_plain_mlp_for_every_technique():
    model, params = _init("none")
    ref = model.apply(params, X)
    for tech in NOISY:
        out = NoiseMLP(technique=tech).apply(params, X, deterministic=True, strength=0.3)
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6, err_msg=tech)


@pytest.mark.parametrize("technique", NOISE_TECHNIQUES)
def test_zero_strength_trains_as_the_plain_mlp(technique):
    model, params = _init(technique)
    ref = model.apply(params, X)
    out = _train(model, params, jnp.float32(0.0))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("technique", NOISY)
def test_noise_is_on_in_training_and_follows_the_key(technique):
    model, params = _init(technique)
    ref = model.apply(params, X)
    a, b, c = (_train(model, params, 0.3, key=k) for k in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - ref))) > 1e-3
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3


def test_none_ignores_strength_and_key():
    model, params = _init("none")
    np.testing.assert_array_equal(_train(model, params, 0.9), model.apply(params, X))


def _lin3_kernel_grad(technique):
    model, params = _init(technique)

    def loss(p):
        return jnp.sum(_train(model, p, 0.5, key=3, x=X[:1]))

    return np.asarray(jax.grad(loss)(params)["params"]["lin3"]["kernel"])


def test_dropconnect_drops_weights_dropout_drops_units():
    # One example: dropout zeroes whole hidden units, so a row of lin3's kernel gradient is
    # all zero or all non-zero; DropConnect zeroes single weights, about half of each row.
    drop = _lin3_kernel_grad("dropout")
    live = np.any(drop != 0, axis=1)
    assert np.all(np.all(drop[live] != 0, axis=1))
    connect = _lin3_kernel_grad("dropconnect")
    live = np.any(connect != 0, axis=1)
    zero_fraction = float(np.mean(connect[live] == 0))
    assert 0.4 < zero_fraction < 0.6
    assert np.sum(np.any(connect[live] == 0, axis=1) & np.any(connect[live] != 0, axis=1)) > 10


@pytest.mark.parametrize("technique", NOISY)
def test_traced_strength_one_compilation_and_vmap(technique):
    model, params = _init(technique)
    fn = jax.jit(lambda s: _train(model, params, s))
    outs = [fn(jnp.float32(s)) for s in (0.1, 0.2, 0.4)]
    assert fn._cache_size() == 1
    batched = jax.vmap(lambda s: _train(model, params, s))(jnp.array([0.1, 0.2, 0.4]))
    for i, out in enumerate(outs):
        np.testing.assert_allclose(batched[i], out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "technique,bad,allowed",
    [
        ("dropout", 1.5, "[0, 1]"),
        ("dropconnect", -0.1, "[0, 1]"),
        ("gaussian_dropout", 1.0, "[0, 1)"),
        ("gaussian_noise", -0.5, "[0, inf)"),
        ("gaussian_noise", float("nan"), "[0, inf)"),
    ],
)
def test_concrete_bad_strength_names_the_range(technique, bad, allowed):
    model, params = _init(technique)
    with pytest.raises(ValueError, match=r"strength=.*allowed values are " + re.escape(allowed)):
        model.apply(params, X, deterministic=True, strength=bad)


def test_unknown_technique_and_array_strength_are_errors():
    with pytest.raises(ValueError, match="technique='l2'.*allowed values"):
        NoiseMLP(technique="l2").init(jax.random.key(0), X)
    model, params = _init("dropout")
    with pytest.raises(ValueError, match="strength must be a scalar"):
        model.apply(params, X, strength=jnp.array([0.1, 0.2]))


@pytest.mark.parametrize("technique", NOISY)
def test_training_without_a_key_is_a_clear_error(technique):
    model, params = _init(technique)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.apply(params, X, deterministic=False, strength=0.3)

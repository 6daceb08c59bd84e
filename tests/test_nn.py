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


# --- jaxreg.nn.Dropout as a drop-in for flax.linen.Dropout ---------------------------------------


def test_dropout_signature_and_attributes_match_flax():
    import dataclasses
    import inspect

    ours = list(inspect.signature(Dropout.__call__).parameters.values())
    theirs = list(inspect.signature(nn.Dropout.__call__).parameters.values())
    assert [p.name for p in ours[:4]] == [p.name for p in theirs]
    assert ours[4].name == "rate" and ours[4].kind is inspect.Parameter.KEYWORD_ONLY
    fields = {f.name for f in dataclasses.fields(nn.Dropout)} - {"parent", "name"}
    assert fields <= {f.name for f in dataclasses.fields(Dropout)}


@pytest.mark.parametrize("rate", [0.5, 0.75, 0.0, 1.0])
def test_dropout_identical_to_flax_for_the_same_call(rate):
    # 1 / (1 - rate) is exact for these rates, so x * (1 / keep) == x / keep bit for bit.
    key = jax.random.key(11)
    calls = [
        lambda L: L(rate).apply({}, X, False, rngs=_rngs(3)),  # positional deterministic
        lambda L: L(rate).apply({}, X, False, key),  # positional rng
        lambda L: L(rate, (0,)).apply({}, X, False, rngs=_rngs(4)),  # positional broadcast_dims
        lambda L: L(rate, deterministic=False).apply({}, X, rngs=_rngs(5)),
        lambda L: L(rate, rng_collection="noise").apply({}, X, False, rngs={"noise": key}),
        lambda L: L(rate).apply({}, X, True),
    ]
    for call in calls:
        np.testing.assert_array_equal(call(Dropout), call(nn.Dropout))


def test_dropout_matches_flax_within_one_rounding_for_other_rates():
    for rate in (0.1, 0.3, 0.9):
        ours = Dropout(rate).apply({}, X, False, rngs=_rngs(6))
        flax = nn.Dropout(rate).apply({}, X, False, rngs=_rngs(6))
        np.testing.assert_array_equal(np.asarray(ours) != 0, np.asarray(flax) != 0)
        np.testing.assert_allclose(ours, flax, rtol=np.finfo(np.float32).eps, atol=0)


def test_call_time_rate_is_keyword_only():
    with pytest.raises(TypeError):
        Dropout(0.5).apply({}, X, False, None, 0.3)


# --- noise-injection layers ---------------------------------------------------------------------

NOISE_LAYERS = [
    (jaxreg.nn.GaussianDropout, jaxreg.gaussian_dropout),
    (jaxreg.nn.AlphaDropout, jaxreg.alpha_dropout),
    (jaxreg.nn.FeatureAlphaDropout, jaxreg.feature_alpha_dropout),
    (jaxreg.nn.DropPath, jaxreg.drop_path),
    (jaxreg.nn.SpatialDropout, jaxreg.spatial_dropout),
    (jaxreg.nn.Dropout1d, jaxreg.dropout1d),
    (jaxreg.nn.Dropout2d, jaxreg.dropout2d),
    (jaxreg.nn.Dropout3d, jaxreg.dropout3d),
    (jaxreg.nn.GaussianNoise, jaxreg.gaussian_noise),
]
INPUT_FOR = {jaxreg.dropout1d: (4, 6, 3), jaxreg.dropout3d: (2, 3, 3, 2, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("layer,fn", NOISE_LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_noise_layer_matches_function_and_modes(layer, fn):
    x = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, INPUT_FOR.get(fn, (4, 5, 5, 3))))
    key = jax.random.key(2)
    y = layer(0.3).apply({}, x, False, rngs={"dropout": key})
    sub = layer(0.3).apply({}, method=lambda m: m.make_rng("dropout"), rngs={"dropout": key})
    np.testing.assert_array_equal(y, fn(x, 0.3, key=sub))
    np.testing.assert_array_equal(layer(0.3).apply({}, x, False, key), fn(x, 0.3, key=key))
    assert layer(0.3).apply({}, x, True) is x
    assert layer(0.3, deterministic=True).apply({}, x) is x
    assert layer(0.0).apply({}, x, False) is x  # strength 0: no key needed, none drawn
    with pytest.raises(ValueError, match=r"'dropout' collection"):
        layer(0.3).apply({}, x, False)
    with pytest.raises(ValueError, match="deterministic"):
        layer(0.3).apply({}, x, rngs={"dropout": key})
    with pytest.raises(ValueError, match=r"must be in \["):
        layer(-1.0).apply({}, x, True)  # a bad concrete value raises in evaluation mode too
    name = "stddev" if layer is jaxreg.nn.GaussianNoise else "rate"
    traces = []

    @jax.jit
    def f(r):
        traces.append(1)
        return layer(0.3).apply({}, x, False, rngs={"dropout": key}, **{name: r})

    outs = [f(jnp.float32(r)) for r in (0.2, 0.4)]
    assert len(traces) == 1 and bool(jnp.any(outs[0] != outs[1]))


def test_drop_connect_dense():
    layer = jaxreg.nn.DropConnectDense(5, rate=0.5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, 4)), jnp.float32)
    params = layer.init(jax.random.key(0), x, deterministic=True)
    assert set(params["params"]) == {"kernel", "bias"}
    dense = nn.Dense(5).apply(params, x)
    np.testing.assert_array_equal(layer.apply(params, x, True), dense)
    key = jax.random.key(3)
    y = layer.apply(params, x, False, key)
    kernel = params["params"]["kernel"]
    masked = jaxreg.drop_connect(kernel, 0.5, key=key)
    np.testing.assert_allclose(y, x @ masked + params["params"]["bias"], rtol=1e-6)
    # A new key is a new mask per step; the gradient reaches only the kept weights.
    assert bool(jnp.any(layer.apply(params, x, False, jax.random.key(4)) != y))
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, x, False, key)))(params)
    np.testing.assert_array_equal(grads["params"]["kernel"] == 0, masked == 0)
    with pytest.raises(ValueError, match="'dropout' collection"):
        layer.apply(params, x, False)

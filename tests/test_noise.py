"""Tests of jaxreg.noise, jaxreg.alpha and jaxreg.spatial: invariants, statistics, keys, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg._src.alpha import _SELU_ALPHA
from jaxreg.alpha import alpha_dropout, alpha_dropout_with_mask, feature_alpha_dropout
from jaxreg.noise import (
    drop_connect,
    drop_path,
    drop_path_with_mask,
    gaussian_dropout,
    gaussian_noise,
)
from jaxreg.spatial import (
    dropout1d,
    dropout2d,
    dropout3d,
    spatial_dropout,
    spatial_dropout_with_mask,
)

KEY = jax.random.key(0)
N = 200_000  # statistics: 5-sigma bounds below are computed for this sample size
X = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (8, 5, 4, 6)), jnp.float32)

# Every stochastic function of the family, as (name, fn, a valid strength).
FUNCTIONS = [
    ("drop_connect", drop_connect, 0.3),
    ("gaussian_dropout", gaussian_dropout, 0.3),
    ("gaussian_noise", gaussian_noise, 0.3),
    ("alpha_dropout", alpha_dropout, 0.3),
    ("feature_alpha_dropout", feature_alpha_dropout, 0.3),
    ("drop_path", drop_path, 0.3),
    ("spatial_dropout", spatial_dropout, 0.3),
    ("dropout2d", dropout2d, 0.3),
]
IDS = [f[0] for f in FUNCTIONS]


def _alpha_consts(p):
    a = 1.0 / math.sqrt((_SELU_ALPHA**2 * p + 1) * (1 - p))
    return a, _SELU_ALPHA * a * p, -_SELU_ALPHA * a + _SELU_ALPHA * a * p


def test_public_names_exported():
    for name in (
        "drop_connect gaussian_dropout gaussian_noise alpha_dropout alpha_dropout_with_mask "
        "feature_alpha_dropout drop_path drop_path_with_mask spatial_dropout "
        "spatial_dropout_with_mask dropout1d dropout2d dropout3d"
    ).split():
        assert getattr(jaxreg, name) is globals()[name], name
        assert name in jaxreg.__all__


@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_deterministic_is_identity_and_needs_no_key(name, fn, value):
    assert fn(X, value, deterministic=True) is X
    assert fn(X, 0.0) is X  # a concrete zero strength needs no key either


@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_missing_key_raises(name, fn, value):
    with pytest.raises(ValueError, match=rf"{name}: key is None in training mode"):
        fn(X, value)


@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_bad_concrete_value_raises(name, fn, value):
    if name == "gaussian_noise":
        bad, pattern = (-0.1, math.inf, math.nan), r"stddev must be in \[0, inf\) \(finite\), got"
    elif name == "gaussian_dropout":
        bad, pattern = (-0.1, 1.0, math.nan), r"rate must be in \[0, 1\), got"
    else:
        bad, pattern = (-0.1, 1.5, math.nan), r"rate must be in \[0, 1\], got"
    for b in bad:
        with pytest.raises(ValueError, match=pattern):
            fn(X, b, key=KEY)
        with pytest.raises(ValueError, match=pattern):
            fn(X, b, deterministic=True)


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_bad_traced_value_gives_nan(name, fn, value):
    bad = -0.5 if name == "gaussian_noise" else 1.5
    y = jax.jit(lambda r: fn(X, r, key=KEY))(jnp.float32(bad))
    assert bool(jnp.all(jnp.isnan(y)))
    assert bool(jnp.all(jnp.isfinite(jax.jit(lambda r: fn(X, r, key=KEY))(value))))


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_explicit_key_reproducible(name, fn, value):
    a, b, c = fn(X, value, key=KEY), fn(X, value, key=KEY), fn(X, value, key=jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert bool(jnp.any(a != c))


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_jit_equals_eager(name, fn, value):
    eager = fn(X, value, key=KEY)
    jitted = jax.jit(lambda x, k: fn(x, value, key=k))(X, KEY)
    if "alpha" in name or "gaussian" in name:
        # XLA fuses x * a + b into one FMA (one rounding; ATen and eager JAX round twice).
        eps = np.finfo(np.float32).eps
        np.testing.assert_allclose(jitted, eager, rtol=4 * eps, atol=4 * eps)
    else:
        np.testing.assert_array_equal(jitted, eager)


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,value", FUNCTIONS, ids=IDS)
def test_traced_value_no_recompile_and_vmap(name, fn, value):
    traces = []

    @jax.jit
    def f(r):
        traces.append(1)
        return fn(X, r, key=KEY)

    values = [0.1, 0.2, value]
    outs = [f(jnp.float32(v)) for v in values]
    assert bool(jnp.any(outs[0] != outs[1]))
    swept = jax.vmap(f)(jnp.asarray(values, jnp.float32))
    assert len(traces) == 1  # new rates and the vmap over rates reuse the one trace
    np.testing.assert_allclose(swept, jnp.stack(outs), rtol=1e-6, atol=1e-6)
    # A traced rate agrees with the concrete one (up to float32 vs double constants).
    np.testing.assert_allclose(outs[2], fn(X, value, key=KEY), rtol=1e-6, atol=1e-6)


def test_drop_connect_kept_fraction_values_and_gradient():
    rate = 0.3
    w = jnp.ones((N,))
    y = drop_connect(w, rate, key=KEY)
    scale = np.float32(1) / np.float32(1 - rate)
    assert bool(jnp.all((y == 0) | (y == scale)))
    kept = float(jnp.mean(y != 0))
    assert abs(kept - (1 - rate)) <= 5 * math.sqrt(rate * (1 - rate) / N)
    np.testing.assert_array_equal(y, jaxreg.dropout(w, rate, key=KEY))
    g = jax.grad(lambda w: jnp.sum(drop_connect(w, rate, key=KEY)))(w)
    np.testing.assert_array_equal(g, y)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_gaussian_dropout_mean_variance_contract_gradient(rate):
    y = gaussian_dropout(jnp.ones((N,)), rate, key=KEY)
    var = rate / (1 - rate)
    # Sample mean sd = sqrt(var / N); sample variance sd = var * sqrt(2 / N) (normal noise).
    assert abs(float(y.mean()) - 1) <= 5 * math.sqrt(var / N)
    assert abs(float(y.var()) - var) <= 5 * var * math.sqrt(2 / N)
    eps = jax.random.normal(KEY, X.shape, X.dtype)
    expected = X * (1 + jnp.float32(math.sqrt(var)) * eps)
    np.testing.assert_array_equal(gaussian_dropout(X, rate, key=KEY), expected)
    g = jax.grad(lambda x: jnp.sum(gaussian_dropout(x, rate, key=KEY)))(X)
    np.testing.assert_allclose(g, expected / X, rtol=1e-6)


def test_gaussian_noise_statistics_contract_gradient():
    s = 0.25
    y = gaussian_noise(jnp.zeros((N,)), s, key=KEY)
    assert abs(float(y.mean())) <= 5 * s / math.sqrt(N)
    assert abs(float(y.std()) - s) <= 5 * s / math.sqrt(2 * N)
    noise = jnp.float32(s) * jax.random.normal(KEY, X.shape, X.dtype)
    np.testing.assert_array_equal(gaussian_noise(X, s, key=KEY), X + noise)
    g = jax.grad(lambda x: jnp.sum(gaussian_noise(x, s, key=KEY)))(X)
    np.testing.assert_array_equal(g, jnp.ones_like(X))


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_alpha_dropout_keeps_mean_zero_variance_one(rate):
    x = jax.random.normal(jax.random.key(7), (N,))
    y = alpha_dropout(x, rate, key=KEY)
    a, b, dropped = _alpha_consts(rate)
    q = 1 - rate
    # Output is a mixture: N(b, a^2) with prob q, the constant `dropped` with prob p; its exact
    # fourth moment gives the sd of the sample variance (mean 0, variance 1 by construction).
    m4 = q * (3 * a**4 + 6 * a**2 * b**2 + b**4) + rate * dropped**4
    assert abs(float(y.mean())) <= 5 / math.sqrt(N)
    assert abs(float(y.var()) - 1) <= 5 * math.sqrt((m4 - 1) / N)
    keep = jax.random.bernoulli(KEY, q, (N,))
    np.testing.assert_allclose(y[~keep], np.float32(dropped), rtol=1e-6)
    np.testing.assert_allclose(y[keep], a * x[keep] + b, rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda x: jnp.sum(alpha_dropout(x, rate, key=KEY)))(x)
    np.testing.assert_array_equal(g, jnp.where(keep, jnp.float32(a), 0))


@pytest.mark.slow
def test_alpha_edge_rates_and_mask_checks():
    # rate 1 gives zeros like torch (x * 0), with a zero gradient, concrete or traced.
    np.testing.assert_array_equal(alpha_dropout(X, 1.0, key=KEY), jnp.zeros_like(X))
    traced = jax.jit(lambda r: alpha_dropout(X, r, key=KEY))(jnp.float32(1.0))
    np.testing.assert_array_equal(traced, jnp.zeros_like(X))
    g = jax.grad(lambda r: jnp.sum(alpha_dropout(X, r, key=KEY)))(jnp.float32(1.0))
    assert bool(jnp.isfinite(g))
    mask = jnp.ones(X.shape, bool)
    with pytest.raises(ValueError, match="keep_mask must be a bool array"):
        alpha_dropout_with_mask(X, mask.astype(jnp.float32), 0.5)
    with pytest.raises(ValueError, match="broadcastable"):
        alpha_dropout_with_mask(X, jnp.ones((3,), bool), 0.5)


def test_feature_alpha_dropout_per_channel_and_replay():
    rate = 0.4
    y = feature_alpha_dropout(X, rate, key=KEY)
    mask = jax.random.bernoulli(KEY, 1 - rate, (X.shape[0], 1, 1, X.shape[-1]))
    np.testing.assert_array_equal(y, alpha_dropout_with_mask(X, mask, rate))
    # X > 0, so kept values a * x + b > 0 never come near the negative dropped value.
    is_dropped = np.isclose(np.asarray(y), _alpha_consts(rate)[2], rtol=1e-6)
    # One draw per (example, channel): every spatial position agrees.
    assert bool(np.all(is_dropped.all(axis=(1, 2)) | (~is_dropped).all(axis=(1, 2))))
    assert 0 < is_dropped.mean() < 1
    with pytest.raises(ValueError, match="rank >= 2"):
        feature_alpha_dropout(jnp.ones(3), rate, key=KEY)


def test_drop_path_whole_examples_fraction_gradient():
    rate = 0.25
    x = jnp.ones((N // 10, 10))
    y = drop_path(x, rate, key=KEY)
    scale = np.float32(1) / np.float32(1 - rate)
    row_dropped = np.asarray((y == 0).all(axis=1))
    assert bool(np.all(row_dropped | np.asarray((y == scale).all(axis=1))))
    n = x.shape[0]
    assert abs(row_dropped.mean() - rate) <= 5 * math.sqrt(rate * (1 - rate) / n)
    keep = jax.random.bernoulli(KEY, 1 - rate, (X.shape[0],))
    np.testing.assert_array_equal(drop_path(X, rate, key=KEY), drop_path_with_mask(X, keep, rate))
    g = jax.grad(lambda x: jnp.sum(drop_path(x, rate, key=KEY)))(X)
    np.testing.assert_array_equal(g, drop_path(jnp.ones_like(X), rate, key=KEY))
    zeros, grad1 = jax.value_and_grad(lambda x: jnp.sum(drop_path(x, 1.0, key=KEY)))(X)
    assert float(zeros) == 0 and bool(jnp.all(grad1 == 0))
    with pytest.raises(ValueError, match="rank >= 1"):
        drop_path(jnp.float32(1), rate, key=KEY)
    with pytest.raises(ValueError, match=r"keep_mask must have shape \(N,\)"):
        drop_path_with_mask(X, jnp.ones((3,), bool), rate)


def test_spatial_dropout_channels_shared_over_space():
    rate = 0.5
    y = spatial_dropout(X, rate, key=KEY)
    zero = np.asarray(y == 0)
    assert bool(np.all(zero.all(axis=(1, 2)) | (~zero).all(axis=(1, 2))))
    keep = jax.random.bernoulli(KEY, 1 - rate, (X.shape[0], X.shape[-1]))
    np.testing.assert_array_equal(y, spatial_dropout_with_mask(X, keep, rate))
    np.testing.assert_array_equal(y, jaxreg.dropout_with_mask(X, keep[:, None, None, :], rate))
    # Rank 2 (N, C): no spatial axis, element-wise like torch's feature dropout.
    assert spatial_dropout(X[:, 0, 0, :], rate, key=KEY).shape == (8, 6)
    with pytest.raises(ValueError, match=r"keep_mask must be a bool array of shape \(N, C\)"):
        spatial_dropout_with_mask(X, keep[:, :3], rate)


@pytest.mark.parametrize(
    "fn,batched,unbatched,bad",
    [
        (dropout1d, (4, 7, 3), (7, 3), [(3,), (2, 2, 2, 2)]),
        (dropout2d, (4, 5, 5, 3), (5, 5, 3), [(4, 3), (1, 2, 2, 2, 3)]),
        (dropout3d, (2, 3, 3, 3, 3), (3, 3, 3, 3), [(3, 3, 3), (1, 1, 2, 2, 2, 3)]),
    ],
    ids=["1d", "2d", "3d"],
)
def test_dropout_nd_rank_checks_and_unbatched(fn, batched, unbatched, bad):
    for shape in (batched, unbatched):
        x = jnp.ones(shape)
        y = fn(x, 0.5, key=KEY)
        assert y.shape == shape
        # Every axis but the batch (if any) and the channel shares one draw.
        spatial = tuple(range(len(shape) - len(unbatched), len(shape) - 1))
        zero = np.asarray(y == 0)
        assert bool(np.all(zero.all(axis=spatial) | (~zero).all(axis=spatial)))
    np.testing.assert_array_equal(
        fn(jnp.ones(unbatched), 0.5, key=KEY),
        spatial_dropout(jnp.ones((1, *unbatched)), 0.5, key=KEY)[0],
    )
    for shape in bad:
        with pytest.raises(ValueError, match=rf"{fn.__name__} expects"):
            fn(jnp.ones(shape), 0.5, key=KEY)

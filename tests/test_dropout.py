"""Tests of jaxreg.dropout: invariants, statistics, edge rates, traced rates, errors, replay."""

import inspect
import math
import types

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import jaxreg
from jaxreg.dropout import (
    dropout,
    dropout_mask,
    dropout_with_mask,
    mc_dropout_predict,
    vanilla_dropout,
)

KEY = jax.random.key(0)


# Few distinct shapes: each new shape compiles the threefry kernels again, which dominates the
# run time of this file.
SHAPE = (40, 30)


def _no_zeros_np(shape=SHAPE, seed=0):
    # Inputs without zeros let a test read the mask back as `y != 0`.
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + 0.5, x - 0.5)


def _no_zeros(shape=SHAPE, seed=0, dtype=jnp.float32):
    return jnp.asarray(_no_zeros_np(shape, seed), dtype)


def test_public_names_exported():
    for name in ("dropout_mask", "dropout_with_mask", "vanilla_dropout"):
        assert getattr(jaxreg, name) is globals()[name]
    # jaxreg.dropout is the module (import jaxreg.dropout), callable as its dropout function.
    assert isinstance(jaxreg.dropout, types.ModuleType)
    assert jaxreg.dropout.dropout is dropout
    x, key = jnp.ones(8), jax.random.key(0)
    np.testing.assert_array_equal(jaxreg.dropout(x, 0.5, key=key), dropout(x, 0.5, key=key))
    assert inspect.signature(jaxreg.dropout) == inspect.signature(dropout)
    assert jaxreg.mc_dropout_predict is mc_dropout_predict
    assert jaxreg.nn.Dropout is not None and jaxreg.numpy_ref.NumpyDropout is not None


@pytest.mark.parametrize("rate", [0.5, 0.75, 0.875])
def test_invariant_zero_or_divided_by_keep(rate):
    # Dyadic keep probabilities: x * (1 / keep) == x / keep exactly, so the Equinox invariant
    # holds with ==.
    x = _no_zeros()
    keep = 1.0 - rate
    y = dropout(x, rate, key=KEY)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert bool(jnp.all((y == 0) | (y == x / keep)))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.7])
def test_invariant_torch_scale(rate):
    x = _no_zeros()
    scale = np.float32(1) / np.float32(1.0 - rate)
    y = np.asarray(dropout(x, rate, key=KEY))
    kept = y != 0
    np.testing.assert_array_equal(y[kept], np.asarray(x)[kept] * scale)
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / (1.0 - rate), rtol=2e-7)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 0.9, 0.99])
def test_kept_fraction_within_5_sigma(rate):
    n = 200_000
    y = dropout(jnp.ones(n), rate, key=jax.random.key(7))
    keep = 1.0 - rate
    frac = float(jnp.mean(y != 0))
    assert abs(frac - keep) <= 5 * math.sqrt(keep * (1 - keep) / n)


def test_unbiased_in_expectation():
    n = 200_000
    y = dropout(jnp.ones(n), 0.3, key=jax.random.key(3))
    # Var of one output is rate / keep for x = 1.
    assert abs(float(y.mean()) - 1.0) <= 5 * math.sqrt(0.3 / 0.7 / n)


def test_rate_zero_returns_x_exactly():
    x = jnp.array([1.5, -0.0, jnp.inf, -3.0])
    assert dropout(x, 0.0, key=KEY) is x
    # No key is needed when nothing is dropped, as in flax and Equinox.
    assert dropout(x, 0.0) is x
    traced = jax.jit(lambda x, r: dropout(x, r, key=KEY))(x, 0.0)
    np.testing.assert_array_equal(np.asarray(traced), np.asarray(x))
    assert np.signbit(np.asarray(traced)[1])


@pytest.mark.parametrize("jit", [False, True])
def test_rate_one_zeros_and_zero_finite_gradient(jit):
    x = _no_zeros()

    def f(x, r):
        return jnp.sum(dropout(x, r, key=KEY) * 3.0)

    if jit:
        f = jax.jit(f)
    y = dropout(x, 1.0, key=KEY)
    np.testing.assert_array_equal(np.asarray(y), np.zeros(SHAPE, np.float32))
    gx, gr = jax.grad(f, argnums=(0, 1))(x, jnp.float32(1.0))
    assert bool(jnp.all(gx == 0)) and bool(jnp.isfinite(gr))
    gx = jax.grad(lambda x: f(x, 1.0))(x)
    assert bool(jnp.all(gx == 0))


def test_gradient_is_the_scaled_mask():
    x = _no_zeros()
    y, vjp = jax.vjp(lambda x: dropout(x, 0.3, key=KEY), x)
    (gx,) = vjp(jnp.ones_like(x))
    mask = y != 0
    expected = np.where(mask, np.float32(1) / np.float32(0.7), 0).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(gx), expected)


def test_deterministic_returns_x():
    x = _no_zeros()
    assert dropout(x, 0.5, deterministic=True) is x
    assert dropout(x, 0.5, key=KEY, deterministic=True) is x
    np.testing.assert_array_equal(vanilla_dropout(x, 0.25, deterministic=True), x * 0.25)


def test_broadcast_dims_all_or_nothing():
    x = _no_zeros((4, 30, 5))
    y = dropout(x, 0.5, key=KEY, broadcast_dims=(1,))
    kept = np.asarray(y != 0)
    # Along axis 1 every slice is entirely kept or entirely dropped.
    assert np.all(kept.all(axis=1) | (~kept).all(axis=1))
    assert 0 < kept.mean() < 1
    m = dropout_mask(KEY, 0.5, (4, 5, 6), broadcast_dims=(-1, 0))
    assert m.dtype == jnp.bool_ and m.shape == (4, 5, 6)
    assert bool(jnp.all(m == m[:1, :, :1]))


def test_keys_control_the_mask():
    x = _no_zeros()
    a = dropout(x, 0.5, key=jax.random.key(1))
    b = dropout(x, 0.5, key=jax.random.key(1))
    c = dropout(x, 0.5, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert bool(jnp.any((a != 0) != (c != 0)))
    legacy = dropout(x, 0.5, key=jax.random.PRNGKey(1))
    assert legacy.shape == x.shape


def test_dropout_equals_mask_then_replay():
    x = _no_zeros()
    key = jax.random.key(11)
    mask = dropout_mask(key, 0.4, x.shape)
    np.testing.assert_array_equal(dropout(x, 0.4, key=key), dropout_with_mask(x, mask, 0.4))


def test_jit_equals_no_jit():
    x = _no_zeros()
    eager = dropout(x, 0.3, key=KEY, broadcast_dims=(0,))
    jitted = jax.jit(lambda x, k: dropout(x, 0.3, key=k, broadcast_dims=(0,)))(x, KEY)
    np.testing.assert_array_equal(eager, jitted)
    traced_a = jax.jit(lambda x, k, r: dropout(x, r, key=k))(x, KEY, 0.5)
    np.testing.assert_array_equal(traced_a, dropout(x, 0.5, key=KEY))


def test_traced_rate_does_not_recompile():
    traces = []

    @jax.jit
    def step(x, key, rate):
        traces.append(1)
        return dropout(x, rate, key=key)

    x = _no_zeros()
    fractions = []
    for rate in (0.1, 0.5, 0.9, 0.0, 1.0):
        y = step(x, KEY, jnp.float32(rate))
        fractions.append(float(jnp.mean(y != 0)))
    assert len(traces) == 1
    assert fractions[3] == 1.0 and fractions[4] == 0.0
    assert fractions[0] > fractions[1] > fractions[2]


def test_vmap_over_rates_no_recompile():
    traces = []

    @jax.jit
    def sweep(x, key, rates):
        traces.append(1)
        return jax.vmap(lambda r: dropout(x, r, key=key))(rates)

    x = _no_zeros((20_000,))
    rates = jnp.array([0.0, 0.2, 0.5, 0.8, 1.0])
    ys = sweep(x, KEY, rates)
    sweep(x, KEY, rates[::-1])
    assert len(traces) == 1
    single = jax.jit(lambda x, k, r: dropout(x, r, key=k))
    for i, r in enumerate(rates):
        np.testing.assert_array_equal(ys[i], single(x, KEY, r))
        keep = 1.0 - float(r)
        frac = float(jnp.mean(ys[i] != 0))
        assert abs(frac - keep) <= 5 * math.sqrt(keep * (1 - keep) / x.size) + 1e-12


def test_float64_scoped():
    with jax.enable_x64(True):
        x = _no_zeros(SHAPE, dtype=jnp.float64)
        y = dropout(x, 0.3, key=KEY)
        assert y.dtype == jnp.float64
        kept = np.asarray(y != 0)
        np.testing.assert_array_equal(np.asarray(y)[kept], np.asarray(x)[kept] * (1 / 0.7))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_reduced_precision_keeps_dtype(dtype):
    x = _no_zeros(SHAPE, dtype=dtype)
    y = dropout(x, 0.3, key=KEY)
    assert y.dtype == dtype
    kept = y != 0
    assert bool(jnp.all(jnp.where(kept, y, 0) == jnp.where(kept, x * dtype(1 / 0.7), 0)))


@jax.jit
def _sum_grad(x, key, rate):
    return jax.grad(lambda x: jnp.sum(dropout(x, rate, key=key)))(x)


# A few fixed shapes: each new shape costs a compilation, the values are what varies.
SHAPES = [(7,), SHAPE]


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    rate=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_invariant_and_grad(shape, rate, seed):
    x = _no_zeros(shape, seed=SHAPES.index(shape))
    key = jax.random.key(seed)
    y = dropout(x, rate, key=key)
    assert y.shape == x.shape and y.dtype == x.dtype
    keep = np.float32(1.0 - rate)
    scale = np.float32(1) / keep if keep > 0 else np.float32(0)
    yn, xn = np.asarray(y), np.asarray(x)
    assert np.all((yn == 0) | (yn == xn * scale))
    assert np.all(np.isfinite(yn))
    # A traced float32 rate computes 1 - rate in float32, not in double as a Python float does:
    # the documented last-bit difference from torch's double-precision `1 - p`.
    keep32 = np.float32(1) - np.float32(rate)
    scale32 = np.float32(1) / keep32 if keep32 > 0 else np.float32(0)
    g = _sum_grad(x, key, rate)
    np.testing.assert_array_equal(np.asarray(g), np.where(yn != 0, scale32, 0).astype(np.float32))


@settings(derandomize=True, max_examples=30, deadline=None)
# Tiny keep_prob would make x * keep_prob subnormal, which XLA on CPU flushes to zero.
@given(keep_prob=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), seed=st.integers(0, 2**31 - 1))
def test_property_vanilla(keep_prob, seed):
    x = _no_zeros()
    y = np.asarray(vanilla_dropout(x, keep_prob, key=jax.random.key(seed)))
    xn = np.asarray(x)
    assert np.all((y == 0) | (y == xn))
    np.testing.assert_array_equal(
        vanilla_dropout(x, keep_prob, deterministic=True), xn * np.float32(keep_prob)
    )


def test_vanilla_statistics_and_traced_keep_prob():
    n = 200_000
    y = vanilla_dropout(jnp.ones(n), 0.3, key=jax.random.key(5))
    assert abs(float(y.mean()) - 0.3) <= 5 * math.sqrt(0.3 * 0.7 / n)
    f = jax.jit(lambda x, k, p: vanilla_dropout(x, p, key=k))
    np.testing.assert_array_equal(f(jnp.ones(n), jax.random.key(5), 0.3), y)
    g = jax.grad(lambda x: jnp.sum(vanilla_dropout(x, 0.3, key=jax.random.key(5))))(jnp.ones(n))
    np.testing.assert_array_equal(g, y)


def test_d2l_formula_is_true_division():
    x = _no_zeros()
    mask = dropout_mask(KEY, 0.3, x.shape)
    y = np.asarray(dropout_with_mask(x, mask, 0.3, formula="d2l"))
    xn, m = np.asarray(x), np.asarray(mask)
    np.testing.assert_array_equal(y, np.where(m, xn / np.float32(0.7), 0).astype(np.float32))
    ones = dropout_with_mask(x, jnp.zeros(x.shape, bool), 1.0, formula="d2l")
    assert bool(jnp.all(ones == 0))


def test_mc_dropout_predict_matches_a_loop():
    x = _no_zeros()

    def apply_fn(x, key):
        return {"y": dropout(x, 0.5, key=key), "s": jnp.sum(dropout(x, 0.2, key=key))}

    key = jax.random.key(9)
    mean, var = mc_dropout_predict(apply_fn, x, key=key, num_samples=6)
    one_pass = jax.jit(apply_fn)
    samples = [one_pass(x, k) for k in jax.random.split(key, 6)]
    stacked = np.stack([np.asarray(s["y"]) for s in samples])
    np.testing.assert_allclose(mean["y"], stacked.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var["y"], stacked.var(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean["s"], np.mean([float(s["s"]) for s in samples]), rtol=1e-5)
    m1, v1 = mc_dropout_predict(apply_fn, x, key=key, num_samples=1)
    assert bool(jnp.all(v1["y"] == 0))


def test_mc_dropout_predict_is_unbiased():
    x = jnp.full((3,), 2.0)
    mean, var = mc_dropout_predict(
        lambda x, k: dropout(x, 0.5, key=k), x, key=jax.random.key(1), num_samples=4000
    )
    # One pass is 0 or 4 with equal odds: mean 2, variance 4.
    np.testing.assert_allclose(mean, 2.0, atol=5 * 2 / math.sqrt(4000))
    np.testing.assert_allclose(var, 4.0, rtol=0.1)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), float("inf")])
@pytest.mark.parametrize(
    "call",
    [
        lambda r: dropout(jnp.ones(3), r, key=KEY),
        lambda r: dropout(jnp.ones(3), r, deterministic=True),
        lambda r: dropout_mask(KEY, r, (3,)),
        lambda r: dropout_with_mask(jnp.ones(3), jnp.ones(3, bool), r),
        lambda r: dropout(jnp.ones(3), jnp.float32(r), key=KEY),
    ],
)
def test_bad_rate_raises_naming_the_value(call, rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got (-0\.1|1\.5|nan|inf)"):
        call(rate)


@jax.jit
def _all_paths(prob):
    x, mask = _no_zeros(), jnp.ones(SHAPE, bool)
    return jnp.stack(
        [
            dropout(x, prob, key=KEY),
            dropout_with_mask(x, mask, prob),
            dropout_with_mask(x, mask, prob, formula="d2l"),
            vanilla_dropout(x, prob, key=KEY),
            vanilla_dropout(x, prob, deterministic=True),
        ]
    )


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_traced_probability_gives_nan_not_silent_zeros(bad):
    assert bool(jnp.all(jnp.isnan(_all_paths(bad))))
    # A valid traced probability is untouched by the guard.
    assert bool(jnp.all(jnp.isfinite(_all_paths(0.5))))


@pytest.mark.parametrize("keep_prob", [-0.1, 1.5, float("nan")])
def test_bad_keep_prob_raises(keep_prob):
    with pytest.raises(ValueError, match="keep_prob must be in"):
        vanilla_dropout(jnp.ones(3), keep_prob, key=KEY)


def test_other_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="key is None"):
        dropout(jnp.ones(3), 0.5)
    with pytest.raises(ValueError, match="key is None"):
        vanilla_dropout(jnp.ones(3), 0.5)
    with pytest.raises(ValueError, match="scalar probability"):
        dropout(jnp.ones(3), jnp.array([0.1, 0.2]), key=KEY)
    with pytest.raises(ValueError, match="keep_mask must be a bool"):
        dropout_with_mask(jnp.ones(3), jnp.ones(3), 0.5)
    with pytest.raises(ValueError, match="floating-point"):
        dropout(jnp.ones(3, jnp.int32), 0.5, key=KEY)
    with pytest.raises(ValueError, match="broadcast_dims"):
        dropout(jnp.ones((2, 3)), 0.5, key=KEY, broadcast_dims=(2,))
    with pytest.raises(ValueError, match="exactly one of rate and keep_prob"):
        dropout_with_mask(jnp.ones(3), jnp.ones(3, bool))
    with pytest.raises(ValueError, match="exactly one of rate and keep_prob"):
        dropout_with_mask(jnp.ones(3), jnp.ones(3, bool), 0.5, keep_prob=0.5)
    with pytest.raises(ValueError, match=r"keep_prob must be in \[0, 1\], got 1.5"):
        dropout_with_mask(jnp.ones(3), jnp.ones(3, bool), keep_prob=1.5)
    with pytest.raises(ValueError, match="does not broadcast"):
        dropout_with_mask(jnp.ones(3), jnp.ones((2, 3), bool), 0.5)
    with pytest.raises(ValueError, match="formula"):
        dropout_with_mask(jnp.ones(3), jnp.ones(3, bool), 0.5, formula="keras")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            mc_dropout_predict(lambda x, k: x, jnp.ones(2), key=KEY, num_samples=bad)
    with pytest.raises(ValueError, match="key is None"):
        mc_dropout_predict(lambda x, k: x, jnp.ones(2), key=None, num_samples=2)


# --- PyTorch replay: the mask read back from torch's output gives bit-identical numbers ---

RATES = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.123456789, 0.9, 1.0]


def _torch_replay(torch, x_np, torch_dtype, rate, seed):
    torch.manual_seed(seed)
    xt = torch.tensor(x_np, dtype=torch_dtype, requires_grad=True)
    yt = torch.nn.functional.dropout(xt, p=rate, training=True)
    g_out = torch.linspace(-2, 3, yt.numel(), dtype=torch_dtype).reshape(yt.shape)
    yt.backward(g_out)
    return yt.detach(), xt.grad, g_out


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_replay_bit_identical(rate, dtype):
    torch = pytest.importorskip("torch")
    torch_dtype = getattr(torch, dtype)
    x_np = _no_zeros_np(SHAPE, seed=4)
    yt, gt, g_out = _torch_replay(torch, x_np, torch_dtype, rate, seed=123)
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(x_np, dtype)
        mask = jnp.asarray(yt.numpy() != 0)
        y, vjp = jax.vjp(lambda x: dropout_with_mask(x, mask, rate), x)
        (g,) = vjp(jnp.asarray(g_out.numpy()))
        assert y.dtype == jnp.dtype(dtype)
        assert np.array_equal(np.asarray(y), yt.numpy()), f"{dtype} rate={rate}: output differs"
        assert np.array_equal(np.asarray(g), gt.numpy()), f"{dtype} rate={rate}: grad differs"


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.123456789])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_torch_replay_reduced_precision(rate, dtype):
    torch = pytest.importorskip("torch")
    x_np = _no_zeros_np(SHAPE, seed=5).astype(np.float32)
    torch.manual_seed(1)
    xt = torch.tensor(x_np).to(getattr(torch, dtype))
    yt = torch.nn.functional.dropout(xt, p=rate, training=True)
    x = jnp.asarray(xt.float().numpy()).astype(dtype)
    y = dropout_with_mask(x, jnp.asarray((yt != 0).numpy()), rate)
    assert np.array_equal(np.asarray(y.astype(jnp.float32)), yt.float().numpy())


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.123456789, 1.0, 0.0])
def test_torch_d2l_dropout_layer_replay(rate):
    torch = pytest.importorskip("torch")

    def dropout_layer(X, dropout):  # seeds 003/004, verbatim
        assert 0 <= dropout <= 1
        if dropout == 1:
            return torch.zeros_like(X)
        if dropout == 0:
            return X
        mask = (torch.rand(X.shape) > dropout).float()
        return mask * X / (1.0 - dropout)

    x_np = _no_zeros_np(SHAPE, seed=6).astype(np.float32)
    torch.manual_seed(0)
    xt = torch.tensor(x_np, requires_grad=True)
    yt = dropout_layer(xt, rate)
    mask = jnp.asarray(yt.detach().numpy() != 0)
    y, vjp = jax.vjp(lambda x: dropout_with_mask(x, mask, rate, formula="d2l"), jnp.asarray(x_np))
    (g,) = vjp(jnp.full(x_np.shape, 1.5, jnp.float32))
    assert np.array_equal(np.asarray(y), yt.detach().numpy())
    if rate == 1:
        # d2l returns a fresh zeros_like(X): torch has no graph, the gradient is zero.
        assert not yt.requires_grad and bool(jnp.all(g == 0))
        return
    yt.backward(torch.ones_like(yt) * 1.5)
    assert np.array_equal(np.asarray(g), xt.grad.numpy())


# --- The mask generators: "bernoulli" (default, flax's mask) and "bits16" (16 bits / element) ---

GENERATORS = ["bernoulli", "bits16"]
# A threefry key takes bits16's own Threefry-2x32 path, an rbg key the jax.random.bits one.
KEY_IMPLS = ["threefry2x32", "rbg"]


def test_default_generator_is_flax_bernoulli():
    # The coordinator changes the default only after checking metrics bit for bit; until then
    # the default mask stays jax.random.bernoulli's, which flax.linen.Dropout draws too.
    key = jax.random.key(21)
    for rate in (0.2, 0.5):
        expected = jax.random.bernoulli(key, 1.0 - rate, SHAPE)
        np.testing.assert_array_equal(dropout_mask(key, rate, SHAPE), expected)
        np.testing.assert_array_equal(
            dropout_mask(key, rate, SHAPE, generator="bernoulli"), expected
        )


@pytest.mark.slow
@pytest.mark.parametrize("impl", KEY_IMPLS)
@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 0.9, 0.99, 1 - 2**-16])
def test_bits16_kept_fraction_within_5_sigma_of_exact_probability(rate, impl):
    n = 1 << 22
    # 64 draws of 65536 elements, each from its own key, as a training run's steps are.
    keys = jax.random.split(jax.random.key(7, impl=impl), 64)
    masks = jax.jit(jax.vmap(lambda k: dropout_mask(k, rate, (n // 64,), generator="bits16")))(keys)
    # The documented exact keep probability: round(keep * 65536) / 65536.
    keep = round((1.0 - rate) * 65536) / 65536
    assert abs(keep - (1.0 - rate)) <= 2**-17
    kept = int(masks.sum())
    assert abs(kept - n * keep) <= 5 * math.sqrt(n * keep * (1 - keep)), (rate, kept / n)


@pytest.mark.parametrize("impl", KEY_IMPLS)
def test_bits16_values_cover_all_16_bit_levels_uniformly(impl):
    # Every 16-bit level must be reachable with equal odds, else the keep probability is not
    # K / 65536: rates one level apart (rate = 1 - k / 65536) keep fractions exactly k / 65536.
    from jaxreg._src.keep_masks import _uniform16

    n = 1 << 22
    values = np.asarray(_uniform16(jax.random.key(3, impl=impl), n))
    assert values.min() == 0 and values.max() == 65535
    counts = np.bincount(values, minlength=65536)
    expected = n / 65536
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # chi-square with 65535 degrees of freedom: mean 65535, sd sqrt(2 * 65535) = 362.
    assert abs(chi2 - 65535) <= 5 * 362, chi2


@pytest.mark.parametrize("rate", [0.0, 1.0, 0.5, 0.25, 1 / 3, 0.1, 0.123456789, 2**-17, 3 * 2**-17])
def test_bits16_threshold_concrete_equals_traced(rate):
    # The same rounding (half to even) for a Python float and a traced scalar, so a mask does
    # not change when a rate becomes a traced sweep axis.
    from jaxreg._src.keep_masks import _threshold16

    keep = 1.0 - rate
    concrete = _threshold16(keep)
    with jax.enable_x64(True):
        traced = int(jax.jit(_threshold16)(jnp.float64(keep)))
    assert concrete == traced
    assert abs(concrete / 65536 - keep) <= 2**-17
    if rate in (0.0, 1.0, 0.5, 0.25):
        assert concrete / 65536 == keep


@pytest.mark.parametrize("impl", KEY_IMPLS)
@pytest.mark.parametrize("rate", [0.5, 0.75, 0.875, 0.3])
def test_bits16_invariant_and_replay(rate, impl):
    x = _no_zeros()
    key = jax.random.key(5, impl=impl)
    y = np.asarray(dropout(x, rate, key=key, generator="bits16"))
    scale = np.float32(1) / np.float32(1.0 - rate)
    xn = np.asarray(x)
    assert np.all((y == 0) | (y == xn * scale))
    if rate != 0.3:
        assert np.all((y == 0) | (y == xn / np.float32(1.0 - rate)))
    mask = dropout_mask(key, rate, x.shape, generator="bits16")
    np.testing.assert_array_equal(y, dropout_with_mask(x, mask, rate))
    np.testing.assert_array_equal(mask, y != 0)


@pytest.mark.parametrize("generator", GENERATORS)
def test_generators_rate_zero_and_one(generator):
    x = _no_zeros()
    assert dropout(x, 0.0, key=KEY, generator=generator) is x
    step = jax.jit(lambda x, r: dropout(x, r, key=KEY, generator=generator))
    np.testing.assert_array_equal(step(x, jnp.float32(0.0)), x)
    np.testing.assert_array_equal(step(x, jnp.float32(1.0)), np.zeros(SHAPE, np.float32))
    gx = jax.grad(lambda x: jnp.sum(dropout(x, 1.0, key=KEY, generator=generator)))(x)
    assert bool(jnp.all(gx == 0))
    assert bool(dropout_mask(KEY, 0.0, SHAPE, generator=generator).all())
    assert not bool(dropout_mask(KEY, 1.0, SHAPE, generator=generator).any())


def test_bits16_traced_rate_does_not_recompile_and_matches_concrete():
    traces = []

    @jax.jit
    def step(x, key, rate):
        traces.append(1)
        return dropout(x, rate, key=key, generator="bits16")

    x = _no_zeros((20_000,))
    fractions = []
    for rate in (0.1, 0.5, 0.9, 0.0, 1.0, 0.3):
        y = step(x, KEY, jnp.float32(rate))
        fractions.append(float(jnp.mean(y != 0)))
    assert len(traces) == 1
    assert fractions[3] == 1.0 and fractions[4] == 0.0
    assert fractions[0] > fractions[1] > fractions[2]
    # Dyadic rates: the float32 keep equals the double one, so traced and concrete masks agree.
    for rate in (0.5, 0.25):
        np.testing.assert_array_equal(
            step(x, KEY, jnp.float32(rate)), dropout(x, rate, key=KEY, generator="bits16")
        )


def test_bits16_vmap_over_rates_and_keys_equals_loop():
    traces = []

    @jax.jit
    def sweep(x, keys, rates):
        traces.append(1)
        return jax.vmap(lambda k, r: dropout(x, r, key=k, generator="bits16"))(keys, rates)

    x = _no_zeros((4099,))  # odd size: the last 32-bit word is used for one element only
    keys = jax.random.split(jax.random.key(2), 4)
    rates = jnp.array([0.0, 0.2, 0.5, 1.0])
    ys = sweep(x, keys, rates)
    sweep(x, keys, rates[::-1])
    assert len(traces) == 1
    single = jax.jit(lambda x, k, r: dropout(x, r, key=k, generator="bits16"))
    for i in range(4):
        np.testing.assert_array_equal(ys[i], single(x, keys[i], rates[i]))


def test_bits16_reproducible_and_key_dependent():
    a = dropout_mask(jax.random.key(1), 0.5, SHAPE, generator="bits16")
    b = jax.jit(lambda k: dropout_mask(k, 0.5, SHAPE, generator="bits16"))(jax.random.key(1))
    c = dropout_mask(jax.random.key(2), 0.5, SHAPE, generator="bits16")
    np.testing.assert_array_equal(a, b)
    assert bool(jnp.any(a != c))
    # A legacy uint32[2] key is the typed key of the default implementation.
    legacy = dropout_mask(jax.random.PRNGKey(1), 0.5, SHAPE, generator="bits16")
    np.testing.assert_array_equal(a, legacy)
    # A different stream from "bernoulli": the two generators' masks for one key differ.
    assert bool(jnp.any(a != dropout_mask(jax.random.key(1), 0.5, SHAPE)))


def test_bits16_broadcast_dims():
    m = dropout_mask(KEY, 0.5, (4, 30, 5), broadcast_dims=(1,), generator="bits16")
    assert m.shape == (4, 30, 5) and bool(jnp.all(m == m[:, :1, :]))
    assert 0 < float(m.mean()) < 1


@pytest.mark.parametrize("bad", ["threefry", "BITS16", None, 16])
def test_bad_generator_raises_naming_it(bad):
    match = r"generator must be one of \('bernoulli', 'bits16'\)"
    with pytest.raises(ValueError, match=match):
        dropout(jnp.ones(3), 0.5, key=KEY, generator=bad)
    with pytest.raises(ValueError, match=match):
        dropout(jnp.ones(3), 0.5, deterministic=True, generator=bad)
    with pytest.raises(ValueError, match=match):
        dropout_mask(KEY, 0.5, (3,), generator=bad)


@pytest.mark.slow
def test_linen_dropout_and_mlp_take_the_generator():
    from jaxreg.models import DropoutMLP
    from jaxreg.nn import Dropout

    x = _no_zeros()
    key = jax.random.key(4)
    layer = Dropout(rate=0.3, generator="bits16")
    np.testing.assert_array_equal(
        layer.apply({}, x, False, key), dropout(x, 0.3, key=key, generator="bits16")
    )
    np.testing.assert_array_equal(
        Dropout(rate=0.3).apply({}, x, False, key), dropout(x, 0.3, key=key)
    )
    with pytest.raises(ValueError, match="generator must be one of"):
        Dropout(rate=0.3, generator="fast").apply({}, x, True)

    inputs = jax.random.uniform(jax.random.key(1), (64, 784))
    params = DropoutMLP().init(jax.random.key(0), inputs)
    rngs = {"dropout": jax.random.key(2)}
    default = DropoutMLP().apply(params, inputs, deterministic=False, rngs=rngs)
    fast_mlp = DropoutMLP(dropout_generator="bits16")
    fast = fast_mlp.apply(params, inputs, deterministic=False, rngs=rngs)
    assert bool(jnp.any(fast != default))
    # The generator changes the masks only: evaluation is the same function.
    np.testing.assert_array_equal(
        fast_mlp.apply(params, inputs, deterministic=True),
        DropoutMLP().apply(params, inputs, deterministic=True),
    )
    with pytest.raises(ValueError, match="generator must be one of"):
        DropoutMLP(dropout_generator="fast").apply(params, inputs, deterministic=False, rngs=rngs)


@pytest.mark.slow
def test_train_config_dropout_generator_reaches_the_engine():
    from jaxreg.lab.config import TrainConfig
    from jaxreg.lab.engine import make_train
    from jaxreg.models import DropoutMLP, WeightDecayMLP

    x = jax.random.uniform(jax.random.key(0), (64, 784))
    y = jnp.arange(64) % 10
    hp = {"lr": 0.5, "dropout1": 0.2, "dropout2": 0.5}

    def one_step(**kw):
        cfg = TrainConfig(model=DropoutMLP(), batch_size=64, epochs=1, **kw)
        train = make_train(cfg, (x, y))
        state = train.init(jax.random.key(1), hp)
        return cfg, train.step(state, (x, y), jax.random.key(2), hp)[0].params

    cfg, fast = one_step(dropout_generator="bits16")
    assert cfg.model.dropout_generator == "bits16"
    _, default = one_step()
    _, explicit = one_step(dropout_generator="bernoulli")
    assert TrainConfig(model=DropoutMLP()).model.dropout_generator == "bernoulli"
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), default, explicit)
    assert all(jax.tree.leaves(same))
    # The masks differ, so the first update does.
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), default, fast)
    assert not all(jax.tree.leaves(same))
    with pytest.raises(ValueError, match="generator must be one of"):
        TrainConfig(model=DropoutMLP(), dropout_generator="fast")
    with pytest.raises(ValueError, match="WeightDecayMLP has no dropout_generator"):
        TrainConfig(model=WeightDecayMLP(), dropout_generator="bits16")

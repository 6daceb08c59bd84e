"""Statistical tests of jaxreg.init: the torch-default distributions, bounds and variances.

KS tests use a significance level of 1e-4 with fixed keys, so they are deterministic; a wrong
bound (e.g. sqrt(6/fan_in) of plain He-uniform, or Flax's lecun_normal) fails them by far.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxreg import init

ALPHA = 1e-4


def _ks_uniform(samples, bound):
    return stats.kstest(
        np.asarray(samples, np.float64).ravel(), "uniform", args=(-bound, 2 * bound)
    )


@pytest.mark.parametrize(
    "shape, fan_in",
    [((100, 300), 100), ((3, 3, 16, 64), 144), ((5, 5, 3, 20), 75), ((1, 500), 1)],
)
def test_kaiming_uniform_a_sqrt5_is_uniform_one_over_sqrt_fan_in(shape, fan_in):
    w = init.torch_kernel_init(jax.random.key(0), shape)
    bound = 1 / math.sqrt(fan_in)
    assert w.shape == shape and w.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(w))) <= bound
    assert _ks_uniform(w, bound).pvalue > ALPHA
    # A plain He-uniform bound (sqrt(6 / fan_in)) is ~2.4x wider: the KS test must reject it.
    assert _ks_uniform(w, math.sqrt(6 / fan_in)).pvalue < ALPHA


def test_dense_bias_is_uniform_over_fan_in_of_the_input():
    fan_in = 9
    params = init.Dense(20000).init(jax.random.key(1), jnp.ones((1, fan_in)))["params"]
    bias = params["bias"]
    assert _ks_uniform(bias, 1 / 3).pvalue > ALPHA
    # Variance of U(-b, b) is b^2 / 3; n = 20000 gives a relative standard error of ~1.1%.
    assert float(jnp.var(bias)) == pytest.approx((1 / 3) ** 2 / 3, rel=0.05)


def test_conv_bias_fan_in_includes_receptive_field():
    params = init.Conv(8000, (3, 3)).init(jax.random.key(2), jnp.ones((1, 3, 3, 4)))["params"]
    bound = 1 / math.sqrt(4 * 9)
    assert params["kernel"].shape == (3, 3, 4, 8000)
    assert _ks_uniform(params["bias"], bound).pvalue > ALPHA
    assert _ks_uniform(params["kernel"], bound).pvalue > ALPHA


def test_matches_torch_linear_and_conv_moments():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(50, 4000)
    conv = torch.nn.Conv2d(6, 2000, 3)
    ours_lin = init.Dense(4000).init(jax.random.key(3), jnp.ones((1, 50)))["params"]
    ours_conv = init.Conv(2000, (3, 3)).init(jax.random.key(4), jnp.ones((1, 3, 3, 6)))["params"]
    pairs = [
        (lin.weight, ours_lin["kernel"]),
        (lin.bias, ours_lin["bias"]),
        (conv.weight, ours_conv["kernel"]),
        (conv.bias, ours_conv["bias"]),
    ]
    for theirs, ours in pairs:
        theirs = theirs.detach().numpy().ravel()
        ours = np.asarray(ours).ravel()
        # Same distribution: two-sample KS, and equal support (max |w| within 1% of each other).
        assert stats.ks_2samp(theirs, ours).pvalue > ALPHA
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.01)


def test_kaiming_normal_fan_out_relu_variance():
    shape = (3, 3, 32, 512)
    w = np.asarray(init.kaiming_normal("fan_out", "relu")(jax.random.key(5), shape))
    std = math.sqrt(2 / (512 * 9))
    assert stats.kstest(w.ravel() / std, "norm").pvalue > ALPHA
    # Untruncated, unlike Flax's "normal" variance scaling: values beyond 2 std must occur.
    assert np.abs(w).max() > 3 * std


def test_kaiming_normal_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = torch.empty(256, 64, 3, 3)
    torch.nn.init.kaiming_normal_(theirs, mode="fan_out", nonlinearity="relu")
    ours = init.kaiming_normal()(jax.random.key(6), (3, 3, 64, 256))
    assert stats.ks_2samp(theirs.numpy().ravel(), np.asarray(ours).ravel()).pvalue > ALPHA


def test_normal_std_and_float64():
    with jax.enable_x64(True):
        w = init.normal(0.01)(jax.random.key(7), (400, 100), jnp.float64)
        assert w.dtype == jnp.float64
        assert stats.kstest(np.asarray(w).ravel() / 0.01, "norm").pvalue > ALPHA


def test_fan_in_fan_out():
    assert init.fan_in_fan_out((784, 256)) == (784, 256)
    assert init.fan_in_fan_out((3, 3, 64, 128)) == (576, 1152)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: init.fan_in_fan_out((5,)), "shape"),
        (lambda: init.kaiming_uniform(mode="fan_avg"), "mode"),
        (lambda: init.kaiming_normal(nonlinearity="tanh"), "nonlinearity"),
        (lambda: init.torch_bias_init(0), "fan_in"),
        (lambda: init.uniform_bound(-1.0), "bound"),
        (lambda: init.normal(-0.1), "std"),
        (lambda: init.torch_kernel_init(jax.random.key(0), (2, 2), jnp.int32), "dtype"),
        (
            lambda: init.Conv(2, padding="FULL").init(jax.random.key(0), jnp.ones((1, 4, 4, 1))),
            "padding",
        ),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_conv_padding_forms_agree():
    x = jax.random.normal(jax.random.key(8), (1, 6, 6, 2))
    p = init.Conv(3, (3, 3), padding=1).init(jax.random.key(9), x)
    y_int = init.Conv(3, (3, 3), padding=1).apply(p, x)
    y_pairs = init.Conv(3, (3, 3), padding=((1, 1), (1, 1))).apply(p, x)
    y_same = init.Conv(3, (3, 3), padding="SAME").apply(p, x)
    assert y_int.shape == (1, 6, 6, 3)
    np.testing.assert_array_equal(y_int, y_pairs)
    np.testing.assert_allclose(y_int, y_same, rtol=1e-6, atol=1e-6)

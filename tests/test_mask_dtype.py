"""Every random draw is independent of the input dtype: a float64 run draws the float32 run's.

The reference is a float32 input with JAX's default (x64 off); the float64 run is the same call on
a float64 input under ``jax.enable_x64``, where a Python float, a traced rate and the input all
become float64. Masks must be equal element for element and Gaussian noise equal as values (drawn
in float32, then cast), with the rate concrete or traced.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxreg

KEY = 7
RATE = 0.3


def _x(dtype):
    # No zeros and no value equal to alpha dropout's dropped value, so the mask reads back.
    x = np.random.default_rng(0).uniform(0.5, 2.0, (6, 4, 5))
    return jnp.asarray(x, dtype)


def _rate(traced, dtype):
    return jnp.asarray(RATE, dtype) if traced else RATE


# name -> fn(x, rate, key): one random draw of each kind the library makes.
FUNCTIONS = {
    "dropout": lambda x, r, k: jaxreg.dropout(x, r, key=k),
    "dropout bits16": lambda x, r, k: jaxreg.dropout(x, r, key=k, generator="bits16"),
    "dropout broadcast": lambda x, r, k: jaxreg.dropout(x, r, key=k, broadcast_dims=(1,)),
    "vanilla_dropout": lambda x, r, k: jaxreg.vanilla_dropout(x, 1 - r, key=k),
    "drop_connect": lambda x, r, k: jaxreg.drop_connect(x, r, key=k),
    "drop_path": lambda x, r, k: jaxreg.drop_path(x, r, key=k),
    "spatial_dropout": lambda x, r, k: jaxreg.spatial_dropout(x, r, key=k),
    "dropout1d": lambda x, r, k: jaxreg.dropout1d(x, r, key=k),
    "alpha_dropout": lambda x, r, k: jaxreg.alpha_dropout(x, r, key=k),
    "feature_alpha_dropout": lambda x, r, k: jaxreg.feature_alpha_dropout(x, r, key=k),
    "gaussian_dropout": lambda x, r, k: jaxreg.gaussian_dropout(x, r, key=k),
    "gaussian_noise": lambda x, r, k: jaxreg.gaussian_noise(x, r, key=k),
    "nn.Dropout": lambda x, r, k: jaxreg.nn.Dropout(0.5).apply({}, x, False, k, rate=r),
    "nn.DropConnectDense": lambda x, r, k: jaxreg.nn.DropConnectDense(3).apply(
        {"params": {"kernel": jnp.ones((5, 3), x.dtype), "bias": jnp.zeros(3, x.dtype)}},
        x,
        False,
        k,
        rate=r,
    ),
    "nnx.Dropout": lambda x, r, k: jaxreg.nnx.Dropout(0.5, rngs=nnx.Rngs(0))(x, rate=r, rngs=k),
    "nnx.GaussianNoise": lambda x, r, k: jaxreg.nnx.GaussianNoise(0.1, rngs=nnx.Rngs(0))(
        x, stddev=r, rngs=k
    ),
}
# The values of these are noise (compared as values); the others hold a mask (compared exactly).
NOISE = {"gaussian_dropout", "gaussian_noise", "nnx.GaussianNoise"}


def _run(name, dtype, traced):
    x, key = _x(dtype), jax.random.key(KEY)
    fn = FUNCTIONS[name]
    # Jitted either way: one compilation per case instead of one per eager operation.
    if traced:
        return np.asarray(jax.jit(fn)(x, _rate(True, dtype), key))
    return np.asarray(jax.jit(lambda x, k: fn(x, RATE, k))(x, key))


@pytest.mark.slow
@pytest.mark.parametrize("traced", [False, True], ids=["concrete rate", "traced rate"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float64_run_draws_the_float32_runs_masks(name, traced):
    y32 = _run(name, jnp.float32, traced)
    with jax.enable_x64(True):
        y64 = _run(name, jnp.float64, traced)
    assert y64.dtype == np.float64 and y32.dtype == np.float32
    if name in NOISE:
        # Float32 noise cast to float64: the outputs differ by the float32 rounding of the
        # arithmetic around it only (an independent draw differs by O(rate)).
        np.testing.assert_allclose(y64, y32, rtol=1e-6, atol=1e-6)
    else:
        # The same elements kept (dropped ones are 0, or alpha dropout's constant), and the
        # values those of the same computation in a wider float.
        kept32 = ~np.isclose(y32, np.min(y32)) if "alpha" in name else y32 != 0
        kept64 = ~np.isclose(y64, np.min(y64)) if "alpha" in name else y64 != 0
        assert 0 < kept32.sum() < kept32.size or name == "nn.DropConnectDense"
        np.testing.assert_array_equal(kept64, kept32)
        np.testing.assert_allclose(y64, y32, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("generator", ["bernoulli", "bits16"])
def test_dropout_mask_is_dtype_independent(generator):
    key = jax.random.key(KEY)
    m32 = jaxreg.dropout_mask(key, RATE, (50, 40), generator=generator)
    traced32 = jax.jit(lambda r: jaxreg.dropout_mask(key, r, (50, 40), generator=generator))(
        jnp.float32(RATE)
    )
    with jax.enable_x64(True):
        m64 = jaxreg.dropout_mask(key, RATE, (50, 40), generator=generator)
        traced64 = jax.jit(lambda r: jaxreg.dropout_mask(key, r, (50, 40), generator=generator))(
            jnp.float64(RATE)
        )
    np.testing.assert_array_equal(m64, m32)
    np.testing.assert_array_equal(traced64, traced32)

"""Tests of jaxreg.numpy_ref: seed 000's NumPy Dropout and seed 002's cs231n network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg.numpy_ref import NumpyDropout, cs231n_params, predict, train_forward

SHAPE = (30, 20)


def _x(seed=0, shape=SHAPE):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + 0.5, x - 0.5)


def test_exported_as_submodule():
    assert jaxreg.numpy_ref.NumpyDropout is NumpyDropout


@pytest.mark.parametrize("keep_prob", [0.5, 0.8, 0.25])
def test_forward_is_seed_000(keep_prob):
    layer = NumpyDropout(keep_prob)
    X = _x()
    out = layer.forward(X, np.random.default_rng(1))
    # The seed's own formula, drawn from an identical generator.
    mask = np.random.default_rng(1).binomial(1, keep_prob, size=X.shape) / keep_prob
    np.testing.assert_array_equal(layer.mask, mask)
    np.testing.assert_array_equal(out, X * mask)
    assert set(np.unique(layer.mask)) <= {0.0, 1.0 / keep_prob}
    dX, params = layer.backward(np.full(X.shape, 3.0))
    np.testing.assert_array_equal(dX, 3.0 * mask)
    assert params == [] and layer.params == []


def test_kept_fraction_within_5_sigma():
    n, keep = 200_000, 0.3
    out = NumpyDropout(keep).forward(np.ones(n), np.random.default_rng(2))
    assert abs(np.mean(out != 0) - keep) <= 5 * np.sqrt(keep * (1 - keep) / n)


# keep_prob values with 1 - (1 - keep_prob) == keep_prob in double, so rate = 1 - keep_prob
# hands jaxreg the very same keep probability and the comparison can be exact.
KEEPS = [0.5, 0.8, 0.25, 0.9, 0.6]


@pytest.mark.parametrize("keep_prob", KEEPS)
def test_same_mask_same_numbers_as_jaxreg(keep_prob):
    assert 1.0 - (1.0 - keep_prob) == keep_prob
    layer = NumpyDropout(keep_prob)
    X = _x(3)
    out = layer.forward(X, np.random.default_rng(4))
    dout = _x(5)
    dX, _ = layer.backward(dout)
    with jax.enable_x64(True):
        keep_mask = jnp.asarray(layer.mask != 0)
        y, vjp = jax.vjp(
            lambda x: jaxreg.dropout_with_mask(x, keep_mask, 1.0 - keep_prob), jnp.asarray(X)
        )
        (g,) = vjp(jnp.asarray(dout))
        assert y.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(y), out)
        np.testing.assert_array_equal(np.asarray(g), dX)


@pytest.mark.parametrize("keep_prob", [0.1, 0.3, 0.45, 0.07])
def test_keep_prob_replay_is_exact_where_rate_round_trip_is_not(keep_prob):
    assert 1.0 - (1.0 - keep_prob) != keep_prob
    layer = NumpyDropout(keep_prob)
    X = _x(10)
    out = layer.forward(X, np.random.default_rng(11))
    dX, _ = layer.backward(_x(12))
    with jax.enable_x64(True):
        keep_mask = jnp.asarray(layer.mask != 0)
        y, vjp = jax.vjp(
            lambda x: jaxreg.dropout_with_mask(x, keep_mask, keep_prob=keep_prob), jnp.asarray(X)
        )
        (g,) = vjp(jnp.asarray(_x(12)))
        np.testing.assert_array_equal(np.asarray(y), out)
        np.testing.assert_array_equal(np.asarray(g), dX)


def test_numpy_dropout_errors():
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
            NumpyDropout(bad)
    with pytest.raises(ValueError, match="before forward"):
        NumpyDropout(0.5).backward(np.ones(3))


def _positive_params(rng):
    # Positive weights and biases on a positive input keep every ReLU in its linear part, so
    # the output is linear in each mask and its expectation over masks is exactly predict.
    return {k: np.abs(v) + 0.05 for k, v in cs231n_params(rng, (4, 6, 5, 2)).items()}


@pytest.mark.parametrize("variant", ["vanilla", "inverted"])
def test_train_expectation_equals_predict(variant):
    rng = np.random.default_rng(6)
    params = _positive_params(rng)
    p, n = 0.6, 40_000
    x0 = np.abs(rng.standard_normal((4, 1))) + 0.1
    # n identical columns: n independent train passes in one call.
    out, (U1, U2) = train_forward(params, np.tile(x0, (1, n)), p, rng, variant=variant)
    assert U1.dtype == bool and U1.shape == (6, n) and U2.shape == (5, n)
    pred = predict(params, x0, p, variant=variant)[:, 0]
    sem = out.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(out.mean(axis=1) - pred) <= 5 * sem)


def test_vanilla_predict_is_inverted_with_scaled_weights():
    # The two conventions are one model: vanilla with W equals inverted with W2, W3 times p.
    rng = np.random.default_rng(7)
    params = cs231n_params(rng)
    X = rng.standard_normal((4, 9))
    p = 0.7
    scaled = dict(params, W2=params["W2"] * p, W3=params["W3"] * p)
    np.testing.assert_allclose(
        predict(params, X, p, variant="vanilla"), predict(scaled, X, variant="inverted"), rtol=1e-12
    )
    # Inverted predict ignores p: training already divided by it.
    np.testing.assert_array_equal(
        predict(params, X, 0.3, variant="inverted"), predict(params, X, variant="inverted")
    )


@pytest.mark.parametrize("variant", ["vanilla", "inverted"])
def test_train_forward_replays_in_jaxreg(variant):
    rng = np.random.default_rng(8)
    params = cs231n_params(rng)
    X = rng.standard_normal((4, 11))
    p = 0.5
    out, (U1, U2) = train_forward(params, X, p, rng, variant=variant)
    with jax.enable_x64(True):
        P = {k: jnp.asarray(v) for k, v in params.items()}

        def drop(h, mask):
            if variant == "inverted":
                return jaxreg.dropout_with_mask(h, jnp.asarray(mask), 1.0 - p)
            return h * jnp.asarray(mask)

        h1 = drop(jax.nn.relu(P["W1"] @ X + P["b1"]), U1)
        h2 = drop(jax.nn.relu(P["W2"] @ h1 + P["b2"]), U2)
        np.testing.assert_allclose(P["W3"] @ h2 + P["b3"], out, rtol=1e-12, atol=1e-14)


def test_keep_prob_one_disables_dropout():
    rng = np.random.default_rng(9)
    params = cs231n_params(rng)
    X = rng.standard_normal((4, 5))
    for variant in ("vanilla", "inverted"):
        out, (U1, U2) = train_forward(params, X, 1.0, rng, variant=variant)
        assert U1.all() and U2.all()
        np.testing.assert_array_equal(out, predict(params, X, 1.0, variant=variant))


def test_cs231n_errors():
    params = cs231n_params(np.random.default_rng(0))
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="variant"):
        predict(params, X, 0.5, variant="gaussian")
    with pytest.raises(ValueError, match="variant"):
        train_forward(params, X, 0.5, np.random.default_rng(0), variant="gaussian")
    with pytest.raises(ValueError, match="keep_prob"):
        train_forward(params, X, 0.0, np.random.default_rng(0), variant="inverted")
    with pytest.raises(ValueError, match="keep_prob"):
        predict(params, X, 1.5, variant="vanilla")
    with pytest.raises(ValueError, match="needs keep_prob"):
        predict(params, X, variant="vanilla")

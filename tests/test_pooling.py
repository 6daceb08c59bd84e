"""jaxreg.nn.max_pool2d: Flax's values, torch's gradients (ties and NaNs included), bad input."""

import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.nn import max_pool2d

torch = pytest.importorskip("torch")

SHAPES = [  # (input NHWC, window)
    ((2, 8, 8, 3), 2),
    ((2, 7, 9, 2), 2),  # trailing row and column dropped, as nn.MaxPool2d does
    ((1, 6, 9, 4), (2, 3)),
    ((3, 4, 4, 1), 4),
    ((2, 5, 5, 2), 1),
]


def _torch_pool(x: np.ndarray, window, g: np.ndarray):
    """torch's F.max_pool2d on the same activations in NCHW: (values, input gradient), NHWC."""
    t = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    y = torch.nn.functional.max_pool2d(t, window)
    y.backward(torch.tensor(np.moveaxis(g, -1, 1)))
    return np.moveaxis(y.detach().numpy(), 1, -1), np.moveaxis(t.grad.numpy(), 1, -1)


def _ours(x: np.ndarray, window, g: np.ndarray):
    y, vjp = jax.vjp(lambda x: max_pool2d(x, window), jnp.asarray(x))
    return np.asarray(y), np.asarray(vjp(jnp.asarray(g))[0])


def _inputs(shape, kind: str, rng):
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "ties":  # few distinct values: most windows hold a tied maximum
        return rng.integers(0, 3, size=shape).astype(np.float64)
    x = rng.normal(size=shape)  # NaNs, two in some windows
    x.reshape(-1)[rng.choice(x.size, size=max(2, x.size // 6), replace=False)] = np.nan
    return x


@pytest.mark.parametrize("kind", ["normal", "ties", "nans"])
@pytest.mark.parametrize("shape, window", SHAPES, ids=[f"{s}-{w}" for s, w in SHAPES])
def test_max_pool2d_equals_torch_values_and_gradients(shape, window, kind):
    # float64 and exact: a max selects, it does not round, and the gradient routes each
    # window's cotangent to one entry (torch's saved index) without arithmetic.
    rng = np.random.default_rng(zlib.crc32(repr((shape, window, kind)).encode()))
    x = _inputs(shape, kind, rng)
    with jax.enable_x64(True):
        out = jax.eval_shape(lambda x: max_pool2d(x, window), jnp.asarray(x))
        g = rng.normal(size=out.shape)
        y, grad = _ours(x, window, g)
    y_torch, grad_torch = _torch_pool(x, window, g)
    np.testing.assert_array_equal(y, y_torch, err_msg=f"values, {kind} {shape} window {window}")
    np.testing.assert_array_equal(
        grad, grad_torch, err_msg=f"input gradient, {kind} {shape} window {window}"
    )


@pytest.mark.parametrize("shape, window", SHAPES[:3], ids=[f"{s}-{w}" for s, w in SHAPES[:3]])
def test_max_pool2d_values_equal_flax_max_pool(shape, window):
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    w = (window, window) if isinstance(window, int) else window
    np.testing.assert_array_equal(max_pool2d(x, window), nn.max_pool(x, w, strides=w))


def test_jax_default_max_rule_would_fail_the_tie_case():
    # The mutation the tie case catches: JAX's own derivative of a max splits a tied window's
    # gradient among its maxima; torch (and max_pool2d) give it all to the first.
    x = np.full((1, 2, 2, 1), 2.0)
    split = jax.grad(lambda x: x.reshape(1, 1, 2, 1, 2, 1).max(axis=(2, 4)).sum())(jnp.asarray(x))
    _, grad_torch = _torch_pool(x, 2, np.ones((1, 1, 1, 1)))
    assert not np.array_equal(np.asarray(split), grad_torch)
    np.testing.assert_array_equal(_ours(x, 2, np.ones((1, 1, 1, 1)))[1], grad_torch)


def test_max_pool2d_forward_mode_vmap_and_jit():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 2, 4, 4, 2)), jnp.float32)
    f = jax.jit(lambda x: max_pool2d(x, 2))
    np.testing.assert_array_equal(jax.vmap(f)(x), f(x))  # leading axes are batch axes
    t = jnp.ones_like(x)
    y, dy = jax.jvp(f, (x,), (t,))
    np.testing.assert_array_equal(dy, jnp.ones_like(y))  # one selected entry per window
    hess = jax.hessian(lambda x: (max_pool2d(x, 2) ** 2).sum())(x[0, :1])
    assert np.isfinite(np.asarray(hess)).all()


@pytest.mark.parametrize(
    "window, message",
    [(0, "window=0"), (True, "window=True"), (2.5, "window=2.5"), ("2", "window='2'"),
     ((2, 0), r"window=\(2, 0\)"), ((2, 2, 2), r"window=\(2, 2, 2\)")],
)  # fmt: skip
def test_max_pool2d_bad_window_names_it(window, message):
    with pytest.raises(ValueError, match=f"max_pool2d: {message}"):
        max_pool2d(jnp.zeros((1, 4, 4, 1)), window)


def test_max_pool2d_bad_shapes_name_them():
    with pytest.raises(ValueError, match=r"max_pool2d: x has shape \(4, 4\)"):
        max_pool2d(jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="smaller than window"):
        max_pool2d(jnp.zeros((1, 1, 4, 1)), 2)

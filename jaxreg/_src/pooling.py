"""Max pooling over non-overlapping windows, with a gradient that costs what the forward costs.

``flax.linen.max_pool`` lowers to XLA's ``reduce_window``, whose gradient is
``select_and_scatter_add``: on CPU that one op took 20 ms of a 57 ms training step of a small
Fashion-MNIST CNN (64 x 28 x 28 x 32 activations; Intel Xeon, 2 cores), more than both
convolutions' forward passes. For the common case, windows that tile the input (stride = window,
no padding: ``nn.MaxPool2d(2)``), the pool is a reshape and a ``max``, and its derivative is a
one-hot selection of each window's maximum: elementwise work that XLA fuses. :func:`max_pool2d`
is that, with torch's choice among ties (the first maximum in the window's row-major order gets
the whole gradient; in a window with NaNs, the last NaN), so its gradients equal torch's
``F.max_pool2d``'s. It is a ``custom_jvp``: forward mode, ``jax.hessian`` and ``vmap`` work as
for any JAX function.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

__all__ = ["max_pool2d"]


def _pair(window: int | Sequence[int]) -> tuple[int, int]:
    bad = ValueError(f"max_pool2d: window={window!r}; expected a positive int or (kh, kw)")
    pair = (window, window) if isinstance(window, int) else window
    if isinstance(window, (bool, str)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise bad
    if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in pair):
        raise bad
    return int(pair[0]), int(pair[1])


def _windows(x: jax.Array, kh: int, kw: int) -> jax.Array:
    """``(..., H, W, C)`` -> ``(..., H // kh, kh, W // kw, kw, C)`` (H, W: whole windows)."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // kh, kh, w // kw, kw, c)


def _first_max(xw: jax.Array, y: jax.Array) -> jax.Array:
    """One-hot of the entry torch's ``max_pool2d`` picks in each window (its saved index).

    Torch scans a window row-major and moves its index on ``val > max or isnan(val)``: the first
    maximum among numbers, the last NaN in a window holding one (``max`` propagates NaN).
    """
    kh, kw = xw.shape[-4], xw.shape[-2]
    values = [xw[..., :, i, :, j, :] for i in range(kh) for j in range(kw)]
    taken = jnp.zeros(y.shape, bool)
    hits = []
    for v in values:
        hit = (v == y) & ~taken
        taken = taken | hit
        hits.append(hit)
    later = jnp.zeros(y.shape, bool)
    for k in reversed(range(len(values))):
        nan = jnp.isnan(values[k])
        hits[k] = hits[k] | (nan & ~later)
        later = later | nan
    rows = [jnp.stack(hits[i * kw : (i + 1) * kw], axis=-2) for i in range(kh)]
    return jnp.stack(rows, axis=-4)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _pool(x: jax.Array, kh: int, kw: int) -> jax.Array:
    return _windows(x, kh, kw).max(axis=(-4, -2))


@_pool.defjvp
def _pool_jvp(kh, kw, primals, tangents):
    (x,), (dx,) = primals, tangents
    xw = _windows(x, kh, kw)
    y = xw.max(axis=(-4, -2))
    first = _first_max(xw, y)
    # Exactly one selected entry per window: the sum adds zeros to it, so it is exact, and its
    # transpose (the gradient) is a broadcast and a select, with no scatter.
    dy = jnp.where(first, _windows(dx, kh, kw), jnp.zeros((), dx.dtype)).sum(axis=(-4, -2))
    return y, dy


def max_pool2d(x: jax.Array, window: int | Sequence[int] = 2) -> jax.Array:
    """2-D max pooling of channels-last activations over windows that tile the input.

    PyTorch equivalent: ``F.max_pool2d(x_nchw, window)`` (``nn.MaxPool2d(window)``: stride equal
    to the window, no padding, trailing rows and columns that do not fill a window dropped) on
    the same activations held as ``N, C, H, W``. Same values as
    ``flax.linen.max_pool(x, window, strides=window)``; its gradient sends each window's
    gradient to the window's first maximum (row-major), as torch does, and is elementwise work
    (no ``select_and_scatter``, several times faster on CPU).

    Args:
        x: ``(..., H, W, C)``: any leading axes (usually the batch), then height, width and
            channels.
        window: ``k`` or ``(kh, kw)``: the window and the stride.

    Returns:
        ``(..., H // kh, W // kw, C)``.

    Raises:
        ValueError: ``x`` has fewer than 3 axes or is smaller than one window, or ``window`` is
            not a positive int or pair of them.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.array([[1.0, 2.0], [4.0, 3.0]]).reshape(1, 2, 2, 1)
        >>> max_pool2d(x).ravel().tolist()
        [4.0]
        >>> jax.grad(lambda x: max_pool2d(x).sum())(x).ravel().tolist()
        [0.0, 0.0, 1.0, 0.0]
    """
    kh, kw = _pair(window)
    if jnp.ndim(x) < 3:
        raise ValueError(
            f"max_pool2d: x has shape {jnp.shape(x)}; expected (..., H, W, C) with at least 3 axes"
        )
    h, w = x.shape[-3], x.shape[-2]
    if h < kh or w < kw:
        raise ValueError(
            f"max_pool2d: x's spatial shape {(h, w)} is smaller than window {(kh, kw)}"
        )
    x = x[..., : h - h % kh, : w - w % kw, :]
    return _pool(x, kh, kw)

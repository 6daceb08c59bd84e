"""The implementation of :mod:`jaxreg.spatial` (documented there)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxreg._src import keep_masks
from jaxreg._src._toolkit import (
    check_floating,
    check_mode,
    check_probability,
    feature_shape,
    mask_probability,
    require_key,
)
from jaxreg._src.dropout import dropout_with_mask

__all__ = [
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "spatial_dropout",
    "spatial_dropout_with_mask",
]


def spatial_dropout_with_mask(x: jax.Array, keep_mask: jax.Array, rate: Any) -> jax.Array:
    """Channel-wise inverted dropout with a given ``(N, C)`` keep mask.

    The deterministic half of :func:`spatial_dropout`: ``keep_mask[n, c]`` keeps or zeros the
    whole feature map ``x[n, ..., c]``. The arithmetic is torch's feature dropout exactly
    (``x * (1 / keep)``, see :func:`jaxreg.dropout_with_mask`), so a torch mask replayed here
    reproduces ``nn.Dropout1d/2d/3d`` bit for bit after the layout conversion.

    PyTorch equivalent: ``F.dropout2d(x_nchw, p, training=True)`` with its noise fixed, where
    ``keep_mask = (y_nchw[:, :, 0, 0] != 0)`` for an input without zeros.

    Args:
        x: floating-point input ``(N, ..., C)``, channels last.
        keep_mask: ``bool`` array of shape ``(N, C)``; True keeps the channel.
        rate: the drop probability the mask was drawn with, in ``[0, 1]``; may be traced.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if ``x`` has rank < 2, ``keep_mask`` is not ``(N, C)`` boolean, or a
            concrete ``rate`` is outside ``[0, 1]``.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.ones((1, 2, 2, 3))
        >>> y = spatial_dropout_with_mask(x, jnp.array([[True, False, True]]), 0.5)
        >>> y[0, :, :, 1].tolist(), y[0, 0, 0].tolist()
        ([[0.0, 0.0], [0.0, 0.0]], [2.0, 0.0, 2.0])
    """
    x = jnp.asarray(x)
    shape = feature_shape(x.shape, "spatial_dropout_with_mask")
    keep_mask = jnp.asarray(keep_mask)
    if keep_mask.shape != (shape[0], shape[-1]) or keep_mask.dtype != jnp.bool_:
        raise ValueError(
            f"keep_mask must be a bool array of shape (N, C) = {(shape[0], shape[-1])}, got "
            f"{keep_mask.dtype} {keep_mask.shape}."
        )
    return dropout_with_mask(x, keep_mask.reshape(shape), rate)


def spatial_dropout(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Channel-wise dropout of a batched channels-last feature map ``(N, ..., C)``.

    Each ``(example, channel)`` pair is kept with probability ``1 - rate``, the same draw for
    every spatial position; kept maps are scaled by ``1 / (1 - rate)``. On a rank-2 input
    ``(N, C)`` there is no spatial axis and this is element-wise dropout, as torch's feature
    dropout is. The rank is not checked beyond ``>= 2``; :func:`dropout1d`, :func:`dropout2d`
    and :func:`dropout3d` check it as torch does and accept unbatched inputs.

    PyTorch equivalent: ``torch.nn.functional.feature_dropout`` (what ``Dropout1d/2d/3d``
    call) on the channels-first transpose of ``x``. Keras: ``SpatialDropout1D/2D/3D``.

    Args:
        x: floating-point input ``(N, ..., C)``.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``. The mask
            is ``jax.random.bernoulli(key, 1 - rate, (N, C))``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, ``key`` is missing in
            training mode, or ``x`` has rank < 2.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = spatial_dropout(jnp.ones((4, 5, 5, 8)), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all((y == y[:, :1, :1, :]).all(axis=(1, 2))))
        True

    References:
        Tompson et al., "Efficient Object Localization Using Convolutional Networks", CVPR 2015.
    """
    concrete = check_probability(rate, "rate")
    x = jnp.asarray(x)
    shape = feature_shape(x.shape, "spatial_dropout")
    if check_mode(deterministic, "deterministic", "spatial_dropout") or concrete == 0.0:
        return x
    require_key(key, "spatial_dropout")
    check_floating(x)
    keep = keep_masks.keep_mask(key, mask_probability(rate, concrete), (shape[0], shape[-1]), ())
    return spatial_dropout_with_mask(x, keep, rate)


def _dropout_nd(x, rate, key, deterministic, spatial: int) -> jax.Array:
    x = jnp.asarray(x)
    name = f"dropout{spatial}d"
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(
            f"{name} expects a {spatial + 2}-d batched (N, {spatial} spatial axes, C) or a "
            f"{spatial + 1}-d unbatched input, channels last; got shape {x.shape}."
        )
    concrete = check_probability(rate, "rate")
    if not (check_mode(deterministic, "deterministic", f"dropout{spatial}d") or concrete == 0.0):
        require_key(key, name)
    if x.ndim == spatial + 2:
        return spatial_dropout(x, rate, key=key, deterministic=deterministic)
    # Unbatched: torch unsqueezes a batch axis of 1 and squeezes it afterwards.
    return spatial_dropout(x[None], rate, key=key, deterministic=deterministic)[0]


def dropout1d(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Channel-wise dropout of 1-D feature maps ``(N, L, C)`` or ``(L, C)``.

    :func:`spatial_dropout` with torch's rank check: a rank other than 2 or 3 is an error.

    PyTorch equivalent: ``nn.Dropout1d(p=rate)`` / ``F.dropout1d`` on ``(N, C, L)``.

    Args:
        x: floating-point input, channels last, batched ``(N, L, C)`` or unbatched ``(L, C)``.
        rate: drop probability in ``[0, 1]``; may be traced.
        key: PRNG key; required in training mode.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: for a rank other than 2 or 3, and as :func:`spatial_dropout`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> dropout1d(jnp.ones((2, 7, 3)), 0.5, key=jax.random.key(0)).shape
        (2, 7, 3)
    """
    return _dropout_nd(x, rate, key, deterministic, 1)


def dropout2d(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Channel-wise dropout of 2-D feature maps ``(N, H, W, C)`` or ``(H, W, C)``.

    A rank-3 input is an UNBATCHED image, the behaviour torch announces for ``Dropout2d``.
    Torch 2.x still reads a 3-D input as ``(N, C, L)`` (1-D dropout) with a warning; use
    :func:`dropout1d` for that.

    PyTorch equivalent: ``nn.Dropout2d(p=rate)`` / ``F.dropout2d`` on ``(N, C, H, W)``.

    Args:
        x: floating-point input, channels last, ``(N, H, W, C)`` or ``(H, W, C)``.
        rate: drop probability in ``[0, 1]``; may be traced.
        key: PRNG key; required in training mode.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: for a rank other than 3 or 4 (torch only warns), and as
            :func:`spatial_dropout`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = dropout2d(jnp.ones((2, 4, 4, 3)), 0.5, key=jax.random.key(1))
        >>> bool(jnp.all((y == 0).all(axis=(1, 2)) | (y == 2).all(axis=(1, 2))))
        True
    """
    return _dropout_nd(x, rate, key, deterministic, 2)


def dropout3d(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Channel-wise dropout of 3-D feature maps ``(N, D, H, W, C)`` or ``(D, H, W, C)``.

    PyTorch equivalent: ``nn.Dropout3d(p=rate)`` / ``F.dropout3d`` on ``(N, C, D, H, W)``.

    Args:
        x: floating-point input, channels last, ``(N, D, H, W, C)`` or ``(D, H, W, C)``.
        rate: drop probability in ``[0, 1]``; may be traced.
        key: PRNG key; required in training mode.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: for a rank other than 4 or 5 (torch only warns), and as
            :func:`spatial_dropout`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> dropout3d(jnp.ones((2, 2, 3, 3, 4)), 0.25, key=jax.random.key(0)).shape
        (2, 2, 3, 3, 4)
    """
    return _dropout_nd(x, rate, key, deterministic, 3)

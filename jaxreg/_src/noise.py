"""The implementation of :mod:`jaxreg.noise` (documented there)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg._src import keep_masks
from jaxreg._src._toolkit import (
    as_float,
    check_floating,
    check_mode,
    check_probability,
    check_scalar,
    mask_probability,
    nan_unless,
    require_key,
)
from jaxreg._src.dropout import dropout, dropout_with_mask

__all__ = [
    "drop_connect",
    "drop_path",
    "drop_path_with_mask",
    "gaussian_dropout",
    "gaussian_noise",
]


def _standard_normal(key: Any, x: jax.Array) -> jax.Array:
    # Drawn in float32 and cast, so a float64 run adds exactly the float32 run's noise values
    # (rounded once more in bfloat16/float16) for the same key.
    return jax.random.normal(key, x.shape, jnp.float32).astype(x.dtype)


def drop_connect(
    w: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """DropConnect: inverted dropout on a WEIGHT tensor (seed 004's exercise).

    Each weight is zeroed with probability ``rate`` and the survivors scaled by
    ``1 / (1 - rate)``, exactly :func:`jaxreg.dropout` applied to ``w``. At evaluation the mean
    weights are used (``deterministic=True`` returns ``w``), the common simplification of Wan et
    al.'s Gaussian moment-matching inference. :class:`jaxreg.nn.DropConnectDense` draws one
    mask per step for the whole batch (the paper draws one per example).

    PyTorch equivalent: none built in; ``F.linear(x, F.dropout(W, p, training))``.

    Args:
        w: floating-point weights.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``. The mask
            is that of ``jaxreg.dropout(w, rate, key=key)``.
        deterministic: if True, return ``w`` unchanged.

    Returns:
        An array like ``w``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, or ``key`` is missing
            in training mode.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> w = drop_connect(jnp.ones((3, 4)), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all((w == 0) | (w == 2.0)))
        True

    References:
        Wan, Zeiler, Zhang, LeCun, Fergus, "Regularization of Neural Networks using
        DropConnect", ICML 2013.
    """
    concrete = check_probability(rate, "rate")
    if not (check_mode(deterministic, "deterministic", "drop_connect") or concrete == 0.0):
        require_key(key, "drop_connect")
    return dropout(w, rate, key=key, deterministic=deterministic)


def gaussian_dropout(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Gaussian dropout: ``x * eps`` with ``eps ~ N(1, rate / (1 - rate))``.

    Multiplicative noise with the mean and variance of inverted Bernoulli dropout's mask at the
    same ``rate``, but continuous, so no unit is ever switched off entirely. ``rate=0`` is the
    identity; ``rate`` must be below 1 (the variance diverges there).

    PyTorch equivalent: none (no torch op); Keras ``GaussianDropout(rate)``. The noise drawn is
    ``1 + sqrt(rate / (1 - rate)) * eps`` with ``eps = jax.random.normal(key, x.shape,
    jnp.float32).astype(x.dtype)`` (drawn in float32 whatever the dtype: a float64 run adds the
    float32 run's noise).

    Args:
        x: floating-point input.
        rate: in ``[0, 1)``; a Python float or a (possibly traced) scalar. A traced rate
            outside ``[0, 1)`` gives NaN.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1)`` or NaN, or ``key`` is missing
            in training mode.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = gaussian_dropout(jnp.ones(100_000), 0.5, key=jax.random.key(0))
        >>> round(float(y.mean()), 1), round(float(y.var()), 1)
        (1.0, 1.0)

    References:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
        JMLR 15, 2014, section 10.
    """
    concrete = check_scalar(rate, "rate", "[0, 1)", lambda r: 0.0 <= r < 1.0)
    if check_mode(deterministic, "deterministic", "gaussian_dropout") or concrete == 0.0:
        return x
    require_key(key, "gaussian_dropout")
    x = jnp.asarray(x)
    check_floating(x)
    if concrete is not None:
        std = jnp.asarray(math.sqrt(concrete / (1.0 - concrete)), x.dtype)
    else:
        r = as_float(rate)
        valid = (r >= 0) & (r < 1)
        safe = jnp.where(valid, r, jnp.zeros_like(r))
        std = nan_unless(valid, jnp.sqrt(safe / (1 - safe))).astype(x.dtype)
    return x * (1 + std * _standard_normal(key, x))


def gaussian_noise(
    x: jax.Array, stddev: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Additive Gaussian noise: ``x + N(0, stddev**2)``.

    Training with small input noise is equivalent, to first order, to a Tikhonov (L2-type)
    penalty on the model's input gradient (Bishop 1995).

    PyTorch equivalent: none (no torch op); ``x + stddev * torch.randn_like(x)``; Keras
    ``GaussianNoise(stddev)``. The noise drawn is
    ``stddev * jax.random.normal(key, x.shape, jnp.float32).astype(x.dtype)`` (float32 draws,
    as :func:`gaussian_dropout`).

    Args:
        x: floating-point input.
        stddev: standard deviation, finite and ``>= 0``; a Python float or a (possibly traced)
            scalar. A traced negative or non-finite value gives NaN.
        key: PRNG key; required unless ``deterministic`` or a concrete ``stddev == 0``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``stddev`` is negative, infinite or NaN, or ``key`` is
            missing in training mode.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = gaussian_noise(jnp.zeros(100_000), 0.1, key=jax.random.key(0))
        >>> round(float(y.std()), 2)
        0.1

    References:
        Bishop, "Training with Noise is Equivalent to Tikhonov Regularization", Neural
        Computation 7(1), 1995.
    """
    allowed = "[0, inf) (finite)"
    concrete = check_scalar(stddev, "stddev", allowed, lambda s: 0.0 <= s < math.inf)
    if check_mode(deterministic, "deterministic", "gaussian_noise") or concrete == 0.0:
        return x
    require_key(key, "gaussian_noise")
    x = jnp.asarray(x)
    check_floating(x)
    if concrete is not None:
        std = jnp.asarray(concrete, x.dtype)
    else:
        s = as_float(stddev)
        std = nan_unless((s >= 0) & jnp.isfinite(s), s).astype(x.dtype)
    return x + std * _standard_normal(key, x)


def drop_path_with_mask(x: jax.Array, keep_mask: jax.Array, rate: Any) -> jax.Array:
    """Stochastic depth with a given per-example keep mask of shape ``(N,)``.

    Example ``n`` is kept whole (scaled by ``1 / (1 - rate)``) or zeroed whole. The arithmetic
    is torchvision's (``noise.bernoulli_(1 - p).div_(1 - p); x * noise``), the same as torch's
    dropout (see :func:`jaxreg.dropout_with_mask`), so a replayed mask is bit-exact.

    PyTorch equivalent: ``torchvision.ops.stochastic_depth(x, p, "row")`` with its noise fixed.

    Args:
        x: floating-point input, batch on the leading axis.
        keep_mask: ``bool`` array of shape ``(N,)``.
        rate: drop probability in ``[0, 1]`` the mask was drawn with; may be traced.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if ``keep_mask`` is not a ``(N,)`` bool array, or as
            :func:`jaxreg.dropout_with_mask`.

    Example:
        >>> import jax.numpy as jnp
        >>> drop_path_with_mask(jnp.ones((2, 2)), jnp.array([True, False]), 0.5).tolist()
        [[2.0, 2.0], [0.0, 0.0]]
    """
    x = jnp.asarray(x)
    keep_mask = jnp.asarray(keep_mask)
    if x.ndim < 1 or keep_mask.shape != x.shape[:1]:
        raise ValueError(
            f"keep_mask must have shape (N,) = {x.shape[:1]} for x of shape {x.shape}, got "
            f"{keep_mask.shape}."
        )
    return dropout_with_mask(x, keep_mask.reshape(x.shape[:1] + (1,) * (x.ndim - 1)), rate)


def drop_path(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Stochastic depth (drop path): drop whole examples of a residual branch.

    One Bernoulli draw per example (leading axis); a dropped example's branch output is all
    zeros, a kept one is scaled by ``1 / (1 - rate)``. Use it on the residual branch,
    ``x + drop_path(f(x), rate, key=k)``, so the block reduces to the identity when dropped.

    PyTorch equivalent: ``torchvision.ops.StochasticDepth(p=rate, mode="row")`` /
    ``stochastic_depth(x, p, "row", training=True)``; timm's ``DropPath``. The mask drawn is
    ``jax.random.bernoulli(key, 1 - rate, (N, 1, ..., 1))``.

    Args:
        x: floating-point input, batch on the leading axis.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, ``key`` is missing in
            training mode, or ``x`` is a scalar.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = drop_path(jnp.ones((8, 3, 3)), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all((y == 0).all(axis=(1, 2)) | (y == 2.0).all(axis=(1, 2))))
        True

    References:
        Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016.
    """
    concrete = check_probability(rate, "rate")
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError("drop_path needs a batch axis: x must have rank >= 1.")
    if check_mode(deterministic, "deterministic", "drop_path") or concrete == 0.0:
        return x
    require_key(key, "drop_path")
    keep = keep_masks.keep_mask(key, mask_probability(rate, concrete), x.shape[:1], ())
    return drop_path_with_mask(x, keep, rate)

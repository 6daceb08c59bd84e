"""The implementation of :mod:`jaxreg.alpha` (documented there)."""

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
    feature_shape,
    mask_probability,
    nan_unless,
    require_key,
)

__all__ = ["alpha_dropout", "alpha_dropout_with_mask", "feature_alpha_dropout"]

# SELU's negative saturation is -lambda * alpha; ATen hard-codes lambda * alpha as this double.
_SELU_ALPHA = 1.7580993408473766


def _alpha_constants(rate: Any, concrete: float | None, dtype: Any):
    """ATen's ``(a, alpha * a, alpha * a * p)``, each rounded once to ``dtype`` like torch."""
    if concrete is not None:
        # ATen computes these in double and casts each scalar to the tensor's dtype.
        p = concrete
        a = 1.0 / math.sqrt((_SELU_ALPHA * _SELU_ALPHA * p + 1) * (1 - p)) if p < 1 else 0.0
        return tuple(jnp.asarray(c, dtype) for c in (a, _SELU_ALPHA * a, _SELU_ALPHA * a * p))
    p = as_float(rate)
    # rate == 1 divides by zero; the value is masked out by the caller, and the safe rate keeps
    # the gradient free of NaN.
    safe = jnp.where(p < 1, p, jnp.zeros_like(p))
    a = jax.lax.rsqrt((_SELU_ALPHA**2 * safe + 1) * (1 - safe))
    return tuple(c.astype(dtype) for c in (a, _SELU_ALPHA * a, _SELU_ALPHA * a * safe))


def alpha_dropout_with_mask(x: jax.Array, keep_mask: jax.Array, rate: Any) -> jax.Array:
    """Alpha dropout with a given keep mask: the deterministic half of :func:`alpha_dropout`.

    Kept elements become ``a * x + b`` and dropped ones ``a * alpha' + b``, with SELU's
    saturation ``alpha' = -1.7580993408473766``, ``a = ((alpha'^2 p + 1)(1 - p))^(-1/2)`` and
    ``b = -a alpha' p``, so a standard normal input keeps mean 0 and variance 1. The arithmetic
    is ATen's: ``noise = mask * a; b = (mask - 1) * (alpha a) + alpha a p; y = x * noise + b``,
    each constant computed in double and rounded once. ``rate=1`` gives zeros (``x * 0``), as
    torch does; ``rate=0`` returns ``x``.

    Bit-exactness: called eagerly (outside ``jax.jit``), a replayed torch mask gives torch's
    output and input gradient bit for bit for a Python-float ``rate``. Under ``jax.jit`` XLA
    fuses ``x * noise + b`` into one fused multiply-add, one rounding instead of ATen's two:
    the result can differ from torch (and from the eager call) by 1 ulp.

    Replaying torch: ``keep_mask`` is the Bernoulli draw inside ``F.alpha_dropout``. Re-draw it
    with the same seed, ``torch.manual_seed(s); torch.empty_like(x).bernoulli_(1 - p)`` (ATen
    draws exactly this), or read it off the output as ``y != a * alpha' + b`` when no kept
    element can take that value (e.g. ``x > 0``); the parity suite does both and checks they
    agree. For the feature variant pass the ``(N, 1, ..., 1, C)`` mask (channels last).

    PyTorch equivalent: ``F.alpha_dropout(x, p, training=True)`` (and
    ``F.feature_alpha_dropout``) with the random noise fixed.

    Args:
        x: floating-point input.
        keep_mask: ``bool`` array broadcastable to ``x``; True keeps the element.
        rate: drop probability in ``[0, 1]`` the mask was drawn with; may be traced.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, ``keep_mask`` is not
            boolean or does not broadcast to ``x``, or ``x`` is not floating point.

    Example:
        >>> import jax.numpy as jnp
        >>> y = alpha_dropout_with_mask(jnp.zeros(3), jnp.array([True, False, True]), 0.5)
        >>> [round(v, 4) for v in y.tolist()]
        [0.7792, -0.7792, 0.7792]
    """
    concrete = check_probability(rate, "rate")
    x = jnp.asarray(x)
    check_floating(x)
    keep_mask = jnp.asarray(keep_mask)
    try:
        fits = jnp.broadcast_shapes(keep_mask.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if keep_mask.dtype != jnp.bool_ or not fits:
        raise ValueError(
            f"keep_mask must be a bool array broadcastable to x's shape {x.shape}, got "
            f"{keep_mask.dtype} {keep_mask.shape}."
        )
    if concrete == 0.0:
        return x
    if concrete == 1.0:
        return x * jnp.zeros((), x.dtype)
    a, alpha_a, alpha_a_p = _alpha_constants(rate, concrete, x.dtype)
    noise = keep_mask.astype(x.dtype)
    b = (noise - 1) * alpha_a + alpha_a_p
    y = x * (noise * a) + b
    if concrete is None:
        p = as_float(rate)
        y = jnp.where(p < 1, y, x * jnp.zeros((), x.dtype))
        y = nan_unless((p >= 0) & (p <= 1), y)
    return y


def _alpha(x, rate, key, deterministic, fn: str, feature: bool) -> jax.Array:
    concrete = check_probability(rate, "rate")
    x = jnp.asarray(x)
    shape = feature_shape(x.shape, fn) if feature else x.shape
    if check_mode(deterministic, "deterministic", fn) or concrete == 0.0:
        return x
    require_key(key, fn)
    check_floating(x)
    keep = keep_masks.keep_mask(key, mask_probability(rate, concrete), shape, ())
    return alpha_dropout_with_mask(x, keep, rate)


def alpha_dropout(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Alpha dropout for self-normalizing (SELU) networks.

    Dropped units are set to SELU's negative saturation value instead of 0, and an affine map
    restores mean 0 and variance 1 for a standard normal input, which plain dropout would
    break (see :func:`alpha_dropout_with_mask` for the formula and its bit-exact replay).

    PyTorch equivalent: ``nn.AlphaDropout(p=rate)``; ``F.alpha_dropout(x, p, training=True)``
    (beware its default ``training=False``). The mask drawn is
    ``jax.random.bernoulli(key, 1 - rate, x.shape)``.

    Args:
        x: floating-point input.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, or ``key`` is missing
            in training mode.

    Example:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (200_000,))
        >>> y = alpha_dropout(x, 0.2, key=jax.random.key(1))
        >>> abs(float(y.mean())) < 0.01, round(float(y.std()), 1)
        (True, 1.0)

    References:
        Klambauer, Unterthiner, Mayr, Hochreiter, "Self-Normalizing Neural Networks",
        NeurIPS 2017.
    """
    return _alpha(x, rate, key, deterministic, "alpha_dropout", feature=False)


def feature_alpha_dropout(
    x: jax.Array, rate: Any, *, key: Any = None, deterministic: bool = False
) -> jax.Array:
    """Channel-wise alpha dropout of a channels-last input ``(N, ..., C)``.

    One draw per example and channel, shared over the spatial axes, as
    :func:`jaxreg.spatial_dropout`, with :func:`alpha_dropout`'s values instead of zeros.
    Torch's layout is channels-first ``(N, C, ...)``; jaxreg's is Flax's channels-last, so the
    batch is the first axis and the channel the LAST (on a rank-2 ``(N, C)`` input both are
    element-wise).

    PyTorch equivalent: ``nn.FeatureAlphaDropout(p=rate)`` / ``F.feature_alpha_dropout`` on
    the channels-first transpose. The mask drawn is
    ``jax.random.bernoulli(key, 1 - rate, (N, 1, ..., 1, C))``.

    Args:
        x: floating-point input of rank >= 2, channels last.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``.
        deterministic: if True, return ``x`` unchanged.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: as :func:`alpha_dropout`, or if ``x`` has rank < 2.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = feature_alpha_dropout(jnp.ones((2, 3, 3, 4)), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all(y == y[:, :1, :1, :]))
        True

    References:
        Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017.
    """
    return _alpha(x, rate, key, deterministic, "feature_alpha_dropout", feature=True)

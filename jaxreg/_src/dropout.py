"""The implementation of :mod:`jaxreg.dropout` (documented there)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._src import keep_masks
from jaxreg._src._toolkit import (
    as_float,
    check_floating,
    check_mode,
    check_probability,
    keep_probability,
    mask_probability,
    require_key,
)
from jaxreg._src.keep_masks import check_generator

__all__ = [
    "dropout",
    "dropout_mask",
    "dropout_with_mask",
    "mc_dropout_predict",
    "vanilla_dropout",
]

_FORMULAS = ("torch", "d2l")


def _compute_dtype(dtype: Any) -> Any:
    # PyTorch's CPU kernel divides half and bfloat16 in float32 and rounds once at the end.
    return jnp.promote_types(dtype, jnp.float32)


def dropout_mask(
    key: Any,
    rate: Any,
    shape: Sequence[int],
    broadcast_dims: Sequence[int] = (),
    *,
    generator: str = "bernoulli",
) -> jax.Array:
    """Draws a boolean KEEP mask for inverted dropout.

    Each element is True (kept) with probability ``1 - rate``. Along ``broadcast_dims`` the mask
    is shared: a whole slice is kept or dropped together (PyTorch's ``nn.Dropout2d`` drops whole
    channels this way; seed 002 notes that convolutional layers may drop channels).

    PyTorch equivalent: ``torch.empty(shape).bernoulli_(1 - p).bool()``, the noise inside
    ``F.dropout``. Seeds 002, 003, 004.

    Args:
        key: a JAX PRNG key.
        rate: drop probability in ``[0, 1]``; a Python float or a (possibly traced) scalar
            (a traced rate is not range-checked: above 1 nothing is kept, below 0 all is).
        shape: the shape of the mask (a static tuple of ints).
        broadcast_dims: axes along which one draw is shared.
        generator: ``"bernoulli"`` (default: ``jax.random.bernoulli``, flax's mask; keep
            probability ``ceil(keep * 2**23) / 2**23``) or ``"bits16"`` (16 random bits per
            element, about 3x cheaper; keep probability exactly ``round(keep * 65536) / 65536``
            with ``keep = 1 - rate``). See :mod:`jaxreg.keep_masks`.

    Returns:
        A ``bool`` array of ``shape``; True marks the elements that survive.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, ``broadcast_dims``
            names an axis ``shape`` does not have, or ``generator`` is unknown.

    Example:
        >>> import jax
        >>> m = dropout_mask(jax.random.key(0), 0.5, (2, 3), broadcast_dims=(0,))
        >>> bool((m[0] == m[1]).all())
        True
        >>> int(dropout_mask(jax.random.key(0), 0.25, (1000,), generator="bits16").sum())
        735
    """
    check_generator(generator)
    concrete = check_probability(rate, "rate")
    keep = mask_probability(rate, concrete)
    return keep_masks.keep_mask(key, keep, shape, broadcast_dims, generator=generator)


def dropout_with_mask(
    x: jax.Array,
    keep_mask: jax.Array,
    rate: Any = None,
    *,
    formula: str = "torch",
    keep_prob: Any = None,
) -> jax.Array:
    """Inverted dropout with a given keep mask: the deterministic half of :func:`dropout`.

    With ``formula="torch"`` (default) this is PyTorch's CPU arithmetic exactly: ATen computes
    ``noise = bernoulli(1 - p); noise.div_(1 - p); out = x * noise``, i.e. ``x * (1 / keep)``
    with ``keep = 1 - p`` rounded to ``x``'s dtype (float32 for float16 and bfloat16, as ATen
    does) and the reciprocal rounded once more. A torch
    mask recovered as ``y != 0`` (from an input without zeros) and replayed here gives a
    bit-identical output and input gradient in float32 and float64, provided ``rate`` is a
    Python float, as ``p`` is in torch (a traced float32 ``rate`` computes ``1 - rate`` in
    float32, which can differ from torch's double-precision ``1 - p`` in the last bit).

    ``formula="d2l"`` replays d2l's ``dropout_layer`` (seeds 003, 004): ``mask * X / (1 - p)``,
    a true division instead of a multiplication by the reciprocal.

    With the torch formula a dropped element is ``x * 0`` (so ``inf`` or NaN inputs give NaN,
    as in torch); with either formula ``rate=1`` gives zeros and a zero gradient, never
    ``0 / 0``.

    PyTorch equivalent: ``F.dropout(x, p, training=True)`` with its random noise fixed.

    Args:
        x: floating-point input.
        keep_mask: ``bool`` array broadcastable to ``x``; True keeps the element.
        rate: drop probability in ``[0, 1]`` the mask was drawn with; a Python float or a
            (possibly traced) scalar.
        formula: ``"torch"`` (``x * (1 / keep)``) or ``"d2l"`` (``x / keep``).
        keep_prob: alternatively, the KEEP probability, used as given. Replaying a mask of
            seed 000's or 002's NumPy code (which take ``keep_prob``) this way is exact for
            every value, whereas ``rate=1 - keep_prob`` can round ``1 - (1 - keep_prob)`` off
            ``keep_prob`` by one ulp when ``keep_prob < 0.5``.

    Returns:
        An array like ``x``: kept elements scaled by ``1 / (1 - rate)``, the others zero.

    Raises:
        ValueError: if a concrete ``rate`` or ``keep_prob`` is outside ``[0, 1]`` or NaN, both
            or neither are given, ``keep_mask`` is not boolean or does not broadcast to ``x``,
            ``x`` is not floating point, or ``formula`` is unknown.

    Example:
        >>> import jax.numpy as jnp
        >>> dropout_with_mask(jnp.array([1.0, 2.0, 3.0]), jnp.array([True, False, True]), 0.5)
        Array([2., 0., 6.], dtype=float32)
    """
    if formula not in _FORMULAS:
        raise ValueError(f"formula must be one of {_FORMULAS}, got {formula!r}.")
    if (rate is None) == (keep_prob is None):
        raise ValueError(
            f"dropout_with_mask needs exactly one of rate and keep_prob, got rate={rate!r} and "
            f"keep_prob={keep_prob!r}."
        )
    if keep_prob is not None:
        concrete_keep = check_probability(keep_prob, "keep_prob")
        keep = concrete_keep if concrete_keep is not None else as_float(keep_prob)
    else:
        keep = keep_probability(rate, check_probability(rate, "rate"))
    x = jnp.asarray(x)
    check_floating(x)
    keep_mask = jnp.asarray(keep_mask)
    if keep_mask.dtype != jnp.bool_:
        raise ValueError(
            f"keep_mask must be a bool array (True = kept), got dtype {keep_mask.dtype}; "
            f"recover a torch mask as `y != 0`."
        )
    try:
        fits = jnp.broadcast_shapes(keep_mask.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"keep_mask of shape {keep_mask.shape} does not broadcast to x's shape {x.shape}."
        )
    return _apply_keep_mask(x, keep_mask, keep, formula)


@functools.partial(jax.jit, static_argnames="formula")
def _apply_keep_mask(x: jax.Array, keep_mask: jax.Array, keep: Any, formula: str) -> jax.Array:
    # One compiled kernel instead of a dispatch per operation; `keep` is an argument, so new
    # rates reuse it.
    compute = _compute_dtype(x.dtype)
    keep = jnp.asarray(keep).astype(compute)
    positive = keep > 0
    # The double where keeps rate == 1 free of 1/0 in the value and of NaN in any gradient.
    safe_keep = jnp.where(positive, keep, jnp.ones_like(keep))
    if formula == "d2l":
        # XLA rewrites `x / scalar` into `x * (1 / scalar)`; dividing by a full-shape operand
        # hidden behind a barrier keeps the true (correctly rounded) division d2l performs.
        divisor = jax.lax.optimization_barrier(jnp.broadcast_to(safe_keep, x.shape))
        kept = (x.astype(compute) / divisor).astype(x.dtype)
        out = jnp.where(keep_mask & positive, kept, jnp.zeros_like(x))
        return _nan_if_invalid(keep, out)
    scale = jnp.where(positive, 1 / safe_keep, jnp.zeros_like(keep)).astype(x.dtype)
    noise = jnp.where(keep_mask, scale, jnp.zeros_like(scale))
    return x * _nan_if_invalid(keep, noise)


def _nan_if_invalid(prob: jax.Array, value: jax.Array) -> jax.Array:
    # A traced probability cannot raise; outside [0, 1] (or NaN) it poisons the result with NaN
    # so the mistake shows up in the loss instead of as silently all-dropped activations.
    valid = (prob >= 0) & (prob <= 1)
    return jnp.where(valid, value, jnp.full_like(value, jnp.nan))


def dropout(
    x: jax.Array,
    rate: Any,
    *,
    key: Any = None,
    deterministic: bool = False,
    broadcast_dims: Sequence[int] = (),
    generator: str = "bernoulli",
) -> jax.Array:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    Survivors are multiplied by ``1 / (1 - rate)`` in training, so evaluation is the identity
    (cs231n's recommended "inverted dropout", seed 002). ``rate=0`` returns ``x`` exactly,
    ``rate=1`` returns zeros with a finite, zero gradient, ``deterministic=True`` returns ``x``.

    PyTorch equivalent: ``F.dropout(x, p=rate, training=not deterministic)`` and
    ``nn.Dropout(rate)``; d2l's ``dropout_layer(X, rate)`` (seeds 003, 004). Beware that
    ``F.dropout``'s default ``training=True`` keeps dropout on at evaluation (seeds 000, 001).

    Args:
        x: floating-point input.
        rate: drop probability in ``[0, 1]``. A Python float or a (possibly traced) scalar:
            ``jax.vmap`` over rates works and a new rate never recompiles a jitted caller.
            A concrete ``0`` returns ``x`` without needing a key; a traced rate outside
            ``[0, 1]`` returns NaN everywhere.
        key: PRNG key; required unless ``deterministic`` or a concrete ``rate == 0``.
        deterministic: if True, return ``x`` unchanged (evaluation mode).
        broadcast_dims: axes along which the mask is shared (all-or-nothing along them).
        generator: the mask's random bits, ``"bernoulli"`` (default, the mask of
            ``flax.linen.Dropout``) or ``"bits16"`` (about 3x cheaper; keep probability
            exactly ``round((1 - rate) * 65536) / 65536``), as in :func:`dropout_mask`.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, ``key`` is missing in
            training mode, ``broadcast_dims`` names an axis ``x`` does not have, or
            ``generator`` is unknown.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> y = dropout(jnp.ones(4), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all((y == 0) | (y == 2.0)))
        True
    """
    check_generator(generator)
    concrete = check_probability(rate, "rate")
    if check_mode(deterministic, "deterministic", "dropout") or concrete == 0.0:
        return x
    require_key(key, "dropout")
    x = jnp.asarray(x)
    check_floating(x)
    keep = mask_probability(rate, concrete)
    keep_mask = keep_masks.keep_mask(key, keep, x.shape, broadcast_dims, generator=generator)
    return dropout_with_mask(x, keep_mask, rate)


def vanilla_dropout(
    x: jax.Array,
    keep_prob: Any,
    *,
    key: Any = None,
    deterministic: bool = False,
    broadcast_dims: Sequence[int] = (),
) -> jax.Array:
    """cs231n's vanilla dropout (seed 002): no scaling in training, ``x * keep_prob`` at test.

    Training keeps each element with probability ``keep_prob`` and leaves survivors unscaled
    (``H *= rand(*H.shape) < p``); evaluation multiplies by ``keep_prob`` so that activations
    match their training-time expectation. cs231n recommends the inverted form (:func:`dropout`),
    whose evaluation is the identity; both give the same predictions once the next layer's
    weights are scaled by ``keep_prob``.

    PyTorch equivalent: none built in; seed 002's NumPy ``train_step``/``predict`` with ``p``.

    Args:
        x: floating-point input.
        keep_prob: KEEP probability in ``[0, 1]`` (the seed's ``p``); may be traced.
        key: PRNG key; required in training mode.
        deterministic: if True, return ``x * keep_prob`` (evaluation mode).
        broadcast_dims: axes along which the mask is shared.

    Returns:
        An array like ``x``.

    Raises:
        ValueError: if a concrete ``keep_prob`` is outside ``[0, 1]`` or NaN, or ``key`` is
            missing in training mode.

    Example:
        >>> import jax.numpy as jnp
        >>> vanilla_dropout(jnp.array([2.0, 4.0]), 0.5, deterministic=True)
        Array([1., 2.], dtype=float32)
    """
    concrete = check_probability(keep_prob, "keep_prob")
    x = jnp.asarray(x)
    check_floating(x)
    if check_mode(deterministic, "deterministic", "vanilla_dropout"):
        factor = jnp.asarray(keep_prob, x.dtype)
    else:
        require_key(key, "vanilla_dropout")
        factor = keep_masks.keep_mask(key, keep_prob, x.shape, broadcast_dims).astype(x.dtype)
    if concrete is None:
        factor = _nan_if_invalid(jnp.asarray(keep_prob), factor)
    return x * factor


def mc_dropout_predict(
    apply_fn: Callable[[Any, Any], Any], x: Any, *, key: Any, num_samples: int
) -> tuple[Any, Any]:
    """Monte-Carlo dropout: mean and variance over ``num_samples`` stochastic passes.

    Seed 001's "test M times and average" alternative to weight scaling: run the model with
    dropout ON ``num_samples`` times, each with its own key, vectorized with ``jax.vmap``.
    The variance is the population variance (``ddof=0``) of the samples, an estimate of the
    model's predictive uncertainty.

    PyTorch equivalent: ``torch.stack([model.train()(x) for _ in range(M)]).mean(0)``.

    Args:
        apply_fn: ``apply_fn(x, key)`` returning an array or a pytree of arrays, with dropout
            active, e.g. ``lambda x, k: model.apply(params, x, deterministic=False,
            rngs={"dropout": k})``.
        x: the input passed unchanged to every pass.
        key: PRNG key, split into ``num_samples`` keys.
        num_samples: number of passes, a Python int ``>= 1``.

    Returns:
        ``(mean, variance)``, each shaped like one output of ``apply_fn``.

    Raises:
        ValueError: if ``num_samples`` is not an int ``>= 1`` or ``key`` is None.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = lambda x, k: dropout(x, 0.5, key=k)
        >>> mean, var = mc_dropout_predict(f, jnp.ones(3), key=jax.random.key(0), num_samples=8)
        >>> mean.shape, var.shape
        ((3,), (3,))
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise ValueError(f"num_samples must be a Python int >= 1, got {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if key is None:
        raise ValueError("mc_dropout_predict: key is None; pass key=jax.random.key(...).")
    keys = jax.random.split(key, int(num_samples))
    samples = jax.vmap(lambda k: apply_fn(x, k))(keys)
    mean = jax.tree.map(lambda s: jnp.mean(s, axis=0), samples)
    variance = jax.tree.map(lambda s: jnp.var(s, axis=0), samples)
    return mean, variance

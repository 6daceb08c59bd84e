"""The implementation of :mod:`jaxreg.keep_masks` (documented there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32

from jaxreg._src._toolkit import as_float

__all__ = ["GENERATORS", "check_generator", "keep_mask"]

GENERATORS = ("bernoulli", "bits16")

_LEVELS = 1 << 16


def check_generator(generator: Any) -> str:
    """Returns ``generator`` if it names a mask generator, else raises ``ValueError``.

    Example:
        >>> check_generator("bits16")
        'bits16'
    """
    if not isinstance(generator, str) or generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}.")
    return generator


def _normalize_dims(broadcast_dims: Sequence[int], ndim: int) -> tuple[int, ...]:
    dims = []
    for d in tuple(broadcast_dims):
        if not isinstance(d, (int, np.integer)) or not -ndim <= d < ndim:
            raise ValueError(
                f"broadcast_dims must hold axes in [-{ndim}, {ndim}) for a {ndim}-d input, "
                f"got {tuple(broadcast_dims)!r}."
            )
        dims.append(int(d) % ndim)
    return tuple(sorted(set(dims)))


def _threshold16(keep_prob: Any) -> Any:
    if isinstance(keep_prob, float):
        # Python's round is half-to-even, as jnp.round below: a concrete and a traced keep
        # probability of the same value give the same threshold.
        return round(keep_prob * _LEVELS)
    # keep_prob * 2**16 is exact in any float dtype; clipping makes a traced probability
    # outside [0, 1] keep all or nothing instead of wrapping around in the integer cast.
    scaled = jnp.clip(jnp.round(as_float(keep_prob) * _LEVELS), 0, _LEVELS)
    return scaled.astype(jnp.uint32)


def _uniform16(key: Any, size: int) -> jax.Array:
    """``size`` independent uniform values in ``[0, 2**16)``, as uint32."""
    words = -(-size // 2)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    if str(jax.random.key_impl(key)) == "threefry2x32":
        data = jax.random.key_data(key)
        bits = threefry_2x32((data[0], data[1]), jax.lax.iota(jnp.uint32, words))
    else:
        bits = jax.random.bits(key, (words,), jnp.uint32)
    return jnp.concatenate([bits >> 16, bits & 0xFFFF])[:size]


def keep_mask(
    key: Any,
    keep_prob: Any,
    shape: Sequence[int],
    broadcast_dims: Sequence[int] = (),
    *,
    generator: str = "bernoulli",
) -> jax.Array:
    """Draws a boolean KEEP mask: True with probability ``keep_prob`` (see the module notes).

    PyTorch equivalent: ``torch.empty(shape).bernoulli_(keep_prob).bool()``.

    Args:
        key: a JAX PRNG key (typed or legacy ``uint32[2]``).
        keep_prob: keep probability; a Python float or a (possibly traced) scalar.
        shape: the mask's shape (static ints).
        broadcast_dims: axes along which one draw is shared (all-or-nothing along them).
        generator: ``"bernoulli"`` or ``"bits16"``.

    Returns:
        A ``bool`` array of ``shape``.

    Raises:
        ValueError: if ``generator`` is unknown or ``broadcast_dims`` names a missing axis.

    Example:
        >>> import jax
        >>> m = keep_mask(jax.random.key(0), 0.5, (4, 3), generator="bits16")
        >>> m.shape, m.dtype
        ((4, 3), dtype('bool'))
    """
    check_generator(generator)
    shape = tuple(int(s) for s in shape)
    dims = _normalize_dims(broadcast_dims, len(shape))
    # A size-1 axis in the drawn mask means one draw shared along that axis: all-or-nothing.
    draw_shape = tuple(1 if i in dims else s for i, s in enumerate(shape))
    if not isinstance(keep_prob, float):
        # Float32 whatever the run's dtype: under x64 a float64 probability would make
        # jax.random.bernoulli draw float64 uniforms (other bits, another mask), so a float64
        # run would not share the float32 run's masks. A Python float is rounded to float32
        # by the comparison below, as before.
        keep_prob = as_float(keep_prob).astype(jnp.float32)
    if generator == "bits16":
        values = _uniform16(key, int(np.prod(draw_shape)))
        mask = (values < _threshold16(keep_prob)).reshape(draw_shape)
    else:
        mask = jax.random.bernoulli(key, jnp.float32(keep_prob), draw_shape)
    return jnp.broadcast_to(mask, shape)

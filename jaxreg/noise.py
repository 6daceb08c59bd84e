"""Noise injection beyond dropout: DropConnect, Gaussian dropout and noise, drop path.

The conventions are those of :mod:`jaxreg.dropout`: ``rate`` is the DROP probability, the key is
keyword-only and required in training mode, ``deterministic=True`` is the identity, and rates
and strengths may be traced scalars (``jax.vmap`` over them; a new value never recompiles). A
concrete bad value raises ``ValueError``; a traced one cannot, so it turns the output into NaN.

Each stochastic function documents the draw it makes from its key (e.g. ``gaussian_dropout``
uses ``jax.random.normal(key, x.shape, jnp.float32)`` cast to ``x.dtype``), and the ones
PyTorch has come with a ``*_with_mask`` form that replays a given mask with PyTorch's
arithmetic, which is how the parity suite checks them against torch's own random draws.
"""

from jaxreg._src.noise import (
    drop_connect,
    drop_path,
    drop_path_with_mask,
    gaussian_dropout,
    gaussian_noise,
)

__all__ = [
    "drop_connect",
    "drop_path",
    "drop_path_with_mask",
    "gaussian_dropout",
    "gaussian_noise",
]

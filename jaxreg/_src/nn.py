"""The implementation of :mod:`jaxreg.nn` (documented there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxreg._src._toolkit import check_mode, check_probability, linen_key
from jaxreg._src.dropout import dropout, vanilla_dropout
from jaxreg._src.keep_masks import check_generator
from jaxreg._src.nn_noise import (
    AlphaDropout,
    DropConnectDense,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    DropPath,
    FeatureAlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout,
)

__all__ = [
    "AlphaDropout",
    "DropConnectDense",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout",
    "VanillaDropout",
]


class Dropout(nn.Module):
    """Inverted dropout layer, a drop-in for ``flax.linen.Dropout``; PyTorch's ``nn.Dropout``.

    Survivors are scaled by ``1 / (1 - rate)`` in training; evaluation is the identity (seeds
    002, 003, 004). The attributes (``rate, broadcast_dims, deterministic, rng_collection``) and
    the call ``layer(inputs, deterministic, rng)``, positional arguments included, are those of
    ``flax.linen.Dropout``, with the same key stream and the same mask (with x64 off: Flax
    draws float64 uniforms under ``jax_enable_x64``, jaxreg always float32, so that a float64
    run shares the float32 run's masks); the output agrees to
    the last bit where ``1 / (1 - rate)`` is exact (e.g. rate 0.5, 0.75) and within one rounding
    otherwise (torch's ``x * (1 / keep)`` here, Flax's ``x / keep``). Two additions: the rate
    may be passed at call time as a keyword-only, possibly traced scalar, so one compiled
    training step serves a sweep over dropout rates; and a concrete rate outside ``[0, 1]``
    raises ``ValueError``.

    Attributes:
        rate: drop probability in ``[0, 1]`` (PyTorch's ``p``), used when the call passes none.
        broadcast_dims: axes along which one mask draw is shared (``(1, 2)`` on NHWC input drops
            whole channels, like ``nn.Dropout2d``; see also :class:`Dropout2d`).
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.
        generator: the mask's random bits (:mod:`jaxreg.keep_masks`): ``"bernoulli"``
            (default, flax's mask) or ``"bits16"`` (about 3x cheaper, keep probability exactly
            ``round((1 - rate) * 65536) / 65536``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = Dropout(rate=0.5)
        >>> x = jnp.ones((2, 4))
        >>> y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
        >>> bool(jnp.all((y == 0) | (y == 2.0)))
        True
        >>> bool(jnp.all(layer.apply({}, x, True) == x))
        True
    """

    rate: float = 0.5
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"
    generator: str = "bernoulli"

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        deterministic: bool | None = None,
        rng: Any = None,
        *,
        rate: Any = None,
    ) -> jax.Array:
        """Applies dropout.

        Args:
            inputs: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.
            rate: drop probability overriding the attribute (keyword-only); may be traced.

        Returns:
            An array like ``inputs``.

        Raises:
            ValueError: if ``deterministic`` is given neither as attribute nor at call time (or
                both), a concrete rate is outside ``[0, 1]``, no ``rng_collection`` key was
                passed in training mode, or ``generator`` is unknown.
        """
        check_generator(self.generator)
        deterministic = check_mode(
            nn.merge_param("deterministic", self.deterministic, deterministic),
            "deterministic",
            type(self).__name__,
        )
        rate = self.rate if rate is None else rate
        concrete = check_probability(rate, "rate")
        # Like flax.linen.Dropout, draw no key when none is needed, so adding an inactive
        # layer does not shift the keys of the layers after it.
        if deterministic or concrete == 0.0:
            return inputs
        key = linen_key(self, self.rng_collection, rng)
        return dropout(
            inputs, rate, key=key, broadcast_dims=self.broadcast_dims, generator=self.generator
        )


class VanillaDropout(nn.Module):
    """cs231n vanilla dropout layer (seed 002): unscaled in training, ``x * keep_prob`` at test.

    PyTorch has no built-in equivalent; this is seed 002's NumPy ``train_step``/``predict``
    (``H *= rand < p``; ``H * p``) as a layer. Prefer :class:`Dropout` (inverted) in new code.

    Attributes:
        keep_prob: KEEP probability in ``[0, 1]`` (the seed's ``p``).
        broadcast_dims: axes along which one mask draw is shared.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> VanillaDropout(keep_prob=0.5).apply({}, jnp.array([2.0, 4.0]), deterministic=True)
        Array([1., 2.], dtype=float32)
    """

    keep_prob: float = 0.5
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        deterministic: bool | None = None,
        rng: Any = None,
        *,
        keep_prob: Any = None,
    ) -> jax.Array:
        """Applies vanilla dropout (the call order of :class:`Dropout`).

        Args:
            inputs: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.
            keep_prob: keep probability overriding the attribute (keyword-only); may be traced.

        Returns:
            An array like ``inputs``.

        Raises:
            ValueError: as :class:`Dropout`, for ``keep_prob``.
        """
        deterministic = check_mode(
            nn.merge_param("deterministic", self.deterministic, deterministic),
            "deterministic",
            type(self).__name__,
        )
        keep_prob = self.keep_prob if keep_prob is None else keep_prob
        check_probability(keep_prob, "keep_prob")
        if deterministic:
            return vanilla_dropout(inputs, keep_prob, deterministic=True)
        key = linen_key(self, self.rng_collection, rng)
        return vanilla_dropout(inputs, keep_prob, key=key, broadcast_dims=self.broadcast_dims)

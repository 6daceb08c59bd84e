"""Flax Linen dropout layers on the functional core of :mod:`jaxreg.dropout`.

The modules hold no state and no key: the key comes from the ``rng_collection`` ("dropout")
passed to ``apply``, and the mode from ``deterministic``, given either as a module attribute or
at call time (Flax's ``merge_param`` convention: exactly one of the two). There is no default
mode, so PyTorch's ``F.dropout`` trap (seeds 000, 001: ``training=True`` by default, dropout left
on after ``model.eval()``) cannot happen by omission.

The layers work anywhere in a model; seed 002's ``net_dropped`` puts dropout BEFORE the ReLU::

    x = nn.Dense(300)(x)
    x = jaxreg.nn.Dropout(0.5)(x, deterministic=not train)
    x = nn.relu(x)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxreg.dropout import _check_probability, dropout, vanilla_dropout

__all__ = ["Dropout", "VanillaDropout"]


def _rng_key(module: nn.Module, collection: str, rng: Any) -> Any:
    if rng is not None:
        return rng
    # Flax's make_rng falls back to the "params" stream (e.g. `init(key, ...)`); only when
    # neither stream exists is there no key to draw.
    if not (module.has_rng(collection) or module.has_rng("params")):
        raise ValueError(
            f"{type(module).__name__} in training mode (deterministic=False) needs a PRNG key in "
            f"the {collection!r} collection: pass rngs={{{collection!r}: key}} to apply/init, "
            f"rng=key at call time, or deterministic=True for evaluation."
        )
    return module.make_rng(collection)


class Dropout(nn.Module):
    """Inverted dropout layer: PyTorch's ``nn.Dropout(p=rate)`` (seeds 002, 003, 004).

    Survivors are scaled by ``1 / (1 - rate)`` in training; evaluation is the identity.
    Unlike ``flax.linen.Dropout``, the rate may also be passed at call time as a traced scalar,
    which lets one compiled training step serve a sweep over dropout rates.

    Attributes:
        rate: drop probability in ``[0, 1]`` (PyTorch's ``p``), used when the call passes none.
        broadcast_dims: axes along which one mask draw is shared (``(1, 2)`` on NHWC input drops
            whole channels, like ``nn.Dropout2d``).
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = Dropout(rate=0.5)
        >>> x = jnp.ones((2, 4))
        >>> y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
        >>> bool(jnp.all((y == 0) | (y == 2.0)))
        True
        >>> bool(jnp.all(layer.apply({}, x, deterministic=True) == x))
        True
    """

    rate: float = 0.5
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        deterministic: bool | None = None,
        rate: Any = None,
        rng: Any = None,
    ) -> jax.Array:
        """Applies dropout.

        Args:
            x: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rate: drop probability overriding the attribute; may be a traced scalar.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.

        Returns:
            An array like ``x``.

        Raises:
            ValueError: if ``deterministic`` is given neither as attribute nor at call time (or
                both), a concrete rate is outside ``[0, 1]``, or no ``rng_collection`` key was
                passed in training mode.
        """
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        rate = self.rate if rate is None else rate
        concrete = _check_probability(rate, "rate")
        # Like flax.linen.Dropout, draw no key when none is needed, so adding an inactive
        # layer does not shift the keys of the layers after it.
        if deterministic or concrete == 0.0:
            return x
        key = _rng_key(self, self.rng_collection, rng)
        return dropout(x, rate, key=key, broadcast_dims=self.broadcast_dims)


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
        x: jax.Array,
        deterministic: bool | None = None,
        keep_prob: Any = None,
        rng: Any = None,
    ) -> jax.Array:
        """Applies vanilla dropout.

        Args:
            x: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            keep_prob: keep probability overriding the attribute; may be a traced scalar.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.

        Returns:
            An array like ``x``.

        Raises:
            ValueError: as :class:`Dropout`, for ``keep_prob``.
        """
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        keep_prob = self.keep_prob if keep_prob is None else keep_prob
        _check_probability(keep_prob, "keep_prob")
        if deterministic:
            return vanilla_dropout(x, keep_prob, deterministic=True)
        key = _rng_key(self, self.rng_collection, rng)
        return vanilla_dropout(x, keep_prob, key=key, broadcast_dims=self.broadcast_dims)

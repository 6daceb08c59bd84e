"""Flax NNX dropout layers of jaxreg and the base of every NNX layer (``jaxreg.nnx.<Name>``).

Each layer wraps one function of :mod:`jaxreg.dropout` (the noise family, on the same base
:class:`StochasticLayer`: :mod:`jaxreg._src.nnx_noise_layers`): keys from an ``nnx.Rngs``
stream forked at construction (or ``rngs=`` at call time; none in training mode is a
``ValueError``), the mode from ``deterministic`` (``model.train()`` / ``model.eval()`` /
``nnx.view``), and the strength held in a :class:`Hyperparameter` (traced by ``nnx.jit``:
changing it never recompiles), overridable at call time by a keyword-only, possibly traced
value. No key is drawn in evaluation mode or at a concrete strength of 0, so an inactive layer
does not advance its stream. See :mod:`jaxreg.nnx` for a training example.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> layer = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    >>> layer(jnp.ones((2, 3))).shape
    (2, 3)
    >>> layer.eval()
    >>> layer(jnp.ones(2)).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxreg._src._toolkit import check_mode, check_probability
from jaxreg._src.dropout import dropout, vanilla_dropout
from jaxreg._src.keep_masks import check_generator

__all__ = ["Dropout", "Hyperparameter", "VanillaDropout"]


class Hyperparameter(nnx.Variable):
    """A traced hyperparameter (a dropout rate, a noise scale) held as NNX state.

    Being state, not a Python attribute, it is traced by ``nnx.jit``: changing it never
    recompiles. Not being an ``nnx.Param``, it gets no gradient and no optimizer update. Its
    dtype is JAX's default float (float32 unless x64 is on), and the layer computes with that
    value, as with any traced rate: ``Dropout(0.3)`` uses ``float32(0.3)``, which for
    ``AlphaDropout`` can move its affine constants by one float32 ulp from torch's double ``p``
    (build the model under ``jax.enable_x64`` for torch's double, as the parity suite does).
    PyTorch equivalent: a plain attribute such as ``nn.Dropout.p``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(Hyperparameter(jnp.asarray(0.25))[...])
        0.25
    """


def fork_rngs(rngs: Any, collection: str, owner: str) -> Any:
    if rngs is None:
        return nnx.data(None)
    if isinstance(rngs, nnx.Rngs):
        try:
            return rngs[collection].fork()
        except KeyError as err:
            raise ValueError(
                f"{owner}: rngs has no {collection!r} stream (and no default one); pass "
                f"nnx.Rngs({collection}=seed, ...) or rng_collection=<an existing stream>"
            ) from err
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    raise TypeError(f"{owner}: rngs must be an nnx.Rngs, an nnx.RngStream or None, got {rngs!r}")


class StochasticLayer(nnx.Module):
    """Mode, key stream and traced hyperparameter shared by the layers of this module."""

    def __init__(
        self,
        *,
        deterministic: bool | None,
        rng_collection: str,
        rngs: nnx.Rngs | nnx.RngStream | None,
    ):
        self.deterministic = check_mode(
            deterministic, "deterministic", type(self).__name__, allow_none=True
        )
        self.rng_collection = rng_collection
        self.rngs = fork_rngs(rngs, rng_collection, type(self).__name__)

    def _mode(self, deterministic: bool | None) -> bool:
        # None at call time means the module's mode (set by the constructor, train(), eval()).
        check_mode(deterministic, "deterministic", type(self).__name__, allow_none=True)
        mode = self.deterministic if deterministic is None else deterministic
        if mode is None:
            raise ValueError(
                f"{type(self).__name__}: deterministic is None both in the constructor and at "
                "call time; pass deterministic=True/False, or call model.train() / model.eval()"
            )
        return check_mode(mode, "deterministic", type(self).__name__)

    def _key(self, rngs: Any) -> jax.Array:
        source = self.rngs if rngs is None else rngs
        if isinstance(source, nnx.Rngs):
            return source[self.rng_collection]()
        if isinstance(source, nnx.RngStream):
            return source()
        if isinstance(source, jax.Array):
            return source
        if source is None:
            raise ValueError(
                f"{type(self).__name__} in training mode (deterministic=False) needs a PRNG "
                f"key: pass rngs=nnx.Rngs({self.rng_collection}=seed) to the constructor or "
                "rngs=... at call time, or switch to evaluation (model.eval() or "
                "deterministic=True)"
            )
        raise TypeError(
            f"{type(self).__name__}: rngs must be an nnx.Rngs, an nnx.RngStream or a key, "
            f"got {source!r}"
        )

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view(model, deterministic=...)``, as ``nnx.Dropout.set_view``."""
        if deterministic is not None:
            self.deterministic = check_mode(deterministic, "deterministic", type(self).__name__)


def as_hyperparameter(value: Any, name: str) -> Hyperparameter:
    check_probability(value, name)
    # dtype=float: float64 under jax.enable_x64, so a float64 model replays torch's double `p`.
    return Hyperparameter(jnp.asarray(value, dtype=float))


class Dropout(StochasticLayer):
    """Inverted dropout: PyTorch's ``nn.Dropout(p=rate)`` as an NNX module (seeds 002-004).

    Survivors are scaled by ``1 / (1 - rate)`` in training; evaluation is the identity. A
    drop-in for ``flax.nnx.Dropout`` whose rate is traced (see the module docstring).

    Args:
        rate: drop probability in ``[0, 1]`` (PyTorch's ``p``), held as a
            :class:`Hyperparameter`.
        broadcast_dims: axes along which one draw is shared (``(1, 2)`` on NHWC input drops
            whole channels, like ``nn.Dropout2d``).
        deterministic: evaluation mode if True; ``model.eval()`` / ``model.train()`` set it.
        rng_collection: the ``nnx.Rngs`` stream the keys are drawn from.
        rngs: the ``nnx.Rngs`` (or stream) to fork this layer's key stream from.
        generator: the mask's random bits (:mod:`jaxreg.keep_masks`): ``"bernoulli"``
            (default, the mask of ``flax.nnx.Dropout`` for the same key) or ``"bits16"``
            (about 3x cheaper, keep probability exactly ``round((1 - rate) * 65536) / 65536``),
            as :class:`jaxreg.nn.Dropout`'s ``generator``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> layer = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
        >>> y = layer(jnp.ones((2, 4)))
        >>> bool(jnp.all((y == 0) | (y == 2.0)))
        True
        >>> bool(jnp.all(layer(jnp.ones(3), deterministic=True) == 1.0))
        True
    """

    def __init__(
        self,
        rate: Any = 0.5,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        generator: str = "bernoulli",
    ):
        super().__init__(deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)
        self.rate = as_hyperparameter(rate, "rate")
        self.broadcast_dims = tuple(broadcast_dims)
        self.generator = check_generator(generator)

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rate: Any = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Applies dropout.

        Args:
            inputs: floating-point input.
            deterministic: overrides the module's mode for this call.
            rate: overrides the module's rate for this call; may be traced.
            rngs: a key, stream or ``nnx.Rngs`` overriding the module's stream.

        Returns:
            An array like ``inputs``.

        Raises:
            ValueError: if a concrete rate is outside ``[0, 1]`` or NaN, or no key is
                available in training mode.
        """
        rate = self.rate[...] if rate is None else rate
        concrete = check_probability(rate, "rate")
        # Like nnx.Dropout, draw no key when none is needed, so an inactive layer does not
        # advance its stream.
        if self._mode(deterministic) or concrete == 0.0:
            return inputs
        key = self._key(rngs)
        return dropout(
            inputs, rate, key=key, broadcast_dims=self.broadcast_dims, generator=self.generator
        )


class VanillaDropout(StochasticLayer):
    """cs231n vanilla dropout (seed 002): unscaled in training, ``x * keep_prob`` at test.

    PyTorch has no built-in equivalent; seed 002's NumPy ``H *= rand < p`` / ``H * p`` as an
    NNX module. Prefer :class:`Dropout` (inverted) in new code.

    Args:
        keep_prob: KEEP probability in ``[0, 1]`` (the seed's ``p``), a
            :class:`Hyperparameter`.
        broadcast_dims: axes along which one draw is shared.
        deterministic: evaluation mode if True; ``model.eval()`` / ``model.train()`` set it.
        rng_collection: the ``nnx.Rngs`` stream the keys are drawn from.
        rngs: the ``nnx.Rngs`` (or stream) to fork this layer's key stream from.

    Example:
        >>> import jax.numpy as jnp
        >>> VanillaDropout(0.5, deterministic=True)(jnp.array([2.0, 4.0]))
        Array([1., 2.], dtype=float32)
    """

    def __init__(
        self,
        keep_prob: Any = 0.5,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        super().__init__(deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)
        self.keep_prob = as_hyperparameter(keep_prob, "keep_prob")
        self.broadcast_dims = tuple(broadcast_dims)

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        keep_prob: Any = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Applies vanilla dropout.

        Args:
            inputs: floating-point input.
            deterministic: overrides the module's mode for this call.
            keep_prob: overrides the module's keep probability; may be traced.
            rngs: a key, stream or ``nnx.Rngs`` overriding the module's stream.

        Returns:
            An array like ``inputs``.

        Raises:
            ValueError: as :class:`Dropout`, for ``keep_prob``.
        """
        keep_prob = self.keep_prob[...] if keep_prob is None else keep_prob
        check_probability(keep_prob, "keep_prob")
        if self._mode(deterministic):
            return vanilla_dropout(inputs, keep_prob, deterministic=True)
        key = self._key(rngs)
        return vanilla_dropout(inputs, keep_prob, key=key, broadcast_dims=self.broadcast_dims)

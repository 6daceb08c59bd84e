"""Flax Linen layers of the noise-injection family; use them as ``jaxreg.nn.<Name>``.

Each layer wraps one function of :mod:`jaxreg.noise`, :mod:`jaxreg.alpha` or
:mod:`jaxreg.spatial` and follows :class:`jaxreg.nn.Dropout`: the key comes from the
``rng_collection`` ("dropout") passed to ``apply`` (or ``rng=`` at call time), the mode from
``deterministic`` given exactly once (attribute or call), and the strength may be overridden at
call time by a keyword-only, possibly traced, value. No key is drawn in evaluation mode or at a
concrete strength of 0, so an inactive layer does not shift the keys of the layers after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from jaxreg._src._toolkit import check_mode, concrete_float, linen_key
from jaxreg._src.alpha import alpha_dropout, feature_alpha_dropout
from jaxreg._src.noise import drop_connect, drop_path, gaussian_dropout, gaussian_noise
from jaxreg._src.spatial import dropout1d, dropout2d, dropout3d, spatial_dropout

__all__ = [
    "AlphaDropout",
    "DropConnectDense",
    "DropPath",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout",
]


def _noisy(module: nn.Module, fn: Callable, x: Any, deterministic, rng, value) -> Any:
    """Applies ``fn(x, value, key=...)`` in the module's mode, drawing a key only when needed."""
    deterministic = check_mode(
        nn.merge_param("deterministic", module.deterministic, deterministic),
        "deterministic",
        type(module).__name__,
    )
    if deterministic or concrete_float(value) == 0.0:
        # Still called, so a concrete bad value raises in evaluation mode too.
        return fn(x, value, deterministic=True)
    return fn(x, value, key=linen_key(module, module.rng_collection, rng))


class _RateLayer(nn.Module):
    """A layer ``_fn(inputs, rate, key=...)``; each subclass sets ``_fn`` and its docstring."""

    rate: float = 0.5
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self, inputs: jax.Array, deterministic: bool | None = None, rng: Any = None, *, rate=None
    ) -> jax.Array:
        """Applies the layer.

        Args:
            inputs: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.
            rate: overrides the attribute; may be a traced scalar.

        Returns:
            An array like ``inputs``.
        """
        rate = self.rate if rate is None else rate
        return _noisy(self, self._fn, inputs, deterministic, rng, rate)


class GaussianDropout(_RateLayer):
    """Multiplicative ``N(1, rate / (1 - rate))`` noise: :func:`jaxreg.gaussian_dropout`.

    PyTorch equivalent: none; Keras ``GaussianDropout(rate)``.

    Attributes:
        rate: in ``[0, 1)``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> rngs = {"dropout": jax.random.key(0)}
        >>> y = GaussianDropout(0.3).apply({}, jnp.ones(4), False, rngs=rngs)
        >>> y.shape
        (4,)
    """

    _fn = staticmethod(gaussian_dropout)


class AlphaDropout(_RateLayer):
    """Alpha dropout for SELU networks: :func:`jaxreg.alpha_dropout`.

    PyTorch equivalent: ``nn.AlphaDropout(p=rate)``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> AlphaDropout(0.1).apply({}, jnp.ones(3), deterministic=True).tolist()
        [1.0, 1.0, 1.0]
    """

    _fn = staticmethod(alpha_dropout)


class FeatureAlphaDropout(_RateLayer):
    """Channel-wise alpha dropout, channels last: :func:`jaxreg.feature_alpha_dropout`.

    PyTorch equivalent: ``nn.FeatureAlphaDropout(p=rate)`` (channels first).

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = FeatureAlphaDropout(0.5, deterministic=False)
        >>> layer.apply({}, jnp.ones((2, 5, 3)), rngs={"dropout": jax.random.key(0)}).shape
        (2, 5, 3)
    """

    _fn = staticmethod(feature_alpha_dropout)


class DropPath(_RateLayer):
    """Stochastic depth, one draw per example: :func:`jaxreg.drop_path`.

    Put it on a residual branch: ``x + DropPath(0.1)(f(x), deterministic=not train)``.

    PyTorch equivalent: ``torchvision.ops.StochasticDepth(p=rate, mode="row")``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> rngs = {"dropout": jax.random.key(0)}
        >>> y = DropPath(0.5).apply({}, jnp.ones((6, 2)), False, rngs=rngs)
        >>> bool(jnp.all((y == 0).all(axis=1) | (y == 2).all(axis=1)))
        True
    """

    _fn = staticmethod(drop_path)


class SpatialDropout(_RateLayer):
    """Channel-wise dropout of ``(N, ..., C)`` maps, any rank: :func:`jaxreg.spatial_dropout`.

    PyTorch equivalent: ``nn.Dropout1d/2d/3d(p=rate)`` on the channels-first transpose; Keras
    ``SpatialDropout1D/2D/3D``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.ones((2, 4, 4, 3))
        >>> y = SpatialDropout(0.5).apply({}, x, False, rngs={"dropout": jax.random.key(0)})
        >>> bool(jnp.all(y == y[:, :1, :1, :]))
        True
    """

    _fn = staticmethod(spatial_dropout)


class Dropout1d(_RateLayer):
    """Channel-wise dropout of ``(N, L, C)`` or ``(L, C)``: :func:`jaxreg.dropout1d`.

    PyTorch equivalent: ``nn.Dropout1d(p=rate)`` on ``(N, C, L)``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> Dropout1d(0.5).apply({}, jnp.ones((2, 7, 3)), deterministic=True).shape
        (2, 7, 3)
    """

    _fn = staticmethod(dropout1d)


class Dropout2d(_RateLayer):
    """Channel-wise dropout of ``(N, H, W, C)`` or ``(H, W, C)``: :func:`jaxreg.dropout2d`.

    PyTorch equivalent: ``nn.Dropout2d(p=rate)`` on ``(N, C, H, W)``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> Dropout2d(0.5).apply({}, jnp.ones((2, 4, 4, 3)), deterministic=True).shape
        (2, 4, 4, 3)
    """

    _fn = staticmethod(dropout2d)


class Dropout3d(_RateLayer):
    """Channel-wise dropout of ``(N, D, H, W, C)`` or ``(D, H, W, C)``: :func:`jaxreg.dropout3d`.

    PyTorch equivalent: ``nn.Dropout3d(p=rate)`` on ``(N, C, D, H, W)``.

    Attributes:
        rate: drop probability in ``[0, 1]``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> Dropout3d(0.5).apply({}, jnp.ones((1, 2, 2, 2, 3)), deterministic=True).shape
        (1, 2, 2, 2, 3)
    """

    _fn = staticmethod(dropout3d)


class GaussianNoise(nn.Module):
    """Additive ``N(0, stddev**2)`` noise: :func:`jaxreg.gaussian_noise`.

    PyTorch equivalent: none; ``x + stddev * torch.randn_like(x)``; Keras ``GaussianNoise``.

    Attributes:
        stddev: finite standard deviation ``>= 0``.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax.numpy as jnp
        >>> GaussianNoise(0.1).apply({}, jnp.ones(2), deterministic=True).tolist()
        [1.0, 1.0]
    """

    stddev: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self, inputs: jax.Array, deterministic: bool | None = None, rng: Any = None, *, stddev=None
    ) -> jax.Array:
        """Adds the noise; ``stddev`` overrides the attribute and may be traced.

        Args:
            inputs: floating-point input.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.
            stddev: overrides the attribute; may be a traced scalar.

        Returns:
            An array like ``inputs``.
        """
        stddev = self.stddev if stddev is None else stddev
        return _noisy(self, gaussian_noise, inputs, deterministic, rng, stddev)


class DropConnectDense(nn.Module):
    """A Dense layer whose kernel is dropped out afresh at every step (DropConnect).

    ``y = x @ drop_connect(kernel, rate) + bias``: one mask per call, shared by the batch (Wan
    et al. draw one per example, which costs a kernel per example); the bias is not masked.
    Evaluation uses the mean kernel. The parameters are named ``kernel`` and ``bias`` as in
    ``flax.linen.Dense``, so converters and masks treat it as a Dense layer.

    PyTorch equivalent: none; ``F.linear(x, F.dropout(W, p, training), b)`` with ``W`` the
    transpose of ``kernel``.

    Attributes:
        features: number of output features.
        rate: drop probability of each weight, in ``[0, 1]``.
        use_bias: whether to add a bias.
        kernel_init: initializer of the ``(in, features)`` kernel.
        bias_init: initializer of the bias.
        deterministic: evaluation mode if True; if None it must be given at call time.
        rng_collection: the ``rngs`` collection the key is drawn from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = DropConnectDense(3, rate=0.5)
        >>> params = layer.init(jax.random.key(0), jnp.ones((2, 4)), deterministic=True)
        >>> layer.apply(params, jnp.ones((2, 4)), False, rngs={"dropout": jax.random.key(1)}).shape
        (2, 3)

    References:
        Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013.
    """

    features: int
    rate: float = 0.5
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self, inputs: jax.Array, deterministic: bool | None = None, rng: Any = None, *, rate=None
    ) -> jax.Array:
        """Applies the layer with a freshly masked kernel in training mode.

        Args:
            inputs: floating-point input ``(..., in)``.
            deterministic: evaluation mode if True; exactly one of this and the attribute.
            rng: explicit PRNG key; by default one is drawn from ``rng_collection``.
            rate: overrides the attribute; may be a traced scalar.

        Returns:
            ``(..., features)``.
        """
        kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features))
        rate = self.rate if rate is None else rate
        kernel = _noisy(self, drop_connect, kernel, deterministic, rng, rate)
        y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y

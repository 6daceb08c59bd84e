"""Flax NNX layers of jaxreg's noise-injection family (``jaxreg.nnx.<Name>``).

Gaussian dropout, alpha and feature-alpha dropout, drop path, spatial dropout (1d/2d/3d),
Gaussian noise and DropConnect, on the NNX base of :mod:`jaxreg._src.nnx_layers` (keys from an
``nnx.Rngs`` stream, the mode from ``deterministic``, the strength a traced
:class:`~jaxreg._src.nnx_layers.Hyperparameter`); each wraps one function of :mod:`jaxreg.noise`,
:mod:`jaxreg.alpha` or :mod:`jaxreg.spatial`.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> layer = GaussianDropout(0.5, rngs=nnx.Rngs(dropout=0))
    >>> layer(jnp.ones((2, 3))).shape
    (2, 3)
    >>> layer.eval()
    >>> layer(jnp.ones(2)).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxreg._src._toolkit import check_probability, concrete_float
from jaxreg._src.alpha import alpha_dropout, feature_alpha_dropout
from jaxreg._src.nnx_layers import Hyperparameter, StochasticLayer, as_hyperparameter
from jaxreg._src.noise import drop_connect, gaussian_dropout, gaussian_noise
from jaxreg._src.noise import drop_path as _drop_path
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


class _Noise(StochasticLayer):
    """A layer ``_fn(inputs, strength, key=...)`` with the strength in ``self.<_name>``."""

    _fn: Callable[..., jax.Array]
    _name = "rate"

    def __init__(
        self,
        strength: Any,
        *,
        deterministic: bool | None,
        rng_collection: str,
        rngs: nnx.Rngs | nnx.RngStream | None,
    ):
        super().__init__(deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)
        if self._name == "rate":
            check_probability(strength, "rate")
        else:
            # gaussian_noise validates a concrete stddev even in evaluation mode.
            gaussian_noise(jnp.zeros(1), strength, deterministic=True)
        setattr(self, self._name, Hyperparameter(jnp.asarray(strength, dtype=float)))

    def _apply(self, inputs: jax.Array, deterministic: Any, strength: Any, rngs: Any) -> Any:
        fn = type(self)._fn
        strength = getattr(self, self._name)[...] if strength is None else strength
        if self._mode(deterministic) or concrete_float(strength) == 0.0:
            return fn(inputs, strength, deterministic=True)
        return fn(inputs, strength, key=self._key(rngs))


class _RateNoise(_Noise):
    def __init__(
        self,
        rate: Any = 0.5,
        *,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        super().__init__(rate, deterministic=deterministic, rng_collection=rng_collection,
                         rngs=rngs)  # fmt: skip

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rate: Any = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Applies the layer.

        Args:
            inputs: floating-point input.
            deterministic: overrides the module's mode for this call.
            rate: overrides the module's rate for this call; may be traced.
            rngs: a key, stream or ``nnx.Rngs`` overriding the module's stream.

        Returns:
            An array like ``inputs``.
        """
        return self._apply(inputs, deterministic, rate, rngs)


_ARGS = """
    Args:
        rate: drop probability in ``[0, 1]``, held as a :class:`jaxreg.nnx.Hyperparameter`.
        deterministic: evaluation mode if True; ``model.eval()`` / ``model.train()`` set it.
        rng_collection: the ``nnx.Rngs`` stream the keys are drawn from.
        rngs: the ``nnx.Rngs`` (or stream) to fork this layer's key stream from.
"""


class GaussianDropout(_RateNoise):
    __doc__ = f"""Multiplicative ``N(1, rate / (1 - rate))`` noise: :func:`jaxreg.gaussian_dropout`.

    PyTorch equivalent: none; Keras ``GaussianDropout(rate)``.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> GaussianDropout(0.2, deterministic=True)(jnp.ones(2)).tolist()
        [1.0, 1.0]
    """
    _fn = staticmethod(gaussian_dropout)


class AlphaDropout(_RateNoise):
    __doc__ = f"""Alpha dropout for SELU networks: :func:`jaxreg.alpha_dropout`.

    PyTorch equivalent: ``nn.AlphaDropout(p=rate)``.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> AlphaDropout(0.2, rngs=nnx.Rngs(dropout=0))(jnp.zeros((4, 8))).shape
        (4, 8)
    """
    _fn = staticmethod(alpha_dropout)


class FeatureAlphaDropout(_RateNoise):
    __doc__ = f"""Channel-wise alpha dropout, channels last: :func:`jaxreg.feature_alpha_dropout`.

    PyTorch equivalent: ``nn.FeatureAlphaDropout(p=rate)`` on the channels-first transpose.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> FeatureAlphaDropout(0.2, rngs=nnx.Rngs(dropout=0))(jnp.zeros((2, 5, 5, 3))).shape
        (2, 5, 5, 3)
    """
    _fn = staticmethod(feature_alpha_dropout)


class DropPath(_RateNoise):
    __doc__ = f"""Stochastic depth, one draw per example: :func:`jaxreg.drop_path`.

    Use it on a residual branch: ``x + drop_path(f(x))``. PyTorch equivalent:
    ``torchvision.ops.StochasticDepth(p=rate, mode="row")``.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> y = DropPath(0.5, rngs=nnx.Rngs(dropout=0))(jnp.ones((8, 3)))
        >>> bool(jnp.all((y == 0).all(axis=1) | (y == 2.0).all(axis=1)))
        True
    """
    _fn = staticmethod(_drop_path)


class SpatialDropout(_RateNoise):
    __doc__ = f"""Channel-wise dropout of ``(N, ..., C)``: :func:`jaxreg.spatial_dropout`.

    PyTorch equivalent: ``F.feature_dropout`` on the channels-first transpose.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> SpatialDropout(0.5, rngs=nnx.Rngs(dropout=0))(jnp.ones((2, 4, 3))).shape
        (2, 4, 3)
    """
    _fn = staticmethod(spatial_dropout)


class Dropout1d(_RateNoise):
    __doc__ = f"""Channel-wise dropout of ``(N, L, C)`` or ``(L, C)``: :func:`jaxreg.dropout1d`.

    PyTorch equivalent: ``nn.Dropout1d(p=rate)`` on ``(N, C, L)``.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> Dropout1d(0.5, rngs=nnx.Rngs(dropout=0))(jnp.ones((2, 7, 3))).shape
        (2, 7, 3)
    """
    _fn = staticmethod(dropout1d)


class Dropout2d(_RateNoise):
    __doc__ = f"""Channel-wise dropout of NHWC (or HWC) maps: :func:`jaxreg.dropout2d`.

    PyTorch equivalent: ``nn.Dropout2d(p=rate)`` on NCHW.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> Dropout2d(0.5, rngs=nnx.Rngs(dropout=0))(jnp.ones((2, 5, 5, 3))).shape
        (2, 5, 5, 3)
    """
    _fn = staticmethod(dropout2d)


class Dropout3d(_RateNoise):
    __doc__ = f"""Channel-wise dropout of NDHWC (or DHWC) maps: :func:`jaxreg.dropout3d`.

    PyTorch equivalent: ``nn.Dropout3d(p=rate)`` on NCDHW.
    {_ARGS}
    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> Dropout3d(0.5, rngs=nnx.Rngs(dropout=0))(jnp.ones((2, 3, 4, 4, 2))).shape
        (2, 3, 4, 4, 2)
    """
    _fn = staticmethod(dropout3d)


class GaussianNoise(_Noise):
    """Additive ``N(0, stddev**2)`` noise: :func:`jaxreg.gaussian_noise`.

    PyTorch equivalent: none; ``x + stddev * torch.randn_like(x)``; Keras ``GaussianNoise``.

    Args:
        stddev: finite standard deviation ``>= 0``, a :class:`jaxreg.nnx.Hyperparameter`.
        deterministic: evaluation mode if True; ``model.eval()`` / ``model.train()`` set it.
        rng_collection: the ``nnx.Rngs`` stream the keys are drawn from.
        rngs: the ``nnx.Rngs`` (or stream) to fork this layer's key stream from.

    Example:
        >>> import jax.numpy as jnp
        >>> GaussianNoise(0.1, deterministic=True)(jnp.ones(2)).tolist()
        [1.0, 1.0]
    """

    _fn = staticmethod(gaussian_noise)
    _name = "stddev"

    def __init__(
        self,
        stddev: Any,
        *,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        super().__init__(stddev, deterministic=deterministic, rng_collection=rng_collection,
                         rngs=rngs)  # fmt: skip

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        stddev: Any = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Adds the noise.

        Args:
            inputs: floating-point input.
            deterministic: overrides the module's mode for this call.
            stddev: overrides the module's standard deviation; may be traced.
            rngs: a key, stream or ``nnx.Rngs`` overriding the module's stream.

        Returns:
            An array like ``inputs``.
        """
        return self._apply(inputs, deterministic, stddev, rngs)


# flax.nnx.Linear's default initializers.
_LECUN_NORMAL = nnx.initializers.lecun_normal()
_ZEROS = nnx.initializers.zeros_init()


class DropConnectDense(StochasticLayer):
    """A Linear layer whose kernel is dropped out afresh at every call (DropConnect).

    ``y = x @ drop_connect(kernel, rate) + bias``: one mask per call, shared by the batch; the
    bias is not masked; evaluation uses the mean kernel. The NNX twin of
    :class:`jaxreg.nn.DropConnectDense`: the parameters ``kernel`` ``(in, out)`` and ``bias`` are
    named as in ``flax.nnx.Linear``, so converters and masks treat it as a Linear layer.

    PyTorch equivalent: none; ``F.linear(x, F.dropout(W, p, training), b)`` with ``W`` the
    transpose of ``kernel``.

    Args:
        in_features: number of input features.
        out_features: number of output features.
        rate: drop probability of each weight, in ``[0, 1]``, a :class:`Hyperparameter`.
        use_bias: whether to add a bias.
        kernel_init: initializer of the ``(in, out)`` kernel.
        bias_init: initializer of the bias.
        param_dtype: the parameters' dtype.
        deterministic: evaluation mode if True; ``model.eval()`` / ``model.train()`` set it.
        rng_collection: the ``nnx.Rngs`` stream the masks' keys are drawn from.
        rngs: ``nnx.Rngs`` with a ``params`` (or default) stream for the initial weights and an
            ``rng_collection`` (or default) stream for the masks.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> layer = DropConnectDense(4, 3, 0.5, rngs=nnx.Rngs(0))
        >>> layer(jnp.ones((2, 4))).shape
        (2, 3)
        >>> layer.eval()
        >>> bool(jnp.all(layer(jnp.ones((1, 4))) == jnp.ones(4) @ layer.kernel[...]))
        True

    References:
        Wan et al., "Regularization of Neural Networks using DropConnect", ICML 2013.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rate: Any = 0.5,
        *,
        use_bias: bool = True,
        kernel_init: Callable = _LECUN_NORMAL,
        bias_init: Callable = _ZEROS,
        param_dtype: Any = jnp.float32,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(
                f"DropConnectDense: rngs must be an nnx.Rngs (its params stream initializes the "
                f"kernel), got {rngs!r}"
            )
        super().__init__(deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)
        self.rate = as_hyperparameter(rate, "rate")
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (in_features, out_features), param_dtype)
        )
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype))
            if use_bias
            else nnx.data(None)
        )

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rate: Any = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Applies the layer with a freshly masked kernel in training mode.

        Args:
            inputs: floating-point input ``(..., in_features)``.
            deterministic: overrides the module's mode for this call.
            rate: overrides the module's rate for this call; may be traced.
            rngs: a key, stream or ``nnx.Rngs`` overriding the module's stream.

        Returns:
            ``(..., out_features)``.
        """
        rate = self.rate[...] if rate is None else rate
        concrete = check_probability(rate, "rate")
        kernel = self.kernel[...]
        if not (self._mode(deterministic) or concrete == 0.0):
            kernel = drop_connect(kernel, rate, key=self._key(rngs))
        y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())))
        if self.bias is not None:
            y = y + self.bias[...]
        return y

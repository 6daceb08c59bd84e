"""Flax NNX layers of jaxreg: dropout and the noise-injection family (``jaxreg.nnx.<Name>``).

Each layer wraps one function of :mod:`jaxreg.dropout`, :mod:`jaxreg.noise`, :mod:`jaxreg.alpha`
or :mod:`jaxreg.spatial`: keys from an ``nnx.Rngs`` stream forked at construction (or ``rngs=``
at call time; none in training mode is a ``ValueError``), the mode from ``deterministic``
(``model.train()`` / ``model.eval()`` / ``nnx.view``), and the strength held in a
:class:`Hyperparameter` (traced by ``nnx.jit``: changing it never recompiles), overridable at
call time by a keyword-only, possibly traced value. No key is drawn in evaluation mode or at a
concrete strength of 0, so an inactive layer does not advance its stream. See :mod:`jaxreg.nnx`
for a training example.

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

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxreg._src._toolkit import check_mode, check_probability, concrete_float
from jaxreg._src.alpha import alpha_dropout, feature_alpha_dropout
from jaxreg._src.dropout import dropout, vanilla_dropout
from jaxreg._src.keep_masks import check_generator
from jaxreg._src.noise import drop_connect, gaussian_dropout, gaussian_noise
from jaxreg._src.noise import drop_path as _drop_path
from jaxreg._src.spatial import dropout1d, dropout2d, dropout3d, spatial_dropout

__all__ = [
    "AlphaDropout",
    "DropPath",
    "DropConnectDense",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "Hyperparameter",
    "SpatialDropout",
    "VanillaDropout",
]


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


def _fork(rngs: Any, collection: str, owner: str) -> Any:
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


class _Stochastic(nnx.Module):
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
        self.rngs = _fork(rngs, rng_collection, type(self).__name__)

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


def _hyperparameter(value: Any, name: str) -> Hyperparameter:
    check_probability(value, name)
    # dtype=float: float64 under jax.enable_x64, so a float64 model replays torch's double `p`.
    return Hyperparameter(jnp.asarray(value, dtype=float))


class Dropout(_Stochastic):
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
        self.rate = _hyperparameter(rate, "rate")
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


class VanillaDropout(_Stochastic):
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
        self.keep_prob = _hyperparameter(keep_prob, "keep_prob")
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


class _Noise(_Stochastic):
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


class DropConnectDense(_Stochastic):
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
        self.rate = _hyperparameter(rate, "rate")
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

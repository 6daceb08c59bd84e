"""The implementation of :mod:`jaxreg.init` (documented there)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

Initializer = Callable[..., jax.Array]

__all__ = [
    "Conv",
    "Dense",
    "Initializer",
    "fan_in_fan_out",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "torch_bias_init",
    "torch_kernel_init",
    "uniform_bound",
]


def fan_in_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """Fan-in and fan-out of a Flax kernel shape, computed the way torch computes them.

    A Dense kernel is ``(in, out)``; a Conv kernel is ``(*spatial, in, out)`` (HWIO). torch's
    ``_calculate_fan_in_and_fan_out`` multiplies the channel counts by the receptive field size.

    Args:
        shape: kernel shape with at least 2 dimensions.

    Returns:
        ``(fan_in, fan_out)`` as Python ints.

    Example:
        >>> fan_in_fan_out((3, 3, 16, 32))
        (144, 288)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(
            f"shape={shape}: a kernel needs at least 2 dimensions "
            "((in, out) or (*spatial, in, out))"
        )
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _check_dtype(dtype: Any) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype={dtype}: initializers need a floating dtype (float32, float64)")
    return dtype


def uniform_bound(bound: float) -> Initializer:
    """Initializer drawing ``U(-bound, bound)``, torch's ``nn.init.uniform_(w, -bound, bound)``.

    Args:
        bound: half-width of the interval, a positive Python float.

    Returns:
        A Flax initializer ``init(key, shape, dtype=float32)``.

    Example:
        >>> w = uniform_bound(0.5)(jax.random.key(0), (3,))
        >>> bool(jnp.all(jnp.abs(w) <= 0.5))
        True
    """
    if not bound > 0:
        raise ValueError(f"bound={bound}: must be a positive float")

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = _check_dtype(dtype)
        return jax.random.uniform(key, tuple(shape), dtype, -bound, bound)

    return init


def kaiming_uniform(a: float = math.sqrt(5.0), mode: str = "fan_in") -> Initializer:
    """torch's ``nn.init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity="leaky_relu")``.

    The bound is ``sqrt(2 / (1 + a**2)) * sqrt(3 / fan)``. With the default ``a = sqrt(5)`` (what
    ``nn.Linear`` and ``nn.Conv2d`` use) this is ``1 / sqrt(fan_in)``. Used by every jaxreg model
    (seeds 000-004) so that a JAX model starts from the distribution its torch twin starts from.

    Args:
        a: negative slope of the leaky ReLU the gain is computed for.
        mode: ``"fan_in"`` or ``"fan_out"``.

    Returns:
        A Flax initializer for Dense ``(in, out)`` or Conv ``HWIO`` kernels.

    Example:
        >>> w = kaiming_uniform()(jax.random.key(0), (100, 10))
        >>> bool(jnp.all(jnp.abs(w) <= 0.1))
        True
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode={mode!r}: allowed values are 'fan_in', 'fan_out'")
    gain = math.sqrt(2.0 / (1.0 + a * a))

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = _check_dtype(dtype)
        fan_in, fan_out = fan_in_fan_out(shape)
        fan = fan_in if mode == "fan_in" else fan_out
        bound = gain * math.sqrt(3.0 / fan)
        return jax.random.uniform(key, tuple(shape), dtype, -bound, bound)

    return init


def kaiming_normal(mode: str = "fan_out", nonlinearity: str = "relu") -> Initializer:
    """torch's ``nn.init.kaiming_normal_(w, mode=mode, nonlinearity=nonlinearity)``.

    An untruncated normal with std ``gain / sqrt(fan)``; torchvision's VGG16 (seed 000) uses it
    with ``mode="fan_out", nonlinearity="relu"`` (gain ``sqrt(2)``) for every conv kernel.

    Args:
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: ``"relu"`` (gain sqrt(2)) or ``"linear"`` (gain 1).

    Returns:
        A Flax initializer for Dense ``(in, out)`` or Conv ``HWIO`` kernels.

    Example:
        >>> w = kaiming_normal()(jax.random.key(0), (3, 3, 64, 64))
        >>> w.shape
        (3, 3, 64, 64)
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode={mode!r}: allowed values are 'fan_in', 'fan_out'")
    gains = {"relu": math.sqrt(2.0), "linear": 1.0}
    if nonlinearity not in gains:
        raise ValueError(f"nonlinearity={nonlinearity!r}: allowed values are {sorted(gains)}")
    gain = gains[nonlinearity]

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = _check_dtype(dtype)
        fan_in, fan_out = fan_in_fan_out(shape)
        std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
        return std * jax.random.normal(key, tuple(shape), dtype)

    return init


def normal(std: float = 0.01, mean: float = 0.0) -> Initializer:
    """torch's ``nn.init.normal_(w, mean, std)`` (untruncated).

    d2l's concise dropout net (seeds 003/004) and torchvision's VGG16 classifier (seed 000) use
    ``std=0.01``; seed 004's weight-decay MLP uses ``std=1``.

    Args:
        std: standard deviation, a non-negative float.
        mean: mean.

    Returns:
        A Flax initializer.

    Example:
        >>> normal(0.01)(jax.random.key(0), (2, 2)).shape
        (2, 2)
    """
    if not std >= 0:
        raise ValueError(f"std={std}: must be a non-negative float")

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = _check_dtype(dtype)
        return mean + std * jax.random.normal(key, tuple(shape), dtype)

    return init


torch_kernel_init: Initializer = kaiming_uniform()
"""Default Linear/Conv weight init of PyTorch: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""


def torch_bias_init(fan_in: int) -> Initializer:
    """Default Linear/Conv bias init of PyTorch: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The bias distribution depends on the layer's fan_in, which a Flax bias initializer cannot see;
    :class:`Dense` and :class:`Conv` call this with the fan_in read from the input.

    Args:
        fan_in: number of inputs per output unit (``in * prod(kernel_size)``), a positive int.

    Returns:
        A Flax initializer for a bias of shape ``(features,)``.

    Example:
        >>> b = torch_bias_init(4)(jax.random.key(0), (3,))
        >>> bool(jnp.all(jnp.abs(b) <= 0.5))
        True
    """
    if int(fan_in) <= 0:
        raise ValueError(f"fan_in={fan_in}: must be a positive int")
    return uniform_bound(1.0 / math.sqrt(int(fan_in)))


class Dense(nn.Module):
    """A Linear layer initialized like ``torch.nn.Linear`` (seeds 000-004).

    Computes ``x @ kernel + bias`` with ``kernel = torch_weight.T``. Parameter names are Flax's
    (``kernel``, ``bias``) so optax masks and ``jaxreg.convert`` see the usual tree.

    Attributes:
        features: number of outputs.
        use_bias: whether to add a bias.
        kernel_init: kernel initializer; default torch's ``kaiming_uniform(a=sqrt(5))``.
        bias_init: bias initializer; ``None`` = torch's ``U(+-1/sqrt(fan_in))``.
        dtype: computation dtype; ``None`` promotes input and parameters.
        param_dtype: parameter dtype at initialization.
        precision: matmul precision passed to ``lax.dot_general``.

    Example:
        >>> layer = Dense(4)
        >>> params = layer.init(jax.random.key(0), jnp.ones((2, 3)))
        >>> params["params"]["kernel"].shape
        (3, 4)
    """

    features: int
    use_bias: bool = True
    kernel_init: Initializer = torch_kernel_init
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (fan_in, self.features), self.param_dtype)
        bias = None
        if self.use_bias:
            bias_init = self.bias_init or torch_bias_init(fan_in)
            bias = self.param("bias", bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = jax.lax.dot_general(
            x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=self.precision
        )
        if bias is not None:
            y = y + bias
        return y


class Conv(nn.Module):
    """A 2-D convolution initialized like ``torch.nn.Conv2d`` (seed 000's VGG16).

    Input NHWC, kernel HWIO (torch's OIHW transposed by ``(2, 3, 1, 0)``). ``padding`` is an
    int (torch's symmetric zero padding), a sequence of ``(low, high)`` pairs, or ``"SAME"`` /
    ``"VALID"``.

    Attributes:
        features: output channels.
        kernel_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        padding: see above.
        use_bias: whether to add a bias.
        kernel_init: kernel initializer; default torch's ``kaiming_uniform(a=sqrt(5))``.
        bias_init: bias initializer; ``None`` = torch's ``U(+-1/sqrt(fan_in))``.
        dtype: computation dtype; ``None`` promotes input and parameters.
        param_dtype: parameter dtype at initialization.
        precision: convolution precision.

    Example:
        >>> conv = Conv(8, (3, 3), padding=1)
        >>> params = conv.init(jax.random.key(0), jnp.ones((1, 5, 5, 3)))
        >>> params["params"]["kernel"].shape
        (3, 3, 3, 8)
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: Any = 0
    use_bias: bool = True
    kernel_init: Initializer = torch_kernel_init
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    def _padding(self, ndim: int) -> Any:
        if isinstance(self.padding, str):
            if self.padding not in ("SAME", "VALID"):
                raise ValueError(
                    f"padding={self.padding!r}: allowed values are an int, (low, high) pairs, "
                    "'SAME', 'VALID'"
                )
            return self.padding
        if isinstance(self.padding, int):
            return [(self.padding, self.padding)] * ndim
        return [tuple(int(p) for p in pair) for pair in self.padding]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel_size = tuple(int(k) for k in self.kernel_size)
        in_features = x.shape[-1]
        shape = (*kernel_size, in_features, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = None
        if self.use_bias:
            fan_in, _ = fan_in_fan_out(shape)
            bias_init = self.bias_init or torch_bias_init(fan_in)
            bias = self.param("bias", bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = jax.lax.conv_general_dilated(
            x,
            kernel,
            window_strides=tuple(int(s) for s in self.strides),
            padding=self._padding(len(kernel_size)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=self.precision,
        )
        if bias is not None:
            y = y + bias
        return y

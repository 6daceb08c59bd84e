"""The implementation of :mod:`jaxreg.models` (documented there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxreg._src._toolkit import check_mode
from jaxreg._src.init import Dense, normal
from jaxreg._src.nn import Dropout
from jaxreg._src.noise_mlp import NOISE_TECHNIQUES, NoiseMLP
from jaxreg._src.vgg import VGG16, VGG16_CFG, adaptive_avg_pool2d

__all__ = [
    "VGG16",
    "VGG16_CFG",
    "ActivityMLP",
    "DropoutMLP",
    "NOISE_TECHNIQUES",
    "NoiseMLP",
    "RegressionNet",
    "Seed000Net",
    "TwoLayerNet",
    "WeightDecayMLP",
    "adaptive_avg_pool2d",
]


class Seed000Net(nn.Module):
    """Seed 000's ``Model``: Linear(8,6) ReLU dropout Linear(6,4) ReLU dropout Linear(4,1) sigmoid.

    PyTorch equivalent: ``jaxreg.torch_ref.models.Seed000Net``. The seed calls
    ``F.dropout(x, p=0.5)`` without ``training=``, so its dropout never turns off;
    ``always_dropout=True`` reproduces that defect, the default turns dropout off when
    ``deterministic=True``.

    Attributes:
        dropout_rate: drop probability of both dropout layers.
        always_dropout: keep dropout active even when ``deterministic=True`` (the seed's defect).
        param_dtype: parameter dtype at initialization.

    Example:
        >>> m = Seed000Net()
        >>> p = m.init(jax.random.key(0), jnp.ones((3, 8)))
        >>> m.apply(p, jnp.ones((3, 8))).shape
        (3, 1)
    """

    dropout_rate: float = 0.5
    always_dropout: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        det = (
            check_mode(deterministic, "deterministic", type(self).__name__)
            and not self.always_dropout
        )
        x = nn.relu(Dense(6, param_dtype=self.param_dtype, name="fc1")(x))
        x = Dropout(rate=self.dropout_rate)(x, deterministic=det)
        x = nn.relu(Dense(4, param_dtype=self.param_dtype, name="fc2")(x))
        x = Dropout(rate=self.dropout_rate)(x, deterministic=det)
        return jax.nn.sigmoid(Dense(1, param_dtype=self.param_dtype, name="fc3")(x))


class ActivityMLP(nn.Module):
    """Seed 001's ``MLP``: Linear(128,32) ReLU Linear(32,16) ReLU Linear(16,2).

    Returns the activations too, because seed 001 penalizes them (L1 on ``layer1_out``, the L2
    norm on ``layer2_out``); they are also sown into ``"intermediates"`` for
    ``jaxreg.activity_penalty``. PyTorch equivalent: ``jaxreg.torch_ref.models.ActivityMLP``.

    Attributes:
        param_dtype: parameter dtype at initialization.

    Returns (of ``__call__``):
        ``(out, layer1_out, layer2_out)`` with shapes ``(N, 2)``, ``(N, 32)``, ``(N, 16)``.

    Example:
        >>> m = ActivityMLP()
        >>> p = m.init(jax.random.key(0), jnp.ones((4, 128)))
        >>> [a.shape for a in m.apply(p, jnp.ones((4, 128)))]
        [(4, 2), (4, 32), (4, 16)]
    """

    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        layer1_out = nn.relu(Dense(32, param_dtype=self.param_dtype, name="linear1")(x))
        layer2_out = nn.relu(Dense(16, param_dtype=self.param_dtype, name="linear2")(layer1_out))
        out = Dense(2, param_dtype=self.param_dtype, name="linear3")(layer2_out)
        # Recorded for jaxreg.activity_penalty when applied with mutable=["intermediates"].
        self.sow("intermediates", "layer1_out", layer1_out)
        self.sow("intermediates", "layer2_out", layer2_out)
        return out, layer1_out, layer2_out


class TwoLayerNet(nn.Module):
    """Seed 001's ``TwoLayerNet``: flatten, Linear ReLU dropout Linear, ``log_softmax``.

    PyTorch equivalent: ``jaxreg.torch_ref.models.TwoLayerNet``. Like seed 000, the seed's
    ``F.dropout`` stays on in evaluation; ``always_dropout=True`` reproduces that.

    Attributes:
        dim_in: flattened input size.
        dim_hid: hidden units.
        dim_out: classes.
        dropout_rate: drop probability.
        always_dropout: keep dropout active even when ``deterministic=True``.
        param_dtype: parameter dtype at initialization.

    Example:
        >>> m = TwoLayerNet()
        >>> p = m.init(jax.random.key(0), jnp.ones((2, 28, 28)))
        >>> m.apply(p, jnp.ones((2, 28, 28))).shape
        (2, 10)
    """

    dim_in: int = 784
    dim_hid: int = 128
    dim_out: int = 10
    dropout_rate: float = 0.5
    always_dropout: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        det = (
            check_mode(deterministic, "deterministic", type(self).__name__)
            and not self.always_dropout
        )
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(Dense(self.dim_hid, param_dtype=self.param_dtype, name="fc1")(x))
        x = Dropout(rate=self.dropout_rate)(x, deterministic=det)
        x = Dense(self.dim_out, param_dtype=self.param_dtype, name="fc2")(x)
        return jax.nn.log_softmax(x, axis=1)


class RegressionNet(nn.Module):
    """Seed 002's regression nets: ``net_overfitting`` and ``net_dropped``.

    ``dropout_rate=None`` is ``net_overfitting`` = Sequential(Linear(1,h), ReLU, Linear(h,h), ReLU,
    Linear(h,1)) with parameters ``layers_0, layers_2, layers_4``. A rate gives ``net_dropped`` =
    Sequential(Linear, Dropout, ReLU, Linear, Dropout, ReLU, Linear) with ``layers_0, layers_3,
    layers_6``: the seed puts Dropout BEFORE the ReLU (equivalent, since relu(m*x) = m*relu(x)
    for a mask m >= 0, but the layer indices differ). PyTorch equivalent:
    ``jaxreg.torch_ref.models.RegressionNet``.

    Attributes:
        hidden: hidden width (the seed's ``N_HIDDEN = 300``).
        dropout_rate: ``None`` (no dropout layers) or the drop probability.
        param_dtype: parameter dtype at initialization.

    Example:
        >>> m = RegressionNet(dropout_rate=0.5)
        >>> p = m.init(jax.random.key(0), jnp.ones((20, 1)))
        >>> sorted(p["params"])
        ['layers_0', 'layers_3', 'layers_6']
    """

    hidden: int = 300
    dropout_rate: float | None = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_mode(deterministic, "deterministic", "RegressionNet")
        pd = self.param_dtype
        if self.dropout_rate is None:
            x = nn.relu(Dense(self.hidden, param_dtype=pd, name="layers_0")(x))
            x = nn.relu(Dense(self.hidden, param_dtype=pd, name="layers_2")(x))
            return Dense(1, param_dtype=pd, name="layers_4")(x)
        x = Dense(self.hidden, param_dtype=pd, name="layers_0")(x)
        x = nn.relu(
            Dropout(rate=self.dropout_rate, name="layers_1")(x, deterministic=deterministic)
        )
        x = Dense(self.hidden, param_dtype=pd, name="layers_3")(x)
        x = nn.relu(
            Dropout(rate=self.dropout_rate, name="layers_4")(x, deterministic=deterministic)
        )
        return Dense(1, param_dtype=pd, name="layers_6")(x)


_STYLES = ("scratch", "concise")
_INITS = ("torch", "normal")


class DropoutMLP(nn.Module):
    """Seeds 003/004's dropout MLP: Linear ReLU dropout(r1) Linear ReLU dropout(r2) Linear.

    ``style="scratch"`` is d2l's ``Net`` (``lin1, lin2, lin3``; dropout via ``dropout_layer``),
    ``style="concise"`` is d2l's ``nn.Sequential(Flatten, Linear, ReLU, Dropout, ...)`` with
    parameters ``layers_1, layers_4, layers_7``. ``weight_init="normal"`` is d2l's concise recipe
    (weights ``N(0, 0.01)``, biases torch's default); ``"torch"`` is torch's default for both.
    (The attribute cannot be called ``init``: that would shadow ``flax.linen.Module.init``.)
    PyTorch equivalent: ``jaxreg.torch_ref.models.DropoutMLP``.

    Attributes:
        num_inputs: flattened input size.
        num_hiddens1: first hidden width.
        num_hiddens2: second hidden width.
        num_outputs: classes.
        dropout1: drop probability after the first hidden layer.
        dropout2: drop probability after the second hidden layer.
        style: ``"scratch"`` or ``"concise"`` (parameter names only; same function).
        weight_init: ``"torch"`` or ``"normal"``.
        param_dtype: parameter dtype at initialization.
        dropout_generator: the dropout masks' random bits, ``"bernoulli"`` (default) or
            ``"bits16"`` (about 3x cheaper; see :mod:`jaxreg.keep_masks`).

    Example:
        >>> m = DropoutMLP()
        >>> p = m.init(jax.random.key(0), jnp.ones((2, 784)))
        >>> y = m.apply(p, jnp.ones((2, 784)), deterministic=False,
        ...             rates=(jnp.float32(0.1), jnp.float32(0.3)),
        ...             rngs={"dropout": jax.random.key(1)})
        >>> y.shape
        (2, 10)
    """

    # The rates a sweep may trace (one compiled step for every rate): see
    # ``jaxreg.lab.config.declared_hparams``.
    traced_hparams = ("dropout1", "dropout2")

    num_inputs: int = 784
    num_hiddens1: int = 256
    num_hiddens2: int = 256
    num_outputs: int = 10
    dropout1: float = 0.2
    dropout2: float = 0.5
    style: str = "scratch"
    weight_init: str = "torch"
    param_dtype: Any = jnp.float32
    dropout_generator: str = "bernoulli"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        deterministic: bool = True,
        rates: Sequence[Any] | None = None,
    ) -> jax.Array:
        """Apply the MLP.

        Args:
            x: inputs, any shape whose trailing size flattens to ``num_inputs``.
            deterministic: turn dropout off.
            rates: optional ``(r1, r2)`` overriding ``dropout1``/``dropout2``; traced scalars are
                allowed, so one compiled function serves a whole sweep over rates.

        Returns:
            Logits of shape ``(N, num_outputs)``.
        """
        check_mode(deterministic, "deterministic", "DropoutMLP")
        if self.style not in _STYLES:
            raise ValueError(f"style={self.style!r}: allowed values are {_STYLES}")
        if self.weight_init not in _INITS:
            raise ValueError(f"weight_init={self.weight_init!r}: allowed values are {_INITS}")
        if rates is None:
            r1, r2 = self.dropout1, self.dropout2
        else:
            if len(rates) != 2:
                raise ValueError(f"rates={rates!r}: must be a pair (r1, r2)")
            r1, r2 = rates
        names = ("lin1", "lin2", "lin3") if self.style == "scratch" else _CONCISE
        kw: dict[str, Any] = {"param_dtype": self.param_dtype}
        if self.weight_init == "normal":
            kw["kernel_init"] = normal(0.01)
        if self.style == "scratch":
            x = x.reshape((-1, self.num_inputs))
        else:
            x = x.reshape((x.shape[0], -1))
        x = nn.relu(Dense(self.num_hiddens1, name=names[0], **kw)(x))
        gen = self.dropout_generator
        x = Dropout(rate=self.dropout1, generator=gen)(x, deterministic=deterministic, rate=r1)
        x = nn.relu(Dense(self.num_hiddens2, name=names[1], **kw)(x))
        x = Dropout(rate=self.dropout2, generator=gen)(x, deterministic=deterministic, rate=r2)
        return Dense(self.num_outputs, name=names[2], **kw)(x)


_CONCISE = ("layers_1", "layers_4", "layers_7")


class WeightDecayMLP(nn.Module):
    """Seed 004's from-scratch MLP: ``relu(x @ W1 + b1) @ W2 + b2`` on raw parameters.

    Parameters are the seed's tensors with its names and layout (``W1`` is ``(in, hidden)``, used
    as ``x @ W1``: no transpose on conversion). ``W ~ N(0, weight_std)``, ``b = 0``. PyTorch
    equivalent: ``jaxreg.torch_ref.models.WeightDecayMLP``.

    Attributes:
        num_inputs: flattened input size.
        num_hidden: hidden width.
        num_outputs: classes.
        weight_std: standard deviation of the weights (the seed uses 1.0).
        param_dtype: parameter dtype at initialization.

    Example:
        >>> m = WeightDecayMLP()
        >>> p = m.init(jax.random.key(0), jnp.ones((2, 784)))
        >>> sorted((k, v.shape) for k, v in p["params"].items())
        [('W1', (784, 256)), ('W2', (256, 10)), ('b1', (256,)), ('b2', (10,))]
    """

    num_inputs: int = 784
    num_hidden: int = 256
    num_outputs: int = 10
    weight_std: float = 1.0
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pd = self.param_dtype
        w_init = normal(self.weight_std)
        w1 = self.param("W1", w_init, (self.num_inputs, self.num_hidden), pd)
        b1 = self.param("b1", nn.initializers.zeros, (self.num_hidden,), pd)
        w2 = self.param("W2", w_init, (self.num_hidden, self.num_outputs), pd)
        b2 = self.param("b2", nn.initializers.zeros, (self.num_outputs,), pd)
        x = x.reshape((-1, self.num_inputs))
        h = nn.relu(x @ w1 + b1)
        return h @ w2 + b2

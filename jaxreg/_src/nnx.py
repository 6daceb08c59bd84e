"""The implementation of :mod:`jaxreg.nnx` (documented there)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxreg._src.init import kaiming_uniform, torch_bias_init
from jaxreg._src.nnx_layers import Dropout, Hyperparameter, VanillaDropout
from jaxreg._src.nnx_noise_layers import (
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
    "DropoutMLP",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "Hyperparameter",
    "SpatialDropout",
    "VanillaDropout",
]


def _torch_linear(din: int, dout: int, param_dtype: Any, rngs: nnx.Rngs) -> nnx.Linear:
    # torch.nn.Linear's default init, so that the twin starts from the same distribution.
    return nnx.Linear(
        din,
        dout,
        kernel_init=kaiming_uniform(),
        bias_init=torch_bias_init(din),
        param_dtype=param_dtype,
        rngs=rngs,
    )


class DropoutMLP(nnx.Module):
    """Seeds 003/004's dropout MLP in NNX: Linear ReLU Dropout Linear ReLU Dropout Linear.

    d2l's scratch ``Net`` (784-256-256-10, dropout 0.2 then 0.5, ``lin1 lin2 lin3``), with
    torch's default ``nn.Linear`` initialization. Linen twin: ``jaxreg.models.DropoutMLP``;
    PyTorch twin: ``jaxreg.torch_ref.models.DropoutMLP`` (``state_dict`` keys ``lin1.weight``
    ... map to ``lin1/kernel`` transposed, as :func:`jaxreg.convert.torch_to_flax` does).

    Args:
        num_inputs: flattened input size.
        num_hiddens1: first hidden width.
        num_hiddens2: second hidden width.
        num_outputs: classes.
        dropout1: drop probability after the first hidden layer.
        dropout2: drop probability after the second hidden layer.
        param_dtype: parameter dtype.
        rngs: ``nnx.Rngs`` with a ``params`` (or default) stream for the weights and a
            ``dropout`` (or default) stream for the masks.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> model = DropoutMLP(rngs=nnx.Rngs(0))
        >>> model.eval()
        >>> model(jnp.ones((2, 1, 28, 28))).shape
        (2, 10)
    """

    def __init__(
        self,
        num_inputs: int = 784,
        num_hiddens1: int = 256,
        num_hiddens2: int = 256,
        num_outputs: int = 10,
        dropout1: Any = 0.2,
        dropout2: Any = 0.5,
        *,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_inputs = num_inputs
        self.lin1 = _torch_linear(num_inputs, num_hiddens1, param_dtype, rngs)
        self.drop1 = Dropout(dropout1, rngs=rngs)
        self.lin2 = _torch_linear(num_hiddens1, num_hiddens2, param_dtype, rngs)
        self.drop2 = Dropout(dropout2, rngs=rngs)
        self.lin3 = _torch_linear(num_hiddens2, num_outputs, param_dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of shape ``(N, num_outputs)`` for inputs flattening to ``num_inputs``."""
        x = x.reshape((-1, self.num_inputs))
        x = self.drop1(jax.nn.relu(self.lin1(x)))
        x = self.drop2(jax.nn.relu(self.lin2(x)))
        return self.lin3(x)

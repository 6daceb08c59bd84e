"""Flax NNX support: the dropout and noise layers as NNX modules, and a seed model in NNX.

The layers wrap the functional core (:mod:`jaxreg.dropout`, :mod:`jaxreg.noise`,
:mod:`jaxreg.alpha`, :mod:`jaxreg.spatial`): ``Dropout``, ``VanillaDropout``,
``GaussianDropout``, ``GaussianNoise``, ``AlphaDropout``, ``FeatureAlphaDropout``, ``DropPath``,
``SpatialDropout``, ``Dropout1d/2d/3d``. They are drop-ins for ``flax.nnx.Dropout`` (same
constructor and call signature: ``rate``, ``deterministic``, ``rng_collection``, ``rngs``;
``model.train()``, ``model.eval()`` and ``nnx.view(model, deterministic=...)`` switch them),
with jaxreg's conventions added:

* keys come from an ``nnx.Rngs`` stream forked at construction (one independent stream per
  layer, as ``nnx.Dropout`` does) or from ``rngs=`` at call time; training mode without either
  is a ``ValueError``, never a fixed mask;
* the rate is a traced value: it is held in a :class:`Hyperparameter` variable, which is model
  state, not graph structure, so ``nnx.jit`` traces it and ``layer.rate[...] = 0.3`` between
  calls does not recompile; it is not an ``nnx.Param``, so ``nnx.grad`` and
  ``nnx.Optimizer(..., wrt=nnx.Param)`` leave it alone. A call-time ``rate=`` overrides it
  (``jax.vmap`` over rates works with an explicit key);
* a concrete bad rate is a ``ValueError`` naming it.

Penalties, masks and the torch-equivalent optimizers work on NNX state as they do on Linen
params: ``jaxreg.l2_penalty(nnx.state(model, nnx.Param), mask=jaxreg.weights_only)``, and
``jaxreg.torch_sgd(..., mask=jaxreg.weights_only)`` through ``nnx.Optimizer`` (its ``update``
hands optax the pure state, paths such as ``"lin1/kernel"``; ``weights_only`` selects every
``kernel``, no ``bias``, no norm ``scale``).

Example: seed 003's dropout MLP (smaller), trained with dropout and weight decay on the
weights only (seed 004's param groups):

>>> import jax, jax.numpy as jnp, optax
>>> from flax import nnx
>>> import jaxreg
>>> model = DropoutMLP(16, 32, 32, 3, rngs=nnx.Rngs(params=0, dropout=1))
>>> tx = jaxreg.torch_sgd(0.5, weight_decay=0.01, mask=jaxreg.weights_only)
>>> optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
>>> x, y = jax.random.uniform(jax.random.key(2), (64, 16)), jnp.arange(64) % 3
>>> @nnx.jit
... def train_step(model, optimizer, x, y):
...     def loss_fn(model):
...         logits = model(x)  # training mode: dropout on, keys from the "dropout" stream
...         ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
...         params = nnx.state(model, nnx.Param)
...         return ce + 1e-4 * jaxreg.l1_penalty(params, mask=jaxreg.weights_only)
...     loss, grads = nnx.value_and_grad(loss_fn)(model)
...     optimizer.update(model, grads)
...     return loss
>>> losses = [float(train_step(model, optimizer, x, y)) for _ in range(30)]
>>> losses[-1] < losses[0]
True
>>> model.eval()  # dropout off: deterministic logits
>>> bool(jnp.all(model(x) == model(x)))
True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxreg.init import kaiming_uniform, torch_bias_init
from jaxreg.nnx_dropout import Dropout, Hyperparameter, VanillaDropout
from jaxreg.nnx_noise import (
    AlphaDropout,
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

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

from jaxreg._src.nnx import (
    AlphaDropout,
    DropConnectDense,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    DropoutMLP,
    DropPath,
    FeatureAlphaDropout,
    GaussianDropout,
    GaussianNoise,
    Hyperparameter,
    SpatialDropout,
    VanillaDropout,
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

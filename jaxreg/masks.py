"""Masks: which leaves of a parameter pytree a penalty or a decay applies to.

A ``mask`` argument follows optax's convention (``optax.masked``, ``optax.add_decayed_weights``)
and is one of

* ``None``: every leaf;
* a pytree of Python bools with the structure of the parameters (or a prefix of it, so
  ``{"params": {"Dense_0": True, "Dense_1": False}}`` covers every leaf under each
  module), ``True`` meaning penalized / decayed;
* a callable on the whole parameter tree that returns such a pytree of bools, e.g.
  :func:`weights_only` itself (``mask=jaxreg.weights_only``) or the callable that
  :func:`path_mask` builds from regular expressions or predicates on "/"-joined key paths
  (``mask=jaxreg.path_mask(r"/kernel$")``).

Anything else (a string, a predicate on path strings passed directly, a tree of the wrong
structure, a callable that returns one) is a ``TypeError`` or ``ValueError`` naming ``mask``.

The same masks work on Flax Linen ``params`` dicts, Flax NNX ``nnx.State`` (an ``nnx.Variable``
counts as one leaf, its path is the attribute path without ``.value``: ``"linear/kernel"``) and
Equinox modules filtered to their arrays (``eqx.filter(model, eqx.is_array)``: paths such as
``"layers/0/weight"``).

Masks are static: they are resolved at trace time into Python bools, so a masked
penalty compiles to a sum over the selected leaves only and never costs a recompile.
A mask plays the role of PyTorch's optimizer param groups, e.g. seed 004's
``SGD([{"params": [W1, W2], "weight_decay": 0.01}, {"params": [b1, b2]}])``.
"""

from jaxreg._src.masks import (
    path_mask,
    path_to_str,
    resolve_mask,
    weights_only,
)

__all__ = [
    "path_mask",
    "path_to_str",
    "resolve_mask",
    "weights_only",
]

"""Proximal optax transforms for structured and mixed sparsity: group lasso and elastic net.

Like :func:`jaxreg.l1_prox`, each is placed AFTER the optimizer's step. With ``z = w + update``
(the weights the step would produce) the transform replaces ``z`` by the proximal operator of
``learning_rate * penalty`` at ``z`` and returns the update that lands there, so that
``optax.apply_updates`` gives the proximal-gradient (ISTA) iterate::

    # whole units driven to exact zeros (structured sparsity)
    optax.chain(optax.sgd(lr), jaxreg.group_lasso_prox(strength, lr, mask=weights_only(params)))
    # l1 |w| + l2/2 w**2: sparse and shrunk
    optax.chain(optax.sgd(lr), jaxreg.elastic_net_prox(l1, l2, lr))

A weight (or unit) that the prox sets to zero lands on an exact 0: the returned update is
``0 - w`` and ``w + (0 - w)`` is exactly 0 in IEEE arithmetic. PyTorch has no proximal
operator; the parity suite compares against the same formula written in torch.

Strengths and ``learning_rate`` may be Python floats, traced scalars (a vmapped sweep; changing
them never recompiles) or schedules ``count -> value``; the threshold uses the learning rate of
the step it follows, so pass the same schedule to both.
"""

from jaxreg._src.prox import (
    elastic_net_prox,
    group_lasso_prox,
)

__all__ = [
    "elastic_net_prox",
    "group_lasso_prox",
]

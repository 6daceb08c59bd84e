"""optax transforms for L1 and L2 regularization, with their placement in a chain.

In optax the order of a chain is the behaviour. Gradient-side terms go BEFORE the
optimizer's scaling (they are rescaled by Adam like any gradient); step-side terms go
AFTER it, where updates are already ``-lr * direction`` (optax adds updates to params)::

    # SGD on  loss + l1 * sum|w|  (the subgradient method; seed 002's manual L1)
    optax.chain(jaxreg.add_l1(l1), optax.sgd(lr))
    # proximal gradient: the SGD step, then soft-thresholding -> exact zeros
    optax.chain(optax.sgd(lr), jaxreg.l1_prox(l1, lr))
    # coupled L2 = torch SGD/Adam weight_decay (seed 002, seed 004's param groups)
    optax.chain(jaxreg.coupled_weight_decay(wd, mask), optax.adam(lr))
    # decoupled L2 = AdamW: the decay is not rescaled by Adam
    optax.chain(optax.adam(lr), jaxreg.decoupled_weight_decay(wd, lr, mask))

With plain SGD, coupled and decoupled decay give the same step (``-lr*(g + wd*w)``);
with an adaptive optimizer they differ: coupled decay is divided by Adam's
``sqrt(v)``, decoupled decay is not.

Every strength (``l1``, ``weight_decay``) and ``learning_rate`` may be a Python float, a
traced jnp scalar (a vmapped sweep; changing it never recompiles) or a schedule
``count -> value``; with a schedule the transform keeps a step count in its state.
"""

from jaxreg._src.transforms import (
    ScheduleState,
    add_l1,
    coupled_weight_decay,
    decoupled_weight_decay,
    l1_prox,
)

__all__ = [
    "ScheduleState",
    "add_l1",
    "coupled_weight_decay",
    "decoupled_weight_decay",
    "l1_prox",
]

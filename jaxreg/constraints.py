"""Constraints as optax transforms: the max-norm bound on each unit's incoming weights.

A constraint acts on the parameters the step produces, not on the gradient, so it is placed
AFTER the optimizer (last in the chain) and needs ``params`` in ``update``: with
``z = w + update`` it returns ``project(z) - w``, so that ``optax.apply_updates`` lands on the
projected weights. optax's ``keep_params_nonnegative`` works the same way::

    optax.chain(optax.sgd(lr, momentum=0.9), jaxreg.max_norm(3.0, mask=weights_only(params)))
"""

from jaxreg._src.constraints import (
    max_norm,
)

__all__ = [
    "max_norm",
]

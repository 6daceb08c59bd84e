"""The implementation of :mod:`jaxreg.transforms` (documented there)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxreg._src._toolkit import (
    ScalarOrSchedule,
    ScheduleState,
    cast_like,
    check_nonnegative,
    hparam_value,
    init_state,
    masked_map,
    next_state,
    require_params,
    schedule_count,
    uses_schedule,
)
from jaxreg._src.masks import Mask

__all__ = [
    "ScheduleState",
    "add_l1",
    "coupled_weight_decay",
    "decoupled_weight_decay",
    "l1_prox",
]


def add_l1(l1: ScalarOrSchedule, *, mask: Mask = None) -> optax.GradientTransformation:
    """Adds the L1 subgradient ``l1 * sign(w)`` to the gradient (sign(0) = 0).

    ``optax.chain(add_l1(l1), optax.sgd(lr))`` is exactly SGD on
    ``loss + l1 * sum|w|`` with PyTorch's autograd subgradient (seed 002's
    ``loss = ce + lam * sum(abs(p))``). Place it BEFORE the optimizer's scaling. The
    subgradient method oscillates around zero and never produces exact zeros; use
    :func:`l1_prox` for sparsity, this one to reproduce a PyTorch loss term step for step.
    optax has no L1 transform; this equals differentiating ``l1 * l1_penalty(params)``.

    Args:
      l1: strength >= 0: a float, a traced scalar or a schedule ``count -> l1``.
      mask: which leaves are penalized (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``l1`` is negative, NaN or infinite.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(add_l1(0.1), optax.sgd(1.0))
      >>> params = jnp.array([2.0, 0.0, -1.0])
      >>> updates, _ = tx.update(jnp.ones(3), tx.init(params), params)
      >>> updates
      Array([-1.1, -1. , -0.9], dtype=float32)
    """
    check_nonnegative(l1, "l1", "add_l1")

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, "add_l1")
        strength = hparam_value(l1, schedule_count(state))
        updates = masked_map(
            lambda g, w: g + cast_like(strength, w) * jnp.sign(w), updates, params, mask
        )
        return updates, next_state(state)

    return optax.GradientTransformation(init_state(uses_schedule(l1)), update_fn)


def l1_prox(
    l1: ScalarOrSchedule, learning_rate: ScalarOrSchedule, *, mask: Mask = None
) -> optax.GradientTransformation:
    """Proximal L1 (soft-thresholding), placed AFTER the optimizer's step.

    With ``z = w + update`` (the weights the step would produce), the new weights are
    ``sign(z) * max(|z| - learning_rate * l1, 0)``: the proximal operator of
    ``learning_rate * l1 * |w|``. Weights whose step lands within the threshold become
    exactly 0 and stay there until the gradient pushes them out, which the subgradient
    :func:`add_l1` never achieves (it flips sign around 0). Use ``l1_prox`` when you want
    sparse weights (ISTA / proximal SGD); use ``add_l1`` to reproduce a PyTorch
    ``loss + lam * sum|w|`` run. The threshold uses the same learning rate as the step
    (pass the same schedule), because the prox of the step's objective scales with it.
    PyTorch has no built-in equivalent; it is the L1 update rule seed 004's exercises ask for.
    optax has none either (its ``projections`` are projections, not proximal operators);
    the operator is jaxopt's ``prox_lasso``. :func:`jaxreg.elastic_net_prox` and
    :func:`jaxreg.group_lasso_prox` are its elastic-net and group counterparts.

    Args:
      l1: strength >= 0: a float, a traced scalar or a schedule ``count -> l1``.
      learning_rate: the step's learning rate >= 0 (float, traced or schedule).
      mask: which leaves are thresholded (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``l1`` or ``learning_rate`` is negative, NaN or infinite.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(optax.sgd(0.5), l1_prox(0.5, 0.5))
      >>> params = jnp.array([0.125, 1.5, -0.75])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)
      Array([ 0.  ,  1.25, -0.5 ], dtype=float32)
    """
    check_nonnegative(l1, "l1", "l1_prox")
    check_nonnegative(learning_rate, "learning_rate", "l1_prox")

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, "l1_prox")
        count = schedule_count(state)
        threshold = hparam_value(learning_rate, count) * hparam_value(l1, count)

        def prox(u: jax.Array, w: jax.Array) -> jax.Array:
            z = w + u
            shrunk = jnp.sign(z) * jnp.maximum(jnp.abs(z) - cast_like(threshold, z), 0)
            # w + (0 - w) == 0 exactly, so thresholded weights land on an exact zero.
            return shrunk - w

        return masked_map(prox, updates, params, mask), next_state(state)

    needs_count = uses_schedule(l1, learning_rate)
    return optax.GradientTransformation(init_state(needs_count), update_fn)


def coupled_weight_decay(
    weight_decay: ScalarOrSchedule, *, mask: Mask = None
) -> optax.GradientTransformation:
    """Coupled L2 weight decay: adds ``weight_decay * w`` to the gradient.

    Place it BEFORE the optimizer's scaling: the decay then goes through the momentum
    and, for Adam, is divided by ``sqrt(v)`` like the gradient. This is PyTorch's
    ``weight_decay`` argument of ``SGD`` and ``Adam`` (``grad += wd * p``), seed 002's
    ``SGD(lr=0.01, weight_decay=0.001)`` and, with ``mask=weights_only(params)``, seed
    004's param groups. It equals adding ``weight_decay * l2_penalty(params)`` to the
    loss. It is ``optax.add_decayed_weights`` (the same ``mask`` values and schedules;
    bit-identical updates, a test proves it) placed before the optimizer; it exists here
    for the name, the validation of ``weight_decay`` and the placement documented above.

    Args:
      weight_decay: strength >= 0: a float, a traced scalar or a schedule.
      mask: which leaves decay (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``weight_decay`` is negative, NaN or infinite.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> params = {"W1": jnp.ones(2), "b1": jnp.ones(2)}
      >>> from jaxreg.masks import path_mask
      >>> tx = optax.chain(
      ...     coupled_weight_decay(0.5, mask=path_mask(r"^W")),
      ...     optax.sgd(0.1),
      ... )
      >>> updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
      >>> updates
      {'W1': Array([-0.05, -0.05], dtype=float32), 'b1': Array([-0., -0.], dtype=float32)}
    """
    check_nonnegative(weight_decay, "weight_decay", "coupled_weight_decay")

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, "coupled_weight_decay")
        wd = hparam_value(weight_decay, schedule_count(state))
        updates = masked_map(lambda g, w: g + cast_like(wd, w) * w, updates, params, mask)
        return updates, next_state(state)

    return optax.GradientTransformation(init_state(uses_schedule(weight_decay)), update_fn)


def decoupled_weight_decay(
    weight_decay: ScalarOrSchedule, learning_rate: ScalarOrSchedule, *, mask: Mask = None
) -> optax.GradientTransformation:
    """Decoupled weight decay: adds ``-learning_rate * weight_decay * w`` to the step.

    Place it AFTER the optimizer's step (the updates are already ``-lr * direction``):
    the decay is not rescaled by Adam's ``sqrt(v)`` or accumulated in a momentum. This is
    ``torch.optim.AdamW``'s ``p *= 1 - lr * weight_decay``, multiplied by the learning rate
    as torch does. ``optax.adamw`` does the same: it places ``add_decayed_weights`` after
    ``scale_by_adam`` and before the ``-lr`` scaling, so its decay is ``-lr * wd * w`` too,
    and ``optax.chain(optax.adam(lr), decoupled_weight_decay(wd, lr))`` gives
    ``optax.adamw(lr, weight_decay=wd)``'s updates (equal up to the rounding of
    ``-lr * (a + wd * w)`` versus ``-lr * a - (lr * wd) * w``: measured 1 ulp in float32 and
    float64 over 25 steps). What this transform adds is the placement after any optimizer
    (torch's "decoupled" for SGD with momentum, RMSprop, ...) and jaxreg's masks. With plain
    SGD it equals :func:`coupled_weight_decay`; with Adam it does not. Seeds: 002 and 004 use
    the coupled form (torch SGD ``weight_decay``); this is its decoupled counterpart.

    Args:
      weight_decay: strength >= 0: a float, a traced scalar or a schedule.
      learning_rate: the learning rate of the step it follows (float, traced or schedule).
      mask: which leaves decay (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``weight_decay`` or ``learning_rate`` is negative, NaN or
        infinite.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(optax.adam(1e-3), decoupled_weight_decay(1e-2, 1e-3))
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
      >>> updates
      Array([-1.e-05,  2.e-05], dtype=float32)
    """
    check_nonnegative(weight_decay, "weight_decay", "decoupled_weight_decay")
    check_nonnegative(learning_rate, "learning_rate", "decoupled_weight_decay")

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, "decoupled_weight_decay")
        count = schedule_count(state)
        factor = hparam_value(learning_rate, count) * hparam_value(weight_decay, count)
        updates = masked_map(lambda u, w: u - cast_like(factor, w) * w, updates, params, mask)
        return updates, next_state(state)

    needs_count = uses_schedule(weight_decay, learning_rate)
    return optax.GradientTransformation(init_state(needs_count), update_fn)

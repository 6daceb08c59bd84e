"""The implementation of :mod:`jaxreg.prox` (documented there)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxreg._src._toolkit import (
    ScalarOrSchedule,
    cast_like,
    check_axis,
    check_nonnegative,
    group_norms,
    hparam_value,
    init_state,
    masked_map,
    next_state,
    require_params,
    schedule_count,
    unit_axes,
    uses_schedule,
)
from jaxreg._src.masks import Mask

__all__ = ["elastic_net_prox", "group_lasso_prox"]


def group_lasso_prox(
    strength: ScalarOrSchedule,
    learning_rate: ScalarOrSchedule,
    *,
    axis: int | tuple[int, ...] = 0,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """Proximal group lasso (block soft-thresholding), placed AFTER the optimizer's step.

    The prox of ``t * ||g||_2`` per group ``g`` (``t = learning_rate * strength``): with ``z``
    the weights the step would produce, each group becomes ``z_g * max(1 - t / ||z_g||, 0)``.
    A unit whose incoming weights have norm ``<= t`` is switched off as a whole (exact zeros),
    the others shrink toward 0 along their own direction. Groups are as in
    :func:`jaxreg.group_lasso_penalty`: ``axis=0`` groups a Flax ``Dense`` kernel ``(in, out)``
    by output unit. Proximal SGD on ``loss + strength * group_lasso_penalty(params)``.
    PyTorch has no built-in equivalent (after ``opt.step()``, per ``Linear.weight`` of shape
    ``(out, in)``: ``w.mul_(torch.clamp(1 - t / torch.linalg.vector_norm(w, dim=1,
    keepdim=True), min=0))``); optax has none either.

    Args:
      strength: group-lasso strength >= 0: a float, a traced scalar or a schedule.
      learning_rate: the learning rate of the step it follows, >= 0 (float, traced, schedule).
      axis: the axis or axes of one group (static); every selected leaf needs them.
      mask: which leaves are thresholded (see :mod:`jaxreg.masks`); ``None``: all. Biases
        usually stay out: ``mask=weights_only(params)``.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``strength`` or ``learning_rate`` is negative, NaN or
        infinite, or ``axis`` is not an int / tuple of ints in range for a selected leaf.

    References:
      Yuan and Lin, "Model selection and estimation in regression with grouped variables",
      JRSS B 2006; Scardapane et al., "Group sparse regularization for deep neural networks",
      Neurocomputing 2017; Parikh and Boyd, "Proximal Algorithms", 2014, section 6.5.4.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> kernel = jnp.array([[3.0, 0.3], [4.0, 0.4]])  # unit norms 5 and 0.5
      >>> tx = optax.chain(optax.sgd(0.5), group_lasso_prox(2.0, 0.5))  # threshold 1
      >>> updates, _ = tx.update(jnp.zeros((2, 2)), tx.init(kernel), kernel)
      >>> optax.apply_updates(kernel, updates)
      Array([[2.4, 0. ],
             [3.2, 0. ]], dtype=float32)
    """
    owner = "group_lasso_prox"
    check_nonnegative(strength, "strength", owner)
    check_nonnegative(learning_rate, "learning_rate", owner)
    axes = check_axis(axis, owner)

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, owner)
        count = schedule_count(state)
        threshold = hparam_value(learning_rate, count) * hparam_value(strength, count)

        def prox(u: jax.Array, w: jax.Array) -> jax.Array:
            z = w + u
            norms = group_norms(z, unit_axes(axes, z.shape, owner))
            t = cast_like(threshold, z)
            # A NaN unit stays NaN (``~(norms <= t)``), and t = 0 is the identity even for a unit
            # whose squared norm XLA's CPU backend flushes to zero (it flushes subnormals).
            keep = ~(norms <= t) | (t == 0)
            scale = 1 - t / jnp.where(norms == 0, jnp.ones_like(norms), norms)
            return jnp.where(keep, z * scale, jnp.zeros_like(z)) - w

        return masked_map(prox, updates, params, mask), next_state(state)

    return optax.GradientTransformation(
        init_state(uses_schedule(strength, learning_rate)), update_fn
    )


def elastic_net_prox(
    l1: ScalarOrSchedule,
    l2: ScalarOrSchedule,
    learning_rate: ScalarOrSchedule,
    *,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """Proximal elastic net, placed AFTER the optimizer's step.

    The prox of ``learning_rate * (l1 * |w| + l2 / 2 * w**2)``: with ``z`` the weights the
    step would produce, the new weights are
    ``sign(z) * max(|z| - learning_rate * l1, 0) / (1 + learning_rate * l2)``, soft-thresholding
    (exact zeros, as :func:`jaxreg.l1_prox`) followed by a shrink. It is not
    ``l1_prox`` chained with :func:`jaxreg.decoupled_weight_decay`: that multiplies by
    ``1 - learning_rate * l2`` (an explicit step on the L2 term), this divides by
    ``1 + learning_rate * l2`` (the implicit one), which is stable for any step size.
    With ``l2 = 0`` it is ``l1_prox``. PyTorch has no built-in equivalent (after
    ``opt.step()``: ``w.copy_(torch.sign(w) * torch.clamp(w.abs() - lr * l1, min=0) /
    (1 + lr * l2))``).

    Args:
      l1: L1 strength >= 0: a float, a traced scalar or a schedule.
      l2: L2 strength >= 0 (the penalty is ``l2 / 2 * w**2``): float, traced or schedule.
      learning_rate: the learning rate of the step it follows, >= 0 (float, traced, schedule).
      mask: which leaves are affected (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation``; ``update`` requires ``params``.

    Raises:
      ValueError: if a concrete ``l1``, ``l2`` or ``learning_rate`` is negative, NaN or
        infinite.

    References:
      Zou and Hastie, "Regularization and variable selection via the elastic net", JRSS B
      2005; Parikh and Boyd, "Proximal Algorithms", 2014, section 6.5.3.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(optax.sgd(0.5), elastic_net_prox(0.5, 2.0, 0.5))
      >>> params = jnp.array([0.125, 1.5, -0.75])
      >>> updates, _ = tx.update(jnp.zeros(3), tx.init(params), params)
      >>> optax.apply_updates(params, updates)  # soft-threshold by 0.25, then / 2
      Array([ 0.   ,  0.625, -0.25 ], dtype=float32)
    """
    owner = "elastic_net_prox"
    check_nonnegative(l1, "l1", owner)
    check_nonnegative(l2, "l2", owner)
    check_nonnegative(learning_rate, "learning_rate", owner)

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, owner)
        count = schedule_count(state)
        lr = hparam_value(learning_rate, count)
        threshold = lr * hparam_value(l1, count)
        shrink = 1 + lr * hparam_value(l2, count)

        def prox(u: jax.Array, w: jax.Array) -> jax.Array:
            z = w + u
            soft = jnp.sign(z) * jnp.maximum(jnp.abs(z) - cast_like(threshold, z), 0)
            return soft / cast_like(shrink, z) - w

        return masked_map(prox, updates, params, mask), next_state(state)

    return optax.GradientTransformation(init_state(uses_schedule(l1, l2, learning_rate)), update_fn)

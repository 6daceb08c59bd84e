"""``torch.optim.SGD`` as an optax GradientTransformation (``torch/optim/sgd.py``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg._src._toolkit import (
    ScalarOrSchedule,
    cast_like,
    check_finite,
    check_optim_flags,
    check_torch,
    concrete_float,
    decay_flags,
    hparam_value,
    require_params,
)
from jaxreg._src.masks import Mask

__all__ = ["TorchSGDState", "torch_sgd"]


class TorchSGDState(NamedTuple):
    """State of :func:`torch_sgd`.

    Attributes:
      count: optimizer steps taken (torch keeps it implicitly: ``buf is None`` at step 0).
      momentum_buffer: torch's ``momentum_buffer`` per leaf, or ``None`` when momentum is
        a concrete 0 (torch keeps no buffer then).
    """

    count: jax.Array
    momentum_buffer: Any


def torch_sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float | jax.Array = 0.0,
    dampening: float | jax.Array = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    differentiable: bool = False,
    fused: bool | None = None,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.SGD``, reproduced step for step.

    Per leaf, with ``g`` the gradient (``-g`` if ``maximize``): ``g += weight_decay * p``
    (coupled, masked; with ``maximize`` the decay still pulls toward 0, as torch's); with
    momentum, ``buf = g`` on the first step, then ``buf = momentum * buf +
    (1 - dampening) * g``, and the direction is ``g + momentum * buf`` (Nesterov) or
    ``buf``; the update is ``-lr * direction``. Seeds 001-004 train with it (seed 002:
    ``SGD(lr=0.01, weight_decay=0.001)``, seed 004: param groups = ``mask``).

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr`` (torch
        default 1e-3).
      momentum: momentum factor >= 0 (torch default 0).
      dampening: dampening for momentum (torch default 0).
      weight_decay: coupled L2 strength >= 0 (float, traced or schedule).
      nesterov: Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
      maximize: ascend the objective (static bool).
      foreach: torch implementation switch; accepted and ignored (module docstring).
      differentiable: torch implementation switch; accepted and ignored.
      fused: torch implementation switch; accepted and ignored.
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchSGDState`; ``update``
      requires ``params`` when ``weight_decay`` is nonzero.

    Raises:
      ValueError: torch's own validation errors, with torch's message (negative ``lr``,
        ``momentum`` or ``weight_decay``; ``nesterov`` without momentum or with dampening;
        ``fused`` with ``differentiable`` or ``foreach``), NaN or infinite values, and a
        flag that is not a bool.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = torch_sgd(0.1, momentum=0.9, dampening=0.5)
      >>> params = jnp.array([1.0])
      >>> state = tx.init(params)
      >>> u1, state = tx.update(jnp.array([1.0]), state, params)  # buf = g
      >>> u2, state = tx.update(jnp.array([1.0]), state, params)  # 0.9 * 1 + 0.5 * 1
      >>> u1, u2
      (Array([-0.1], dtype=float32), Array([-0.14], dtype=float32))
    """
    owner = "torch_sgd"
    check_torch(lr, "lr", owner, "Invalid learning rate")
    check_torch(momentum, "momentum", owner, "Invalid momentum value")
    check_torch(weight_decay, "weight_decay", owner, "Invalid weight_decay value")
    check_finite(dampening, "dampening", owner)
    check_optim_flags(
        owner,
        {"nesterov": nesterov, "maximize": maximize, "differentiable": differentiable},
        {"foreach": foreach, "fused": fused, "differentiable": differentiable},
    )
    m_value, d_value = concrete_float(momentum), concrete_float(dampening)
    if nesterov and (
        (m_value is not None and m_value <= 0) or (d_value is not None and d_value != 0)
    ):
        raise ValueError(
            f"{owner}: Nesterov momentum requires a momentum > 0 and zero dampening, got "
            f"momentum={momentum!r}, dampening={dampening!r} (torch: 'Nesterov momentum "
            "requires a momentum and zero dampening')"
        )
    has_buffer = m_value != 0.0

    def init_fn(params: Any) -> TorchSGDState:
        buf = jax.tree.map(jnp.zeros_like, params) if has_buffer else None
        return TorchSGDState(count=jnp.zeros([], jnp.int32), momentum_buffer=buf)

    def update_fn(
        grads: Any, state: TorchSGDState, params: Any = None
    ) -> tuple[Any, TorchSGDState]:
        count = state.count
        step_lr = hparam_value(lr, count)
        wd = hparam_value(weight_decay, count)
        if concrete_float(weight_decay) != 0.0:
            require_params(params, owner)
        flags = decay_flags(mask, grads if params is None else params, weight_decay)
        first = count == 0

        def leaf(g: jax.Array, p: Any, buf: Any, decay: bool) -> tuple[jax.Array, Any]:
            if maximize:
                g = -g
            if decay:
                g = g + cast_like(wd, g) * p
            if not has_buffer:
                return cast_like(-step_lr, g) * g, None
            mom = cast_like(momentum, g)
            buf = jnp.where(first, g, buf * mom + cast_like(1 - dampening, g) * g)
            direction = g + mom * buf if nesterov else buf
            if m_value is None:
                # A traced momentum may be 0, where torch bypasses the buffer (and its
                # dampening) entirely.
                direction = jnp.where(mom == 0, g, direction)
            return cast_like(-step_lr, g) * direction, buf

        # Flattened up to grads' structure: a None inside the tree (Equinox's eqx.filter
        # stand-in) is an empty subtree, never a leaf handed to `leaf`.
        treedef = jax.tree.structure(grads)
        absent = [None] * treedef.num_leaves
        bufs = treedef.flatten_up_to(state.momentum_buffer) if has_buffer else absent
        p_leaves = treedef.flatten_up_to(params) if params is not None else absent
        g_leaves, f_leaves = treedef.flatten_up_to(grads), treedef.flatten_up_to(flags)
        pairs = [leaf(*a) for a in zip(g_leaves, p_leaves, bufs, f_leaves, strict=True)]
        updates = treedef.unflatten([u for u, _ in pairs])
        new_buf = treedef.unflatten([b for _, b in pairs]) if has_buffer else None
        return updates, TorchSGDState(
            count=optax.safe_int32_increment(count), momentum_buffer=new_buf
        )

    return optax.GradientTransformation(init_fn, update_fn)

"""``torch.optim.Adam`` and ``AdamW`` as optax GradientTransformations (``torch/optim/adam.py``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg._src._toolkit import (
    ScalarOrSchedule,
    cast_like,
    check_optim_flags,
    check_torch,
    concrete_float,
    decay_flags,
    hparam_value,
    is_concrete,
    reject_non_number,
    require_params,
)
from jaxreg._src.masks import Mask

__all__ = ["TorchAdamState", "torch_adam", "torch_adamw"]


class TorchAdamState(NamedTuple):
    """State of :func:`torch_adam` / :func:`torch_adamw`: torch's ``step``,
    ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad=True``, ``max_exp_avg_sq`` (else None)."""

    count: jax.Array
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any = None


def _lerp(start: jax.Array, end: jax.Array, weight: jax.Array) -> jax.Array:
    # torch's lerp switches formula at |weight| = 0.5 for accuracy; exp_avg.lerp_(g, 1-b1)
    # takes the first branch whenever beta1 > 0.5.
    return jnp.where(
        jnp.abs(weight) < 0.5,
        start + weight * (end - start),
        end - (end - start) * (1 - weight),
    )


def _log(beta: Any) -> Any:
    # torch evaluates 1 - beta**step in float64. In float32, 1 - b**t loses the low bits
    # of b**t (a relative error of ~1e-7 in the first steps' step size);
    # -expm1(t * log(b)), with log(b) taken in float64 when b is concrete, keeps the
    # bias corrections within an ulp of torch's and Adam's trajectory within ~1e-7.
    if is_concrete(beta):
        with np.errstate(divide="ignore"):
            return np.log(np.float64(beta))
    return jnp.log(beta)


def _torch_adam(
    owner: str,
    lr: ScalarOrSchedule,
    betas: tuple[Any, Any],
    eps: Any,
    weight_decay: ScalarOrSchedule,
    mask: Mask,
    decoupled: bool,
    amsgrad: bool,
    maximize: bool,
    switches: dict[str, Any],
) -> optax.GradientTransformation:
    check_torch(lr, "lr", owner, "Invalid learning rate")
    check_torch(eps, "eps", owner, "Invalid epsilon value")
    check_torch(weight_decay, "weight_decay", owner, "Invalid weight_decay value")
    flags = {"amsgrad": amsgrad, "maximize": maximize, "decoupled_weight_decay": decoupled}
    flags.update(capturable=switches["capturable"], differentiable=switches["differentiable"])
    check_optim_flags(owner, flags, switches)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    for index, beta in enumerate(betas):
        reject_non_number(beta, f"betas[{index}]", owner, "a number in [0, 1)")
        value = concrete_float(beta)
        if is_concrete(beta) and (value is None or not 0.0 <= value < 1.0):
            raise ValueError(
                f"{owner}: betas[{index}] must be in [0, 1), got {beta!r} (torch: 'Invalid "
                f"beta parameter at index {index}: {beta}')"
            )

    def init_fn(params: Any) -> TorchAdamState:
        return TorchAdamState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=jax.tree.map(jnp.zeros_like, params),
            exp_avg_sq=jax.tree.map(jnp.zeros_like, params),
            max_exp_avg_sq=jax.tree.map(jnp.zeros_like, params) if amsgrad else None,
        )

    def update_fn(
        grads: Any, state: TorchAdamState, params: Any = None
    ) -> tuple[Any, TorchAdamState]:
        count = state.count
        step_lr = hparam_value(lr, count)
        wd = hparam_value(weight_decay, count)
        if concrete_float(weight_decay) != 0.0:
            require_params(params, owner)
        decays = decay_flags(mask, grads if params is None else params, weight_decay)
        step = optax.safe_int32_increment(count)
        log_beta1, log_beta2 = _log(beta1), _log(beta2)

        def leaf(g, p, m, v, v_max, decay):
            dtype = g.dtype
            if maximize:
                g = -g
            if decay and not decoupled:
                g = g + cast_like(wd, g) * p
            m = _lerp(m, g, cast_like(1 - beta1, g))
            v = v * cast_like(beta2, g) + cast_like(1 - beta2, g) * g * g
            t = step.astype(dtype)
            bias_correction1 = -jnp.expm1(t * cast_like(log_beta1, g))
            bias_correction2 = -jnp.expm1(t * cast_like(log_beta2, g))
            step_size = cast_like(step_lr, g) / bias_correction1
            if amsgrad:
                # torch keeps the running maximum of exp_avg_sq and normalizes by it
                v_max = jnp.maximum(v_max, v)
            second = v_max if amsgrad else v
            denom = jnp.sqrt(second) / jnp.sqrt(bias_correction2) + cast_like(eps, g)
            adam_step = -step_size * m / denom
            if decay and decoupled:
                # torch: p.mul_(1 - lr * wd) then p.addcdiv_(...). Written as
                # (p * c + step) - p so that p + update reproduces torch's rounding.
                shrink = cast_like(1 - step_lr * wd, g)
                return (p * shrink + adam_step) - p, m, v, v_max
            return adam_step, m, v, v_max

        # Flattened up to grads' structure: a None inside the tree (Equinox's eqx.filter
        # stand-in) is an empty subtree, never a leaf handed to `leaf`.
        treedef = jax.tree.structure(grads)
        absent = [None] * treedef.num_leaves
        rows = [
            leaf(*args)
            for args in zip(
                treedef.flatten_up_to(grads),
                treedef.flatten_up_to(params) if params is not None else absent,
                treedef.flatten_up_to(state.exp_avg),
                treedef.flatten_up_to(state.exp_avg_sq),
                treedef.flatten_up_to(state.max_exp_avg_sq) if amsgrad else absent,
                treedef.flatten_up_to(decays),
                strict=True,
            )
        ]
        updates, mu, nu, nu_max = (treedef.unflatten([r[i] for r in rows]) for i in range(4))
        return updates, TorchAdamState(
            count=step, exp_avg=mu, exp_avg_sq=nu, max_exp_avg_sq=nu_max if amsgrad else None
        )

    return optax.GradientTransformation(init_fn, update_fn)


def torch_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: float | jax.Array = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    amsgrad: bool = False,
    *,
    foreach: bool | None = None,
    maximize: bool = False,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
    decoupled_weight_decay: bool = False,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.Adam``, reproduced step for step (coupled weight decay by default).

    Per leaf at step ``t`` (from 1), with ``g`` the gradient (``-g`` if ``maximize``):
    ``g += weight_decay * p`` (masked); ``m = lerp(m, g, 1 - beta1)``;
    ``v = beta2 * v + (1 - beta2) * g * g``; with ``amsgrad``, ``v_max = max(v_max, v)``
    replaces ``v`` below; ``step_size = lr / (1 - beta1**t)``;
    ``denom = sqrt(v) / sqrt(1 - beta2**t) + eps``; update ``-step_size * m / denom``.
    ``eps`` is added after the bias correction of ``sqrt(v)``, as in torch and optax.
    ``decoupled_weight_decay=True`` is torch's switch that makes Adam AdamW
    (:func:`torch_adamw`). Seed 002 trains its regression nets with ``Adam(lr=0.001)``
    and ``Adam(lr=0.01)``.

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr``.
      betas: ``(beta1, beta2)``, each in [0, 1).
      eps: term added to the denominator, >= 0.
      weight_decay: L2 strength >= 0 (float, traced or schedule), coupled unless
        ``decoupled_weight_decay``.
      amsgrad: AMSGrad's running maximum of the second moment (static bool).
      foreach: torch implementation switch; accepted and ignored (module docstring).
      maximize: ascend the objective (static bool).
      capturable: torch implementation switch; accepted and ignored.
      differentiable: torch implementation switch; accepted and ignored.
      fused: torch implementation switch; accepted and ignored.
      decoupled_weight_decay: AdamW's decay ``p *= 1 - lr * weight_decay`` (static bool).
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchAdamState`.

    Raises:
      ValueError: torch's validation errors, with torch's message (negative ``lr``,
        ``eps`` or ``weight_decay``; a beta outside [0, 1); ``fused`` with
        ``differentiable`` or ``foreach``), NaN or infinite values, a flag not a bool.

    References:
      Kingma and Ba, "Adam: a method for stochastic optimization", ICLR 2015; Reddi et
      al., "On the convergence of Adam and beyond", ICLR 2018 (AMSGrad).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = torch_adam(0.1)
      >>> params = jnp.array([1.0, -1.0])
      >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(params), params)
      >>> updates  # the first Adam step is -lr * sign(g)
      Array([-0.1,  0.1], dtype=float32)
    """
    switches = {"foreach": foreach, "capturable": capturable}
    switches.update(differentiable=differentiable, fused=fused)
    return _torch_adam(
        "torch_adam", lr, betas, eps, weight_decay, mask, decoupled_weight_decay, amsgrad,
        maximize, switches,
    )  # fmt: skip


def torch_adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: float | jax.Array = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.AdamW``, reproduced step for step (decoupled weight decay).

    :func:`torch_adam` with ``decoupled_weight_decay=True``, as in torch. The decay
    ``p *= 1 - lr * weight_decay`` is applied to the masked leaves before the Adam step
    and is multiplied by the learning rate, as in torch and in ``optax.adamw``; the Adam
    moments never see it. Default ``weight_decay=1e-2`` as torch's. Not used by the seeds
    directly; it is the decoupled counterpart of seed 002's "L2 in the optimizer" and of
    :func:`jaxreg.decoupled_weight_decay`.

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr``.
      betas: ``(beta1, beta2)``, each in [0, 1).
      eps: term added to the denominator, >= 0.
      weight_decay: decoupled decay >= 0 (float, traced or schedule).
      amsgrad: AMSGrad's running maximum of the second moment (static bool).
      maximize: ascend the objective (static bool); the decay still shrinks toward 0.
      foreach: torch implementation switch; accepted and ignored (module docstring).
      capturable: torch implementation switch; accepted and ignored.
      differentiable: torch implementation switch; accepted and ignored.
      fused: torch implementation switch; accepted and ignored.
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchAdamState`; ``update``
      requires ``params`` when ``weight_decay`` is nonzero.

    Raises:
      ValueError: torch's validation errors, with torch's message, NaN or infinite
        values, a flag not a bool.

    References:
      Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = torch_adamw(0.1, weight_decay=0.5)
      >>> params = jnp.array([2.0])
      >>> updates, _ = tx.update(jnp.array([0.0]), tx.init(params), params)
      >>> optax.apply_updates(params, updates)  # 2 * (1 - 0.1 * 0.5)
      Array([1.9], dtype=float32)
    """
    switches = {"foreach": foreach, "capturable": capturable}
    switches.update(differentiable=differentiable, fused=fused)
    return _torch_adam(
        "torch_adamw", lr, betas, eps, weight_decay, mask, True, amsgrad, maximize, switches
    )

"""torch.optim's SGD, Adam and AdamW as optax GradientTransformations, step for step.

Each optimizer returns updates that are ADDED to the parameters
(``optax.apply_updates``) and follows PyTorch 2.x's single-tensor CPU implementation
(``torch/optim/sgd.py``, ``adam.py``) operation by operation. Plain SGD is bit-identical
to torch in float32; with momentum or Adam, float32 runs agree to ~1e-7 of the
parameters' scale per step (XLA and torch fuse different multiply-adds into FMAs, and
torch's float32 ``sqrt`` is not correctly rounded), float64 runs to ~1e-12.
Differences from the optax optimizers that a PyTorch user would trip over:

* ``torch_sgd``'s momentum buffer starts as the first gradient itself, so dampening
  (which ``optax.sgd`` does not have) only applies from step 2 on: a zero-initialized
  buffer would make the first step ``(1 - dampening) * g``. Nesterov uses
  ``g + momentum * buf``.
* ``weight_decay`` of ``torch_sgd``/``torch_adam`` is coupled (added to the gradient
  before the momentum / Adam moments); ``torch_adamw``'s is decoupled and multiplied by
  the learning rate (``p *= 1 - lr * wd``), and defaults to 1e-2.
* ``mask`` plays torch's param groups: leaves outside the mask get ``weight_decay=0``
  (seed 004: ``SGD([{"params": [W1, W2], "weight_decay": 0.01}, {"params": [b1, b2]}])``
  is ``torch_sgd(0.1, weight_decay=0.01, mask=weights_only(params))``).

``lr`` and ``weight_decay`` may be Python floats, traced jnp scalars (vmapped sweeps, no
recompilation) or optax schedules ``count -> value`` (count = steps taken so far, like a
``torch.optim.lr_scheduler`` stepped once per optimizer step); ``momentum``,
``dampening``, ``betas`` and ``eps`` may be floats or traced scalars.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.masks import Mask, resolve_mask
from jaxreg.transforms import (
    ScalarOrSchedule,
    _cast_like,
    _check_nonnegative,
    _hparam_value,
    _require_params,
)

__all__ = ["TorchAdamState", "TorchSGDState", "torch_adam", "torch_adamw", "torch_sgd"]


class TorchSGDState(NamedTuple):
    """State of :func:`torch_sgd`.

    Attributes:
      count: optimizer steps taken (torch keeps it implicitly: ``buf is None`` at step 0).
      momentum_buffer: torch's ``momentum_buffer`` per leaf, or ``None`` when momentum is
        a concrete 0 (torch keeps no buffer then).
    """

    count: jax.Array
    momentum_buffer: Any


class TorchAdamState(NamedTuple):
    """State of :func:`torch_adam` / :func:`torch_adamw`: torch's ``step``,
    ``exp_avg`` and ``exp_avg_sq``."""

    count: jax.Array
    exp_avg: Any
    exp_avg_sq: Any


def _is_concrete(value: Any) -> bool:
    return not callable(value) and not isinstance(value, jax.core.Tracer)


def _concrete_float(value: Any) -> float | None:
    if not _is_concrete(value):
        return None
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return float(arr) if arr.ndim == 0 else None


def _check_float(value: Any, name: str, owner: str) -> None:
    if not _is_concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}") from err
    if arr.ndim != 0 or not np.isfinite(arr):
        raise ValueError(f"{owner}: {name} must be a finite scalar, got {value!r}")


def _decay_flags(mask: Mask, params: Any, weight_decay: Any) -> Any:
    if _concrete_float(weight_decay) == 0.0:
        # torch skips the decay term entirely when weight_decay == 0 (no 0 * p added).
        return jax.tree.map(lambda _: False, params)
    return resolve_mask(mask, params)


def torch_sgd(
    lr: ScalarOrSchedule,
    momentum: float | jax.Array = 0.0,
    dampening: float | jax.Array = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.SGD``, reproduced step for step.

    Per leaf, with ``g`` the gradient: ``g += weight_decay * p`` (coupled, masked); with
    momentum, ``buf = g`` on the first step, then ``buf = momentum * buf +
    (1 - dampening) * g``, and the direction is ``g + momentum * buf`` (Nesterov) or
    ``buf``; the update is ``-lr * direction``. Seeds 001-004 train with it (seed 002:
    ``SGD(lr=0.01, weight_decay=0.001)``, seed 004: param groups = ``mask``).

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr``.
      momentum: momentum factor >= 0 (torch default 0).
      dampening: dampening for momentum (torch default 0).
      weight_decay: coupled L2 strength >= 0 (float, traced or schedule).
      nesterov: Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchSGDState`; ``update``
      requires ``params`` when ``weight_decay`` is nonzero.

    Raises:
      ValueError: torch's own validation errors (negative ``lr``, ``momentum`` or
        ``weight_decay``; ``nesterov`` without momentum or with dampening), and NaN or
        infinite values.

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
    _check_nonnegative(lr, "lr", owner)
    _check_nonnegative(momentum, "momentum", owner)
    _check_nonnegative(weight_decay, "weight_decay", owner)
    _check_float(dampening, "dampening", owner)
    if not isinstance(nesterov, bool):
        raise ValueError(f"{owner}: nesterov must be a bool, got {nesterov!r}")
    m_value, d_value = _concrete_float(momentum), _concrete_float(dampening)
    if nesterov and (
        (m_value is not None and m_value <= 0) or (d_value is not None and d_value != 0)
    ):
        raise ValueError(
            f"{owner}: Nesterov momentum requires a momentum > 0 and zero dampening, got "
            f"momentum={momentum!r}, dampening={dampening!r}"
        )
    has_buffer = m_value != 0.0

    def init_fn(params: Any) -> TorchSGDState:
        buf = jax.tree.map(jnp.zeros_like, params) if has_buffer else None
        return TorchSGDState(count=jnp.zeros([], jnp.int32), momentum_buffer=buf)

    def update_fn(
        grads: Any, state: TorchSGDState, params: Any = None
    ) -> tuple[Any, TorchSGDState]:
        count = state.count
        step_lr = _hparam_value(lr, count)
        wd = _hparam_value(weight_decay, count)
        if _concrete_float(weight_decay) != 0.0:
            _require_params(params, owner)
        flags = _decay_flags(mask, grads if params is None else params, weight_decay)
        first = count == 0

        def leaf(g: jax.Array, p: Any, buf: Any, decay: bool) -> tuple[jax.Array, Any]:
            if decay:
                g = g + _cast_like(wd, g) * p
            if not has_buffer:
                return _cast_like(-step_lr, g) * g, None
            mom = _cast_like(momentum, g)
            buf = jnp.where(first, g, buf * mom + _cast_like(1 - dampening, g) * g)
            direction = g + mom * buf if nesterov else buf
            if m_value is None:
                # A traced momentum may be 0, where torch bypasses the buffer (and its
                # dampening) entirely.
                direction = jnp.where(mom == 0, g, direction)
            return _cast_like(-step_lr, g) * direction, buf

        bufs = state.momentum_buffer if has_buffer else jax.tree.map(lambda _: None, grads)
        p_tree = params if params is not None else jax.tree.map(lambda _: None, grads)
        out = jax.tree.map(leaf, grads, p_tree, bufs, flags, is_leaf=lambda x: x is None)
        treedef = jax.tree.structure(grads)
        pairs = treedef.flatten_up_to(out)
        updates = treedef.unflatten([u for u, _ in pairs])
        new_buf = treedef.unflatten([b for _, b in pairs]) if has_buffer else None
        return updates, TorchSGDState(
            count=optax.safe_int32_increment(count), momentum_buffer=new_buf
        )

    return optax.GradientTransformation(init_fn, update_fn)


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
    if _is_concrete(beta):
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
) -> optax.GradientTransformation:
    _check_nonnegative(lr, "lr", owner)
    _check_nonnegative(eps, "eps", owner)
    _check_nonnegative(weight_decay, "weight_decay", owner)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    for index, beta in enumerate(betas):
        value = _concrete_float(beta)
        if _is_concrete(beta) and (value is None or not 0.0 <= value < 1.0):
            raise ValueError(
                f"{owner}: betas[{index}] must be in [0, 1) (torch: 'Invalid beta parameter "
                f"at index {index}'), got {beta!r}"
            )

    def init_fn(params: Any) -> TorchAdamState:
        return TorchAdamState(
            count=jnp.zeros([], jnp.int32),
            exp_avg=jax.tree.map(jnp.zeros_like, params),
            exp_avg_sq=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(
        grads: Any, state: TorchAdamState, params: Any = None
    ) -> tuple[Any, TorchAdamState]:
        count = state.count
        step_lr = _hparam_value(lr, count)
        wd = _hparam_value(weight_decay, count)
        if _concrete_float(weight_decay) != 0.0:
            _require_params(params, owner)
        flags = _decay_flags(mask, grads if params is None else params, weight_decay)
        step = optax.safe_int32_increment(count)
        log_beta1, log_beta2 = _log(beta1), _log(beta2)

        def leaf(g, p, m, v, decay):
            dtype = g.dtype
            if decay and not decoupled:
                g = g + _cast_like(wd, g) * p
            m = _lerp(m, g, _cast_like(1 - beta1, g))
            v = v * _cast_like(beta2, g) + _cast_like(1 - beta2, g) * g * g
            t = step.astype(dtype)
            bias_correction1 = -jnp.expm1(t * _cast_like(log_beta1, g))
            bias_correction2 = -jnp.expm1(t * _cast_like(log_beta2, g))
            step_size = _cast_like(step_lr, g) / bias_correction1
            denom = jnp.sqrt(v) / jnp.sqrt(bias_correction2) + _cast_like(eps, g)
            adam_step = -step_size * m / denom
            if decay and decoupled:
                # torch: p.mul_(1 - lr * wd) then p.addcdiv_(...). Written as
                # (p * c + step) - p so that p + update reproduces torch's rounding.
                shrink = _cast_like(1 - step_lr * wd, g)
                return (p * shrink + adam_step) - p, m, v
            return adam_step, m, v

        p_tree = params if params is not None else jax.tree.map(lambda _: None, grads)
        out = jax.tree.map(
            leaf,
            grads,
            p_tree,
            state.exp_avg,
            state.exp_avg_sq,
            flags,
            is_leaf=lambda x: x is None,
        )
        treedef = jax.tree.structure(grads)
        triples = treedef.flatten_up_to(out)
        updates, mu, nu = (treedef.unflatten([t[i] for t in triples]) for i in range(3))
        return updates, TorchAdamState(count=step, exp_avg=mu, exp_avg_sq=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def torch_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: float | jax.Array = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.Adam``, reproduced step for step (coupled weight decay).

    Per leaf at step ``t`` (from 1): ``g += weight_decay * p`` (masked);
    ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g``;
    ``step_size = lr / (1 - beta1**t)``; ``denom = sqrt(v) / sqrt(1 - beta2**t) + eps``;
    update ``-step_size * m / denom``. Note that ``eps`` is added after the bias
    correction of ``sqrt(v)``, as in torch and optax. Seed 002 trains its regression nets
    with ``Adam(lr=0.001)`` and ``Adam(lr=0.01)``.

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr``.
      betas: ``(beta1, beta2)``, each in [0, 1).
      eps: term added to the denominator, >= 0.
      weight_decay: coupled L2 strength >= 0 (float, traced or schedule).
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchAdamState`.

    Raises:
      ValueError: torch's validation errors (negative ``lr``, ``eps`` or
        ``weight_decay``; a beta outside [0, 1)), and NaN or infinite values.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = torch_adam(0.1)
      >>> params = jnp.array([1.0, -1.0])
      >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(params), params)
      >>> updates  # the first Adam step is -lr * sign(g)
      Array([-0.1,  0.1], dtype=float32)
    """
    return _torch_adam("torch_adam", lr, betas, eps, weight_decay, mask, decoupled=False)


def torch_adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: float | jax.Array = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """``torch.optim.AdamW``, reproduced step for step (decoupled weight decay).

    The decay ``p *= 1 - lr * weight_decay`` is applied to the masked leaves before the
    Adam step and is multiplied by the learning rate, as in torch (``optax.adamw`` also
    multiplies by it); the Adam moments never see it. Default ``weight_decay=1e-2`` as
    torch's. Not used by the seeds directly; it is the decoupled counterpart of seed 002's
    "L2 in the optimizer" and of :func:`jaxreg.decoupled_weight_decay`.

    Args:
      lr: learning rate >= 0: float, traced scalar or schedule ``count -> lr``.
      betas: ``(beta1, beta2)``, each in [0, 1).
      eps: term added to the denominator, >= 0.
      weight_decay: decoupled decay >= 0 (float, traced or schedule).
      mask: leaves that decay (torch param groups; see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` with :class:`TorchAdamState`; ``update``
      requires ``params`` when ``weight_decay`` is nonzero.

    Raises:
      ValueError: torch's validation errors, and NaN or infinite values.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = torch_adamw(0.1, weight_decay=0.5)
      >>> params = jnp.array([2.0])
      >>> updates, _ = tx.update(jnp.array([0.0]), tx.init(params), params)
      >>> optax.apply_updates(params, updates)  # 2 * (1 - 0.1 * 0.5)
      Array([1.9], dtype=float32)
    """
    return _torch_adam("torch_adamw", lr, betas, eps, weight_decay, mask, decoupled=True)

"""The implementation of :mod:`jaxreg.constraints` (documented there)."""

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

__all__ = ["max_norm"]

# torch.renorm divides by norm + 1e-7 (in the tensor's dtype), which leaves a rescaled unit
# just inside the bound rather than on it; kept for parity.
_RENORM_EPS = 1e-7


def max_norm(
    max_value: ScalarOrSchedule,
    *,
    axis: int | tuple[int, ...] = 0,
    mask: Mask = None,
) -> optax.GradientTransformation:
    """Max-norm: rescales each unit whose incoming weight vector is longer than ``max_value``.

    After the step, every unit's incoming vector ``z_u`` (the slice of a leaf along ``axis``)
    with ``||z_u||_2 > max_value`` is multiplied by ``max_value / (||z_u|| + 1e-7)``; the other
    units are left exactly as the step made them. This is the constraint Srivastava et al.
    pair with dropout (their ``c``, typically 3 to 4). Flax ``Dense`` kernels are
    ``(in, out)``: a unit's incoming vector is a column, hence the default ``axis=0``; a
    ``Conv`` kernel ``(h, w, in, out)`` takes ``axis=(0, 1, 2)``. A bias with ``axis=0``
    would be bounded as one vector, so pass ``mask=weights_only(params)``.
    PyTorch equivalent, after ``opt.step()`` (``Linear.weight`` is ``(out, in)``, so units
    are rows): ``with torch.no_grad(): w.copy_(torch.renorm(w, 2, 0, max_value))``. Keras
    ``MaxNorm(max_value, axis=0)`` differs slightly: it also multiplies the units inside the
    bound by ``norm / (norm + 1e-7)``. ``optax.projections.projection_l2_ball`` projects a
    whole tree onto one ball, not each unit.

    Because ``w + (c - w)`` is rounded, a rescaled unit may exceed ``max_value`` by an ulp.

    Args:
      max_value: the bound >= 0: a float, a traced scalar or a schedule ``count -> value``.
      axis: the axis or axes of one unit's incoming weights (static); default 0.
      mask: which leaves are constrained (see :mod:`jaxreg.masks`); ``None``: all.

    Returns:
      An ``optax.GradientTransformation`` to put last in a chain; ``update`` requires
      ``params``.

    Raises:
      ValueError: if a concrete ``max_value`` is negative, NaN or infinite, or ``axis`` is not
        an int / tuple of ints in range for a selected leaf.

    References:
      Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting",
      JMLR 2014, section 5.1; Hinton et al., "Improving neural networks by preventing
      co-adaptation of feature detectors", arXiv:1207.0580, 2012.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> kernel = jnp.array([[3.0, 0.3], [4.0, 0.4]])  # unit norms 5 and 0.5
      >>> tx = optax.chain(optax.sgd(1.0), max_norm(1.0))
      >>> updates, _ = tx.update(jnp.zeros((2, 2)), tx.init(kernel), kernel)
      >>> new = optax.apply_updates(kernel, updates)
      >>> bool(jnp.linalg.norm(new[:, 0]) <= 1.0)  # renorm's 1e-7 keeps it just inside
      True
      >>> [[round(v, 4) for v in row] for row in new.tolist()]
      [[0.6, 0.3], [0.8, 0.4]]
    """
    owner = "max_norm"
    check_nonnegative(max_value, "max_value", owner)
    axes = check_axis(axis, owner)

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        require_params(params, owner)
        bound = hparam_value(max_value, schedule_count(state))

        def constrain(u: jax.Array, w: jax.Array) -> jax.Array:
            z = w + u
            norms = jnp.sqrt(jnp.sum(z * z, axis=unit_axes(axes, z.shape, owner), keepdims=True))
            m = cast_like(bound, z)
            factor = m / (norms + jnp.asarray(_RENORM_EPS, z.dtype))
            # Units inside the bound keep the step's update itself: w + ((w + u) - w) is
            # not always w + u in floating point.
            return jnp.where(norms > m, z * factor - w, u)

        return masked_map(constrain, updates, params, mask), next_state(state)

    return optax.GradientTransformation(init_state(uses_schedule(max_value)), update_fn)

"""Penalties: pure functions from a pytree (parameters or activations) to a scalar.

Different formulas that PyTorch code all calls "L1"/"L2"; the names say which:

=======================  ==============================================  =====================
function                 formula                                         seeds
=======================  ==============================================  =====================
``l1_penalty``           ``sum over leaves of sum(|w|)``                 000, 001, 002
``l2_penalty``           ``0.5 * sum over leaves of sum(w**2)``          (d2l), 002's argument
``l2_penalty(mean)``     ``sum over leaves of 0.5 * mean(w**2)``         004
``l2_norm_penalty``      ``sum over leaves of ||leaf||_2``               000 (VGG16), 001
``group_lasso_penalty``  ``sum over units of ||incoming weights||_2``    (beyond the seeds)
=======================  ==============================================  =====================

Every function accepts any pytree, a bare array included, and a keyword-only ``mask``
(see :mod:`jaxreg.masks`); ``mask`` and ``reduction`` are keyword-only so that
``l2_penalty(p, "mean")`` is a TypeError instead of a string silently taken for a mask.
Gradients at exact zeros are those of PyTorch's autograd (0, never JAX's 1 for ``|x|`` or a
NaN for a norm), so a JAX run with zero-initialized biases follows the PyTorch run.
All functions are jit-, grad- and vmap-safe.

Activity regularization (seed 001 penalizes ``layer1_out`` and ``layer2_out``) applies
the same functions to activations; :func:`activity_penalty` reads them from a Flax
``sow``/``capture_intermediates`` collection.
"""

from jaxreg._src.penalties import (
    activity_penalty,
    group_lasso_penalty,
    l1_penalty,
    l2_norm_penalty,
    l2_penalty,
    select_activations,
)

__all__ = [
    "activity_penalty",
    "group_lasso_penalty",
    "l1_penalty",
    "l2_norm_penalty",
    "l2_penalty",
    "select_activations",
]

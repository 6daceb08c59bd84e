"""Dropout with explicit keys: inverted, vanilla (cs231n) and Monte-Carlo prediction.

Conventions (the seeds mix them, jaxreg does not):

* ``rate`` is always the DROP probability (PyTorch ``p``, d2l ``dropout``, Flax ``rate``);
  a keep probability is always called ``keep_prob`` (seed 000's ``prob`` and seed 002's ``p``).
* Every random draw takes a caller-passed ``key``; training mode without a key is an error,
  never a silently fixed mask.
* ``rate`` may be a traced scalar, so one compiled function serves a whole sweep over rates
  (``jax.vmap`` over rates, or a new rate per call without recompiling). A concrete rate outside
  ``[0, 1]`` or NaN raises ``ValueError``. A traced rate cannot be inspected at trace time, so
  it cannot raise: outside ``[0, 1]`` or NaN it makes the whole output NaN, and the mistake
  surfaces in the loss rather than as silently dropped activations.

The PyTorch traps this module makes explicit:

* ``torch.nn.functional.dropout(x, p)`` defaults to ``training=True``. Seeds 000 and 001 call
  it inside ``forward`` without ``training=self.training``, so their dropout stays on after
  ``model.eval()``. Here the mode is an argument: :func:`dropout` is stochastic unless
  ``deterministic=True`` and :class:`jaxreg.nn.Dropout` has no default mode at all. To
  reproduce the defect on purpose, keep ``deterministic=False`` at evaluation time.
* d2l's ``dropout_layer(X, dropout)`` (seeds 003 and 004) is :func:`dropout` with
  ``rate=dropout``: the same distribution, same scaling by ``1 / (1 - dropout)``, zeros for
  ``dropout == 1`` and ``X`` for ``dropout == 0``. Its arithmetic is ``mask * X / keep``, one
  rounding away from PyTorch's ``X * (1 / keep)``; :func:`dropout_with_mask` replays either
  bit for bit (``formula="d2l"`` or the default ``formula="torch"``).

The module is also callable: ``jaxreg.dropout(x, rate, key=key)`` is
``jaxreg.dropout.dropout(x, rate, key=key)``, while ``import jaxreg.dropout`` gives this module.
"""

import inspect
import sys
import types

from jaxreg._src.dropout import (
    dropout,
    dropout_mask,
    dropout_with_mask,
    mc_dropout_predict,
    vanilla_dropout,
)

__all__ = [
    "dropout",
    "dropout_mask",
    "dropout_with_mask",
    "mc_dropout_predict",
    "vanilla_dropout",
]


class _CallableModule(types.ModuleType):
    """This module, callable as its :func:`dropout` function.

    The package exports the module under the function's name; calling it keeps
    ``jaxreg.dropout(x, rate, key=key)`` working without shadowing ``import jaxreg.dropout``.
    """

    def __call__(self, *args, **kwargs):
        return dropout(*args, **kwargs)


# inspect.signature(jaxreg.dropout) reads this: the function's parameters, not (*args, **kwargs).
__signature__ = inspect.signature(dropout)
sys.modules[__name__].__class__ = _CallableModule

"""Compare your own model with its torch twin: one batch, matched training, seeds.

The three questions a researcher asks of a Flax model and its PyTorch twin, each one call:

* :func:`check_batch`: do they compute the same thing on one batch? Outputs, loss, every
  parameter gradient and the input gradient, dropout off and on (the random draws shared),
  float32 and float64, each with its tolerance and why; on a mismatch, the first layer whose
  output differs. :func:`check_conversion` is the same proof for converted weights alone.
* :func:`train_matched`: do they train the same? Both sides from the same initial weights on
  the same batches in the same order with the same random draws; per-step losses, the float64
  per-step gate and the float32 attribution (:mod:`jaxreg.lab.verdict`).
* :func:`compare_seeds`: do they reach the same results? Several seeds per side, every final
  metric with its interval, the JAX-torch difference with its interval and verdict.

:func:`compare` runs all three for a :class:`jaxreg.lab.spec.Spec`, as ``jaxreg compare
SPEC.py`` does. ``TorchFlatten`` / ``flatten_nchw`` flatten channels-last activations in
torch's order, which a channels-last Flax twin of a torch CNN needs before its first dense layer.

Example:
    >>> report = check_batch(model, variables, twin, x, y, to_torch=nchw)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> report.raise_for_mismatch()  # doctest: +SKIP
"""

from __future__ import annotations

from jaxreg._src.layout import TorchFlatten, flatten_nchw
from jaxreg.lab.compare_batch import (
    TOLERANCES,
    BatchReport,
    ConversionError,
    MismatchError,
    TensorCheck,
    Tolerance,
    check_batch,
    check_conversion,
)
from jaxreg.lab.compare_layers import LayerDiff

__all__ = [
    "TOLERANCES",
    "BatchReport",
    "ConversionError",
    "LayerDiff",
    "MismatchError",
    "TensorCheck",
    "Tolerance",
    "TorchFlatten",
    "check_batch",
    "check_conversion",
    "flatten_nchw",
    "nchw",
    "nhwc",
]


def nchw(x):
    """A channels-last batch ``(N, H, W, C)`` as torch's ``(N, C, H, W)`` (NumPy or JAX)."""
    return x.transpose(0, 3, 1, 2)


def nhwc(x):
    """A channels-first batch ``(N, C, H, W)`` as Flax's ``(N, H, W, C)``."""
    return x.transpose(0, 2, 3, 1)

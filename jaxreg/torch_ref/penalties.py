"""The seeds' penalty formulas in torch, verbatim: one function per seed, named after it.

They are different functions that the seeds all call "L1"/"L2" (see the table in
:mod:`jaxreg.penalties` for the jaxreg names):

==============================  =========================================  ====================
here                            formula                                    jaxreg
==============================  =========================================  ====================
``seed000_regularization``      ``(sum |p|, sum of per-tensor norm(p))``    ``l1_penalty``,
                                                                           ``l2_norm_penalty``
``seed001_l1_penalty``          ``abs(var).sum()`` (activations)           ``l1_penalty``
``seed001_l2_penalty``          ``sqrt((var**2).sum())`` (activations)     ``l2_norm_penalty``
``seed002_l1_regularization``   ``sum over params of sum(abs(p))``         ``l1_penalty``
``seed004_l2_penalty``          ``(w**2).mean() / 2``                      ``l2_penalty(mean)``
==============================  =========================================  ====================

``seed001_l2_penalty`` is kept verbatim, so its gradient at an all-zero input is NaN
(``sqrt'(0) = inf`` times ``0``); ``torch.norm`` (seed 000) and ``jaxreg.l2_norm_penalty`` return
0 there.

Example:
    >>> float(seed004_l2_penalty(torch.tensor([3.0, 4.0])))
    6.25
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = [
    "Regularization",
    "seed000_regularization",
    "seed001_l1_penalty",
    "seed001_l2_penalty",
    "seed002_l1_regularization",
    "seed004_l2_penalty",
]


def _params(model_or_params: torch.nn.Module | Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    if isinstance(model_or_params, torch.nn.Module):
        return model_or_params.parameters()
    return model_or_params


def seed000_regularization(
    model: torch.nn.Module | Iterable[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 000's ``Regularization(model)``: L1 and the SUM of per-tensor L2 norms.

    Over every parameter, biases included (the seed runs it on ``torchvision.models.vgg16()``).
    jaxreg equivalent: ``(jaxreg.l1_penalty(params), jaxreg.l2_norm_penalty(params))``.

    Args:
        model: a module, or an iterable of tensors.

    Returns:
        ``(L1, L2)`` scalar tensors.

    Example:
        >>> l1, l2 = seed000_regularization([torch.tensor([3.0, -4.0]), torch.tensor([1.0])])
        >>> float(l1), float(l2)
        (8.0, 6.0)
    """
    L1 = 0
    L2 = 0
    for param in _params(model):
        L1 += torch.sum(torch.abs(param))
        L2 += torch.norm(param, 2)
    return L1, L2


Regularization = seed000_regularization
"""The seed's own name for :func:`seed000_regularization`."""


def seed001_l1_penalty(var: torch.Tensor) -> torch.Tensor:
    """Seed 001's ``l1_penalty(var) = torch.abs(var).sum()``, applied to ``layer1_out``.

    jaxreg equivalent: ``jaxreg.l1_penalty(var)``.

    Args:
        var: activations (or any tensor).

    Returns:
        A scalar tensor.

    Example:
        >>> float(seed001_l1_penalty(torch.tensor([-1.0, 2.0])))
        3.0
    """
    return torch.abs(var).sum()


def seed001_l2_penalty(var: torch.Tensor) -> torch.Tensor:
    """Seed 001's ``l2_penalty(var) = torch.sqrt(torch.pow(var, 2).sum())``, on ``layer2_out``.

    The non-squared Euclidean norm; verbatim, hence a NaN gradient when ``var`` is all zeros.
    jaxreg equivalent: ``jaxreg.l2_norm_penalty(var)`` (gradient 0 there).

    Args:
        var: activations (or any tensor).

    Returns:
        A scalar tensor.

    Example:
        >>> float(seed001_l2_penalty(torch.tensor([3.0, 4.0])))
        5.0
    """
    return torch.sqrt(torch.pow(var, 2).sum())


def seed002_l1_regularization(model: torch.nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    """Seed 002's manual L1: ``sum over params of torch.sum(abs(param))`` (biases included).

    The seed adds ``lamda * regularization_loss`` to the classification loss. jaxreg
    equivalent: ``jaxreg.l1_penalty(params)``.

    Args:
        model: a module, or an iterable of tensors.

    Returns:
        A scalar tensor (the int 0 for no parameters, as in the seed).

    Example:
        >>> float(seed002_l1_regularization([torch.tensor([1.0, -2.0]), torch.tensor([-3.0])]))
        6.0
    """
    regularization_loss = 0
    for param in _params(model):
        regularization_loss += torch.sum(abs(param))
    return regularization_loss


def seed004_l2_penalty(w: torch.Tensor) -> torch.Tensor:
    """Seed 004's ``l2_penalty(w) = (w**2).mean() / 2``: a MEAN, unlike d2l's ``sum / 2``.

    The seed adds ``l2_penalty(W1) + l2_penalty(W2)`` (lambda = 1) to the summed batch loss.
    jaxreg equivalent: ``jaxreg.l2_penalty(w, reduction="mean")``.

    Args:
        w: a weight tensor.

    Returns:
        A scalar tensor.

    Example:
        >>> float(seed004_l2_penalty(torch.tensor([1.0, 3.0])))
        2.5
    """
    return (w**2).mean() / 2


def _l1(w: torch.Tensor) -> torch.Tensor:
    return torch.abs(w).sum()


def _l2(w: torch.Tensor) -> torch.Tensor:
    return (w**2).sum() / 2


def _l2_norm(w: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.pow(w, 2).sum())


TERMS = {"l1": _l1, "l2": _l2, "l2_mean": seed004_l2_penalty, "l2_norm": _l2_norm}
"""Per-tensor terms of the weight penalties, by ``jaxreg.lab.spec.Penalty`` kind: summed over
the selected tensors and scaled by the strength (``jaxreg.l1_penalty``, ``jaxreg.l2_penalty``
with ``reduction="sum"`` / ``"mean"``, ``jaxreg.l2_norm_penalty``)."""

ACTIVITY_TERMS = {"l1": seed001_l1_penalty, "l2": _l2, "l2_norm": seed001_l2_penalty}
"""Activation penalty terms by ``jaxreg.lab.spec.Activity`` kind (seed 001's formulas)."""

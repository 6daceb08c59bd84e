"""The seeds' hand-written dropout in torch: d2l's ``dropout_layer`` and cs231n's two forms.

``torch.nn.Dropout`` / ``F.dropout`` need no reference here (the parity suite calls them
directly). Conventions differ and the names say which: d2l's ``dropout`` is a DROP probability
(like ``jaxreg.dropout``'s ``rate``); cs231n's ``p`` is a KEEP probability (``keep_prob``).

Example:
    >>> X = torch.arange(16, dtype=torch.float32).reshape((2, 8))
    >>> bool(torch.equal(dropout_layer(X, 0), X))
    True
"""

from __future__ import annotations

import torch

from jaxreg.torch_ref.replay import active_replay

__all__ = ["cs231n_predict", "cs231n_train_forward", "dropout_layer"]

_VARIANTS = ("vanilla", "inverted")


def dropout_layer(
    X: torch.Tensor, dropout: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """d2l's ``dropout_layer`` (seeds 003, 004), verbatim but for the device of the mask.

    ``dropout`` is the DROP probability: 1 returns zeros, 0 returns ``X`` itself, otherwise
    ``mask = rand(X.shape) > dropout`` and the result is ``mask * X / (1 - dropout)``. The mask
    is drawn on ``X``'s device (d2l's ``torch.rand(X.shape)`` is always on the CPU). jaxreg
    equivalent: ``jaxreg.dropout(X, rate=dropout, key=...)``. Inside
    ``jaxreg.torch_ref.replay.replaying`` the mask is the replayed one instead of a new draw.

    Args:
        X: input tensor.
        dropout: drop probability in ``[0, 1]``.
        generator: optional ``torch.Generator`` for the mask (default: torch's global one).

    Returns:
        A tensor like ``X``.

    Example:
        >>> float(dropout_layer(torch.ones(4), 1).sum())
        0.0
    """
    assert 0 <= dropout <= 1
    replay = active_replay()
    if replay is not None:
        # A matched run: the mask was drawn by JAX (``jaxreg.lab.draws``); d2l's arithmetic.
        # d2l draws nothing at dropout 0 or 1; a JAX layer at a traced rate does, so a
        # matching draw is taken there and checked to keep everything (0) or nothing (1).
        op = "d2l dropout_layer"
        if dropout in (0, 1):
            replay.degenerate(op, ("dropout",), X.shape, float(dropout))
            return torch.zeros_like(X) if dropout == 1 else X
        mask = replay.take(X.shape, X.dtype, X.device, kind="dropout", op=op)
        return mask * X / (1.0 - dropout)
    if dropout == 1:
        return torch.zeros_like(X)
    if dropout == 0:
        return X
    mask = (torch.rand(X.shape, generator=generator, device=X.device) > dropout).float()
    return mask * X / (1.0 - dropout)


def _check(variant: str, keep_prob: float) -> None:
    if variant not in _VARIANTS:
        raise ValueError(f"variant={variant!r}: allowed values are {_VARIANTS}")
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob={keep_prob!r}: must be in (0, 1]")


def _scaled(mask: torch.Tensor, p: float, variant: str, dtype: torch.dtype) -> torch.Tensor:
    # A bool tensor divided by a Python float promotes to torch's DEFAULT dtype (float32), which
    # would round 1/p to float32 in a float64 network; NumPy's bool / p is float64.
    mask = mask.to(dtype)
    return mask / p if variant == "inverted" else mask


def cs231n_train_forward(
    params: dict[str, torch.Tensor],
    X: torch.Tensor,
    keep_prob: float,
    generator: torch.Generator | None = None,
    *,
    variant: str = "inverted",
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Seed 002's cs231n 3-layer ``train_step`` forward pass, in torch (column convention).

    ``H1 = relu(W1 @ X + b1)``, ``U1 = rand(H1.shape) < p``, then ``H1 *= U1`` (vanilla) or
    ``H1 *= U1 / p`` (inverted); the same for ``H2``; ``out = W3 @ H2 + b3``. Differentiable in
    ``params`` and ``X``. NumPy original: ``jaxreg.numpy_ref.train_forward``.

    Args:
        params: ``W1 (h1, d_in), b1 (h1, 1), W2, b2, W3, b3`` tensors.
        X: ``(d_in, batch)``.
        keep_prob: the seed's ``p``, probability of KEEPING a unit, in ``(0, 1]``.
        generator: optional ``torch.Generator`` for the two masks.
        variant: ``"vanilla"`` or ``"inverted"``.

    Returns:
        ``(out, (U1, U2))`` with the boolean keep masks.

    Example:
        >>> P = {"W1": torch.ones(3, 2), "b1": torch.zeros(3, 1), "W2": torch.ones(3, 3),
        ...      "b2": torch.zeros(3, 1), "W3": torch.ones(1, 3), "b3": torch.zeros(1, 1)}
        >>> cs231n_train_forward(P, torch.ones(2, 5), 1.0)[0].shape
        torch.Size([1, 5])
    """
    _check(variant, keep_prob)
    p = keep_prob
    H1 = torch.relu(params["W1"] @ X + params["b1"])
    U1 = torch.rand(H1.shape, generator=generator, device=H1.device) < p
    H1 = H1 * _scaled(U1, p, variant, H1.dtype)
    H2 = torch.relu(params["W2"] @ H1 + params["b2"])
    U2 = torch.rand(H2.shape, generator=generator, device=H2.device) < p
    H2 = H2 * _scaled(U2, p, variant, H2.dtype)
    out = params["W3"] @ H2 + params["b3"]
    return out, (U1, U2)


def cs231n_predict(
    params: dict[str, torch.Tensor],
    X: torch.Tensor,
    keep_prob: float = 1.0,
    *,
    variant: str = "inverted",
) -> torch.Tensor:
    """Seed 002's cs231n ``predict``: vanilla scales the activations by ``p``; inverted does not.

    Args:
        params: as :func:`cs231n_train_forward`.
        X: ``(d_in, batch)``.
        keep_prob: the seed's ``p``; used by ``"vanilla"`` only.
        variant: ``"vanilla"`` or ``"inverted"``.

    Returns:
        ``(d_out, batch)`` scores.

    Example:
        >>> P = {"W1": torch.ones(3, 2), "b1": torch.zeros(3, 1), "W2": torch.ones(3, 3),
        ...      "b2": torch.zeros(3, 1), "W3": torch.ones(1, 3), "b3": torch.zeros(1, 1)}
        >>> cs231n_predict(P, torch.ones(2, 1), 0.5, variant="vanilla").item()
        4.5
    """
    _check(variant, keep_prob)
    p = keep_prob if variant == "vanilla" else 1.0
    H1 = torch.relu(params["W1"] @ X + params["b1"]) * p
    H2 = torch.relu(params["W2"] @ H1 + params["b2"]) * p
    return params["W3"] @ H2 + params["b3"]

"""Replaying given dropout masks in a torch forward pass (the torch half of matched runs).

A matched run draws its dropout masks once, with explicit JAX keys (``jaxreg.lab.matched``), and
both frameworks use them: JAX by drawing them, torch by replaying them here. Inside
``with replaying(replay):`` every dropout call of a forward pass takes the next mask of the step,
in call order, whatever the model's style:

* ``torch.nn.functional.dropout`` (and so ``torch.nn.Dropout``), caught by a
  ``TorchFunctionMode``: in training it returns ``input * (mask / keep)``, ATen's own formula
  (``noise.bernoulli_(keep).div_(keep)``; ``input * noise``), and zeros for ``p = 1``;
* d2l's ``dropout_layer`` (``jaxreg.torch_ref.dropout``), which asks :func:`active_replay`.

A step must use exactly the masks it was given: a forward pass with more dropout calls, a mask of
another shape, or masks left unused at :meth:`MaskReplay.finish_step` raise, so a model whose
dropout sites differ from the JAX twin's cannot replay silently wrong masks.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_ACTIVE: contextvars.ContextVar[MaskReplay | None] = contextvars.ContextVar(
    "jaxreg_mask_replay", default=None
)


class MaskReplay:
    """The keep-masks of one training step, handed out to the dropout calls in order.

    Masks may have more rows than the batch (JAX pads the last partial batch to a full one, with
    the padding rows last); the first ``batch`` rows are used. A call that asks for size 1 on an
    axis where the mask is larger (a channel or time-shared draw) gets index 0 of that axis.

    Example:
        >>> replay = MaskReplay()
        >>> replay.set_step([np.array([[True, False]])])
        >>> with replaying(replay):
        ...     y = F.dropout(torch.ones(1, 2), p=0.5, training=True)
        >>> y.tolist(), replay.finish_step()
        ([[2.0, 0.0]], None)
    """

    def __init__(self) -> None:
        self._masks: list[Any] | None = None
        self._next = 0
        self.calls = 0

    def set_step(self, masks: Sequence[Any]) -> None:
        """Sets the masks of the next forward pass, one per dropout call, in call order."""
        self._masks = list(masks)
        self._next = 0

    def take(self, shape: Sequence[int], dtype: torch.dtype, device: Any) -> torch.Tensor:
        """The next mask of this step as a ``dtype`` tensor of ``shape`` (1 = keep, 0 = drop)."""
        if self._masks is None or self._next >= len(self._masks):
            given = 0 if self._masks is None else len(self._masks)
            raise RuntimeError(
                f"mask replay: dropout call {self._next + 1} of this step, but only {given} "
                "masks were given (the torch model has more dropout sites than the JAX twin)"
            )
        mask = np.asarray(self._masks[self._next])
        self._next += 1
        self.calls += 1
        shape = tuple(shape)
        if mask.ndim == len(shape):
            # Rows beyond the batch are JAX's padding; a size-1 axis asked for where the mask has
            # more is a torch twin drawing one value per broadcast group (jaxreg's
            # ``broadcast_dims``): it takes the group's value at index 0, so a JAX mask that is not
            # constant along that axis makes the two runs differ instead of passing unnoticed.
            index = tuple(
                slice(0, n) if d == 0 else slice(0, 1) if n == 1 else slice(None)
                for d, n in enumerate(shape)
            )
            mask = mask[index]
        if mask.shape != shape:
            raise ValueError(
                f"mask replay: dropout call {self._next} has input shape {shape}, the replayed "
                f"mask has shape {mask.shape}"
            )
        return torch.from_numpy(np.array(mask, copy=True)).to(device=device, dtype=dtype)

    def finish_step(self) -> None:
        """Checks that the forward pass used every mask of the step."""
        if self._masks is not None and self._next != len(self._masks):
            raise RuntimeError(
                f"mask replay: {len(self._masks)} masks given, {self._next} dropout calls made "
                "(the torch model has fewer dropout sites than the JAX twin)"
            )
        self._masks = None


def active_replay() -> MaskReplay | None:
    """The :class:`MaskReplay` of the enclosing :func:`replaying` block, if any."""
    return _ACTIVE.get()


def apply_mask(x: torch.Tensor, keep_mask: torch.Tensor, rate: float) -> torch.Tensor:
    """``x * (mask / keep)``, ATen's inverted-dropout arithmetic; zeros when ``rate == 1``."""
    keep = 1.0 - float(rate)
    if keep == 0.0:
        return x * 0.0
    return x * (keep_mask / keep)


class _ReplayMode(TorchFunctionMode):
    def __init__(self, replay: MaskReplay):
        super().__init__()
        self.replay = replay

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            bound = dict(zip(("input", "p", "training", "inplace"), args, strict=False))
            bound.update(kwargs)
            x, p = bound["input"], bound.get("p", 0.5)
            if bound.get("training", True):
                mask = self.replay.take(x.shape, x.dtype, x.device)
                return apply_mask(x, mask, p)
        return func(*args, **kwargs)


@contextlib.contextmanager
def replaying(replay: MaskReplay) -> Iterator[MaskReplay]:
    """Within the block, every dropout call in training takes its mask from ``replay``.

    Args:
        replay: the :class:`MaskReplay` whose step masks are handed out.

    Yields:
        ``replay``.
    """
    token = _ACTIVE.set(replay)
    try:
        with _ReplayMode(replay):
            yield replay
    finally:
        _ACTIVE.reset(token)

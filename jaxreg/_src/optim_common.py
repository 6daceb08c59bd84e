"""Validation shared by the torch.optim twins: torch's checks and messages."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxreg._src.masks import Mask, resolve_mask
from jaxreg._src.transforms import _check_nonnegative


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


def _check_torch(value: Any, name: str, owner: str, torch_text: str) -> None:
    """``_check_nonnegative``, its message ending with the one torch.optim gives."""
    try:
        _check_nonnegative(value, name, owner)
    except ValueError as err:
        raise ValueError(f"{err} (torch: '{torch_text}: {value}')") from None


def _check_flags(owner: str, flags: dict[str, Any], switches: dict[str, Any]) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: {name} must be a bool, got {value!r}")
    for name, value in switches.items():
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{owner}: {name} must be None or a bool, got {value!r}")
    # Accepted and ignored (see the module docstring), but what torch refuses is refused.
    if switches.get("fused") and switches.get("differentiable"):
        raise ValueError(f"{owner}: `fused` does not support `differentiable` (as torch)")
    if switches.get("fused") and switches.get("foreach"):
        raise ValueError(f"{owner}: `fused` and `foreach` cannot be `True` together (as torch)")


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

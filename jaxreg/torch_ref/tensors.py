"""Small torch helpers shared by the torch loops: threads, tensors from arrays, parameters.

``load_params`` puts JAX-initialized weights (``jaxreg.convert.flax_to_torch``) into a torch twin,
so both frameworks start from the same weights; ``param_norm`` / ``zero_fraction`` are the
engine's ``param_norm`` / ``weight_norm`` / ``zero_fraction`` metrics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from typing import Any

import numpy as np
import torch

THREADS_ENV = "JAXREG_TORCH_THREADS"


def configure_threads(num_threads: int | None = None) -> int:
    """Sets torch's intra-op CPU threads for a run's torch side and returns the number set.

    ``num_threads``, else ``$JAXREG_TORCH_THREADS``, else ``$OMP_NUM_THREADS`` (what a test
    harness that runs several workers sets: ``make test`` gives each worker one thread, since
    an oversubscribed OpenMP pool spin-waits: one SGD step of the 784-256-10 MLP took 20 ms with
    one thread and 500 ms with two on a loaded 2-core machine), else every core this process may
    run on. Measured on a quiet 2-core Intel Xeon: the seed 004 MLP's SGD step 2.16 ms on one
    thread, 1.64 ms on two; ``jaxreg main`` 4 min 47 s with one, 4 min 7 s with two (the JAX
    side is idle while torch trains). The thread count may change torch's float32 rounding,
    never its float64 gate; every report names it.

    Args:
      num_threads: threads to use, or None for the rule above.

    Returns:
      The number of threads set.

    Example:
      >>> configure_threads(1)
      1
    """
    if num_threads is None:
        for name in (THREADS_ENV, "OMP_NUM_THREADS"):
            text = os.environ.get(name)
            if text:
                try:
                    num_threads = int(text)
                except ValueError:
                    raise ValueError(f"${name}={text!r}: expected a positive integer") from None
                break
        else:
            num_threads = (
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1)
            )
    if num_threads < 1:
        raise ValueError(f"num_threads={num_threads}: expected a positive integer")
    torch.set_num_threads(num_threads)
    return num_threads


def to_tensor(array: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Converts a NumPy or JAX array to a CPU torch tensor (copying: JAX buffers are read-only).

    Args:
      array: any array-like (numpy, jax.Array, list, tensor).
      dtype: optional torch dtype to cast to.

    Returns:
      A contiguous CPU tensor.

    Example:
      >>> to_tensor(np.zeros((2, 3), np.float32)).shape
      torch.Size([2, 3])
    """
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
    else:
        tensor = torch.from_numpy(np.array(array, copy=True))
    return tensor.to(dtype) if dtype is not None else tensor


def load_params(model: torch.nn.Module, state: dict[str, Any]) -> torch.nn.Module:
    """Loads a ``jaxreg.convert.flax_to_torch`` dict (numpy arrays) into a torch twin, strictly.

    Args:
      model: the torch twin of the Flax model the parameters came from.
      state: mapping from torch parameter names to arrays.

    Returns:
      ``model``, with its parameters replaced (so JAX and torch start from the same weights).

    Example:
      >>> net = torch.nn.Linear(2, 1)
      >>> _ = load_params(net, {"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1)})
    """
    reference = model.state_dict()
    tensors = {
        name: to_tensor(value, dtype=reference[name].dtype) if name in reference else value
        for name, value in state.items()
    }
    model.load_state_dict(tensors, strict=True)
    return model


def param_norm(
    model: torch.nn.Module, weights_only: bool = False, names: Collection[str] | None = None
) -> float:
    """Global Euclidean norm over all parameters (``jaxreg.lab.engine``'s ``param_norm``).

    With ``weights_only=True``, over the matrices and kernels only (ndim >= 2, no biases):
    ``jaxreg.masks.weights_only``'s selection, the engine's ``weight_norm``; ``names`` instead
    picks the parameters by name (the decay mask of a run, which the engine's ``weight_norm``
    covers).

    Example:
      >>> param_norm(torch.nn.Linear(2, 1), names=())
      0.0
    """
    with torch.no_grad():
        squares = [
            float((p.double() ** 2).sum())
            for name, p in model.named_parameters()
            if (name in names if names is not None else not weights_only or p.ndim >= 2)
        ]
    return math.sqrt(sum(squares))


def zero_fraction(model: torch.nn.Module) -> float:
    """Fraction of parameter entries that are exactly zero (L1's sparsity)."""
    with torch.no_grad():
        total = sum(p.numel() for p in model.parameters())
        zeros = sum(int((p == 0).sum()) for p in model.parameters())
    return zeros / max(total, 1)


def logits(output: Any) -> torch.Tensor:
    # ActivityMLP returns (out, layer1_out, layer2_out); every other model returns the logits.
    return output[0] if isinstance(output, tuple) else output

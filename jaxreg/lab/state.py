"""What a training run carries and returns: :class:`TrainState` and :class:`TrainResult`.

Both carry the run's position (``step``, ``epoch``), so a result handed back as ``init_state``
continues the run's random streams instead of replaying them (see :mod:`jaxreg.lab.engine`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainState(NamedTuple):
    """What one step carries to the next: parameters, optimizer state, the run's position.

    ``step`` counts optimizer steps and ``epoch`` finished epochs since the run began (not since
    the current call), ``diverged_step`` is the first step whose objective was not finite (-1).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    diverged_step: jax.Array
    epoch: jax.Array


class TrainResult(NamedTuple):
    """What ``train`` returns.

    ``metrics`` maps each name of :data:`EPOCH_METRICS` (and ``val_*``, ``act_var*`` when present)
    to an ``[epochs]`` array, plus ``diverged_step``: the first optimizer step whose objective was
    NaN or Inf, -1 if none. ``snapshots`` is the parameter pytree with a leading axis over the
    epochs ``train.snapshot_epochs`` (None when ``snapshot_every == 0``). ``step`` and ``epoch``
    are the run's counters at the end, so ``init_state=result`` continues the run's streams
    (a result built without them continues from counters 0).
    """

    params: Any
    opt_state: Any
    metrics: dict[str, jax.Array]
    snapshots: Any = None
    step: Any = None
    epoch: Any = None


def as_state(init_state: Any) -> Any:
    """A state or result -> a TrainState with its counters (no old metrics, nothing donated)."""
    if isinstance(init_state, TrainResult):
        metrics = init_state.metrics or {}
        return TrainState(
            init_state.params,
            init_state.opt_state,
            jnp.asarray(0 if init_state.step is None else init_state.step, jnp.int32),
            jnp.asarray(metrics.get("diverged_step", -1), jnp.int32),
            jnp.asarray(0 if init_state.epoch is None else init_state.epoch, jnp.int32),
        )
    return init_state

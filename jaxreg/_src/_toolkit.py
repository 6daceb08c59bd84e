"""Helpers shared by jaxreg's implementation modules (the only private names shared across them).

Value checks (concrete numbers, probabilities, strengths, mode flags), keys and NaN poisoning for
traced values, unit axes, and the plumbing of jaxreg's optax transforms. A helper used by one
module stays in that module; one used by two lives here (tests/test_layout.py checks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg._src.masks import Mask, resolve_mask

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], Any]

# Python and NumPy booleans are integers to NumPy (np.asarray(True, float) == 1.0) and strings
# parse as numbers (np.asarray("0.1", float) == 0.1); neither is a strength or a probability.
_NOT_NUMBERS = (bool, np.bool_, str, bytes)


# --------------------------------------------------------------------------- concrete values


def is_concrete(value: Any) -> bool:
    """True unless ``value`` is traced (inside jit/vmap/grad) or a schedule (a callable)."""
    return not callable(value) and not isinstance(value, jax.core.Tracer)


def concrete_float(value: Any) -> float | None:
    """The Python float of a scalar known at trace time; None if traced, a schedule or no scalar."""
    if not is_concrete(value):
        return None
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        return None
    return float(arr) if arr.ndim == 0 else None


def reject_non_number(value: Any, name: str, owner: str | None, expected: str) -> None:
    """Raises ValueError for a bool (Python or NumPy) or a string given as a number."""
    if isinstance(value, _NOT_NUMBERS) or (
        isinstance(value, (np.ndarray, jax.Array)) and value.dtype == bool
    ):
        where = f"{owner}: " if owner else ""
        raise ValueError(
            f"{where}{name} must be {expected}, got {value!r} ({type(value).__name__})"
        )


def as_float(value: Any) -> jax.Array:
    """``value`` as a floating array (an integer rate becomes JAX's default float)."""
    value = jnp.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.floating):
        return value
    return value.astype(jnp.result_type(float))


def nan_unless(valid: jax.Array, value: jax.Array) -> jax.Array:
    """``value`` where ``valid``, NaN elsewhere: a traced bad hyperparameter cannot raise, so it
    poisons the result and the mistake shows in the loss instead of as a plausible output."""
    return jnp.where(valid, value, jnp.full_like(value, jnp.nan))


# --------------------------------------------------------------------------- probabilities, keys


def check_probability(value: Any, name: str) -> float | None:
    """Validates a probability argument; returns its concrete value or None when traced."""
    reject_non_number(value, name, None, "a probability in [0, 1] (a float or a scalar array)")
    if np.ndim(value) != 0:
        raise ValueError(
            f"{name} must be a scalar probability in [0, 1], got an array of shape "
            f"{np.shape(value)}; to sweep several values use jax.vmap over a scalar {name}."
        )
    concrete = concrete_float(value)
    if concrete is not None and not 0.0 <= concrete <= 1.0:
        # `not 0 <= v <= 1` is also True for NaN, which must not pass silently.
        raise ValueError(f"{name} must be in [0, 1], got {concrete!r}.")
    return concrete


def check_scalar(value: Any, name: str, allowed: str, ok: Callable[[float], bool]) -> float | None:
    """A concrete scalar is checked with ``ok`` (False for NaN too); a traced one passes."""
    reject_non_number(value, name, None, f"a number in {allowed}")
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar in {allowed}, got shape {jnp.shape(value)}.")
    concrete = concrete_float(value)
    if concrete is not None and not ok(concrete):
        raise ValueError(f"{name} must be in {allowed}, got {concrete!r}.")
    return concrete


def keep_probability(rate: Any, concrete: float | None) -> Any:
    """``1 - rate``: in Python double for a concrete rate (as torch's ``1 - p`` in double before
    the cast to the input dtype), else as a traced float."""
    if concrete is not None:
        return 1.0 - concrete
    return 1 - as_float(rate)


def mask_probability(rate: Any, concrete: float | None) -> Any:
    """The keep probability a mask is drawn against: independent of the run's dtype.

    A concrete rate gives ``1 - rate`` in Python double (the mask generator rounds it to float32
    once); a traced rate is rounded to float32 BEFORE ``1 - rate``, so a float64 run (rate
    float64 under x64) compares its float32 uniforms with exactly the float32 run's threshold.
    The scale ``1 / keep`` is not this value: it keeps the input's precision
    (:func:`keep_probability`).
    """
    if concrete is not None:
        return 1.0 - concrete
    return 1 - as_float(rate).astype(jnp.float32)


def check_floating(x: jax.Array, name: str = "x") -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating-point array, got dtype {x.dtype}; "
            f"dropout scales by 1 / keep_prob, which integers cannot hold."
        )


def require_key(key: Any, fn: str) -> None:
    if key is None:
        raise ValueError(
            f"{fn}: key is None in training mode (deterministic=False). Pass "
            f"key=jax.random.key(...) (split a fresh one per step), or deterministic=True "
            f"for evaluation."
        )


def check_mode(value: Any, name: str, owner: str, *, allow_none: bool = False) -> bool | None:
    """A mode flag (``deterministic``, ``inference``, ...): a Python or NumPy bool.

    A string (``"False"`` is truthy), a number or an array is refused, as is a traced value: the
    mode selects the computation, so it must be known when the function is traced (mark it
    static, ``jax.jit(f, static_argnames=name)``, or pick the branch outside the jitted code).
    ``None`` passes only where ``allow_none`` (where it means "the module's default").
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"{owner}: {name} is traced ({value}); the mode selects the computation and must be "
            f"a Python bool at trace time: mark it static (jax.jit(..., static_argnames="
            f"{name!r})) or choose the mode outside the jitted function"
        )
    allowed = "True, False or None" if allow_none else "True or False"
    raise ValueError(f"{owner}: {name} must be a bool ({allowed}), got {value!r}")


def linen_key(module: Any, collection: str, rng: Any) -> Any:
    """The key of a Linen layer in training mode: ``rng`` if given, else one from ``collection``."""
    if rng is not None:
        return rng
    # Flax's make_rng falls back to the "params" stream (e.g. `init(key, ...)`); only when
    # neither stream exists is there no key to draw.
    if not (module.has_rng(collection) or module.has_rng("params")):
        raise ValueError(
            f"{type(module).__name__} in training mode (deterministic=False) needs a PRNG key in "
            f"the {collection!r} collection: pass rngs={{{collection!r}: key}} to apply/init, "
            f"rng=key at call time, or deterministic=True for evaluation."
        )
    return module.make_rng(collection)


def feature_shape(shape: Sequence[int], fn: str) -> tuple[int, ...]:
    """``(N, 1, ..., 1, C)``: one draw per example and channel (torch's feature-noise shape)."""
    if len(shape) < 2:
        raise ValueError(
            f"{fn} needs an input of rank >= 2, (N, ..., C) channels-last, got shape "
            f"{tuple(shape)}."
        )
    return (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)


# --------------------------------------------------------------------------- strengths


def check_nonnegative(value: Any, name: str, owner: str) -> None:
    """Raises ValueError for a bool, a string, or a concrete negative, NaN, infinite or
    non-scalar value.

    Traced values and schedules cannot be inspected without a host sync (and would break
    jit), so they pass; a sweep's grid is checked where it is built.
    """
    reject_non_number(value, name, owner, "a number >= 0")
    if not is_concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: {name} must be a number >= 0, got {value!r}") from err
    if arr.ndim != 0:
        raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {arr.shape}")
    if not (np.isfinite(arr) and arr >= 0):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")


def check_finite(value: Any, name: str, owner: str) -> None:
    """Raises ValueError for a bool, a string, or a concrete non-finite or non-scalar value."""
    reject_non_number(value, name, owner, "a finite number")
    if not is_concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}") from err
    if arr.ndim != 0 or not np.isfinite(arr):
        raise ValueError(f"{owner}: {name} must be a finite scalar, got {value!r}")


# --------------------------------------------------------------------------- unit axes


def check_axis(axis: Any, owner: str) -> tuple[int, ...]:
    """Validates a unit-axis argument (static): an int or a non-empty tuple of ints."""

    def is_int(a: Any) -> bool:
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)

    axes = (axis,) if is_int(axis) else axis
    if not isinstance(axes, tuple) or not axes or not all(is_int(a) for a in axes):
        raise ValueError(
            f"{owner}: axis must be an int or a non-empty tuple of ints (the axes of one "
            f"unit's incoming weights, e.g. 0 for a Dense kernel), got {axis!r}"
        )
    return tuple(int(a) for a in axes)


def unit_axes(axes: tuple[int, ...], shape: tuple[int, ...], owner: str) -> tuple[int, ...]:
    ndim = len(shape)
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(
            f"{owner}: axis {axes if len(axes) > 1 else axes[0]} is out of range for a leaf "
            f"of shape {shape}; leave such leaves (biases, scalars) out with mask="
        )
    resolved = tuple(sorted({a % ndim for a in axes}))
    if len(resolved) != len(axes):
        raise ValueError(f"{owner}: axis {axes} repeats an axis of a leaf of shape {shape}")
    return resolved


def group_norms(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Per-unit Euclidean norms (reduced axes kept).

    The gradient is 0 at an all-zero unit (one the prox has switched off), never NaN; a NaN
    weight gives a NaN norm, as ``torch.linalg.vector_norm`` does.
    """
    sq = jnp.sum(x * x, axis=axes, keepdims=True)
    # Only exact zeros take the safe branch: `sq == 0` is False for NaN, so a NaN unit stays
    # NaN (the test `sq > 0` would send NaN to the zero branch and hide it).
    zero = sq == 0
    safe = jnp.where(zero, jnp.ones_like(sq), sq)
    return jnp.where(zero, jnp.zeros_like(sq), jnp.sqrt(safe))


# --------------------------------------------------------------------------- optax plumbing


class ScheduleState(NamedTuple):
    """State of a transform with a scheduled hyperparameter: updates applied so far."""

    count: jax.Array


def uses_schedule(*hparams: Any) -> bool:
    return any(callable(h) for h in hparams)


def hparam_value(h: ScalarOrSchedule, count: jax.Array | None) -> Any:
    return h(count) if callable(h) else h


def cast_like(h: Any, x: jax.Array) -> jax.Array:
    # The scalar takes the leaf's dtype, as torch casts a Python-float alpha to the
    # tensor's dtype, so float32 parameters never get promoted by a float64 scalar.
    return jnp.asarray(h).astype(x.dtype)


def init_state(needs_count: bool) -> Callable[[Any], Any]:
    def init_fn(params: Any) -> Any:
        del params
        if needs_count:
            return ScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    return init_fn


def next_state(state: Any) -> Any:
    if isinstance(state, ScheduleState):
        return ScheduleState(count=optax.safe_int32_increment(state.count))
    return state


def schedule_count(state: Any) -> jax.Array | None:
    return state.count if isinstance(state, ScheduleState) else None


def masked_map(
    fn: Callable[[jax.Array, jax.Array], jax.Array], updates: Any, params: Any, mask: Mask
) -> Any:
    flags = resolve_mask(mask, params)
    return jax.tree.map(lambda u, p, m: fn(u, p) if m else u, updates, params, flags)


def require_params(params: Any, owner: str) -> None:
    if params is None:
        raise ValueError(
            f"{owner} needs the current parameters: call update(updates, state, params)"
        )


# --------------------------------------------------------------------------- torch.optim twins


def check_torch(value: Any, name: str, owner: str, torch_text: str) -> None:
    """``check_nonnegative``, its message ending with the one torch.optim gives."""
    try:
        check_nonnegative(value, name, owner)
    except ValueError as err:
        raise ValueError(f"{err} (torch: '{torch_text}: {value}')") from None


def check_optim_flags(owner: str, flags: dict[str, Any], switches: dict[str, Any]) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"{owner}: {name} must be a bool, got {value!r}")
    for name, value in switches.items():
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{owner}: {name} must be None or a bool, got {value!r}")
    # Accepted and ignored (see jaxreg.optim's docstring), but what torch refuses is refused.
    if switches.get("fused") and switches.get("differentiable"):
        raise ValueError(f"{owner}: `fused` does not support `differentiable` (as torch)")
    if switches.get("fused") and switches.get("foreach"):
        raise ValueError(f"{owner}: `fused` and `foreach` cannot be `True` together (as torch)")


def decay_flags(mask: Mask, params: Any, weight_decay: Any) -> Any:
    if concrete_float(weight_decay) == 0.0:
        # torch skips the decay term entirely when weight_decay == 0 (no 0 * p added).
        return jax.tree.map(lambda _: False, params)
    return resolve_mask(mask, params)

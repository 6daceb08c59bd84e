"""The verdict on a matched JAX-torch pair: the float64 per-step gate and the float32 attribution.

Pure functions of per-step losses and final parameters (NumPy in, verdicts out), used by
:mod:`jaxreg.lab.comparison` (run reports), ``jaxreg main`` and the tests:

* :func:`float64_gate`: a matched float64 JAX run and torch run (same initial weights, batches,
  order and random draws) must agree at EVERY optimizer step to :data:`GATE_RTOL` relative, and
  on their final parameters. Measured 1.4e-11 on Fashion-MNIST; a learning rate 1% off, a
  penalty twice too strong, a mask one step late or a run that silently computes in float32
  fail it by orders of magnitude.
* :func:`float32_attribution`: float32 is reported, not gated: per step, the JAX-torch float32
  gap beside each side's own float32 error (its float32 run against its float64 run on the same
  batches and draws), so a reader sees which side drifted and by how much
  (:func:`attribution_summary`, :func:`attribution_table`).

This module imports neither jax nor torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxreg.lab.report import format_table

GATE_RTOL = 1e-8
"""The float64 gate: largest per-step relative loss difference (and final-parameter relative
error) of a matched float64 pair. Double rounding is ~1e-16 per operation; measured 1.4e-11
after 2350 SGD steps, so 1e-8 leaves three orders of magnitude for growth and still fails a
learning rate off by 1% (first-step difference ~1e-4) or float32 arithmetic (~1e-7)."""


def step_errors(ours: Any, reference: Any) -> np.ndarray:
    """Per-step relative difference ``|ours_k - ref_k| / |ref_k|`` (NaN or inf anywhere: inf).

    Example:
      >>> step_errors([1.0, 2.0, float("nan")], [1.0, 2.5, 1.0]).tolist()
      [0.0, 0.2, inf]
    """
    a, b = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"per-step sequences differ in shape: {a.shape} vs {b.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(a - b) / np.abs(b)
    err = np.where((a == b) & np.isfinite(a), 0.0, err)
    return np.where(np.isfinite(err), err, np.inf)


def tensor_error(ours: Any, reference: Any) -> float:
    """Relative error of one tensor: ``max |a - b| / max |b|`` (infinity norms; NaN: inf)."""
    a, b = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"tensor shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0 or np.array_equal(a, b):
        return 0.0 if np.all(np.isfinite(a)) else math.inf
    err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))
    return err if math.isfinite(err) else math.inf


def _where(shape: tuple[int, ...], flat: int) -> str:
    if len(shape) == 2:
        epoch, step = np.unravel_index(flat, shape)
        return f"epoch {epoch + 1} step {step + 1}"
    return f"step {flat + 1}"


def _check_float64(name: str, values: Any) -> None:
    dtype = getattr(values, "dtype", None)
    if dtype is not None and np.dtype(str(dtype)).kind == "f" and np.dtype(str(dtype)).itemsize < 8:
        raise ValueError(f"{name} has dtype {dtype}: the float64 gate compares float64 runs")


class Gate(NamedTuple):
    """The float64 gate's verdict on one matched pair (:func:`float64_gate`).

    Attributes:
      passed: every step and every final tensor within ``rtol``.
      rtol: the tolerance (:data:`GATE_RTOL`).
      steps: how many steps (or epochs, for per-epoch means) were compared.
      worst: the largest per-step relative difference.
      worst_at: where it occurred (``"epoch 2 step 17"``).
      first_failure: the first step beyond ``rtol`` (None when none is).
      params_worst: the largest final-parameter relative error (None: not compared).
      params_worst_name: the tensor it belongs to.
      per_step: the per-step relative differences, in the input's shape.
    """

    passed: bool
    rtol: float
    steps: int
    worst: float
    worst_at: str
    first_failure: str | None
    params_worst: float | None
    params_worst_name: str | None
    per_step: np.ndarray

    def summary(self, what: str = "steps") -> str:
        """One line: verdict, the largest difference and where, the parameters'."""
        line = (
            f"float64 gate {'PASSED' if self.passed else 'FAILED'}: {self.steps} {what}, "
            f"largest relative loss difference {self.worst:.2e} ({self.worst_at}) against "
            f"{self.rtol:g}"
        )
        if self.first_failure is not None:
            line += f", first beyond it at {self.first_failure}"
        if self.params_worst is not None:
            line += f"; final parameters {self.params_worst:.2e} ({self.params_worst_name})"
        return line


def float64_gate(
    jax_steps: Any,
    torch_steps: Any,
    *,
    jax_params: Mapping[str, Any] | None = None,
    torch_params: Mapping[str, Any] | None = None,
    rtol: float = GATE_RTOL,
) -> Gate:
    """Do a matched float64 JAX run and torch run compute the same steps?

    The per-step losses (``[steps]`` or ``[epochs, steps]``: the engine's
    ``metrics["step_loss"]``, torch's ``loss.item()`` per step) must agree to ``rtol`` relative
    at EVERY step, and, when given, every final parameter tensor (torch names, infinity-norm
    relative error). The PyTorch equivalent is ``torch.testing.assert_close(jax, torch,
    rtol=1e-8, atol=0)`` applied per step.

    Args:
      jax_steps: the JAX run's per-step losses.
      torch_steps: the torch run's per-step losses, same shape.
      jax_params: final parameters ``{torch name: array}`` of the JAX run, or None.
      torch_params: the torch run's, the same names.
      rtol: the tolerance (default :data:`GATE_RTOL`).

    Returns:
      A :class:`Gate`.

    Raises:
      ValueError: shapes or parameter names differ, nothing to compare, a float32 array, or
        only one side's parameters.

    Example:
      >>> g = float64_gate([2.3, 1.9, 1.7], [2.3, 1.9 * (1 + 1e-12), 1.7])
      >>> g.passed, f"{g.worst:.0e}", g.worst_at
      (True, '1e-12', 'step 2')
      >>> float64_gate([2.3, 1.9], [2.3, 1.91]).passed
      False
    """
    if not rtol > 0:
        raise ValueError(f"rtol={rtol!r}: expected a positive float")
    _check_float64("jax_steps", jax_steps)
    _check_float64("torch_steps", torch_steps)
    err = step_errors(jax_steps, torch_steps)
    if err.size == 0:
        raise ValueError("jax_steps is empty: the gate needs at least one step")
    flat = err.ravel()
    worst_i = int(np.argmax(flat))
    beyond = np.flatnonzero(~(flat <= rtol))
    first = _where(err.shape, int(beyond[0])) if beyond.size else None
    p_worst = p_name = None
    if (jax_params is None) != (torch_params is None):
        raise ValueError("jax_params and torch_params: give both or neither")
    if jax_params is not None:
        if set(jax_params) != set(torch_params):
            missing = sorted(set(jax_params) ^ set(torch_params))
            raise ValueError(f"jax_params and torch_params name different tensors: {missing}")
        for name in sorted(torch_params):
            _check_float64(f"jax_params[{name!r}]", jax_params[name])
            e = tensor_error(jax_params[name], torch_params[name])
            if p_worst is None or e > p_worst:
                p_worst, p_name = e, name
    passed = not beyond.size and (p_worst is None or p_worst <= rtol)
    return Gate(
        passed, rtol, int(err.size), float(flat[worst_i]), _where(err.shape, worst_i), first,
        p_worst, p_name, err,
    )  # fmt: skip


class Attribution(NamedTuple):
    """Per step, float32's JAX-torch gap beside each side's own float32 error.

    Every entry is relative to the torch float64 run's loss at that step, so that
    ``gap <= jax_error + float64_gap + torch_error`` holds exactly (triangle inequality).

    Attributes:
      gap: ``|jax32 - torch32|``: what a float32 comparison sees.
      jax_error: ``|jax32 - jax64|``: JAX's own float32 error.
      torch_error: ``|torch32 - torch64|``: torch's own float32 error.
      float64_gap: ``|jax64 - torch64|``: the float64 pair's difference.
    """

    gap: np.ndarray
    jax_error: np.ndarray
    torch_error: np.ndarray
    float64_gap: np.ndarray


def float32_attribution(jax32: Any, jax64: Any, torch32: Any, torch64: Any) -> Attribution:
    """Which side's float32 drifted, and by how much, step by step.

    Four matched runs on the same batches, order and random draws (float64 and float32 draws
    identical): JAX and torch, each in float32 and float64. The float64 runs stand for the
    exact computation, so each side's float32 run against its own float64 run is that side's
    float32 error; the float32 gap between the sides is at most the sum of the two (plus the
    float64 pair's gap). The PyTorch counterpart is running the same loop with
    ``model.double()`` beside ``model.float()``.

    Args:
      jax32: the JAX float32 run's per-step losses (``[steps]`` or ``[epochs, steps]``).
      jax64: the JAX float64 run's, same shape.
      torch32: the torch float32 run's.
      torch64: the torch float64 run's.

    Returns:
      An :class:`Attribution`.

    Example:
      >>> a = float32_attribution([1.0, 2.0001], [1.0, 2.0], [1.0, 2.002], [1.0, 2.0])
      >>> [f"{v:.0e}" for v in (a.gap[1], a.jax_error[1], a.torch_error[1])]
      ['9e-04', '5e-05', '1e-03']
    """
    arrays = [np.asarray(v, np.float64) for v in (jax32, jax64, torch32, torch64)]
    names = ("jax32", "jax64", "torch32", "torch64")
    for name, a in zip(names, arrays, strict=True):
        if a.shape != arrays[3].shape:
            raise ValueError(f"{name} has shape {a.shape}, torch64 {arrays[3].shape}")
    if arrays[3].size == 0:
        raise ValueError("torch64 is empty: nothing to attribute")
    j32, j64, t32, t64 = arrays
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.abs(t64)

        def rel(a, b):
            d = np.where(a == b, 0.0, np.abs(a - b) / scale)
            return np.where(np.isfinite(d), d, np.inf)

        return Attribution(rel(j32, t32), rel(j32, j64), rel(t32, t64), rel(j64, t64))


def _drifted(jax_err: float, torch_err: float) -> str:
    if torch_err >= 2 * jax_err and torch_err > 0:
        ratio = torch_err / jax_err if jax_err > 0 else math.inf
        return f"torch ({ratio:.1f}x JAX's)"
    if jax_err >= 2 * torch_err and jax_err > 0:
        ratio = jax_err / torch_err if torch_err > 0 else math.inf
        return f"JAX ({ratio:.1f}x torch's)"
    return "both about equally"


def attribution_summary(att: Attribution, label: str = "") -> str:
    """One line: the largest float32 gap, each side's own largest float32 error, who drifted.

    Example:
      >>> a = float32_attribution([1.0, 2.0001], [1.0, 2.0], [1.0, 2.002], [1.0, 2.0])
      >>> print(attribution_summary(a, "demo"))  # doctest: +NORMALIZE_WHITESPACE
      demo: float32 JAX-torch gap up to 9.5e-04 (step 2); own float32 error (float32 run vs
      float64 run) JAX up to 5.0e-05, torch up to 1.0e-03: torch (20.0x JAX's) drifted more;
      float64 pair 0.0e+00
    """
    gap = att.gap.ravel()
    worst = int(np.argmax(gap))
    jax_err, torch_err = float(np.max(att.jax_error)), float(np.max(att.torch_error))
    who = _drifted(jax_err, torch_err)
    verb = "drifted" if who.startswith("both") else "drifted more"
    return (
        f"{label + ': ' if label else ''}float32 JAX-torch gap up to {gap[worst]:.1e} "
        f"({_where(att.gap.shape, worst)}); own float32 error (float32 run vs float64 run) "
        f"JAX up to {jax_err:.1e}, torch up to {torch_err:.1e}: {who} {verb}; float64 pair "
        f"{float(np.max(att.float64_gap)):.1e}"
    )


def attribution_rows(att: Attribution) -> list[dict[str, Any]]:
    """Rows of the attribution table: step 1, steps 2-10, then each epoch (largest values)."""
    flat = [a.reshape(-1) for a in att]
    per_epoch = att.gap.shape[-1] if att.gap.ndim == 2 else len(flat[0])
    spans = [("step 1", 0, 1), ("steps 2-10", 1, min(10, len(flat[0])))]
    if att.gap.ndim == 2:
        spans += [
            (f"epoch {e + 1}", e * per_epoch, (e + 1) * per_epoch) for e in range(att.gap.shape[0])
        ]
    else:
        spans.append((f"steps 1-{len(flat[0])}", 0, len(flat[0])))
    rows = []
    for label, lo, hi in spans:
        if hi <= lo:
            continue
        gap, jax_err, torch_err, f64 = (float(np.max(a[lo:hi])) for a in flat)
        rows.append(
            {
                "steps": label,
                "float32 gap": f"{gap:.2e}",
                "JAX own float32 error": f"{jax_err:.2e}",
                "torch own float32 error": f"{torch_err:.2e}",
                "float64 gap": f"{f64:.2e}",
                "drifted more": _drifted(jax_err, torch_err),
            }
        )
    return rows


def attribution_table(att: Attribution) -> str:
    """:func:`attribution_rows` as a markdown table."""
    rows = attribution_rows(att)
    return format_table(rows, list(rows[0]), {})

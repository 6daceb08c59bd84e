"""Shared machinery of the parity suite: tolerances, the comparison recorder, conversions.

Error metrics (the same in every row of ``results/<device>.md``):

* ``max abs err`` = ``max |jax - torch|`` over the tensor's elements;
* ``max rel err`` = ``max abs err / max |torch|`` (the infinity-norm relative error; for a
  torch tensor that is all zeros it is the absolute error, so an exact zero must be met exactly
  up to the tolerance).

A comparison passes when ``max rel err <= tolerance``. A NaN on either side is an infinite
error unless the case expects NaNs (``expect_nan=True``): then the NaNs must sit at the same
positions on both sides and only the other elements are compared. Two all-NaN tensors are
therefore a failure by default, never an error of 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class Tol:
    """A tolerance with its label and the reason for its size (shown in the report)."""

    label: str
    value: float
    reason: str


EXACT = Tol(
    "exact",
    0.0,
    "the same arithmetic on both sides (a recovered torch mask replayed, an identity, zeros): "
    "bit-identical",
)
F64 = Tol(
    "f64",
    1e-10,
    "float64: ~1e-16 rounding per operation; sums and matmuls of up to ~1e5 terms reduced in a "
    "different order by XLA and ATen stay far below 1e-12",
)
F32_CPU = Tol(
    "f32",
    1e-5,
    "float32 on CPU: ~6e-8 rounding per operation; Flax computes x @ kernel where torch computes "
    "x @ W.T, and reductions of up to ~1e3 terms are summed in different orders (observed "
    "errors ~1e-7..1e-6)",
)
F32_STEPS = Tol(
    "f32-steps",
    5e-5,
    "float32, 25 optimizer steps from a shared start: each step's ~1e-7 rounding difference in the "
    "gradients feeds the next step, and Adam's m / (sqrt(v) + eps) divides by the gradient's own "
    "scale, so coordinates with tiny gradients carry the gradient's relative error (observed "
    "<= 1.3e-5); float64 stays at 1e-10",
)
F32_GPU = Tol(
    "f32-gpu",
    1e-5,
    "float32 on GPU with matmul precision pinned to 'highest' on both sides (TF32 off): "
    "cuBLAS/cuDNN and XLA pick different reduction orders, ~1e-6",
)
TF32_DEFAULT = Tol(
    "tf32",
    1e-2,
    "JAX's DEFAULT matmul precision on an Ampere+/Hopper GPU uses TF32 (10-bit mantissa, "
    "~5e-4 relative per product) while torch is pinned to full float32: documented looser bound",
)


def base_tol(dtype: str, device: str, steps: int = 1) -> Tol:
    """The tolerance of a forward pass or a single step; ``steps > 1``: a short optimizer run."""
    if dtype == "float64":
        return F64
    if steps > 1:
        return F32_STEPS
    return F32_GPU if device == "gpu" else F32_CPU


def torch_dtype(dtype: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def torch_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


def jax_device(device: str) -> jax.Device:
    return jax.devices("gpu" if device == "gpu" else "cpu")[0]


def to_jax(x: Any, dtype: str) -> jax.Array:
    """A NumPy array or torch tensor as a JAX array of ``dtype`` (call inside the x64 scope)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return jnp.asarray(np.asarray(x), dtype=jnp.dtype(dtype))


def to_torch(x: Any, dtype: str, device: str, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(np.array(x, dtype=np.dtype(dtype), copy=True)).to(torch_device(device))
    return t.requires_grad_(requires_grad)


def tree_to_jax(tree: Any, dtype: str) -> Any:
    return jax.tree.map(lambda a: to_jax(a, dtype), tree)


def _as_numpy(x: Any, side: str) -> np.ndarray:
    if side == "ours" and isinstance(x, torch.Tensor):
        raise TypeError("parity: the jaxreg side of a comparison is a torch tensor")
    if side == "theirs" and isinstance(x, jax.Array):
        raise TypeError("parity: the reference side of a comparison is a JAX array")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def errors(ours: np.ndarray, theirs: np.ndarray, expect_nan: bool = False) -> tuple[float, float]:
    """``(max abs err, max rel err)`` as defined in the module docstring.

    A NaN on either side is an infinite error unless ``expect_nan``; then NaNs must match in
    position and the remaining elements are compared.
    """
    nan_a, nan_b = np.isnan(ours), np.isnan(theirs)
    if np.any(nan_a != nan_b) or (not expect_nan and np.any(nan_b)):
        return math.inf, math.inf
    diff = np.abs(np.where(nan_a, 0.0, ours - np.where(nan_b, 0.0, theirs)))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(np.where(nan_b, 0.0, theirs)).max()) if theirs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


class Recorder:
    """Collects the comparisons of one parity case; the conftest turns them into a report row."""

    def __init__(self, case: str, family: str, device: str, dtype: str):
        self.case, self.family, self.device, self.dtype = case, family, device, dtype
        self.checks: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.references: list[str] = []

    def _fail(self, tensor: str, abs_err: float, rel_err: float, tol: float, why: str) -> None:
        raise AssertionError(
            f"parity case {self.family}/{self.case} [{self.dtype}, {self.device}], tensor "
            f"{tensor!r}: max abs err {abs_err:.3e}, max rel err {rel_err:.3e} > tolerance "
            f"{tol:.1e} ({why})"
        )

    def note(self, text: str) -> None:
        """A remark shown next to the row (e.g. a documented divergence of the seed formula)."""
        self.notes.append(text)

    def uses(self, reference: str) -> None:
        """Names the reference implementation this case compared with, where there is a choice
        (e.g. torchvision's VGG16 or the plain-torch copy); the report shows it per case."""
        if reference not in self.references:
            self.references.append(reference)

    def _record(self, tensor, abs_err, rel_err, tol: Tol, value: float, passed: bool) -> None:
        self.checks.append(
            {
                "tensor": tensor,
                "max_abs_err": abs_err,
                "max_rel_err": rel_err,
                "tol": value,
                "tol_label": tol.label,
                "tol_reason": tol.reason,
                "passed": passed,
            }
        )

    def check(
        self, tensor: str, ours: Any, theirs: Any, tol: Tol, *, expect_nan: bool = False
    ) -> None:
        """Compares the jaxreg result ``ours`` with the torch/NumPy reference ``theirs``.

        ``expect_nan``: the case expects NaNs (e.g. a seed formula's NaN gradient); they must
        then sit at the same positions. Otherwise any NaN fails the comparison.
        """
        if ours is theirs:
            raise AssertionError(f"parity: {tensor!r} compared with itself")
        a, b = _as_numpy(ours, "ours"), _as_numpy(theirs, "theirs")
        if a.shape != b.shape:
            self._record(tensor, math.inf, math.inf, tol, tol.value, False)
            raise AssertionError(
                f"parity case {self.family}/{self.case} [{self.dtype}, {self.device}], tensor "
                f"{tensor!r}: shape {a.shape} (jaxreg) != {b.shape} (torch)"
            )
        abs_err, rel_err = errors(a, b, expect_nan)
        passed = rel_err <= tol.value
        self._record(tensor, abs_err, rel_err, tol, tol.value, passed)
        if not passed:
            self._fail(tensor, abs_err, rel_err, tol.value, f"{tol.label}: {tol.reason}")

    def check_tree(
        self, prefix: str, ours: dict, theirs: dict, tol: Tol, *, expect_nan: bool = False
    ) -> None:
        """``check`` on every key of two flat dicts with the same keys (e.g. torch names)."""
        if set(ours) != set(theirs):
            raise AssertionError(
                f"parity case {self.family}/{self.case}: {prefix} keys differ: "
                f"{sorted(set(ours) ^ set(theirs))}"
            )
        for k in sorted(theirs):
            self.check(f"{prefix}{k}", ours[k], theirs[k], tol, expect_nan=expect_nan)

    def check_envelope(
        self,
        tensor: str,
        ours: Any,
        theirs: Any,
        allowed: np.ndarray,
        tol: Tol,
        *,
        scale: str = "max",
    ) -> None:
        """Per-step comparison of two sequences against a per-step allowed relative error.

        Each step's error is ``|ours_k - theirs_k| / max_k |theirs_k|`` (``scale="max"``) or
        ``|ours_k - theirs_k| / |theirs_k|`` (``scale="step"``: late steps with a small loss are
        held to their own size, not to the largest loss of the run); it must not exceed
        ``allowed[k]``. A NaN on either side is an infinite error. The recorded errors and
        tolerance are those of the step closest to its bound; the tensor label also names the
        step with the largest error.
        """
        if scale not in ("max", "step"):
            raise ValueError(f"scale={scale!r}: allowed values are ('max', 'step')")
        a, b = _as_numpy(ours, "ours"), _as_numpy(theirs, "theirs")
        if a.shape != b.shape or a.ndim != 1 or a.shape != np.shape(allowed):
            raise AssertionError(f"parity: {tensor!r} sequences of shapes {a.shape}, {b.shape}")
        denom = np.abs(b) if scale == "step" else np.abs(b).max()
        with np.errstate(divide="ignore", invalid="ignore"):
            step_err = np.where(a == b, 0.0, np.abs(a - b) / denom)
        step_err = np.where(np.isnan(step_err), np.inf, step_err)
        ratio = step_err / np.maximum(allowed, 1e-300)
        k = int(np.argmax(ratio))
        passed = bool(np.all(step_err <= allowed))
        j = int(np.argmax(step_err))
        label = (
            f"{tensor} (worst at step {k} of {len(a)}; largest error {step_err[j]:.1e} at step "
            f"{j}, bound there {allowed[j]:.1e})"
        )
        self._record(label, float(abs(a[k] - b[k])), float(step_err[k]), tol, float(allowed[k]),
                     passed)  # fmt: skip
        if not passed:
            self._fail(f"{tensor} at step {k}", float(abs(a[k] - b[k])), float(step_err[k]),
                       float(allowed[k]), f"{tol.label}: {tol.reason}")  # fmt: skip

    def row(self, outcome: str) -> dict[str, Any]:
        """The report row: the worst comparison (by error / tolerance) stands for the case."""
        row: dict[str, Any] = {
            "name": f"{self.family}/{self.case}",
            "family": self.family,
            "case": self.case,
            "device": self.device,
            "dtype": self.dtype,
            "tensors": len(self.checks),
            "notes": self.notes,
            "reference": "; ".join(self.references) or None,
        }
        if not self.checks:
            row.update(max_abs_err=None, max_rel_err=None, tol=None, tol_label=None)
            row.update(worst_tensor=None, passed=False, outcome=outcome)
            return row

        def badness(c: dict[str, Any]) -> float:
            if c["max_rel_err"] == 0:
                return 0.0
            return math.inf if c["tol"] == 0 else c["max_rel_err"] / c["tol"]

        worst = max(self.checks, key=badness)
        row.update(
            max_abs_err=worst["max_abs_err"],
            max_rel_err=worst["max_rel_err"],
            tol=worst["tol"],
            tol_label=worst["tol_label"],
            tol_reason=worst["tol_reason"],
            worst_tensor=worst["tensor"],
            passed=outcome == "passed" and all(c["passed"] for c in self.checks),
            outcome=outcome,
            checks=self.checks,
        )
        return row


def torch_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad for k, p in model.named_parameters()}


def flax_grads_as_torch(grads: Any) -> dict[str, np.ndarray]:
    """Flax gradients (same tree as params) in torch layout and names, for ``check_tree``."""
    from jaxreg.convert import flax_to_torch

    return flax_to_torch(jax.tree.map(np.asarray, grads))


@functools.lru_cache(maxsize=1)
def torch_vgg16() -> torch.nn.Module:
    """Seed 000's VGG16 (torchvision init, 138M parameters), float32, built once per process.

    torchvision's model wherever torchvision imports, else the plain-torch copy: a case that uses
    it records ``str(torch_vgg16().reference)`` with :meth:`Recorder.uses`.
    """
    from jaxreg.torch_ref.models import VGG16

    torch.manual_seed(0)
    return VGG16().eval().requires_grad_(False)


def vgg16_state(dtype: str) -> dict[str, torch.Tensor]:
    """The cached VGG16's state_dict in ``dtype`` (a float64 copy is made only when asked)."""
    return {k: v.to(torch_dtype(dtype)) for k, v in torch_vgg16().state_dict().items()}

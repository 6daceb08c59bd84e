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

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from jaxreg.lab.compare_train import MatchedReport, SeedsReport, compare_seeds, train_matched

__all__ = [
    "TOLERANCES",
    "BatchReport",
    "CompareReport",
    "ConversionError",
    "LayerDiff",
    "MatchedReport",
    "MismatchError",
    "SeedsReport",
    "TensorCheck",
    "Tolerance",
    "TorchFlatten",
    "check_batch",
    "check_conversion",
    "compare",
    "compare_seeds",
    "flatten_nchw",
    "nchw",
    "nhwc",
    "train_matched",
]


def nchw(x):
    """A channels-last batch ``(N, H, W, C)`` as torch's ``(N, C, H, W)`` (NumPy or JAX)."""
    return x.transpose(0, 3, 1, 2)


def nhwc(x):
    """A channels-first batch ``(N, C, H, W)`` as Flax's ``(N, H, W, C)``."""
    return x.transpose(0, 2, 3, 1)


# ---- all three for a spec ------------------------------------------------------------------------
_IMAGE = (28, 28, 1)  # Fashion-MNIST, the one data source a spec.Data names


def _layout_map(src: str, dst: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The map from a batch in layout ``src`` to layout ``dst`` (linear: also maps gradients)."""
    if src == dst:
        return None
    h, w, c = _IMAGE
    to_nhwc = {
        "flat": lambda x: x.reshape(len(x), h, w, c),
        "nchw": nhwc,
        "nhwc": lambda x: x,
    }[src]
    from_nhwc = {
        "flat": lambda x: x.reshape(len(x), -1),
        "nchw": nchw,
        "nhwc": lambda x: x,
    }[dst]
    return lambda x: from_nhwc(to_nhwc(x))


@dataclasses.dataclass
class CompareReport:
    """The three comparisons of one spec (:func:`compare`).

    Attributes:
        batch: the one-batch check (:class:`BatchReport`).
        matched: matched training (:class:`MatchedReport`).
        seeds: the multi-seed comparison (:class:`SeedsReport`), None when skipped.
    """

    batch: BatchReport
    matched: MatchedReport
    seeds: SeedsReport | None

    @property
    def ok(self) -> bool:
        """The one-batch check and the float64 gate passed (seed verdicts are reported)."""
        return self.batch.ok and self.matched.ok

    def __str__(self) -> str:
        parts = [str(self.batch), "", str(self.matched)]
        if self.seeds is not None:
            parts += ["", str(self.seeds)]
        verdict = "PASSED" if self.ok else "FAILED"
        parts += ["", f"compare: {verdict} (one-batch check and float64 per-step gate)"]
        return "\n".join(parts)

    def record(self) -> dict[str, Any]:
        """The figures as plain data (``compare.json``)."""
        gate = self.matched.gate
        out: dict[str, Any] = {
            "ok": self.ok,
            "batch": {
                "ok": self.batch.ok,
                "rows": [r._asdict() | {"ok": r.ok} for r in self.batch.rows],
                "first_differences": {
                    f"{d} dropout {'on' if on else 'off'}": None if diff is None else str(diff)
                    for (d, on), diff in self.batch.first_differences.items()
                },
            },
            "matched": {
                "ok": self.matched.ok,
                "gate": None if gate is None else gate.summary(),
                "step_loss": {f"{d} {f}": v.tolist() for (d, f), v in self.matched.steps.items()},
            },
        }
        if self.seeds is not None:
            out["seeds"] = [
                {k: (v._asdict() if hasattr(v, "_asdict") else v) for k, v in row.items()}
                for row in self.seeds.rows
            ]
        return out

    def save(self, out: str | Path, *, run_id: str | None = None) -> Path:
        """Writes ``report.md`` (the printed report) and ``compare.json`` into folder ``out``.

        ``run_id``: the run folder's id (``jaxreg compare --out`` passes it), kept in
        ``compare.json``.
        """
        from jaxreg.lab.files import atomic_write_text

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        record = self.record() if run_id is None else {"run_id": run_id, **self.record()}
        atomic_write_text(folder / "report.md", "```\n" + str(self) + "\n```\n")
        atomic_write_text(
            folder / "compare.json", json.dumps(record, indent=1, default=float) + "\n"
        )
        return folder


def _flax_side(spec: Any, train: Any, seed: int) -> tuple[Any, Any]:
    """The model ``check_batch`` runs and its variables: the engine's initial weights (Linen),
    or an NNX model built from the spec's class with its own (``rngs=nnx.Rngs(seed)``)."""
    import flax.linen as nn
    import jax

    if isinstance(spec.model, nn.Module):
        return spec.model, train.init(jax.random.key(seed)).params
    from flax import nnx

    model = spec.model(**spec.model_kwargs, **dict(spec.hparams), rngs=nnx.Rngs(seed))
    return model, None


def compare(
    spec: Any,
    *,
    dtypes: Sequence[str] = ("float32", "float64"),
    epochs: int | None = None,
    seeds: int | Sequence[int] | None = None,
    variant: str | None = None,
    batch: int = 32,
) -> CompareReport:
    """The one-batch check, matched training and the multi-seed comparison of a spec.

    What ``jaxreg compare SPEC.py`` runs. The one-batch check takes the first ``batch``
    training examples and the engine's initial weights (in the twin's layout when the spec's
    data gives torch another one); matched training trains the spec's first seed in each dtype
    (the float64 gate needs ``"float64"``, the attribution both); the seeds comparison trains
    ``seeds`` seeds per side in float32, matched (skipped when fewer than 2).

    PyTorch equivalent: none; what a researcher would otherwise script by hand for each model.

    Args:
        spec: a :class:`jaxreg.lab.spec.Spec` with a ``torch_model``.
        dtypes: the dtypes of the one-batch check and of matched training.
        epochs: overrides the spec's (matched training and seeds).
        seeds: a count or the seeds of the multi-seed comparison (default: the spec's).
        variant: the variant's name (default: the first).
        batch: examples in the one-batch check.

    Returns:
        A :class:`CompareReport`: ``print`` it, ``.ok``, ``.save(folder)``.

    Example:
        >>> report = compare(get_config())  # doctest: +SKIP
        >>> report.ok  # doctest: +SKIP
        True
    """
    from jaxreg.lab import runner
    from jaxreg.lab.compare_batch import DTYPES

    dtypes = tuple(dtypes)
    if not dtypes or any(d not in DTYPES for d in dtypes):
        raise ValueError(f"dtypes={dtypes!r}: allowed values are {DTYPES} (at least one)")
    if spec.torch_model is None:
        raise ValueError(f"spec {spec.name!r} has no torch_model: nothing to compare against")
    data = runner.load_data(spec)
    v = spec.variant(variant)
    seed = spec.seeds[0]
    train = runner.Runner(spec, data, epochs=1).train(v)
    model, variables = _flax_side(spec, train, seed)
    x_train, y_train = runner._split(data.jax, "train")
    x, y = np.asarray(x_train[:batch]), np.asarray(y_train[:batch])
    to_torch = None
    if hasattr(spec.data, "layout"):
        to_torch = _layout_map(spec.data.layout, spec.data.torch_layout or spec.data.layout)
    twin = (v.torch_model or spec.torch_model)()
    batch_report = check_batch(
        model, variables, twin, x, y, loss=spec.loss, dtypes=dtypes, to_torch=to_torch
    )
    matched = train_matched(spec, dtypes=dtypes, epochs=epochs, variant=v.name, data=data)
    if seeds is None:
        chosen = spec.seeds
    else:
        chosen = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    seeds_report = None
    if len(chosen) >= 2:
        seeds_report = compare_seeds(
            spec, seeds=chosen, epochs=epochs, dtype="float32", variant=v.name, data=data
        )
    return CompareReport(batch_report, matched, seeds_report)

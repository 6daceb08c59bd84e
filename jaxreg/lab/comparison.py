"""JAX against torch: the float64 per-step gate, the float32 attribution, multi-seed statistics.

Two runs compute the same thing when, matched (same initial weights, batches, order and random
draws: :mod:`jaxreg.lab.matched`), their **float64** runs agree at every optimizer step:
:func:`float64_gate` holds the per-step losses (torch's ``loss.item()`` of each step, the
engine's ``metrics["step_loss"]``) and the final parameters to :data:`GATE_RTOL` relative
(measured: 1.4e-11 on Fashion-MNIST; a learning rate 1% off, a penalty twice too strong, a mask
one step late or a run that silently computes in float32 fail it by orders of magnitude).

**float32 is reported, not gated**: float32 rounding differs between the two libraries' kernels
and between CPUs (AVX-512 against AVX2), and SGD amplifies it, so no float32 bound drawn from one
noise sample separates a correct implementation from a wrong one on every machine.
:func:`float32_attribution` shows, per step, the JAX-torch float32 gap beside each side's own
float32 error (its float32 run against its float64 run on the same batches and draws), so a
reader sees which side drifted and by how much (:func:`attribution_summary`,
:func:`attribution_table`).

``--seeds N``: :func:`seed_statistics` gives every final metric's mean and 95% interval per
framework and the JAX-torch difference with its interval and verdict
(:func:`jaxreg.lab.stats.difference`: paired when matched, Welch's otherwise). The gate and
the attribution themselves are :mod:`jaxreg.lab.verdict`'s (re-exported here).
:func:`summarize` turns a run's histories into the report's paragraphs and a record (plain
data); the report writer (:mod:`jaxreg.lab.report`) writes the files. This module imports
neither jax nor torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxreg.lab import stats
from jaxreg.lab.report import format_table
from jaxreg.lab.verdict import (
    GATE_RTOL,
    Attribution,
    Gate,
    attribution_rows,
    attribution_summary,
    attribution_table,
    float32_attribution,
    float64_gate,
    step_errors,
    tensor_error,
)

__all__ = [
    "GATE_RTOL", "TEST_ACC_TOL", "Attribution", "Gate", "Summary",
    "attribution_rows", "attribution_summary", "attribution_table", "float32_attribution",
    "epoch_gaps", "float64_gate", "gate_runs", "sections", "seed_statistics", "step_errors",
    "step_losses", "summarize", "tensor_error",
]  # fmt: skip

History = Mapping[str, Any]
Runs = Mapping[tuple[str, str], Sequence[History]]

TEST_ACC_TOL = 1e-4
"""float64 test accuracy, absolute: one image in 10,000 (an argmax tie broken differently)."""

F32_WHY = (
    "float32 is reported, not gated: the two libraries' kernels sum in different orders "
    "(~6e-8 relative per operation, and differently on AVX-512 and AVX2 CPUs), SGD feeds each "
    "step's rounding into the next, and a float32-sized change flips ReLU units and argmaxes "
    "that sit near their thresholds, so a correct float32 pair drifts apart by 1e-3 and more "
    "within an epoch. Whether the two sides compute the same thing is the float64 gate's "
    "question (`--dtype float64`: every step within 1e-8 relative); `jaxreg main` puts each "
    "side's own float32 error (its float32 run against its float64 run on the same batches "
    "and masks) beside the float32 gap."
)


_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def _finite(values: Sequence[float]) -> list[tuple[int, float]]:
    return [(i, float(v)) for i, v in enumerate(values) if math.isfinite(float(v))]


def _final(values: Sequence[float]) -> float | None:
    finite = _finite(values)
    return finite[-1][1] if finite else None


def _pairs(runs: Runs) -> list[str]:
    variants = []
    for variant, framework in runs:
        if framework == "jax" and (variant, "torch") in runs and variant not in variants:
            variants.append(variant)
    return variants


def step_losses(history: History) -> tuple[np.ndarray, str]:
    """A history's per-step losses and what they are: ``("steps")`` from ``step_loss``, else the
    per-epoch ``train_loss`` (means of the steps: ``"epochs"``)."""
    if history.get("step_loss") is not None:
        return np.asarray(history["step_loss"], np.float64), "steps"
    return np.asarray(history["train_loss"], np.float64), "epochs"


def _test_gap(jax_hist: History, torch_hist: History) -> tuple[str, float] | None:
    for metric in ("test_acc", "test_loss"):
        pairs = [
            (float(a), float(b))
            for a, b in zip(jax_hist.get(metric, ()), torch_hist.get(metric, ()), strict=False)
            if math.isfinite(float(b))
        ]
        if pairs:
            if metric == "test_acc":
                return metric, max(abs(a - b) for a, b in pairs)
            return metric, max(float(np.max(step_errors([a], [b]))) for a, b in pairs)
    return None


def gate_runs(runs: Runs, rtol: float = GATE_RTOL) -> list[dict[str, Any]]:
    """The float64 gate of every matched (variant, seed) pair of a run.

    Args:
      runs: ``(variant, framework) -> [history per seed]`` of a matched float64 run; a history
        with ``step_loss`` is compared per step, else per epoch (``train_loss``); one with
        ``final_params`` (``{torch name: array}``) also on its final parameters.
      rtol: the tolerance.

    Returns:
      Rows ``{variant, seed, gate (a Gate), compared ("steps"/"epochs"), test_metric,
      test_gap, passed}``; the test metric (accuracy absolute within :data:`TEST_ACC_TOL`,
      else loss relative within ``rtol``) is part of ``passed``.

    Example:
      >>> h = {"train_loss": [0.9, 0.5], "test_acc": [0.8, 0.9]}
      >>> rows = gate_runs({("a", "jax"): [h], ("a", "torch"): [h]})
      >>> rows[0]["passed"], rows[0]["compared"]
      (True, 'epochs')
    """
    rows = []
    for variant in _pairs(runs):
        for seed, (j, t) in enumerate(zip(runs[(variant, "jax")], runs[(variant, "torch")],
                                          strict=True)):  # fmt: skip
            (js, jwhat), (ts, twhat) = step_losses(j), step_losses(t)
            if jwhat != twhat:
                js, ts = (
                    step_losses({"train_loss": j["train_loss"]})[0],
                    step_losses({"train_loss": t["train_loss"]})[0],
                )
                jwhat = "epochs"
            params = {}
            if j.get("final_params") is not None and t.get("final_params") is not None:
                params = {"jax_params": j["final_params"], "torch_params": t["final_params"]}
            gate = float64_gate(js, ts, rtol=rtol, **params)
            test = _test_gap(j, t)
            test_ok = test is None or test[1] <= (TEST_ACC_TOL if test[0] == "test_acc" else rtol)
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "gate": gate,
                    "compared": jwhat,
                    "test_metric": test[0] if test else None,
                    "test_gap": test[1] if test else None,
                    "passed": gate.passed and test_ok,
                }
            )
    return rows


def epoch_gaps(runs: Runs) -> list[dict[str, Any]]:
    """Per variant and evaluated epoch of a matched run: the largest JAX-torch gaps.

    Reported as they are for float32 (not gated, see :data:`F32_WHY`); a float64 run's rows
    are the per-epoch view of :func:`gate_runs` (``summarize`` adds ``within_bound``).

    Returns:
      Rows ``{variant, epoch, train_loss_rel, step_loss_rel, test_metric, test_gap}``, each
      the largest over the seeds; the loss gaps are the largest over the epochs since the
      previous row (regression runs are evaluated every few epochs), ``step_loss_rel`` the
      largest per-step gap (None without per-step losses), the test metric ``test_acc``
      (absolute) where there is one, else ``test_loss`` (relative).

    Example:
      >>> h = {"train_loss": [1.0, 0.5], "test_acc": [0.8, 0.9]}
      >>> t = {"train_loss": [1.0, 0.5001], "test_acc": [0.8, 0.91]}
      >>> rows = epoch_gaps({("a", "jax"): [h], ("a", "torch"): [t]})
      >>> [(r["epoch"], round(r["train_loss_rel"], 6), round(r["test_gap"], 6)) for r in rows]
      [(1, 0.0, 0.0), (2, 0.0002, 0.01)]
    """
    rows = []
    for variant in _pairs(runs):
        pairs = list(zip(runs[(variant, "jax")], runs[(variant, "torch")], strict=True))
        torch0 = pairs[0][1]
        test = "test_acc" if _finite(torch0.get("test_acc", ())) else "test_loss"
        steps = all(j.get("step_loss") is not None and t.get("step_loss") is not None
                    for j, t in pairs)  # fmt: skip
        previous = -1
        for epoch, _ in _finite(torch0.get(test, ())):
            span = slice(previous + 1, epoch + 1)
            loss = max(
                float(np.max(step_errors(j["train_loss"][span], t["train_loss"][span])))
                for j, t in pairs
            )
            step = (
                max(
                    float(
                        np.max(
                            step_errors(
                                np.asarray(j["step_loss"])[span], np.asarray(t["step_loss"])[span]
                            )
                        )
                    )
                    for j, t in pairs
                )  # fmt: skip
                if steps
                else None
            )
            a = [(float(j[test][epoch]), float(t[test][epoch])) for j, t in pairs]
            gap = max(abs(x - y) if test == "test_acc" else float(step_errors([x], [y])[0])
                      for x, y in a)  # fmt: skip
            rows.append({"variant": variant, "epoch": epoch + 1, "train_loss_rel": loss,
                         "step_loss_rel": step, "test_metric": test, "test_gap": gap})  # fmt: skip
            previous = epoch
    return rows


def seed_statistics(runs: Runs, *, paired: bool, level: float = 0.95) -> list[dict[str, Any]]:
    """Every final metric: per framework its mean and interval, and JAX minus torch.

    Args:
      runs: ``(variant, framework) -> [history per seed]``.
      paired: seed ``i`` of JAX and of torch are a matched pair (``--matched``).
      level: confidence level.

    Returns:
      Rows ``{variant, metric, jax, torch, difference, verdict, method, n}`` with
      :class:`jaxreg.lab.stats.Interval` values (None for a side that did not run).

    Example:
      >>> runs = {("a", "jax"): [{"test_acc": [v]} for v in (0.84, 0.85, 0.86)],
      ...         ("a", "torch"): [{"test_acc": [v]} for v in (0.83, 0.84, 0.85)]}
      >>> row = seed_statistics(runs, paired=True)[0]
      >>> row["verdict"], round(row["difference"].mean, 4)
      ('different', 0.01)
    """
    rows = []
    for variant in dict.fromkeys(v for v, _ in runs):
        for metric in _METRICS:
            finals = {}
            for framework in ("jax", "torch"):
                hists = runs.get((variant, framework))
                if hists is None:
                    continue
                values = [_final(h.get(metric, ())) for h in hists]
                if all(v is not None for v in values):
                    finals[framework] = values
            if not finals:
                continue
            row = {"variant": variant, "metric": metric, "jax": None, "torch": None}
            row.update({fw: stats.mean_interval(v, level) for fw, v in finals.items()})
            row.update(difference=None, verdict=None, method=None)
            if len(finals) == 2:
                diff = stats.difference(finals["jax"], finals["torch"], level=level, paired=paired)
                row.update(difference=diff.interval, verdict=diff.verdict, method=diff.method)
            row["n"] = len(next(iter(finals.values())))
            rows.append(row)
    return rows


def _seed_table(rows: list[dict[str, Any]]) -> str:
    def cell(iv):
        return "" if iv is None else stats.format_interval(iv)

    cells = [
        {
            "variant": r["variant"],
            "metric": "final " + r["metric"],
            "jax": cell(r["jax"]),
            "torch": cell(r["torch"]),
            "JAX - torch": cell(r["difference"]),
            "verdict": r["verdict"] or "",
        }
        for r in rows
    ]
    columns = ("variant", "metric", "jax", "torch", "JAX - torch", "verdict")
    return format_table(cells, columns, {})


_TEST_LABEL = {"test_acc": "acc abs", "test_loss": "loss rel", None: ""}


def _gate_table(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        g = r["gate"]
        cells.append(
            {
                "variant": r["variant"],
                "seed": r["seed"],
                "compared": f"{g.steps} {r['compared']}",
                "largest loss rel": f"{g.worst:.2e} ({g.worst_at})",
                "final params": "" if g.params_worst is None else f"{g.params_worst:.2e}",
                "test": "" if r["test_gap"] is None
                else f"{r['test_gap']:.2e} ({_TEST_LABEL[r['test_metric']]})",
                "tolerance": f"{g.rtol:g} / {TEST_ACC_TOL:g} acc",
                "gate": "pass" if r["passed"] else "FAIL",
            }
        )  # fmt: skip
    return format_table(cells, list(cells[0]), {})


def _f32_table(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        cell = {"variant": r["variant"], "epoch": r["epoch"],
                "train loss rel (epoch mean)": f"{r['train_loss_rel']:.2e}"}  # fmt: skip
        if r["step_loss_rel"] is not None:
            cell["largest step loss rel"] = f"{r['step_loss_rel']:.2e}"
        cell["test"] = f"{r['test_gap']:.2e} ({_TEST_LABEL[r['test_metric']]})"
        cells.append(cell)
    return format_table(cells, list(cells[0]), {})


def _plain(value: Any) -> Any:
    if isinstance(value, Gate):
        d = value._asdict()
        d.pop("per_step")
        return d
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    return value


class Summary(NamedTuple):
    """What :func:`summarize` gives: report paragraphs and the same results as plain data.

    Attributes:
      notes: markdown paragraphs and tables for ``report.write_report``'s notes.
      record: JSON-ready data (``comparison.json``): options, gate rows or float32 gaps,
        seed statistics.
      alarm: a one-line alarm when a float64 gate failed, else None.
    """

    notes: list[str]
    record: dict[str, Any]
    alarm: str | None


def summarize(runs: Runs, *, matched: bool, dtype: str, seeds: Sequence[int]) -> Summary:
    """The comparison paragraphs of a run and the same results as data (writes nothing).

    A matched float64 run is gated (:func:`gate_runs`); a matched float32 run is reported
    (:func:`epoch_gaps`, no bound); several seeds give :func:`seed_statistics`.

    Args:
      runs: ``(variant, framework) -> [history per seed]``.
      matched: whether the frameworks shared their streams.
      dtype: ``"float32"`` or ``"float64"``.
      seeds: the run's seeds.

    Returns:
      A :class:`Summary`.

    Example:
      >>> h = {"train_loss": [0.5], "test_acc": [0.9]}
      >>> s = summarize({("a", "jax"): [h], ("a", "torch"): [h]}, matched=True,
      ...               dtype="float64", seeds=[0])
      >>> s.notes[0].startswith("**Matched run (float64)**: **float64 gate PASSED**"), s.alarm
      (True, None)
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}: allowed values are ('float32', 'float64')")
    notes: list[str] = []
    record: dict[str, Any] = {"matched": matched, "dtype": dtype, "seeds": list(seeds)}
    alarm = None
    how = (
        "both frameworks start from the same weights, visit the same batches in the same "
        "order and apply the same random draws (drawn with the engine's JAX keys, replayed in "
        "torch), and evaluate deterministically, so they differ only by rounding"
    )
    if matched and _pairs(runs) and dtype == "float64":
        rows = gate_runs(runs)
        ok = all(r["passed"] for r in rows)
        worst = max(rows, key=lambda r: r["gate"].worst)
        what = worst["compared"]
        line = worst["gate"].summary(what) + f" (variant {worst['variant']})"
        if not ok:
            bad = next(r for r in rows if not r["passed"])
            alarm = f"{bad['variant']} seed {bad['seed']}: " + bad["gate"].summary(bad["compared"])
        per = ("every optimizer step's loss" if what == "steps" else
               "every epoch's mean training loss (per-step losses not recorded)")  # fmt: skip
        notes += [
            f"**Matched run (float64)**: **float64 gate {'PASSED' if ok else 'FAILED'}**: {how}. "
            f"The gate: {per} within {GATE_RTOL:g} relative, the final parameters where "
            f"recorded, test accuracy within {TEST_ACC_TOL:g}. {line}.",
            _gate_table(rows),
        ]
        record["gate"] = [{k: _plain(v) for k, v in r.items()} for r in rows]
        record["gate_rtol"] = GATE_RTOL
        # The per-epoch view of the same pairs (epoch means and each evaluation).
        record["gaps"] = [
            {**g, "within_bound": g["train_loss_rel"] <= GATE_RTOL
             and g["test_gap"] <= (TEST_ACC_TOL if g["test_metric"] == "test_acc" else GATE_RTOL)}
            for g in epoch_gaps(runs)
        ]  # fmt: skip
    elif matched and _pairs(runs):
        rows = epoch_gaps(runs)
        if rows:
            worst = max(r["train_loss_rel"] for r in rows)
            notes += [
                f"**Matched run ({dtype})**: {how}. Largest JAX-torch differences per epoch "
                f"(over the seeds; largest epoch training-loss gap {worst:.2e}), reported, "
                "not gated.",
                _f32_table(rows),
                F32_WHY,
            ]
        record["gaps"] = rows
    if len(seeds) > 1:
        rows = seed_statistics(runs, paired=matched)
        how_seeds = (
            "paired by seed (matched: seed i of both frameworks shares weights, batches and masks)"
            if matched
            else "Welch's interval (unmatched: each framework draws its own shuffles and masks; "
            "seed i of both starts from the same weights)"
        )
        notes += [
            f"**{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}, {dtype})**: mean and 95% interval "
            "of each final metric; JAX - torch with its 95% interval, " + how_seeds + "; "
            "`different` when the interval excludes 0. The JAX side ran the seeds as one "
            "vmapped, compiled program, torch one after another.",
            _seed_table(rows),
        ]
        record["seed_statistics"] = [{k: _plain(v) for k, v in r.items()} for r in rows]
    return Summary(notes, record, alarm)


def sections(
    runs: Runs, run_dir: str | Path | None = None, *, matched: bool, dtype: str,
    seeds: Sequence[int],
) -> list[str]:  # fmt: skip
    """The report's comparison paragraphs (:func:`summarize`'s notes).

    Args:
      runs: ``(variant, framework) -> [history per seed]``.
      run_dir: the run folder: when given, the record is written there as ``comparison.json``
        by the report writer (``jaxreg.lab.report.write_json``); callers that write their own
        files use :func:`summarize` and pass None.
      matched: whether the frameworks shared their streams.
      dtype: the run's dtype.
      seeds: the run's seeds.

    Returns:
      Markdown paragraphs (each a string) for ``report.write_report``'s notes.

    Example:
      >>> h = {"train_loss": [0.5], "test_acc": [0.9]}
      >>> out = sections({("a", "jax"): [h], ("a", "torch"): [h]}, matched=True,
      ...                dtype="float32", seeds=[0])
      >>> out[0].startswith("**Matched run (float32)")
      True
    """
    summary = summarize(runs, matched=matched, dtype=dtype, seeds=seeds)
    if run_dir is not None:
        from jaxreg.lab import report

        report.write_json(Path(run_dir) / "comparison.json", summary.record)
    return summary.notes

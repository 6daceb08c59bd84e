"""What a sweep returns: the metrics of every (point, seed) run, and their summaries over seeds.

A :class:`SweepResult` holds host numpy arrays only, so the report writer, the plots and the
preset analyses read it without importing jax. Runs whose objective became NaN/Inf are marked by
``diverged_step`` (the first such optimizer step, -1 if none) and count as NaN in every summary.

PyTorch equivalent: the list of per-run history dicts a Python loop over configurations
collects (:func:`jaxreg.torch_ref.sweep.sequential_sweep` returns the same ``[points, seeds,
epochs]`` layout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any

import numpy as np

# The columns of results.csv that summarize a metric, when the sweep measured it.
SUMMARY_METRICS = ("train_acc", "val_acc", "test_acc", "train_loss", "test_loss")


@contextlib.contextmanager
def quiet_nan_warnings():
    """Silences numpy's all-NaN warnings: diverged runs and epochs not evaluated are NaN."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclasses.dataclass
class SweepResult:
    """Metrics of every (point, seed) run of a sweep.

    Attributes:
      labels: one label per point.
      points: the hyperparameters of each point.
      seeds: the seeds.
      metrics: name -> array ``[points, seeds, epochs(, ...)]``; ``diverged_step`` is
        ``[points, seeds]`` (-1 = finite throughout).
      epochs: epochs per run.
      stats: timings and sizes (``compile_s``, ``run_s``, ``chunk_size``, ``num_chunks``,
        ``resumed_chunks``, ``devices``, ``processes``).

    Example:
      >>> r = SweepResult(["a"], [{"lr": 0.1}], [0, 1],
      ...                 {"test_acc": np.array([[[0.5, 0.7], [0.5, 0.9]]]),
      ...                  "diverged_step": np.array([[-1, -1]])}, epochs=2)
      >>> r.summary("test_acc")[0].round(3).tolist()
      [0.8]
    """

    labels: list[str]
    points: list[dict[str, float]]
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    epochs: int
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def final(self, name: str) -> np.ndarray:
        """``[points, seeds]``: the last evaluated value of an epoch metric (NaN if diverged)."""
        values = np.asarray(self.metrics[name], np.float64)
        if values.ndim == 2:
            return values
        out = np.full(values.shape[:2], np.nan)
        for idx in np.ndindex(*values.shape[:2]):
            series = values[idx]
            finite = np.where(~np.isnan(series))[0] if series.ndim == 1 else []
            if len(finite):
                out[idx] = series[finite[-1]]
        out[self.diverged] = np.nan
        return out

    @property
    def diverged(self) -> np.ndarray:
        """``[points, seeds]`` bools: the run hit a NaN/Inf objective."""
        return np.asarray(self.metrics["diverged_step"]) >= 0

    def summary(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over seeds of :meth:`final` (NaN-aware), each ``[points]``."""
        values = self.final(name)
        with quiet_nan_warnings():
            return np.nanmean(values, axis=1), np.nanstd(values, axis=1)

    def best(self, metric: str) -> int:
        """Index of the point with the highest mean final ``metric`` (NaN never wins)."""
        mean, _ = self.summary(metric)
        return int(np.nanargmax(np.where(np.isnan(mean), -np.inf, mean)))

    def rows(self) -> list[dict[str, Any]]:
        """One row per point: hyperparameters, mean/std of final metrics, diverged runs."""
        names = [n for n in SUMMARY_METRICS if n in self.metrics]
        rows = []
        for i, (label, point) in enumerate(zip(self.labels, self.points, strict=True)):
            row: dict[str, Any] = {"point": label, **point}
            for name in names:
                mean, std = self.summary(name)
                row[name + "_mean"], row[name + "_std"] = float(mean[i]), float(std[i])
            steps = np.asarray(self.metrics["diverged_step"])[i]
            row["diverged"] = ";".join(
                f"seed {s} at step {int(t)}"
                for s, t in zip(self.seeds, steps, strict=True)
                if t >= 0
            )
            rows.append(row)
        return rows

"""What a run leaves behind: config.json, metrics files, PNG plots and report.md.

Every ``jaxreg run NAME`` writes into ``runs/NAME/<timestamp>/`` (or ``--out``):

* ``config.json``: the experiment config and the command-line options;
* ``metrics.jsonl``: one line per (variant, framework, epoch) with the engine's metric names,
  appended as each variant finishes so that a crash loses no finished result;
* ``results.jsonl`` and ``results.csv``: one row per (variant, framework): the final figures;
* PNG plots: learning curves with JAX (solid) and torch (dashed) on the same axes, and for
  ``overfit`` the seed 002 fit curves;
* ``report.md``: the side-by-side table and the plots.

Plots use matplotlib's object API with the Agg canvas, so no display and no global pyplot
state is touched. This module imports neither torch nor jax.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FRAMEWORKS = ("jax", "torch")

# Per-epoch metric names written by jaxreg.lab.engine and jaxreg.torch_ref.engine.
METRIC_LABELS = {
    "train_loss": "training loss (no penalty)",
    "train_objective": "training loss + penalty",
    "train_acc": "train accuracy",
    "test_loss": "test loss",
    "test_acc": "test accuracy",
    "param_norm": "parameter L2 norm",
    "zero_fraction": "fraction of exact zeros",
}

# One results row; ``train``/``test`` hold the final value of ``metric``.
RESULT_COLUMNS = (
    "experiment",
    "variant",
    "framework",
    "metric",
    "train",
    "test",
    "wall_s",
    "compile_s",
    "seed_figure",
    "detail",
)
# Shown only when some row fills it.
_OPTIONAL_COLUMNS = ("detail",)
_HEADERS = {
    "experiment": "experiment",
    "variant": "variant",
    "framework": "framework",
    "metric": "metric",
    "train": "final train",
    "test": "final test",
    "wall_s": "wall s",
    "compile_s": "compile s",
    "seed_figure": "seed reports",
    "detail": "detail",
}

_STYLES = {"jax": "-", "torch": "--"}


def timestamp(now: _dt.datetime | None = None) -> str:
    """UTC time as ``YYYYmmdd-HHMMSS``, the name of a run folder."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S")


def make_run_dir(name: str, out: str | Path | None = None, *, root: str | Path = "runs") -> Path:
    """Creates the folder a run writes into.

    Args:
      name: experiment name (``weight-decay``, ...).
      out: an explicit folder (``--out``); created if missing, reused if present.
      root: parent of the default ``root/name/<timestamp>/`` folder.

    Returns:
      The created folder.

    Example:
      >>> import tempfile
      >>> make_run_dir("dropout", root=tempfile.mkdtemp()).parent.name
      'dropout'
    """
    if out is not None:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = Path(root) / name / timestamp()
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    path.mkdir(parents=True)
    return path


def _plain(value: Any) -> Any:
    # JSON cannot take numpy/jax scalars or arrays; .tolist() covers both without importing them.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON (numpy/jax values converted) and returns the path."""
    path = Path(path)
    path.write_text(json.dumps(_plain(obj), indent=2, sort_keys=True) + "\n")
    return path


class RunRecorder:
    """Appends metrics and results of one run to its folder as they arrive.

    Args:
      run_dir: the folder from ``make_run_dir``.
      experiment: the experiment name written in every row.

    Example:
      >>> import tempfile
      >>> rec = RunRecorder(tempfile.mkdtemp(), "dropout")
      >>> rec.add_history("scratch", "jax", {"test_acc": [0.8, 0.85]})
      >>> row = rec.add_result(variant="scratch", framework="jax", metric="accuracy", test=0.85)
      >>> rec.rows[0]["test"]
      0.85
    """

    def __init__(self, run_dir: str | Path, experiment: str):
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.rows: list[dict[str, Any]] = []
        self.histories: dict[tuple[str, str], dict[str, list[float]]] = {}

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Writes ``config.json``."""
        return write_json(self.run_dir / "config.json", config)

    def add_history(self, variant: str, framework: str, history: Mapping[str, Sequence]) -> None:
        """Appends one line per epoch of ``{metric: [per epoch]}`` to metrics.jsonl."""
        history = {k: list(_plain(v)) for k, v in history.items() if _is_series(v)}
        self.histories[(variant, framework)] = history
        length = max((len(v) for v in history.values()), default=0)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            for epoch in range(length):
                line = {"experiment": self.experiment, "variant": variant, "framework": framework}
                line["epoch"] = epoch + 1
                line.update({k: v[epoch] for k, v in history.items() if epoch < len(v)})
                f.write(json.dumps(_plain(line)) + "\n")

    def add_result(self, **row: Any) -> dict[str, Any]:
        """Records one final-figures row (keys from ``RESULT_COLUMNS``) in results.jsonl/csv."""
        unknown = sorted(set(row) - set(RESULT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown result keys {unknown}; allowed: {list(RESULT_COLUMNS)}")
        full = {key: row.get(key) for key in RESULT_COLUMNS}
        full["experiment"] = full["experiment"] or self.experiment
        full = _plain(full)
        self.rows.append(full)
        with open(self.run_dir / "results.jsonl", "a") as f:
            f.write(json.dumps(full) + "\n")
        with open(self.run_dir / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return full


def _is_series(value: Any) -> bool:
    return isinstance(value, list | tuple) or getattr(value, "ndim", None) == 1


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.6g}"
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Formats result rows as a GitHub markdown table (floats to 4 decimals, huge ones in %g).

    Args:
      rows: result rows (dicts keyed by ``RESULT_COLUMNS``).
      columns: the columns to show, in order; default ``RESULT_COLUMNS`` (``detail`` only when
        a row has one).

    Returns:
      The table, one line per row, ending without a newline.

    Example:
      >>> print(format_table([{"variant": "a", "test": 0.5}], columns=("variant", "test")))
      | variant | final test |
      |---|---|
      | a | 0.5000 |
    """
    rows = list(rows)
    if columns is None:
        columns = [
            c
            for c in RESULT_COLUMNS
            if c not in _OPTIONAL_COLUMNS or any(row.get(c) not in (None, "") for row in rows)
        ]
    lines = [
        "| " + " | ".join(_HEADERS.get(c, c) for c in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _new_axes(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 3.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def plot_learning_curves(
    path: str | Path,
    histories: Mapping[tuple[str, str], Mapping[str, Sequence[float]]],
    metrics: Sequence[str] = ("train_loss", "test_acc"),
    title: str = "",
) -> Path:
    """One panel per metric; each variant a colour, JAX solid and torch dashed on the same axes.

    Args:
      path: the PNG file to write.
      histories: ``{(variant, framework): {metric: [per epoch]}}``.
      metrics: the metrics to plot, one panel each (missing ones are skipped).
      title: figure title.

    Returns:
      ``path``.

    Example:
      >>> import tempfile, os
      >>> p = plot_learning_curves(os.path.join(tempfile.mkdtemp(), "c.png"),
      ...                          {("a", "jax"): {"test_acc": [0.1, 0.2]}}, ["test_acc"])
    """
    metrics = [m for m in metrics if any(m in h for h in histories.values())]
    fig, axes = _new_axes(ncols=max(len(metrics), 1))
    variants = list(dict.fromkeys(v for v, _ in histories))
    colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    for ax, metric in zip(axes[0], metrics, strict=False):
        for (variant, framework), history in histories.items():
            # NaN marks an epoch that was not evaluated: plot only the evaluated ones.
            points = [
                (i + 1, v)
                for i, v in enumerate(history.get(metric) or [])
                if isinstance(v, int | float) and math.isfinite(v)
            ]
            if not points:
                continue
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                _STYLES.get(framework, ":"),
                color=colors[variant],
                marker="o" if len(points) <= 30 else None,
                markersize=3,
                label=f"{variant} ({framework})",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    if metrics:
        axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_series(
    path: str | Path,
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
) -> Path:
    """Plots named 1-D series on one axes (e.g. seed 001's loss per step, JAX vs torch).

    Args:
      path: the PNG file to write.
      series: ``{label: values}``; a label ending in ``(torch)`` is dashed.
      xlabel: x-axis label.
      ylabel: y-axis label.
      title: figure title.
      logy: logarithmic y axis.

    Returns:
      ``path``.

    Example:
      >>> import tempfile, os
      >>> p = plot_series(os.path.join(tempfile.mkdtemp(), "s.png"), {"a (jax)": [3, 2, 1]},
      ...                 xlabel="step", ylabel="loss")
    """
    fig, axes = _new_axes(size=(6.0, 3.8))
    ax = axes[0][0]
    for label, values in series.items():
        style = "--" if label.endswith("(torch)") else "-"
        ax.plot(range(len(values)), values, style, label=label, linewidth=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_fit_curves(
    path: str | Path,
    train: tuple[Sequence[float], Sequence[float]],
    test: tuple[Sequence[float], Sequence[float]],
    fits: Mapping[str, Mapping[str, Any]],
    title: str = "",
) -> Path:
    """Seed 002's figure, one panel per evaluation epoch: data, both nets' fits, test losses.

    Args:
      path: the PNG file to write.
      train: training ``(x, y)`` (1-D).
      test: test ``(x, y)`` (1-D).
      fits: ``{label: {"epochs": [...], "pred": [1-D per epoch], "loss": [per epoch]}}``;
        label e.g. ``"overfitting (jax)"``; a label ending in ``(torch)`` is dashed.
      title: figure title.

    Returns:
      ``path``.

    Example:
      >>> import tempfile, os
      >>> fit = {"net (jax)": {"epochs": [0], "pred": [[0.0, 1.0]], "loss": [0.1]}}
      >>> p = plot_fit_curves(os.path.join(tempfile.mkdtemp(), "f.png"), ([0, 1], [0, 1]),
      ...                     ([0, 1], [0, 1]), fit)
    """
    epochs = sorted({e for fit in fits.values() for e in fit["epochs"]})
    ncols = min(len(epochs), 5) or 1
    nrows = max(math.ceil(len(epochs) / ncols), 1)
    fig, axes = _new_axes(ncols=ncols, nrows=nrows, size=(3.6, 3.0))
    # One colour per variant; the framework in parentheses only changes the line style.
    variants = list(dict.fromkeys(label.split(" (")[0] for label in fits))
    colors = {label: f"C{variants.index(label.split(' (')[0]) % 10}" for label in fits}
    for i, ax in enumerate(axes.flat):
        if i >= len(epochs):
            ax.set_visible(False)
            continue
        epoch = epochs[i]
        ax.scatter(train[0], train[1], c="magenta", s=14, alpha=0.5, label="train")
        ax.scatter(test[0], test[1], c="cyan", s=14, alpha=0.5, label="test")
        text = []
        for label, fit in fits.items():
            if epoch not in fit["epochs"]:
                continue
            k = list(fit["epochs"]).index(epoch)
            style = "--" if label.endswith("(torch)") else "-"
            ax.plot(test[0], fit["pred"][k], style, color=colors[label], lw=1.5, label=label)
            text.append(f"{label}: {fit['loss'][k]:.4f}")
        ax.text(0.02, 0.02, "\n".join(text), transform=ax.transAxes, fontsize=6, va="bottom")
        ax.set_ylim(-2.5, 2.5)
        ax.set_title(f"epoch {epoch}", fontsize=9)
    axes[0][0].legend(fontsize=5, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=90)
    return Path(path)


def write_report(
    run_dir: str | Path,
    title: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    plots: Sequence[str | Path] = (),
    notes: Sequence[str] = (),
    command: str = "",
) -> Path:
    """Writes ``report.md``: the command, the side-by-side table, notes and the plots.

    Args:
      run_dir: the run folder.
      title: a heading (e.g. ``"dropout (seeds 003/004)"``).
      rows: result rows.
      plots: PNG files inside ``run_dir`` to embed.
      notes: paragraphs explaining the recipe and any gap to the seed's figure.
      command: the command line that produced the run.

    Returns:
      The path of report.md.

    Example:
      >>> import tempfile
      >>> write_report(tempfile.mkdtemp(), "demo", [{"variant": "a", "test": 0.5}]).name
      'report.md'
    """
    run_dir = Path(run_dir)
    parts = [f"# {title}", ""]
    if command:
        parts += [f"Command: `{command}`", ""]
    parts += [format_table(rows), ""]
    parts += [note + "\n" for note in notes]
    for plot in plots:
        name = Path(plot).name
        parts += [f"![{name}]({name})", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(parts))
    return path

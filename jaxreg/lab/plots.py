"""Every figure a run or a sweep leaves: learning curves, fit curves, accuracy against a hparam.

Runs (``jaxreg run``): :func:`plot_learning_curves` (JAX solid, torch dashed on the same axes),
:func:`plot_series` (seed 001's loss per step) and :func:`plot_fit_curves` (seed 002's figure).
Sweeps (``jaxreg sweep``, arguments a :class:`jaxreg.lab.results.SweepResult`): :func:`plot_curves`,
:func:`plot_final_vs` (seed 004's "accuracy against lambda"), :func:`plot_heatmap` (the two
dropout rates) and :func:`plot_activation_variance`.

Every function draws on its own ``matplotlib.figure.Figure`` with an Agg canvas and writes one
PNG: no display, no pyplot state, no ``matplotlib.use`` (importing this module changes nothing
global). It imports neither jax nor torch.

PyTorch equivalent: the seeds' ``matplotlib.pyplot`` figures (seed 002's fit curves, d2l's
``Animator`` learning curves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxreg.lab.results import quiet_nan_warnings

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

_STYLES = {"jax": "-", "torch": "--"}


def _new_axes(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 3.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


# ---- runs --------------------------------------------------------------------------------------
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


# ---- sweeps ------------------------------------------------------------------------------------
def primary_metric(result: Any) -> str:
    """``test_acc`` when the sweep measured an accuracy, else ``test_loss`` (regression)."""
    acc = np.asarray(result.metrics.get("test_acc", np.nan))
    return "test_acc" if np.isfinite(acc).any() else "test_loss"


def plot_curves(result: Any, path: str | Path, metric: str | None = None) -> Path:
    """Learning curves of a sweep: the mean over seeds of ``metric`` per point, +-1 std band.

    Args:
      result: a :class:`jaxreg.lab.results.SweepResult`.
      path: the PNG file to write.
      metric: an epoch metric; None = :func:`primary_metric`.

    Returns:
      ``path``.
    """
    metric = metric or primary_metric(result)
    fig, axes = _new_axes(size=(7.0, 4.2))
    ax = axes[0][0]
    values = np.asarray(result.metrics[metric], np.float64)
    epochs = np.arange(1, values.shape[2] + 1)
    for i, label in enumerate(result.labels):
        series = values[i]
        keep = ~np.isnan(series).all(axis=0)
        with quiet_nan_warnings():
            mean, std = np.nanmean(series[:, keep], 0), np.nanstd(series[:, keep], 0)
        (line,) = ax.plot(epochs[keep], mean, lw=1.4, label=label)
        ax.fill_between(epochs[keep], mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    if len(result.labels) <= 12:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return Path(path)


def _varying_axes(result: Any) -> list[str]:
    return [k for k in result.points[0] if len({p[k] for p in result.points}) > 1]


def plot_final_vs(result: Any, axis: str, path: str | Path, *, mark: int | None = None) -> Path:
    """Final train/validation/test metric against one hyperparameter, a line per other setting.

    The x axis is logarithmic when every value is positive and they span a factor >= 20 (the
    seed 004 exercise: accuracy against lambda on a log scale).

    Args:
      result: a :class:`jaxreg.lab.results.SweepResult`.
      axis: the hyperparameter on the x axis.
      path: the PNG file to write.
      mark: index of a point to circle (the one chosen on the validation split).

    Returns:
      ``path``.
    """
    fig, axes = _new_axes(size=(7.0, 4.2))
    ax = axes[0][0]
    metric = primary_metric(result)
    kind = metric.split("_")[1]
    others = [k for k in _varying_axes(result) if k != axis]
    groups: dict[tuple, list[int]] = {}
    for i, point in enumerate(result.points):
        groups.setdefault(tuple((k, point[k]) for k in others), []).append(i)
    styles = {"train": ":", "val": "--", "test": "-"}
    for g, (group, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda i: result.points[i][axis])
        x = np.array([result.points[i][axis] for i in members])
        for split, style in styles.items():
            name = f"{split}_{kind}"
            if name not in result.metrics:
                continue
            mean, std = result.summary(name)
            label = split + (" " + ", ".join(f"{k}={v:g}" for k, v in group) if group else "")
            ax.errorbar(
                x,
                mean[members],
                yerr=std[members],
                fmt=style,
                color=f"C{g % 10}",
                marker="o",
                ms=3,
                lw=1.2,
                capsize=2,
                label=label,
            )
    values = np.array([p[axis] for p in result.points])
    if (values > 0).all() and values.max() / values.min() >= 20:
        ax.set_xscale("log")
    if mark is not None:
        mean, _ = result.summary(metric)
        x, y = [result.points[mark][axis]], [mean[mark]]
        ax.plot(x, y, "o", ms=12, mfc="none", mec="k", label="chosen")
    ax.set_xlabel(axis)
    ax.set_ylabel(f"final {kind}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_heatmap(result: Any, rows: str, cols: str, path: str | Path) -> Path:
    """Mean final test metric over a 2-D grid (seed 004: the two dropout rates, swapped).

    Args:
      result: a :class:`jaxreg.lab.results.SweepResult`.
      rows: the hyperparameter along the rows.
      cols: the hyperparameter along the columns.
      path: the PNG file to write.

    Returns:
      ``path``.
    """
    metric = primary_metric(result)
    mean, _ = result.summary(metric)
    rv = sorted({p[rows] for p in result.points})
    cv = sorted({p[cols] for p in result.points})
    table = np.full((len(rv), len(cv)), np.nan)
    for i, p in enumerate(result.points):
        table[rv.index(p[rows]), cv.index(p[cols])] = mean[i]
    fig, axes = _new_axes(size=(5.5, 4.5))
    ax = axes[0][0]
    im = ax.imshow(table, origin="lower", cmap="viridis")
    ax.set_xticks(range(len(cv)), [f"{v:g}" for v in cv])
    ax.set_yticks(range(len(rv)), [f"{v:g}" for v in rv])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    for (i, j), v in np.ndenumerate(table):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label=f"final {metric.replace('_', ' ')}")
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_activation_variance(result: Any, path: str | Path) -> Path:
    """Per hidden layer, the variance of its activations over training, for every point.

    Args:
      result: a :class:`jaxreg.lab.results.SweepResult` with ``act_var`` (and
        ``act_var_train``) metrics, ``[points, seeds, epochs, layers]``.
      path: the PNG file to write.

    Returns:
      ``path``.
    """
    names = [n for n in ("act_var", "act_var_train") if n in result.metrics]
    fig, axes = _new_axes(ncols=max(len(names), 1), size=(4.5, 3.8))
    for ax, name in zip(axes[0], names, strict=False):
        values = np.asarray(result.metrics[name], np.float64)
        epochs = np.arange(1, values.shape[2] + 1)
        for i, label in enumerate(result.labels):
            for layer in range(values.shape[3]):
                with quiet_nan_warnings():
                    mean = np.nanmean(values[i, :, :, layer], axis=0)
                keep = ~np.isnan(mean)
                ax.plot(
                    epochs[keep],
                    mean[keep],
                    "-" if layer == 0 else "--",
                    color=f"C{i % 10}",
                    label=f"{label}, hidden {layer + 1}",
                )
        ax.set_title("eval mode" if name == "act_var" else "train mode (dropout on)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("activation variance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)
    return Path(path)

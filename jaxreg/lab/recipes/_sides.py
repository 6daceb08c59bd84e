"""What the recipes share: the spec runner with the command line applied, data, result rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxreg.lab.recipes._common import Context


def spec_runner(ctx: Context, progress: Any = None, **options: Any):
    """A :class:`jaxreg.lab.runner.Runner` of the context's spec with the command line applied.

    ``--data-dir`` / ``--limit-train`` / ``--limit-test``, ``--epochs`` and ``--dtype`` override
    the spec's; ``options`` are ``TrainConfig`` fields for every variant.
    """
    from jaxreg.lab import runner

    opts = ctx.options
    data = runner.load_data(
        ctx.config, data_dir=opts.data_dir, train_size=opts.limit_train, test_size=opts.limit_test
    )
    return runner.Runner(
        ctx.config, data, epochs=ctx.epochs(), dtype=opts.dtype, progress=progress, **options
    )


def record_runs(ctx: Context, runs: list, *, seed_figure: Any) -> dict[str, Any] | None:
    """Records a side's runs of one variant (:class:`jaxreg.lab.runner.Run`): rows, histories."""
    if not runs:
        return None
    first = runs[0]
    walls = [r.wall_s for r in runs if r.wall_s is not None]
    # JAX trains the seeds as one program (every run carries its time); torch one after another.
    wall = walls[0] if first.framework == "jax" else sum(walls)
    return record_classifier(
        ctx,
        first.variant,
        first.framework,
        [r.history for r in runs],
        wall_s=wall,
        compile_s=first.compile_s,
        seed_figure=seed_figure,
    )


def record_histories(ctx: Context, variant: str, framework: str, hists: list[dict]) -> None:
    """Writes every seed's per-epoch rows and keeps them for the comparison sections.

    The rows gain ``seed``, ``matched`` and ``dtype`` fields only when the run asked for a
    comparison (a plain run's metrics.jsonl stays as it was). The learning-curve plots show
    the first seed.
    """
    ctx.runs[(variant, framework)] = hists
    for seed, hist in zip(ctx.options.seed_list, hists, strict=True):
        rows = dict(hist)
        if ctx.options.compared:
            epochs = max(len(v) for v in hist.values())
            opts = ctx.options
            # Constant series become constant fields of each epoch's row.
            rows.update(seed=[seed] * epochs, matched=[opts.matched] * epochs)
            rows["dtype"] = [opts.dtype] * epochs
        ctx.recorder.add_history(variant, framework, rows)
    ctx.recorder.histories[(variant, framework)] = hists[0]


def seeds_detail(ctx: Context) -> str | None:
    """The results row's note when its figures are means over seeds."""
    seeds = ctx.options.seed_list
    if len(seeds) == 1:
        return None
    return f"mean over seeds {seeds[0]}..{seeds[-1]} (n={len(seeds)}; intervals below)"


def final(values: list[float]) -> float | None:
    """The last finite value of a metric series (NaN entries are epochs not evaluated)."""
    finite = [v for v in values if np.isfinite(v)]
    return finite[-1] if finite else None


def record_classifier(
    ctx: Context,
    variant: str,
    framework: str,
    hist: dict[str, list[float]],
    *,
    wall_s: float,
    compile_s: float | None,
    seed_figure: Any,
) -> dict[str, Any]:
    """Writes a classifier's per-epoch metrics and its final accuracies row.

    ``hist`` is one history, or a list of one history per seed of the run (the row then holds
    the means over seeds).
    """
    hists = hist if isinstance(hist, list) else [hist]
    record_histories(ctx, variant, framework, hists)
    return ctx.result(
        variant=variant,
        framework=framework,
        metric="accuracy",
        train=seed_mean([final(h["train_acc"]) for h in hists]),
        test=seed_mean([final(h["test_acc"]) for h in hists]),
        wall_s=wall_s,
        compile_s=compile_s,
        seed_figure=seed_figure,
        detail=seeds_detail(ctx),
    )


def seed_mean(values: list[float | None]) -> float | None:
    """One seed's value as it is; the mean of several (None if any is None)."""
    if len(values) == 1 or any(v is None for v in values):
        return values[0] if len(values) == 1 else None
    return float(np.mean(values))


def gap_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per variant: JAX vs torch test accuracy and the seed's figure."""
    by_variant: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], {})[row["framework"]] = row
    lines = []
    for variant, fws in by_variant.items():
        parts = [f"{fw} {r['test']:.4f}" for fw, r in fws.items() if r.get("test") is not None]
        seed = next(iter(fws.values())).get("seed_figure")
        if "jax" in fws and "torch" in fws:
            gap = 100 * (fws["jax"]["test"] - fws["torch"]["test"])
            parts.append(f"JAX - torch = {gap:+.2f} points")
        lines.append(f"- {variant}: test accuracy " + ", ".join(parts) + f"; seed reports {seed}.")
    return lines

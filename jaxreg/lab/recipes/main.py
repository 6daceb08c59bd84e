"""``jaxreg main``: weight decay and dropout on Fashion-MNIST, a matched pair and a multi-seed run.

Two comparisons of JAX and torch, each the answer to its own question:

1. **Matched pair** (does the torch loop compute what the JAX engine computes?): weight-decay and
   dropout at ``--seed``, both frameworks on the same weights, batches and dropout masks
   (``--matched``): the per-epoch gaps are rounding only (``jaxreg.lab.comparison``).
2. **Multi-seed** (is a JAX-torch gap of unmatched runs more than seed noise?): the experiments
   of :data:`SEED_EXPERIMENTS` over ``--seeds`` seeds (default :data:`MAIN_SEEDS`), each
   framework with its own shuffles and masks (paired and matched with ``--matched``): means,
   95% intervals, JAX - torch and its verdict.

The sizes keep ``jaxreg main`` near 6 minutes on 2 CPU cores (measured: see the committed
``experiments/results/main/report.md``); ``--seeds 1`` skips part 2.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from jaxreg.lab import report
from jaxreg.lab.recipes._common import RunOptions, RunResult, run_experiment

MAIN_EXPERIMENTS = ("weight-decay", "dropout")
"""Part 1: the matched pair."""
SEED_EXPERIMENTS = ("weight-decay",)
"""Part 2: the multi-seed comparison (the cheaper of the two recipes: torch runs seed by seed)."""
MAIN_SEEDS = 4
"""Part 2's default number of seeds."""


def _section(title: str, result: RunResult, run_dir) -> list[str]:
    lines = [f"### {title}\n", report.format_table(result.rows) + "\n", *result.notes]
    lines += [
        f"![{p.relative_to(run_dir)}]({p.relative_to(run_dir)})\n"
        for p in sorted(result.run_dir.glob("*.png"))
    ]
    return lines


def run_main(options: RunOptions) -> RunResult:
    """``jaxreg main``: the matched pair, then the multi-seed comparison, one report.

    Args:
      options: the command-line options (``config_path`` is ignored; ``matched`` makes part 2
        matched too; ``seeds`` is part 2's number of seeds, 1 to skip it).

    Returns:
      A ``RunResult`` whose folder holds one subfolder per run (``weight-decay/``,
      ``dropout/``, ``seeds/weight-decay/``) and the combined ``report.md``.

    Example:
      >>> run_main(RunOptions(seeds=3))  # doctest: +SKIP
    """
    run_dir = report.make_run_dir("main", options.out)
    options = dataclasses.replace(options, config_path=None)
    both = options.framework == "both"
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    sections: list[str] = ["## 1. Matched pair" if both else "## 1. Single runs"]
    pair = dataclasses.replace(options, matched=both, seeds=1)
    for name in MAIN_EXPERIMENTS:
        result = run_experiment(name, pair, out=run_dir / name)
        rows += result.rows
        sections += _section(name, result, run_dir)
    if options.seeds > 1:
        sections.append(f"## 2. {options.seeds} seeds" + (", matched" if options.matched else ""))
        for name in SEED_EXPERIMENTS:
            result = run_experiment(name, options, out=run_dir / "seeds" / name)
            sections += _section(f"{name}, {options.seeds} seeds", result, run_dir)
    wall = time.perf_counter() - start
    report.write_json(run_dir / "results.json", rows)
    report.write_report(
        run_dir,
        "jaxreg main: weight decay and dropout on Fashion-MNIST, JAX and torch",
        rows,
        notes=[
            f"{machine_description()}. Total wall time {wall:.1f} s.",
            "The table: part 1's final figures (matched runs). `wall s` is each training's run "
            "time; for JAX it excludes compilation, which is the `compile s` column (0: the "
            "compiled function of the previous variant was reused, only traced "
            "hyperparameters changed). torch's includes everything.",
            *sections,
        ],
        command=options.command,
    )
    table = report.format_table(rows) + f"\n\n{machine_description()}; total wall time {wall:.1f} s"
    return RunResult("main", run_dir, rows, table)


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name", from /proc/cpuinfo), else the platform's."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """Date, CPU model, core count and library versions, for the report a README quotes."""
    import datetime
    import os
    import platform
    from importlib import metadata

    versions = []
    for package in ("jax", "torch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"no {package}")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Run {now} on {platform.system()} {platform.machine()}, {cpu_model()}, "
        f"{os.cpu_count()} CPUs, {', '.join(versions)}"
    )

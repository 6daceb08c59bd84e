"""``jaxreg main``: weight decay and dropout on Fashion-MNIST, a matched pair and a multi-seed run.

Three parts, each the answer to its own question:

1. **Matched pair** (what do the two frameworks reach?): weight-decay and dropout at ``--seed``,
   both frameworks on the same weights, batches and dropout masks, float32, the config's
   epochs; the JAX-torch gaps per epoch are reported, not gated (``jaxreg.lab.comparison``).
2. **Multi-seed** (is a JAX-torch gap of unmatched runs more than seed noise?): the experiments
   of :data:`SEED_EXPERIMENTS` over ``--seeds`` seeds (default :data:`MAIN_SEEDS`), each
   framework with its own shuffles and masks (paired and matched with ``--matched``): means,
   95% intervals, JAX - torch and its verdict.
3. **The float64 gate and the float32 attribution** (does the torch loop compute what the JAX
   engine computes?): every variant of both experiments trained matched for
   :data:`GATE_STEPS` steps in float64 and in float32 in both frameworks
   (:func:`jaxreg.lab.compare_train.train_matched`): the float64 pair must agree at every step
   to 1e-8 relative, and its final parameters too (:func:`jaxreg.lab.verdict.float64_gate`);
   float32 is attributed per step: the JAX-torch float32 gap beside each side's own float32
   error (its float32 run against its float64 run). No float32 bound, so no false alarm on a
   CPU whose float32 kernels round otherwise (AMD, AVX2).

The sizes keep ``jaxreg main`` under 5 minutes on 2 CPU cores (measured: see the committed
``experiments/results/main/report.md``); ``--seeds 1`` skips part 2.
"""

from __future__ import annotations

import dataclasses
import math
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
GATE_STEPS: dict[str, int | None] = {"weight-decay": 20, "dropout": 60}
"""Part 3's optimizer steps per variant: one epoch on the first ``steps x batch`` training
examples (None: all of them, 235 steps on Fashion-MNIST). The gate holds every step to 1e-8,
so its horizon must end before the recipe's own amplification brings float64 rounding near
1e-8: seed 004's recipe (N(0, 1) weights, lr 0.1, losses ~200 at the start) multiplies a
1e-16 rounding difference ~10x every 5 steps over its first ~40 steps (measured, Intel Xeon,
``weight-decay`` variant: 1.9e-15 at step 3, 6.1e-11 at step 21, 5.1e-9 at step 45, then
contracting to 7.6e-13 at step 235), so its 20 steps keep a 100x margin on any CPU's rounding
while a learning rate 1% off still fails at step 2. The dropout recipe stays below 4e-14 over
its whole first epoch (measured; 4.1e-12 under AVX2 kernels): its 60 steps (a quarter of the
epoch, where the float32 drift has taken off) keep part 3 within main's 5-minute budget."""


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
    sections: list[str] = ["## 1. Matched pair, float32" if both else "## 1. Single runs"]
    pair = dataclasses.replace(options, matched=both, seeds=1)
    for name in MAIN_EXPERIMENTS:
        result = run_experiment(name, pair, out=run_dir / name)
        rows += result.rows
        sections += _section(name, result, run_dir)
    gates: list[str] = []
    alarms: list[str] = []
    if options.seeds > 1:
        sections.append(f"## 2. {options.seeds} seeds" + (", matched" if options.matched else ""))
        for name in SEED_EXPERIMENTS:
            result = run_experiment(name, options, out=run_dir / "seeds" / name)
            sections += _section(f"{name}, {options.seeds} seeds", result, run_dir)
    if both:
        part, gates, alarms = _gate_part(options)
        sections += part
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
    table = report.format_table(rows)
    if gates:
        table += "\n\n" + "\n".join(gates)
    if alarms:
        table += "\n\n" + "\n".join(f"ALARM: {a}" for a in alarms)
    table += f"\n\n{machine_description()}; total wall time {wall:.1f} s"
    return RunResult("main", run_dir, rows, table)


def _gate_part(options: RunOptions) -> tuple[list[str], list[str], list[str]]:
    """Part 3: every variant's float64 gate and float32 attribution.

    Returns ``(report sections, one line per variant for the terminal, alarms)``: an alarm is
    a failed float64 gate (a wrong implementation), never a float32 gap.
    """
    from jaxreg.lab import compare_train, runner, verdict
    from jaxreg.lab.recipes._common import load_config

    sections = [
        "## 3. The float64 gate and the float32 attribution",
        "Each variant trained matched (same initial weights, batches and dropout masks) in "
        "both frameworks, in float64 and in float32 "
        "(`jaxreg.lab.compare_train.train_matched`). **The gate**: the float64 pair's loss at "
        f"every optimizer step within {verdict.GATE_RTOL:g} relative, and its final "
        "parameters, over a horizon that ends before the recipe's own amplification of "
        "rounding nears the gate (weight-decay: 20 steps, see `GATE_STEPS`; dropout: 60 "
        "steps). **The attribution** (reported, not gated): per step, the JAX-torch "
        "float32 gap beside each side's own float32 error (its float32 run against its "
        "float64 run on the same batches and masks), relative to the float64 loss; a gap "
        "that is one side's own error says which side's float32 drifted.",
    ]
    lines, alarms = [], []
    for name in MAIN_EXPERIMENTS:
        spec = load_config(name)
        size = options.limit_train
        if GATE_STEPS[name] is not None:
            size = min(GATE_STEPS[name] * spec.batch_size, size or math.inf)
        data = runner.load_data(
            spec, data_dir=options.data_dir, train_size=size, test_size=options.limit_test
        )
        for variant in spec.variants:
            found = compare_train.train_matched(
                spec, epochs=1, seed=options.seed, variant=variant.name, data=data
            )
            label = f"{name}/{variant.name}"
            gate = f"{label}: {found.gate.summary()}"
            lines.append(gate)
            if not found.gate.passed:
                alarms.append(gate)
            summary = verdict.attribution_summary(found.attribution)
            first = float(found.attribution.jax_error.ravel()[0])
            if first > compare_train.SAME_START:
                # Step 1's loss is one forward pass: more than its rounding means the float32
                # and float64 runs drew different masks, so the attribution is not rounding.
                summary += (
                    f" (NOTE: the JAX float32 and float64 runs differ by {first:.1e} at step 1: "
                    "their dropout masks differ, so the own errors include that, not rounding "
                    "alone)"
                )
            sections += [
                f"### {label}\n",
                f"- {found.gate.summary()}.\n- {summary}.",
                verdict.attribution_table(found.attribution),
            ]
            lines.append("  " + summary)
    return sections, lines, alarms


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

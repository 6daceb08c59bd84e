"""Renders a benchmark's results (``benchmarks.analysis.build``) as Markdown, a plot and files.

Every number in the text is read from the results of the run being rendered; the sentences
only explain them. Tables go through ``jaxreg.lab.report.format_table`` and every file through
``jaxreg.lab.files``' atomic writers, as a run's and a sweep's report do.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from benchmarks.analysis import CNN_ROWS, SINGLE_ROWS, SWEEP_ROWS
from benchmarks.prose import explain, fairness, fmt
from jaxreg.lab import files, report

_VERDICT = {True: "PASS", False: "MISS", None: "n/a"}


def headline(results: dict) -> str:
    """A few lines for the terminal: the headline ratios and every target's verdict."""
    cache = results.get("compile_cache") or {}
    lines = [
        f"speedup_vs_torch_eager = {fmt(results['speedup_vs_torch_eager'], '.2f')}",
        f"roofline_fraction      = {fmt(results['roofline_fraction'], '.2f')} "
        f"(by executed FLOPs: {fmt(results['roofline_fraction_executed'], '.2f')})",
        f"speedup_vs_torch_compile = {fmt(results['speedup_vs_torch_compile'], '.2f')}",
        f"sweep_cost_ratio       = {fmt(results['sweep_cost_ratio'], '.2f')} "
        f"(in chunks: {fmt(results['sweep_cost_ratio_chunked'], '.2f')})",
        f"compile cold / warm    = {fmt(cache.get('cold_s'), '.2f')} s / "
        f"{fmt(cache.get('warm_s'), '.2f')} s",
        f"speedup_vs_fastest_jax_peer = {fmt(results.get('speedup_vs_fastest_jax_peer'), '.2f')}"
        f", step_over_matmuls = {fmt(results.get('step_over_matmuls'), '.2f')}",
        f"cnn_engine_over_best_loop = {fmt(results.get('cnn_engine_over_best_loop'), '.2f')}, "
        f"cnn_speedup_vs_fastest_jax_peer = "
        f"{fmt(results.get('cnn_speedup_vs_fastest_jax_peer'), '.2f')}, "
        f"cnn_speedup_vs_torch_eager = {fmt(results.get('cnn_speedup_vs_torch_eager'), '.2f')}",
    ]
    for t in results["targets"]:
        lines.append(
            f"  [{_VERDICT[t['pass']]}] {t['target']}: {fmt(t['value'], '.3f')} "
            f"(target {t['direction']} {t['threshold']})"
        )
    return "\n".join(lines)


_COLUMNS = {
    "row": "row",
    "median": "epoch median (s)",
    "spread": "spread min-max (s)",
    "compile": "compile (s)",
    "samples": "samples/s",
    "gflops": "GFLOP/s",
    "of_peak": "of peak",
    "mem": "peak mem (MB)",
    "acc": "test acc",
    "foreign": "others' CPU",
}


def _table_row(name: str, label: str, row: dict) -> dict[str, Any]:
    if "error" in row:
        return {"row": label, "median": f"error: {row['error'][:120]}"}
    timing = _timing(name, row)
    if name in SWEEP_ROWS:
        measured = row.get("configs_measured", row["configs"])
        label += f" ({row['configs']} configs; per config-epoch"
        label += f"; measured on {measured})" if measured < row["configs"] else ")"
    return {
        "row": label,
        "median": f"{timing['median_s']:.4f}",
        "spread": f"{timing['min_s']:.4f}-{timing['max_s']:.4f}",
        "compile": fmt(row.get("compile_s"), ".2f"),
        "samples": fmt(row.get("samples_per_s"), ",.0f"),
        "gflops": fmt(row.get("gflops"), ".1f"),
        "of_peak": fmt(row.get("roofline_fraction"), ".2f"),
        "mem": fmt(row.get("peak_mem_mb"), ".0f"),
        "acc": fmt(row.get("test_acc"), ".4f"),
        "foreign": fmt(row.get("foreign_cpu_fraction"), ".0%"),
    }


def _timing(name: str, row: dict) -> dict | None:
    """The per-epoch statistics a row is compared by: per configuration-epoch for sweeps."""
    return row.get("config_epoch") if name in SWEEP_ROWS else row.get("epoch")


def markdown(results: dict) -> str:
    """The results as a Markdown page: headline, table, sweep, targets, findings, fairness."""
    m, rows = results["machine"], results["rows"]
    table = [
        _table_row(name, label, rows[name])
        for name, label in {**SINGLE_ROWS, **SWEEP_ROWS}.items()
        if name in rows
    ]
    out = [
        f"# Benchmark: {results['model']}",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; {', '.join(f'{k} {v}' for k, v in m.get('versions', {}).items())}.",
        f"Date {results['date']}; whole run {results['wall_s']:.0f} s; "
        f"load average at start {m.get('loadavg_at_start')}.",
        "",
        f"**speedup_vs_torch_eager = {fmt(results['speedup_vs_torch_eager'], '.2f')}**, "
        f"**roofline_fraction = {fmt(results['roofline_fraction'], '.2f')}** (by executed FLOPs, "
        "without the first layer's input gradient: "
        f"{fmt(results['roofline_fraction_executed'], '.2f')}) (matmul peak measured in this run: "
        f"{fmt(results['peak']['gflops'], '.0f')} GFLOP/s, {results['peak'].get('method')}).",
        "",
        report.format_table(table, columns=list(_COLUMNS), headers=_COLUMNS),
        "",
        f"FLOPs: {results['flop_formula']}. \"others' CPU\": the share of the machine's CPU time "
        "that other processes used while the row ran (/proc/stat minus the row's own CPU time); "
        "above ~10% the row's timing is inflated.",
        "",
    ]
    out += _cnn_lines(results)
    out += _sweep_lines(rows)
    out += ["## Targets", ""]
    out += [
        f"- **{_VERDICT[t['pass']]}** {t['target']}: {fmt(t['value'], '.3f')} "
        f"(target {t['direction']} {t['threshold']})"
        for t in results["targets"]
    ]
    out += ["", "## Why (profile)", ""]
    out += [f"- **{k}**: {v}" for k, v in explain(results["findings"]).items()]
    out += ["", "## Accuracy", "", _accuracy_text(results), "", "## Fairness", ""]
    out += [f"- **{k}**: {v}" for k, v in fairness(results).items()]
    notes = [(n, r["note"]) for n, r in rows.items() if isinstance(r, dict) and "note" in r]
    if notes:
        out += ["", "## Notes", ""] + [f"- **{n}**: {v}" for n, v in notes]
    return "\n".join(out) + "\n"


def _cnn_lines(results: dict) -> list[str]:
    """The CNN workload's table (epochs of ``cnn_steps`` steps) and its three ratios."""
    rows, cnn = results["rows"], results.get("cnn")
    table = [_table_row(n, label, rows[n]) for n, label in CNN_ROWS.items() if n in rows]
    if not cnn or not table:
        return []
    steps = results["workload"].get("cnn_steps")
    return [
        "## CNN",
        "",
        f"{cnn['model']}; epochs of {steps} steps; GFLOP/s by the executed convolution and "
        f"matmul FLOPs ({cnn['flops_per_example']} per example); the engine's default ran "
        f"loop={cnn['engine_loop_used']!r}.",
        "",
        f"**cnn_engine_over_best_loop = {fmt(results['cnn_engine_over_best_loop'], '.2f')}**, "
        f"**cnn_speedup_vs_fastest_jax_peer = "
        f"{fmt(results['cnn_speedup_vs_fastest_jax_peer'], '.2f')}**, "
        f"**cnn_speedup_vs_torch_eager = {fmt(results['cnn_speedup_vs_torch_eager'], '.2f')}**"
        f" (torch.compile: {fmt(results['cnn_speedup_vs_torch_compile'], '.2f')}).",
        "",
        report.format_table(table, columns=list(_COLUMNS), headers=_COLUMNS),
        "",
    ]


def _sweep_lines(rows: dict) -> list[str]:
    lines = []
    for name, label in SWEEP_ROWS.items():
        row = rows.get(name)
        if not row or "config_epoch" not in row:
            continue
        measured = row.get("configs_measured", row["configs"])
        lines.append(
            f"- {label}: {row['configs']} configurations"
            + (f" (measured on {measured}, extrapolated)" if measured < row["configs"] else "")
            + f", one sweep epoch {row['sweep_epoch_s']:.2f} s (median), per configuration-epoch "
            f"{row['config_epoch']['median_s']:.4f} s"
            + (f", mean test accuracy {row['mean_test_acc']:.4f}" if "mean_test_acc" in row else "")
        )
    return ["## Sweep", ""] + lines + [""] if lines else []


def _accuracy_text(results: dict) -> str:
    acc = results["accuracy"]
    epochs = results["workload"]["warmup_epochs"] + results["workload"]["epochs"]
    return (
        f"Single-model test accuracy after {epochs} epochs: "
        f"{json.dumps(acc['single_model_test_acc'])}. Gap between the frameworks' mean "
        f"accuracies {fmt(acc['mean_gap_jax_vs_torch'], '.4f')} (within 1.5 points: "
        f"{acc['within_1_5_points']}); largest pairwise gap "
        f"{fmt(acc['max_gap_jax_vs_torch'], '.4f')}; spread among rows of the same framework "
        f"(different RNG streams only) {json.dumps(acc['spread_within_framework'])}. Sweep, JAX "
        f"vmap vs torch.func per configuration: {json.dumps(acc['sweep_jax_vs_torch_func'])}."
    )


def plot_png(results: dict) -> bytes:
    """Epoch time per row (log scale, min-max whiskers) and achieved GFLOP/s against the peak."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["rows"]
    bars = []
    for name, label in {**SINGLE_ROWS, **CNN_ROWS, **SWEEP_ROWS}.items():
        timing = _timing(name, rows.get(name, {}))
        if timing:
            bars.append((label + (" (per config)" if name in SWEEP_ROWS else ""), timing, name))
    fig = Figure(figsize=(13, 0.5 * len(bars) + 2), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(bars)))
    colors = ["tab:orange" if "PyTorch" in label else "tab:blue" for label, _, _ in bars]
    medians = [t["median_s"] for _, t, _ in bars]
    whiskers = [
        [t["median_s"] - t["min_s"] for _, t, _ in bars],
        [t["max_s"] - t["median_s"] for _, t, _ in bars],
    ]
    ax1.barh(ys, medians, xerr=whiskers, color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("epoch time (s, log; sweeps: per configuration-epoch)")
    ax1.set_yticks(ys, [label for label, _, _ in bars])
    ax1.invert_yaxis()
    ax2.barh(ys, [rows[name].get("gflops") or 0.0 for _, _, name in bars], color=colors)
    peak = results["peak"]["gflops"]
    if peak:
        goal = next(t["threshold"] for t in results["targets"] if "matmul peak" in t["target"])
        ax2.axvline(peak, color="black", linestyle="--", label=f"measured matmul peak {peak:.0f}")
        ax2.axvline(goal * peak, color="grey", linestyle=":", label=f"{goal} of peak (target)")
        ax2.legend(loc="lower right")
    ax2.set_xlabel("achieved GFLOP/s (matmul FLOPs of forward + backward)")
    m = results["machine"]
    fig.suptitle(f"Dropout MLP and CNN on Fashion-MNIST: {m.get('gpu') or m.get('cpu')}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write(results: dict, out: Path, stem: str, plot: bool = True) -> list[Path]:
    """Writes ``stem``.json, .md and (``plot``) .png under ``out``, atomically; returns them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (out / f"{stem}{ext}" for ext in (".json", ".md", ".png"))
    # The conditions are prose, written beside the data so the JSON file stands alone.
    paths = [files.write_json(json_path, {**results, "fairness": fairness(results)}), md_path]
    text = markdown(results)
    if plot:
        paths.append(files.atomic_write_bytes(png_path, plot_png(results)))
        text += f"\n![epoch times and GFLOP/s]({png_path.name})\n"
    files.atomic_write_text(md_path, text)
    return paths


def write_index(folder: Path, latest: dict[str, Any], latest_md: Path) -> Path:
    """``README.md`` of the results folder: the latest headline and every results table."""
    tables = sorted(
        (p for p in Path(folder).glob("*.md") if p.name != "README.md"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks.run.run()`); newest first.",
        "",
        f"Latest: [{latest_md.name}]({latest_md.name}): speedup_vs_torch_eager = "
        f"{fmt(latest['speedup_vs_torch_eager'], '.2f')}, roofline_fraction = "
        f"{fmt(latest['roofline_fraction'], '.2f')}, cnn_engine_over_best_loop = "
        f"{fmt(latest.get('cnn_engine_over_best_loop'), '.2f')}, "
        f"cnn_speedup_vs_fastest_jax_peer = "
        f"{fmt(latest.get('cnn_speedup_vs_fastest_jax_peer'), '.2f')}, "
        f"cnn_speedup_vs_torch_eager = {fmt(latest.get('cnn_speedup_vs_torch_eager'), '.2f')}.",
        "",
    ]
    lines += [f"- [{p.name}]({p.name})" for p in tables]
    return files.atomic_write_text(Path(folder) / "README.md", "\n".join(lines) + "\n")

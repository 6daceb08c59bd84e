"""Turns the rows' raw figures into the results file: derived figures, targets, table, plot."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

from benchmarks import common

SINGLE_ROWS = {
    "torch_dataloader": "PyTorch eager, DataLoader (the seeds' loop)",
    "torch_eager": "PyTorch eager, data in memory",
    "torch_compile": "PyTorch torch.compile(step)",
    "jax_step": "JAX jit(step) + Python loop",
    "jax_scan": "JAX whole epoch in one lax.scan",
}
SWEEP_ROWS = {
    "sweep_jax_vmap": "Sweep: JAX vmap over the configs, one program",
    "sweep_jax_vmap_chunked": "Sweep: JAX vmap, chunks of configs in turn",
    "sweep_torch_func": "Sweep: PyTorch torch.func vmap over the configs",
    "sweep_torch_sequential": "Sweep: PyTorch eager, configs one after another",
}

FAIRNESS = {
    "threads": (
        "torch.set_num_threads(os.cpu_count()) in every torch row; XLA's default CPU thread pool "
        "(all cores) in every JAX row, no XLA_FLAGS set; each row runs alone in a fresh process"
    ),
    "data_residency": (
        "in-memory rows: the whole training set is one float32 array on the device, minibatches "
        "gathered by index each step; the DataLoader row builds each item per step in worker "
        "processes, as the seeds do"
    ),
    "matmul_precision": (
        "full float32: jax_default_matmul_precision='highest', "
        "torch.set_float32_matmul_precision('highest') and TF32 off"
    ),
    "initialization": (
        "one set of initial weights (jaxreg.models.DropoutMLP scratch, torch default init, "
        "key 0), converted with jaxreg.convert.flax_to_torch for the torch rows"
    ),
    "shuffling": (
        "a fresh uniform permutation each epoch; in-memory rows drop the last partial batch "
        "(234 steps of 256), the DataLoader row keeps it (235 steps, as the seeds)"
    ),
    "warm_up": (
        "single-model rows: the first epoch is untimed (it holds torch.compile's and the JAX "
        "engine's compilation, reported as compile_s = first epoch - median epoch; the jitted "
        "step is compiled ahead of time); sweeps: JAX compiles ahead of time, torch.func runs "
        "3 gradient calls that change no weights; the median and spread are over the timed "
        "epochs that follow"
    ),
    "torch_compile_cache": (
        "TORCHINDUCTOR_CACHE_DIR points to a fresh folder in every run, so compile_s is a cold "
        "compilation (JAX's persistent compilation cache is off by default)"
    ),
    "synchronization": (
        "each epoch's clock stops after jax.block_until_ready (JAX) or "
        "torch.cuda.synchronize (torch on CUDA; CPU torch is synchronous)"
    ),
    "dropout_rng": (
        "torch: torch.rand on the default generator (mt19937 on CPU, Philox on CUDA; "
        "Inductor's Philox under torch.compile); JAX: jax.random with the default threefry2x32 "
        "implementation, a fresh key per step"
    ),
    "memory": (
        "CPU: peak RSS during training minus RSS just before it (sampled every 10 ms from "
        "/proc); GPU: torch.cuda.max_memory_allocated / JAX device memory_stats peak"
    ),
}


def _peak(rows: dict[str, dict]) -> dict[str, Any]:
    values = {
        name: rows[name]["peak_gflops"]
        for name in ("peak_start", "peak_end")
        if name in rows and "peak_gflops" in rows[name]
    }
    method = next((rows[n].get("method") for n in values), None)
    return {"gflops": max(values.values()) if values else None, **values, "method": method}


EXECUTED = common.EXECUTED_FLOPS_PER_EXAMPLE / common.FLOPS_PER_EXAMPLE


def _derive_single(row: dict, peak_gflops: float | None) -> dict:
    if "epoch" not in row:
        return row
    median = row["epoch"]["median_s"]
    fig = common.throughput(median, row["samples_per_epoch"])
    return {
        **row,
        **fig,
        "gflops_executed": fig["gflops"] * EXECUTED,
        "roofline_fraction": common.ratio(fig["gflops"], peak_gflops),
    }


def _derive_sweep(row: dict, peak_gflops: float | None) -> dict:
    if "config_epoch" not in row:
        return row
    per_config = row["config_epoch"]["median_s"]
    fig = common.throughput(per_config, row["samples_per_epoch"])
    return {
        **row,
        **fig,
        "sweep_epoch_s": per_config * row["configs"],
        "roofline_fraction": common.ratio(fig["gflops"], peak_gflops),
    }


def _median(rows: dict, name: str, key: str = "epoch") -> float | None:
    row = rows.get(name, {})
    return row.get(key, {}).get("median_s") if key in row else None


def build(
    machine: dict, workload: common.Workload, rows: dict[str, dict], wall_s: float
) -> dict[str, Any]:
    """Derives every figure, the headline ratios and the targets from the raw rows."""
    peak = _peak(rows)
    gflops_peak = peak["gflops"]
    derived = {}
    for name, row in rows.items():
        if name in SINGLE_ROWS:
            derived[name] = _derive_single(row, gflops_peak)
        elif name in SWEEP_ROWS:
            derived[name] = _derive_sweep(row, gflops_peak)
        else:
            derived[name] = row
    torch_eager = _median(derived, "torch_eager")
    jax_scan = _median(derived, "jax_scan")
    torch_compile = _median(derived, "torch_compile")
    scan_gflops = derived.get("jax_scan", {}).get("gflops")
    vmap_config_epoch = _median(derived, "sweep_jax_vmap", "config_epoch")
    chunked_config_epoch = _median(derived, "sweep_jax_vmap_chunked", "config_epoch")
    results: dict[str, Any] = {
        "speedup_vs_torch_eager": common.ratio(torch_eager, jax_scan),
        "roofline_fraction": common.ratio(scan_gflops, gflops_peak),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "workload": dataclasses.asdict(workload),
        "model": (
            "seed 003/004 DropoutMLP (scratch): 784-256-256-10, ReLU, dropout 0.2 / 0.5, "
            "cross-entropy, SGD lr 0.5, batch 256"
        ),
        "flop_formula": common.FLOP_FORMULA,
        "flops_per_example": common.FLOPS_PER_EXAMPLE,
        "peak": peak,
        "fairness": FAIRNESS,
        "wall_s": wall_s,
        "rows": derived,
    }
    results["roofline_fraction_executed"] = common.ratio(
        None if scan_gflops is None else scan_gflops * EXECUTED, gflops_peak
    )
    results["executed_flops_per_example"] = common.EXECUTED_FLOPS_PER_EXAMPLE
    results["speedup_vs_torch_compile"] = common.ratio(torch_compile, jax_scan)
    results["sweep_cost_ratio"] = common.ratio(vmap_config_epoch, jax_scan)
    results["sweep_cost_ratio_chunked"] = common.ratio(chunked_config_epoch, jax_scan)
    results["accuracy"] = _accuracy(derived)
    results["targets"] = _targets(results, derived)
    results["analysis"] = _analysis(results, derived)
    return results


def _accuracy(rows: dict) -> dict[str, Any]:
    accs = {n: rows[n]["test_acc"] for n in SINGLE_ROWS if "test_acc" in rows.get(n, {})}
    jax_accs = [v for n, v in accs.items() if n.startswith("jax")]
    torch_accs = [v for n, v in accs.items() if n.startswith("torch")]
    gap = mean_gap = None
    if jax_accs and torch_accs:
        gap = max(abs(a - b) for a in jax_accs for b in torch_accs)
        mean_gap = abs(sum(jax_accs) / len(jax_accs) - sum(torch_accs) / len(torch_accs))
    spread = {
        "jax": max(jax_accs) - min(jax_accs) if jax_accs else None,
        "torch": max(torch_accs) - min(torch_accs) if torch_accs else None,
    }
    jax_sweep = rows.get("sweep_jax_vmap", {}).get("test_acc_per_config")
    func_row = rows.get("sweep_torch_func", {})
    func_sweep = func_row.get("test_acc_per_config")
    sweep_gap = None
    if jax_sweep and func_sweep:
        indices = func_row.get("run_indices") or list(range(len(func_sweep)))
        pairs = [(jax_sweep[i], acc) for i, acc in zip(indices, func_sweep, strict=True)]
        sweep_gap = {
            "configs_compared": len(pairs),
            "max_abs_diff": max(abs(a - b) for a, b in pairs),
            "mean_diff_jax_minus_torch": sum(a - b for a, b in pairs) / len(pairs),
        }
    sweep = {n: rows[n]["mean_test_acc"] for n in SWEEP_ROWS if "mean_test_acc" in rows.get(n, {})}
    return {
        "sweep_jax_vs_torch_func": sweep_gap,
        "single_model_test_acc": accs,
        "max_gap_jax_vs_torch": gap,
        "mean_gap_jax_vs_torch": mean_gap,
        "spread_within_framework": spread,
        # Every row draws its own dropout masks and shuffles, so single runs differ by seed
        # noise; the criterion compares the frameworks' mean final accuracies.
        "within_1_5_points": None if mean_gap is None else mean_gap <= 0.015,
        "sweep_mean_test_acc": sweep,
    }


def _target(name: str, value: float | None, threshold: float, higher_is_better: bool) -> dict:
    if value is None:
        passed = None
    else:
        passed = value >= threshold if higher_is_better else value <= threshold
    return {
        "target": name,
        "value": value,
        "threshold": threshold,
        "direction": ">=" if higher_is_better else "<=",
        "pass": passed,
    }


def _targets(results: dict, rows: dict) -> list[dict]:
    targets = [
        _target(
            "JAX scan epoch vs torch eager in memory (speedup)",
            results["speedup_vs_torch_eager"],
            5.0,
            True,
        ),
        _target(
            "JAX scan epoch vs torch.compile (speedup)",
            results["speedup_vs_torch_compile"],
            1.0,
            True,
        ),
        _target(
            "JAX scan fraction of measured matmul peak", results["roofline_fraction"], 0.7, True
        ),
        _target(
            "vmapped sweep, one program: per config-epoch / single-model scan epoch",
            results["sweep_cost_ratio"],
            1.0,
            False,
        ),
        _target(
            "vmapped sweep, in chunks: per config-epoch / single-model scan epoch",
            results["sweep_cost_ratio_chunked"],
            1.0,
            False,
        ),
    ]
    if not results["workload"].get("train_size"):
        targets.append(_target("whole benchmark wall time (s)", results["wall_s"], 900.0, False))
    if results["machine"].get("gpu"):
        targets += [
            _target("GPU single-model epoch (s)", _median(rows, "jax_scan"), 0.020, False),
            _target(
                "GPU 64-config epoch (s)",
                rows.get("sweep_jax_vmap", {}).get("sweep_epoch_s"),
                0.3,
                False,
            ),
        ]
    return targets


def _analysis(results: dict, rows: dict) -> dict[str, str]:
    """Numbers-driven explanations of each target, from the profile rows."""
    notes: dict[str, str] = {}
    profile = rows.get("jax_profile", {})
    gemms = rows.get("torch_gemms", {})
    peak = results["peak"]["gflops"]
    scan, eager = rows.get("jax_scan", {}), rows.get("torch_eager", {})
    steps = scan.get("steps_per_epoch")
    parts = profile.get("parts_ms")
    if not (peak and steps and scan.get("epoch")):
        return notes
    scan_step_ms = scan["epoch"]["median_s"] / steps * 1e3
    if parts:
        step_ms = parts["step_with_dropout"]
        masks = parts["dropout_masks_only"]
        rbg = parts.get("dropout_masks_only_rbg", float("nan"))
        other = parts["step_without_dropout"] - parts["gemms_only"]
        notes["jax_step_profile"] = (
            "per-step time, each part alone in one compiled scan (ms): "
            + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
            + f"; the engine's epoch costs {scan_step_ms:.3f} ms per step."
        )
        notes["roofline"] = (
            f"the JAX scan reaches {results['roofline_fraction']:.2f} of the {peak:.0f} GFLOP/s "
            "peak by the issue's FLOP formula, which counts the first layer's input-gradient "
            "matmul; neither framework executes it (nobody needs d(loss)/d(image)), so by "
            f"executed FLOPs ({common.EXECUTED_FLOPS_PER_EXAMPLE} per example) the fraction is "
            f"{results['roofline_fraction_executed']:.2f}. (1) The step's eight executed matmuls "
            f"alone, one after another, run at {profile['gemm_gflops']:.0f} GFLOP/s = "
            f"{profile['gemm_gflops'] / peak:.2f} of peak (at batch 1024: "
            f"{profile.get('gemm_gflops_batch_1024', float('nan')):.0f} GFLOP/s); "
            "this is the ceiling for the whole step. "
            f"(2) Dropout's masks cost {masks:.3f} ms of the {step_ms:.3f} ms step "
            f"({masks / step_ms:.0%}): threefry2x32 is a cryptographic-strength counter RNG "
            "evaluated in vector code. "
            f"(3) Everything else (bias, ReLU, softmax-cross-entropy, SGD update, gather, the "
            f"matmuls' fused epilogues) adds {other:.3f} ms. "
            "To reach 0.7: matmuls closer to the peak (bigger per-call work: a larger batch, or "
            "several configurations per call as the vmapped sweep does), a cheaper mask "
            "generator (fewer random bits "
            "per element, e.g. 8-bit draws with the rate rounded to 1/256"
            + (
                f"; XLA's rbg generator is no help here: {rbg:.3f} ms for the same masks)"
                if rbg >= masks
                else f"; XLA's rbg generator draws the same masks in {rbg:.3f} ms)"
            )
            + ", and fusing the mask into the matmul epilogue."
        )
    if eager.get("epoch"):
        eager_s = eager["epoch"]["median_s"]
        text = (
            f"torch eager in memory: {eager_s:.3f} s per epoch = {eager_s / steps * 1e3:.3f} ms "
            f"per step vs JAX scan {scan_step_ms:.3f} ms. "
        )
        if gemms:
            torch_gemm_ms = gemms["step_gemms_s"] * 1e3
            text += (
                f"torch's eight matmuls alone take {torch_gemm_ms:.3f} ms per step "
                f"({gemms['step_gemm_gflops']:.0f} GFLOP/s; its large-matmul peak "
                f"{gemms['peak_gflops']:.0f} GFLOP/s vs XLA's {peak:.0f}), i.e. "
                f"{torch_gemm_ms * steps / 1e3 / eager_s:.0%} of its epoch is matmul. "
            )
        if parts:
            bound = eager_s / (parts["gemms_only"] * steps / 1e3)
            text += (
                f"JAX's eight matmuls alone take {parts['gemms_only']:.3f} ms per step, so even "
                f"an epoch made of nothing else would be {bound:.2f}x faster than torch eager. "
            )
            if bound < 5:
                text += (
                    "5x is out of reach on this model and machine whatever the framework does "
                    "around the matmuls: they are the same work in both, and torch eager "
                    "already spends most of its epoch in them (its per-op dispatch is a small "
                    f"share of a {common.EXECUTED_FLOPS_PER_EXAMPLE * common.BATCH_SIZE / 1e6:.0f}"
                    " MFLOP step)."
                )
            elif (results["speedup_vs_torch_eager"] or 0) < 5:
                text += (
                    "The matmuls would allow 5x; the JAX step loses it in the time it spends "
                    "outside them (see jax_step_profile)."
                )
        notes["speedup_vs_torch_eager"] = text
    compiled = rows.get("torch_compile", {})
    if compiled.get("epoch"):
        notes["speedup_vs_torch_compile"] = (
            f"torch.compile: {compiled['epoch']['median_s']:.3f} s per epoch after "
            f"{compiled.get('compile_s', 0):.1f} s of compilation; JAX scan "
            f"{scan['epoch']['median_s']:.3f} s after {scan.get('compile_s', 0):.1f} s."
        )
    elif "error" in compiled:
        notes["speedup_vs_torch_compile"] = f"torch.compile failed here: {compiled['error']}"
    sweep = rows.get("sweep_jax_vmap", {})
    if sweep.get("config_epoch"):
        text = (
            f"vmapped sweep: {sweep['config_epoch']['median_s']:.4f} s per configuration-epoch "
            f"vs {scan['epoch']['median_s']:.4f} s for one model's epoch "
            f"(ratio {results['sweep_cost_ratio']:.2f}). "
        )
        parts = parts or {}
        vm = next((k for k in parts if k.startswith("step_vmapped_") and "without" not in k), None)
        vm_det = next((k for k in parts if k.startswith("step_vmapped_") and "without" in k), None)
        if vm and vm_det:
            extra = parts[vm] - parts["step_with_dropout"]
            extra_det = parts[vm_det] - parts["step_without_dropout"]
            text += (
                f"Profile, per configuration and step: vmapped over {vm.split('_')[2]} "
                f"configurations {parts[vm]:.3f} ms vs {parts['step_with_dropout']:.3f} ms alone "
                f"({extra:+.3f} ms); without dropout {parts[vm_det]:.3f} vs "
                f"{parts['step_without_dropout']:.3f} ms ({extra_det:+.3f} ms). vmap batches "
                "the same per-configuration FLOPs (every configuration has its own weights and "
                "batch), so it saves dispatch and compilation, not arithmetic; the difference "
                "between the two excesses is what dropout adds under vmap. What would reach the "
                "target: a cheaper mask generator (the threefry masks are a large share of the "
                "step; fewer random bits per element), and sharing one minibatch across the "
                "configurations of a seed."
            )
        full = next((k for k in parts if k == f"step_vmapped_{sweep['configs']}_per_config"), None)
        if full and vm and full != vm:
            text += (
                f" With all {sweep['configs']} configurations in one program the vmapped step "
                f"costs {parts[full]:.3f} ms per configuration (vs {parts[vm]:.3f} ms at "
                f"{vm.split('_')[2]}): the configurations' weights, gradients and batches "
                "(~3 MB each) no longer fit in the caches together, so every step streams them "
                "from memory."
            )
        chunked = rows.get("sweep_jax_vmap_chunked", {})
        if chunked.get("config_epoch"):
            text += (
                f" Run in chunks of {chunked.get('chunk')} (run_sweep's chunk_size), the same "
                f"sweep costs {chunked['config_epoch']['median_s']:.4f} s per configuration-epoch "
                f"(ratio {results['sweep_cost_ratio_chunked']:.2f})."
            )
        notes["sweep_cost"] = text
    return notes


def headline(results: dict) -> str:
    """A few lines for the terminal."""

    def fmt(value: Any, spec: str = ".2f") -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [
        f"speedup_vs_torch_eager = {fmt(results['speedup_vs_torch_eager'])}",
        f"roofline_fraction      = {fmt(results['roofline_fraction'])} "
        f"(by executed FLOPs: {fmt(results['roofline_fraction_executed'])})",
        f"speedup_vs_torch_compile = {fmt(results['speedup_vs_torch_compile'])}",
        f"sweep_cost_ratio       = {fmt(results['sweep_cost_ratio'])} "
        f"(in chunks: {fmt(results['sweep_cost_ratio_chunked'])})",
    ]
    for target in results["targets"]:
        verdict = {True: "PASS", False: "MISS", None: "n/a"}[target["pass"]]
        lines.append(
            f"  [{verdict}] {target['target']}: {fmt(target['value'], '.3f')} "
            f"(target {target['direction']} {target['threshold']})"
        )
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The results table as Markdown."""
    m = results["machine"]
    rows = results["rows"]

    def f(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    out = [
        f"# Benchmark: {results['model']}",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; {', '.join(f'{k} {v}' for k, v in m.get('versions', {}).items())}.",
        f"Date {results['date']}; whole run {results['wall_s']:.0f} s; "
        f"load average at start {m.get('loadavg_at_start')}.",
        "",
        f"**speedup_vs_torch_eager = {f(results['speedup_vs_torch_eager'], '.2f')}**, "
        f"**roofline_fraction = {f(results['roofline_fraction'], '.2f')}** (by executed FLOPs, "
        f"without the first layer's input gradient: "
        f"{f(results['roofline_fraction_executed'], '.2f')}) "
        f"(matmul peak measured in this run: {f(results['peak']['gflops'], '.0f')} GFLOP/s, "
        f"{results['peak'].get('method')}).",
        "",
        "| row | epoch median (s) | spread min-max (s) | compile (s) | samples/s | GFLOP/s "
        "| of peak | peak mem (MB) | test acc | others' CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in {**SINGLE_ROWS, **SWEEP_ROWS}.items():
        row = rows.get(name)
        if row is None:
            continue
        if "error" in row:
            out.append(f"| {label} | error: {row['error'][:120]} | | | | | | | | |")
            continue
        timing = _timing(name, row)
        suffix = ""
        if name in SWEEP_ROWS:
            measured = row.get("configs_measured", row["configs"])
            suffix = f" ({row['configs']} configs; per config-epoch"
            suffix += f"; measured on {measured})" if measured < row["configs"] else ")"
        acc = row.get("test_acc", row.get("baseline_test_acc"))
        out.append(
            f"| {label}{suffix} | {timing['median_s']:.4f} | {timing['min_s']:.4f}-"
            f"{timing['max_s']:.4f} | {f(row.get('compile_s'), '.2f')} | "
            f"{f(row.get('samples_per_s'), ',.0f')} | {f(row.get('gflops'), '.1f')} | "
            f"{f(row.get('roofline_fraction'), '.2f')} | {f(row.get('peak_mem_mb'), '.0f')} | "
            f"{f(acc, '.4f')} | {f(row.get('foreign_cpu_fraction'), '.0%')} |"
        )
    out += [
        "",
        f'FLOPs: {results["flop_formula"]}. Memory: {FAIRNESS["memory"]}. "others\' CPU": '
        "the share of the machine's CPU time that other processes used while the row ran "
        "(/proc/stat minus the row's own CPU time); above ~10% the row's timing is inflated.",
        "",
    ]
    sweep_lines = []
    for name, label in SWEEP_ROWS.items():
        row = rows.get(name)
        if not row or "config_epoch" not in row:
            continue
        measured = row.get("configs_measured", row["configs"])
        sweep_lines.append(
            f"- {label}: {row['configs']} configurations"
            + (f" (measured on {measured}, extrapolated)" if measured < row["configs"] else "")
            + f", one sweep epoch {row['sweep_epoch_s']:.2f} s (median), per configuration-epoch "
            f"{row['config_epoch']['median_s']:.4f} s"
            + (f", mean test accuracy {row['mean_test_acc']:.4f}" if "mean_test_acc" in row else "")
            + (f" ({row['note']})" if "note" in row else "")
        )
    if sweep_lines:
        out += ["## Sweep", ""] + sweep_lines + [""]
    out += ["## Targets", ""]
    for target in results["targets"]:
        verdict = {True: "PASS", False: "MISS", None: "n/a"}[target["pass"]]
        out.append(
            f"- **{verdict}** {target['target']}: {f(target['value'], '.3f')} "
            f"(target {target['direction']} {target['threshold']})"
        )
    out += ["", "## Why (profile)", ""]
    out += [f"- **{k}**: {v}" for k, v in results["analysis"].items()]
    acc = results["accuracy"]
    epochs = results["workload"]["warmup_epochs"] + results["workload"]["epochs"]
    out += [
        "",
        "## Accuracy",
        "",
        f"Single-model test accuracy after {epochs} epochs: "
        f"{json.dumps(acc['single_model_test_acc'])}. Gap between the frameworks' mean "
        f"accuracies {f(acc['mean_gap_jax_vs_torch'], '.4f')} (within 1.5 points: "
        f"{acc['within_1_5_points']}); largest pairwise gap "
        f"{f(acc['max_gap_jax_vs_torch'], '.4f')}; spread among rows of the same framework "
        f"(different RNG streams only) {json.dumps(acc['spread_within_framework'])}. "
        "Sweep, JAX vmap vs torch.func per "
        f"configuration: {json.dumps(acc['sweep_jax_vs_torch_func'])}.",
        "",
        "## Fairness",
        "",
    ]
    out += [f"- **{k}**: {v}" for k, v in results["fairness"].items()]
    notes = [(n, rows[n]["note"]) for n in rows if isinstance(rows[n], dict) and "note" in rows[n]]
    if notes:
        out += ["", "## Notes", ""] + [f"- **{n}**: {v}" for n, v in notes]
    return "\n".join(out) + "\n"


def _timing(name: str, row: dict) -> dict | None:
    """The per-epoch statistics a row is compared by: per configuration-epoch for sweeps."""
    return row.get("config_epoch") if name in SWEEP_ROWS else row.get("epoch")


def plot(results: dict, path: Path) -> None:
    """Epoch time per row (log scale, min-max whiskers) and achieved GFLOP/s against the peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    labels, medians, lows, highs, gflops = [], [], [], [], []
    for name, label in {**SINGLE_ROWS, **SWEEP_ROWS}.items():
        timing = _timing(name, rows.get(name, {}))
        if not timing:
            continue
        labels.append(label + (" (per config)" if name in SWEEP_ROWS else ""))
        medians.append(timing["median_s"])
        lows.append(timing["median_s"] - timing["min_s"])
        highs.append(timing["max_s"] - timing["median_s"])
        gflops.append(rows[name].get("gflops") or 0.0)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.5 * len(labels) + 2), sharey=True)
    colors = ["tab:orange" if "PyTorch" in label else "tab:blue" for label in labels]
    ys = range(len(labels))
    ax1.barh(ys, medians, xerr=[lows, highs], color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("epoch time (s, log; sweeps: per configuration-epoch)")
    ax1.set_yticks(list(ys), labels)
    ax1.invert_yaxis()
    ax2.barh(ys, gflops, color=colors)
    peak = results["peak"]["gflops"]
    if peak:
        ax2.axvline(peak, color="black", linestyle="--", label=f"measured matmul peak {peak:.0f}")
        ax2.axvline(0.7 * peak, color="grey", linestyle=":", label="0.7 of peak (target)")
        ax2.legend(loc="lower right")
    ax2.set_xlabel("achieved GFLOP/s (matmul FLOPs of forward + backward)")
    m = results["machine"]
    fig.suptitle(f"Dropout MLP on Fashion-MNIST: {m.get('gpu') or m.get('cpu')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out: Path, stem: str, plot_png: bool = True) -> list[Path]:
    """Writes ``stem``.json, .md and .png under ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (out / f"{stem}{ext}" for ext in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = markdown(results)
    if plot_png:
        plot(results, png_path)
        text += f"\n![epoch times and GFLOP/s]({png_path.name})\n"
    md_path.write_text(text)
    return [json_path, md_path] + ([png_path] if plot_png else [])


def write_index(folder: Path, latest: dict[str, Any], latest_md: Path) -> Path:
    """``README.md`` of the results folder: the latest headline and every results table."""
    tables = sorted(
        (p for p in folder.glob("*.md") if p.name != "README.md"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    speedup, roofline = latest["speedup_vs_torch_eager"], latest["roofline_fraction"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`.venv/bin/python -m benchmarks.run`); newest first.",
        "",
        f"Latest: [{latest_md.name}]({latest_md.name}): speedup_vs_torch_eager = "
        f"{'n/a' if speedup is None else f'{speedup:.2f}'}, roofline_fraction = "
        f"{'n/a' if roofline is None else f'{roofline:.2f}'}.",
        "",
    ]
    lines += [f"- [{p.name}]({p.name})" for p in tables]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path

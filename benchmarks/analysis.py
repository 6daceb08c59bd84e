"""From the rows of one benchmark run to its results: derived figures, ratios, targets, findings.

Pure data in, data out: nothing here formats text or writes files (``benchmarks.render`` does).
Every figure in the results comes from the rows of the same run, or from the run's own workload
and recipe (FLOP counts, sizes); the ``findings`` are the numbers ``render`` explains, so the
prose never states a figure the run did not measure.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from benchmarks import common

SINGLE_ROWS = {
    "torch_dataloader": "PyTorch eager, DataLoader (the seeds' loop)",
    "torch_eager": "PyTorch eager, data in memory",
    "torch_compile": "PyTorch torch.compile(step)",
    "jax_step": "JAX jit(step) + Python loop",
    "jax_scan": "JAX whole epoch in one lax.scan",
    "jax_scan_bits16": "JAX whole epoch in one lax.scan, bits16 dropout masks",
}
# The JAX tools a researcher would otherwise use, each as its own docs teach (peer_rows).
PEER_ROWS = {
    "keras_fit": "Keras 3 on JAX, model.fit",
    "nnx_jit": "Flax NNX, nnx.jit step + Python loop",
    "equinox_filter_jit": "Equinox, filter_jit step + Python loop",
}
SINGLE_ROWS.update(PEER_ROWS)
# The CNN workload (benchmarks/cnn_rows.py): epochs of ``workload.cnn_steps`` steps of 64.
CNN_ROWS = {
    "cnn_engine_auto": "CNN: jaxreg engine, defaults (loop='auto')",
    "cnn_engine_scan": "CNN: jaxreg engine, loop='scan'",
    "cnn_engine_stepped": "CNN: jaxreg engine, loop='stepped'",
    "cnn_step_loop": "CNN: JAX jit(Train.step) + Python loop",
    "cnn_torch_eager_1thread": "CNN: PyTorch eager, 1 thread",
    "cnn_torch_eager": "CNN: PyTorch eager, all cores",
    "cnn_torch_compile": "CNN: PyTorch torch.compile(step)",
    "cnn_keras_fit": "CNN: Keras 3 on JAX, model.fit",
    "cnn_nnx_jit": "CNN: Flax NNX, nnx.jit step + Python loop",
}
# The engine's loop forms: the default is compared with the fastest of them.
CNN_LOOP_ROWS = ("cnn_engine_scan", "cnn_engine_stepped", "cnn_step_loop")
CNN_PEER_ROWS = ("cnn_keras_fit", "cnn_nnx_jit")
CNN_TORCH_EAGER_ROWS = ("cnn_torch_eager_1thread", "cnn_torch_eager")
SWEEP_ROWS = {
    "sweep_jax_vmap": "Sweep: JAX vmap over the configs, one program",
    "sweep_jax_vmap_chunked": "Sweep: JAX vmap, chunks of configs in turn",
    "sweep_torch_func": "Sweep: PyTorch torch.func vmap over the configs",
    "sweep_torch_sequential": "Sweep: PyTorch eager, configs one after another",
}

# (key in the results, description, threshold, higher is better).
TARGETS = (
    ("speedup_vs_torch_eager", "JAX scan epoch vs torch eager in memory (speedup)", 5.0, True),
    ("speedup_vs_torch_compile", "JAX scan epoch vs torch.compile (speedup)", 1.0, True),
    ("roofline_fraction", "JAX scan fraction of measured matmul peak", 0.7, True),
    (
        "speedup_vs_fastest_jax_peer",
        "JAX scan epoch vs the fastest JAX peer (Keras, NNX, Equinox) (speedup)",
        1.2,
        True,
    ),
    ("step_over_matmuls", "engine step / the same step's matmuls alone", 1.15, False),
    (
        "sweep_cost_ratio",
        "vmapped sweep, one program: per config-epoch / single-model scan epoch",
        1.0,
        False,
    ),
    (
        "sweep_cost_ratio_chunked",
        "vmapped sweep, in chunks: per config-epoch / single-model scan epoch",
        1.0,
        False,
    ),
    (
        "cnn_engine_over_best_loop",
        "CNN: engine default epoch / the fastest of its loop forms (scan, stepped, "
        "jit(Train.step) loop)",
        1.05,
        False,
    ),
    (
        "cnn_speedup_vs_fastest_jax_peer",
        "CNN: engine default epoch vs the fastest JAX peer (Keras, NNX) (speedup)",
        1.0,
        True,
    ),
    (
        "cnn_speedup_vs_torch_eager",
        "CNN: engine default epoch vs the faster torch eager (1 or all threads) (speedup)",
        1.0,
        True,
    ),
)
WALL_TARGET_S = 900.0
GPU_EPOCH_TARGET_S = 0.020
GPU_SWEEP_EPOCH_TARGET_S = 0.3
EXECUTED = common.EXECUTED_FLOPS_PER_EXAMPLE / common.FLOPS_PER_EXAMPLE


def build(
    machine: dict, workload: common.Workload, rows: dict[str, dict], wall_s: float
) -> dict[str, Any]:
    """Derives every figure, the headline ratios, the targets and the findings from the rows.

    Args:
      machine: ``common.machine_info()`` plus what the rows reported about the machine.
      workload: the sizes the run used.
      rows: row name -> the dict the row returned (or ``{"error": ...}``).
      wall_s: the whole run's wall time.

    Returns:
      The results dict written as the run's JSON file.
    """
    peak = _peak(rows)
    derived = {name: _derive(name, row, peak["gflops"]) for name, row in rows.items()}
    jax_scan = _median(derived, "jax_scan")
    scan_gflops = derived.get("jax_scan", {}).get("gflops")
    peers = {n: _median(derived, n) for n in PEER_ROWS if _median(derived, n) is not None}
    machine_peak = _machine_peak(rows, peak)
    results: dict[str, Any] = {
        # Issue 12's four headline ratios; sweep_cost_ratio(_chunked) below is the fourth.
        "speedup_vs_fastest_jax_peer": common.ratio(min(peers.values(), default=None), jax_scan),
        "step_over_matmuls": _step_over_matmuls(rows.get("jax_profile", {})),
        # The same ratio with the cheaper mask generator, the candidate default.
        "step_over_matmuls_bits16": _step_over_matmuls(rows.get("jax_profile", {}), "_bits16"),
        "roofline_fraction_machine": common.ratio(scan_gflops, machine_peak["gflops"]),
        "speedup_vs_torch_eager": common.ratio(_median(derived, "torch_eager"), jax_scan),
        "roofline_fraction": common.ratio(scan_gflops, peak["gflops"]),
        "roofline_fraction_executed": common.ratio(
            None if scan_gflops is None else scan_gflops * EXECUTED, peak["gflops"]
        ),
        "speedup_vs_torch_compile": common.ratio(_median(derived, "torch_compile"), jax_scan),
        "sweep_cost_ratio": common.ratio(
            _median(derived, "sweep_jax_vmap", "config_epoch"), jax_scan
        ),
        "sweep_cost_ratio_chunked": common.ratio(
            _median(derived, "sweep_jax_vmap_chunked", "config_epoch"), jax_scan
        ),
        **_cnn_keys(derived),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "workload": dataclasses.asdict(workload),
        "model": (
            f"seed 003/004 DropoutMLP ({common.VARIANT['style']}): "
            f"{'-'.join(str(i) for i, _ in common.LAYERS)}-{common.LAYERS[-1][1]}, ReLU, "
            f"dropout {common.DROPOUT[0]} / {common.DROPOUT[1]}, cross-entropy, "
            f"SGD lr {common.LEARNING_RATE}, batch {common.BATCH_SIZE}"
        ),
        "recipe": {
            "batch_size": common.BATCH_SIZE,
            "lr": common.LEARNING_RATE,
            "rates": list(common.DROPOUT),
        },
        "flop_formula": common.FLOP_FORMULA,
        "flops_per_example": common.FLOPS_PER_EXAMPLE,
        "executed_flops_per_example": common.EXECUTED_FLOPS_PER_EXAMPLE,
        "peak": peak,
        "machine_peak": machine_peak,
        "fastest_jax_peer": min(peers, key=peers.get) if peers else None,
        "wall_s": wall_s,
        "rows": derived,
    }
    results["cnn"] = _cnn_summary(derived)
    results["compile_cache"] = _compile_cache(derived)
    results["accuracy"] = _accuracy(derived)
    results["targets"] = _targets(results, derived)
    results["findings"] = _findings(results, derived)
    return results


def _peak(rows: dict[str, dict]) -> dict[str, Any]:
    values = {
        name: rows[name]["peak_gflops"]
        for name in ("peak_start", "peak_end")
        if "peak_gflops" in rows.get(name, {})
    }
    method = next((rows[n].get("method") for n in values), None)
    return {"gflops": max(values.values()) if values else None, **values, "method": method}


def _machine_peak(rows: dict[str, dict], xla: dict[str, Any]) -> dict[str, Any]:
    """The best large float32 matmul of any library measured in this run (XLA, torch, NumPy)."""
    values = {
        "xla": xla["gflops"],
        "torch": rows.get("torch_gemms", {}).get("peak_gflops"),
        "numpy": rows.get("numpy_peak", {}).get("peak_gflops"),
    }
    values = {k: v for k, v in values.items() if v is not None}
    best = max(values, key=values.get) if values else None
    return {"gflops": values.get(best), "library": best, **values}


def _step_over_matmuls(profile: dict, suffix: str = "") -> float | None:
    """The engine's step (its own ``Train.step`` where the profile timed it) / its matmuls."""
    parts = profile.get("parts_ms") or {}
    step = parts.get(f"engine_step{suffix}", None if suffix else parts.get("step_with_dropout"))
    return common.ratio(step, parts.get("gemms_only"))


def _fastest(rows: dict, names) -> tuple[str | None, float | None]:
    """The row among ``names`` with the smallest epoch median, and that median."""
    medians = {n: _median(rows, n) for n in names if _median(rows, n) is not None}
    if not medians:
        return None, None
    best = min(medians, key=medians.get)
    return best, medians[best]


def _cnn_keys(rows: dict) -> dict[str, Any]:
    """Issue 17's CNN ratios: the engine's default epoch against its loop forms, the JAX peers
    and torch eager (None where a row is missing)."""
    engine = _median(rows, "cnn_engine_auto")
    _, best_loop = _fastest(rows, CNN_LOOP_ROWS)
    _, peer = _fastest(rows, CNN_PEER_ROWS)
    _, eager = _fastest(rows, CNN_TORCH_EAGER_ROWS)
    return {
        "cnn_engine_over_best_loop": common.ratio(engine, best_loop),
        "cnn_speedup_vs_fastest_jax_peer": common.ratio(peer, engine),
        "cnn_speedup_vs_torch_eager": common.ratio(eager, engine),
        "cnn_speedup_vs_torch_compile": common.ratio(_median(rows, "cnn_torch_compile"), engine),
    }


def _cnn_summary(rows: dict) -> dict[str, Any] | None:
    """Which CNN rows were fastest, the loop the engine's default used, accuracies."""
    if not any(n in rows for n in CNN_ROWS):
        return None
    from benchmarks import cnn_rows

    auto = rows.get("cnn_engine_auto", {})
    return {
        "model": cnn_rows.MODEL,
        "flops_per_example": cnn_rows.FLOPS_PER_EXAMPLE,
        "engine_loop_used": auto.get("loop_used"),
        "best_loop_row": _fastest(rows, CNN_LOOP_ROWS)[0],
        "fastest_jax_peer": _fastest(rows, CNN_PEER_ROWS)[0],
        "faster_torch_eager": _fastest(rows, CNN_TORCH_EAGER_ROWS)[0],
        "epoch_median_s": {n: _median(rows, n) for n in CNN_ROWS if _median(rows, n)},
        "test_acc": {n: rows[n]["test_acc"] for n in CNN_ROWS if "test_acc" in rows.get(n, {})},
    }


def _derive(name: str, row: dict, peak_gflops: float | None) -> dict:
    """Throughput and fraction of peak of a timed row (per configuration for a sweep)."""
    if name in CNN_ROWS:
        if "epoch" not in row:
            return row
        seconds = row["epoch"]["median_s"]
        samples_per_s = row["samples_per_epoch"] / seconds
        gflops = samples_per_s * row["flops_per_example"] / 1e9
        return {
            **row,
            "samples_per_s": samples_per_s,
            "gflops": gflops,
            "roofline_fraction": common.ratio(gflops, peak_gflops),
        }
    key = "config_epoch" if name in SWEEP_ROWS else "epoch"
    if (name not in SINGLE_ROWS and name not in SWEEP_ROWS) or key not in row:
        return row
    seconds = row[key]["median_s"]
    fig = common.throughput(seconds, row["samples_per_epoch"])
    out = {**row, **fig, "roofline_fraction": common.ratio(fig["gflops"], peak_gflops)}
    if name in SWEEP_ROWS:
        out["sweep_epoch_s"] = seconds * row["configs"]
    else:
        out["gflops_executed"] = fig["gflops"] * EXECUTED
    return out


def _median(rows: dict, name: str, key: str = "epoch") -> float | None:
    return rows.get(name, {}).get(key, {}).get("median_s")


def _compile_cache(rows: dict) -> dict[str, Any] | None:
    """Compile time of the engine's run without and with the persistent compilation cache."""
    cold, warm = rows.get("compile_cold", {}), rows.get("compile_warm", {})
    if "compile_s" not in cold or "compile_s" not in warm:
        return None
    return {
        "cold_s": cold["compile_s"],
        "warm_s": warm["compile_s"],
        "speedup": common.ratio(cold["compile_s"], warm["compile_s"]),
        "warm_cache_hits": warm.get("cache_hits"),
        "cold_cache_writes": cold.get("cache_writes"),
        "cache_on": cold.get("cache_dir") is not None,
    }


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


def target(name: str, value: float | None, threshold: float, higher_is_better: bool) -> dict:
    """One target's verdict: ``pass`` is None when the run did not measure ``value``."""
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
    out = [target(text, results[key], threshold, up) for key, text, threshold, up in TARGETS]
    if not results["workload"].get("train_size"):
        out.append(target("whole benchmark wall time (s)", results["wall_s"], WALL_TARGET_S, False))
    if results["machine"].get("gpu"):
        out += [
            target(
                "GPU single-model epoch (s)", _median(rows, "jax_scan"), GPU_EPOCH_TARGET_S, False
            ),
            target(
                f"GPU {results['workload']['sweep_configs']}-config epoch (s)",
                rows.get("sweep_jax_vmap", {}).get("sweep_epoch_s"),
                GPU_SWEEP_EPOCH_TARGET_S,
                False,
            ),
        ]
    return out


def _threshold(key: str) -> float:
    return next(t for k, _, t, _ in TARGETS if k == key)


def _findings(results: dict, rows: dict) -> dict[str, dict[str, Any]]:
    """The measured numbers behind each target, for ``render`` to explain (no text here)."""
    out: dict[str, dict[str, Any]] = {}
    if results["compile_cache"]:
        out["compile_cache"] = results["compile_cache"]
    cnn = _cnn_finding(results, rows)
    if cnn:
        out["cnn"] = cnn
    profile_parts = rows.get("jax_profile", {}).get("parts_ms") or {}
    if profile_parts.get("engine_step") and profile_parts.get("gemms_only"):
        out["step_over_matmuls"] = _step_finding(results, profile_parts)
    scan, profile = rows.get("jax_scan", {}), rows.get("jax_profile", {})
    steps, peak = scan.get("steps_per_epoch"), results["peak"]["gflops"]
    if not (peak and steps and scan.get("epoch")):
        return out
    scan_step_ms = scan["epoch"]["median_s"] / steps * 1e3
    parts = profile.get("parts_ms") or {}
    if parts:
        out["jax_step_profile"] = {"parts_ms": parts, "scan_step_ms": scan_step_ms}
        step_ms, masks = parts["step_with_dropout"], parts["dropout_masks_only"]
        out["roofline"] = {
            "fraction": results["roofline_fraction"],
            "fraction_executed": results["roofline_fraction_executed"],
            "target": _threshold("roofline_fraction"),
            "peak_gflops": peak,
            "executed_flops_per_example": common.EXECUTED_FLOPS_PER_EXAMPLE,
            "gemm_gflops": profile["gemm_gflops"],
            "gemm_fraction_of_peak": profile["gemm_gflops"] / peak,
            "gemm_gflops_batch_4x": profile.get("gemm_gflops_batch_1024"),
            "batch_4x": 4 * common.BATCH_SIZE,
            "step_ms": step_ms,
            "masks_ms": masks,
            "masks_share": masks / step_ms,
            "masks_rbg_ms": parts.get("dropout_masks_only_rbg"),
            "rbg_faster": parts.get("dropout_masks_only_rbg", masks) < masks,
            "other_ms": parts["step_without_dropout"] - parts["gemms_only"],
        }
    eager = rows.get("torch_eager", {})
    if eager.get("epoch"):
        eager_s = eager["epoch"]["median_s"]
        finding = {
            "eager_epoch_s": eager_s,
            "eager_step_ms": eager_s / steps * 1e3,
            "scan_step_ms": scan_step_ms,
            "speedup": results["speedup_vs_torch_eager"],
            "target": _threshold("speedup_vs_torch_eager"),
            "step_mflop": common.EXECUTED_FLOPS_PER_EXAMPLE * common.BATCH_SIZE / 1e6,
        }
        gemms = rows.get("torch_gemms", {})
        if "step_gemms_s" in gemms:
            torch_gemm_ms = gemms["step_gemms_s"] * 1e3
            finding.update(
                torch_gemm_ms=torch_gemm_ms,
                torch_gemm_gflops=gemms["step_gemm_gflops"],
                torch_peak_gflops=gemms["peak_gflops"],
                xla_peak_gflops=peak,
                torch_gemm_share=torch_gemm_ms * steps / 1e3 / eager_s,
            )
        if parts:
            finding.update(
                jax_gemm_ms=parts["gemms_only"],
                matmul_bound_speedup=eager_s / (parts["gemms_only"] * steps / 1e3),
            )
            finding["bound_below_target"] = finding["matmul_bound_speedup"] < finding["target"]
        out["speedup_vs_torch_eager"] = finding
    compiled = rows.get("torch_compile", {})
    if compiled.get("epoch"):
        out["speedup_vs_torch_compile"] = {
            "torch_compile_epoch_s": compiled["epoch"]["median_s"],
            "torch_compile_compile_s": compiled.get("compile_s"),
            "scan_epoch_s": scan["epoch"]["median_s"],
            "scan_compile_s": scan.get("compile_s"),
        }
    elif "error" in compiled:
        out["speedup_vs_torch_compile"] = {"error": compiled["error"]}
    sweep = _sweep_finding(results, rows, parts, scan)
    if sweep:
        out["sweep_cost"] = sweep
    return out


def _sweep_finding(results: dict, rows: dict, parts: dict, scan: dict) -> dict[str, Any] | None:
    sweep = rows.get("sweep_jax_vmap", {})
    if not sweep.get("config_epoch"):
        return None
    finding: dict[str, Any] = {
        "config_epoch_s": sweep["config_epoch"]["median_s"],
        "scan_epoch_s": scan["epoch"]["median_s"],
        "ratio": results["sweep_cost_ratio"],
        "configs": sweep["configs"],
        "config_bytes": common.CONFIG_BYTES,
    }
    vmapped = {
        int(k.split("_")[2]): v
        for k, v in parts.items()
        if k.startswith("step_vmapped_") and "without" not in k
    }
    without = [v for k, v in parts.items() if k.startswith("step_vmapped_") and "without" in k]
    if vmapped and without:
        small = min(vmapped)
        finding["profile"] = {
            "configs": small,
            "vmapped_ms": vmapped[small],
            "alone_ms": parts["step_with_dropout"],
            "vmapped_without_dropout_ms": without[0],
            "alone_without_dropout_ms": parts["step_without_dropout"],
        }
        if sweep["configs"] in vmapped and sweep["configs"] != small:
            finding["profile"]["all_configs_ms"] = vmapped[sweep["configs"]]
    chunked = rows.get("sweep_jax_vmap_chunked", {})
    if chunked.get("config_epoch"):
        finding["chunked"] = {
            "chunk": chunked.get("chunk"),
            "config_epoch_s": chunked["config_epoch"]["median_s"],
            "ratio": results["sweep_cost_ratio_chunked"],
        }
    return finding


def _step_finding(results: dict, parts: dict) -> dict[str, Any]:
    """Where the MLP step's time beyond its matmuls goes (each part alone in a compiled scan)."""
    with_dropout = parts.get("step_with_dropout")
    without = parts.get("step_without_dropout")
    gather = parts.get("gather_only")
    finding = {
        "ratio": results["step_over_matmuls"],
        "ratio_bits16": results["step_over_matmuls_bits16"],
        "target": _threshold("step_over_matmuls"),
        "engine_step_ms": parts["engine_step"],
        "engine_step_bits16_ms": parts.get("engine_step_bits16"),
        "gemms_ms": parts["gemms_only"],
        "excess_ms": parts["engine_step"] - parts["gemms_only"],
    }
    if with_dropout is not None and without is not None:
        finding["masks_in_step_ms"] = with_dropout - without
        finding["masks_alone_ms"] = parts.get("dropout_masks_only")
        finding["masks_alone_bits16_ms"] = parts.get("dropout_masks_only_bits16")
        finding["gather_ms"] = gather
        # bias, ReLU, loss, SGD update and the matmuls' epilogues: the step without dropout
        # minus its matmuls and its minibatch gather.
        finding["other_ms"] = without - parts["gemms_only"] - (gather or 0.0)
    return finding


def _cnn_finding(results: dict, rows: dict) -> dict[str, Any] | None:
    """The CNN ratios with the rows and profile figures behind them."""
    summary = results.get("cnn")
    if not summary or not summary["epoch_median_s"]:
        return None
    medians = summary["epoch_median_s"]
    profile = rows.get("cnn_profile", {})
    steps = rows.get("cnn_engine_auto", {}).get("steps_per_epoch") or next(
        (rows[n]["steps_per_epoch"] for n in CNN_ROWS if "steps_per_epoch" in rows.get(n, {})),
        None,
    )
    finding: dict[str, Any] = {
        "epoch_median_s": medians,
        "steps_per_epoch": steps,
        "engine_loop_used": summary["engine_loop_used"],
        "best_loop_row": summary["best_loop_row"],
        "fastest_jax_peer": summary["fastest_jax_peer"],
        "faster_torch_eager": summary["faster_torch_eager"],
        "extrapolated": [n for n in CNN_ROWS if rows.get(n, {}).get("extrapolated")],
        "errors": {n: rows[n]["error"] for n in CNN_ROWS if "error" in rows.get(n, {})},
        "profile": profile.get("parts_ms"),
        "scan_over_jit": profile.get("scan_over_jit"),
        "conv_scan_over_jit": profile.get("conv_scan_over_jit"),
        "dropout_share": profile.get("dropout_share"),
        "step_gflops_jit": profile.get("step_gflops_jit"),
        "peak_gflops": results["peak"]["gflops"],
    }
    for key, _, threshold, up in TARGETS:
        if key.startswith("cnn_"):
            finding[key] = {
                "value": results[key],
                "threshold": threshold,
                "pass": target(key, results[key], threshold, up)["pass"],
            }
    return finding

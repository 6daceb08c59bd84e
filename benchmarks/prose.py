"""The benchmark's sentences: the conditions of the run and what each finding shows.

Each function reads one finding of ``benchmarks.analysis.build`` (or the results) and states only
the numbers in it; what a sentence claims beyond them is an explanation, never a figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def fmt(value: Any, spec: str) -> str:
    """``format(value, spec)``, or "n/a" for a figure the run did not measure."""
    return "n/a" if value is None else format(value, spec)


def fairness(results: dict) -> dict[str, str]:
    """The conditions every row ran under, with the run's own step counts."""
    rows, workload = results["rows"], results["workload"]
    steps = rows.get("jax_scan", {}).get("steps_per_epoch")
    loader = rows.get("torch_dataloader", {}).get("samples_per_epoch")
    batch = results["recipe"]["batch_size"]
    shuffling = "a fresh uniform permutation each epoch; in-memory rows drop the last partial batch"
    if steps:
        shuffling += f" ({steps} steps of {batch})"
    shuffling += ", the DataLoader row keeps it, as the seeds do"
    if loader:
        shuffling += f" ({loader} samples per epoch)"
    return {
        "threads": (
            "torch.set_num_threads(os.cpu_count()) in every torch row; XLA's default CPU thread "
            "pool (all cores) in every JAX row, no XLA_FLAGS set; each row runs alone in a fresh "
            "process"
        ),
        "data_residency": (
            "in-memory rows: the whole training set is one float32 array on the device, "
            "minibatches gathered by index each step; the DataLoader row builds each item per "
            "step in worker processes, as the seeds do"
        ),
        "matmul_precision": (
            "full float32: jax_default_matmul_precision='highest', "
            "torch.set_float32_matmul_precision('highest') and TF32 off"
        ),
        "initialization": (
            "one set of initial weights (jaxreg.models.DropoutMLP, torch default init, key 0), "
            "converted with jaxreg.convert.flax_to_torch for the torch rows"
        ),
        "shuffling": shuffling,
        "warm_up": (
            f"single-model rows: the first {workload['warmup_epochs']} epoch(s) untimed (they "
            "hold torch.compile's and the JAX engine's compilation, reported as compile_s = "
            "first epoch - median epoch; the jitted step is compiled ahead of time); sweeps: JAX "
            "compiles ahead of time, torch.func runs a few gradient calls that change no weights"
        ),
        "compile_cache": (
            "the training rows compile cold: JAX's persistent compilation cache is not enabled "
            "in them and TORCHINDUCTOR_CACHE_DIR points to a fresh folder; the compile_cold / "
            "compile_warm rows measure jaxreg.lab.timing.enable_compilation_cache"
        ),
        "synchronization": (
            "each epoch's clock stops after jax.block_until_ready (JAX) or "
            "torch.cuda.synchronize (torch on CUDA; CPU torch is synchronous)"
        ),
        "dropout_rng": (
            "torch: torch.rand on the default generator (mt19937 on CPU, Philox on CUDA; "
            "Inductor's Philox under torch.compile); JAX: jax.random with the default "
            "implementation, a fresh key per step"
        ),
        "memory": (
            "CPU: peak RSS during training minus RSS just before it (sampled from /proc); "
            "GPU: torch.cuda.max_memory_allocated / JAX device memory_stats peak"
        ),
        "cnn": (
            f"the CNN rows train on the first {workload.get('cnn_steps')} x 64 training images, "
            f"{workload.get('cnn_warmup_epochs')} untimed and {workload.get('cnn_epochs')} timed "
            "epochs, from one set of initial weights (the engine's init, key 0; converted with "
            "jaxreg.convert for torch, the first dense layer's inputs reordered from NHWC to "
            "NCHW flattening); AdamW (decoupled decay 0.01 on every parameter, eps 1e-8) in "
            "every framework; each library's own dropout (jaxreg SpatialDropout, Keras "
            "SpatialDropout2D, nnx.Dropout(broadcast_dims=(1, 2)), torch Dropout2d); torch rows "
            "set their thread count (1, or os.cpu_count()); where the engine runs a whole-epoch "
            f"scan the epochs are {workload.get('cnn_scan_steps')} steps, scaled"
        ),
    }


# ---- the findings as sentences: each reads only its own finding -------------------------------
def _step_profile(f: dict) -> str:
    parts = ", ".join(f"{k} {v:.3f}" for k, v in f["parts_ms"].items())
    return (
        f"per-step time, each part alone in one compiled scan (ms): {parts}; the engine's epoch "
        f"costs {f['scan_step_ms']:.3f} ms per step."
    )


def _roofline(f: dict) -> str:
    rbg = f["masks_rbg_ms"]
    rbg_text = ""
    if rbg is not None:
        rbg_text = f" XLA's rbg generator draws the same masks in {rbg:.3f} ms" + (
            ", faster." if f["rbg_faster"] else ", no faster."
        )
    return (
        f"the JAX scan reaches {fmt(f['fraction'], '.2f')} of the {f['peak_gflops']:.0f} GFLOP/s "
        "peak by the FLOP formula, which counts the first layer's input-gradient matmul; neither "
        f"framework executes it, so by executed FLOPs ({f['executed_flops_per_example']} per "
        f"example) the fraction is {fmt(f['fraction_executed'], '.2f')}. (1) The step's executed "
        f"matmuls alone, one after another, run at {f['gemm_gflops']:.0f} GFLOP/s = "
        f"{f['gemm_fraction_of_peak']:.2f} of peak (at batch {f['batch_4x']}: "
        f"{fmt(f['gemm_gflops_batch_4x'], '.0f')} GFLOP/s): the ceiling for the whole step. "
        f"(2) Dropout's masks cost {f['masks_ms']:.3f} ms of the {f['step_ms']:.3f} ms step "
        f"({f['masks_share']:.0%}).{rbg_text} (3) Everything else (bias, ReLU, cross-entropy, "
        f"SGD update, gather, the matmuls' epilogues) adds {f['other_ms']:.3f} ms. To reach "
        f"{f['target']}: matmuls closer to the peak (more work per call: a larger batch, or "
        "several configurations per call as the vmapped sweep does), a cheaper mask generator "
        "(fewer random bits per element), and masks fused into the matmul epilogue."
    )


def _vs_eager(f: dict) -> str:
    text = (
        f"torch eager in memory: {f['eager_epoch_s']:.3f} s per epoch = "
        f"{f['eager_step_ms']:.3f} ms per step vs JAX scan {f['scan_step_ms']:.3f} ms. "
    )
    if "torch_gemm_ms" in f:
        text += (
            f"torch's matmuls alone take {f['torch_gemm_ms']:.3f} ms per step "
            f"({f['torch_gemm_gflops']:.0f} GFLOP/s; its large-matmul peak "
            f"{f['torch_peak_gflops']:.0f} GFLOP/s vs XLA's {f['xla_peak_gflops']:.0f}), i.e. "
            f"{f['torch_gemm_share']:.0%} of its epoch is matmul. "
        )
    if "jax_gemm_ms" in f:
        text += (
            f"JAX's matmuls alone take {f['jax_gemm_ms']:.3f} ms per step, so even an epoch "
            f"made of nothing else would be {f['matmul_bound_speedup']:.2f}x faster than torch "
            "eager. "
        )
        if f["bound_below_target"]:
            text += (
                f"{f['target']:g}x is out of reach on this model and machine whatever the "
                "framework does around the matmuls: they are the same work in both, and torch "
                "eager spends most of its epoch in them (its per-op dispatch is a small share of "
                f"a {f['step_mflop']:.0f} MFLOP step)."
            )
        elif (f["speedup"] or 0) < f["target"]:
            text += (
                f"The matmuls would allow {f['target']:g}x; the JAX step loses it in the time it "
                "spends outside them (see jax_step_profile)."
            )
    return text


def _vs_compile(f: dict) -> str:
    if "error" in f:
        return f"torch.compile failed here: {f['error']}"
    return (
        f"torch.compile: {f['torch_compile_epoch_s']:.3f} s per epoch after "
        f"{fmt(f['torch_compile_compile_s'], '.1f')} s of compilation; JAX scan "
        f"{f['scan_epoch_s']:.3f} s after {fmt(f['scan_compile_s'], '.1f')} s."
    )


def _sweep(f: dict) -> str:
    text = (
        f"vmapped sweep: {f['config_epoch_s']:.4f} s per configuration-epoch vs "
        f"{f['scan_epoch_s']:.4f} s for one model's epoch (ratio {fmt(f['ratio'], '.2f')}). "
    )
    p = f.get("profile")
    if p:
        text += (
            f"Profile, per configuration and step: vmapped over {p['configs']} configurations "
            f"{p['vmapped_ms']:.3f} ms vs {p['alone_ms']:.3f} ms alone "
            f"({p['vmapped_ms'] - p['alone_ms']:+.3f} ms); without dropout "
            f"{p['vmapped_without_dropout_ms']:.3f} vs {p['alone_without_dropout_ms']:.3f} ms "
            f"({p['vmapped_without_dropout_ms'] - p['alone_without_dropout_ms']:+.3f} ms). vmap "
            "batches the same per-configuration FLOPs (every configuration has its own weights "
            "and batch), so it saves dispatch and compilation, not arithmetic; the difference "
            "between the two excesses is what dropout adds under vmap."
        )
        if "all_configs_ms" in p:
            text += (
                f" With all {f['configs']} configurations in one program the vmapped step costs "
                f"{p['all_configs_ms']:.3f} ms per configuration (vs {p['vmapped_ms']:.3f} ms at "
                f"{p['configs']}): each configuration keeps {f['config_bytes'] / 2**20:.1f} MiB "
                "of weights, gradients and minibatch live, and together they outgrow the caches."
            )
    c = f.get("chunked")
    if c:
        text += (
            f" Run in chunks of {c['chunk']} (run_sweep's chunk_size), the same sweep costs "
            f"{c['config_epoch_s']:.4f} s per configuration-epoch (ratio {fmt(c['ratio'], '.2f')})."
        )
    return text


def _compile_cache(f: dict) -> str:
    if not f["cache_on"]:
        return "the persistent compilation cache was turned off (JAXREG_NO_COMPILE_CACHE)."
    return (
        f"compiling the engine's training run took {f['cold_s']:.2f} s in a fresh process with "
        f"an empty cache and {f['warm_s']:.2f} s in the next fresh process "
        f"({f['warm_cache_hits']} cache hit(s); {fmt(f['speedup'], '.1f')}x faster)."
    )


def _step_over_matmuls(f: dict) -> str:
    text = (
        f"the engine's step costs {f['engine_step_ms']:.3f} ms against {f['gemms_ms']:.3f} ms "
        f"for its matmuls alone (ratio {fmt(f['ratio'], '.2f')}, target <= {f['target']}; with "
        f"the bits16 masks {fmt(f['ratio_bits16'], '.2f')}): {f['excess_ms']:.3f} ms beyond the "
        "matmuls per step."
    )
    if "masks_in_step_ms" in f:
        text += (
            f" Of that, dropout adds {f['masks_in_step_ms']:.3f} ms to the step (its masks "
            f"alone: {fmt(f['masks_alone_ms'], '.3f')} ms, {fmt(f['masks_alone_bits16_ms'], '.3f')}"
            f" ms with bits16), the minibatch gather {fmt(f['gather_ms'], '.3f')} ms alone, and "
            f"bias, ReLU, cross-entropy, the SGD update and the matmuls' epilogues "
            f"{f['other_ms']:.3f} ms (the step without dropout minus its matmuls and gather)."
        )
    return text


_CNN_NAMES = {
    "cnn_engine_auto": "engine default",
    "cnn_engine_scan": "engine scan",
    "cnn_engine_stepped": "engine stepped",
    "cnn_step_loop": "jit(Train.step) loop",
    "cnn_torch_eager_1thread": "torch eager 1 thread",
    "cnn_torch_eager": "torch eager all cores",
    "cnn_torch_compile": "torch.compile",
    "cnn_keras_fit": "Keras fit",
    "cnn_nnx_jit": "NNX jit",
}


def _cnn(f: dict) -> str:
    epochs = ", ".join(f"{_CNN_NAMES.get(k, k)} {v:.3f}" for k, v in f["epoch_median_s"].items())
    text = (
        f"CNN epoch medians ({f['steps_per_epoch']} steps of 64, s): {epochs}. The engine's "
        f"default ran loop={f['engine_loop_used']!r}."
    )
    if f["extrapolated"]:
        text += f" Rows timed on shorter scan epochs and scaled: {', '.join(f['extrapolated'])}."
    for key, label in (
        ("cnn_engine_over_best_loop", "engine default / fastest loop form"),
        ("cnn_speedup_vs_fastest_jax_peer", "speedup vs the fastest JAX peer"),
        ("cnn_speedup_vs_torch_eager", "speedup vs torch eager"),
    ):
        t = f.get(key)
        if t:
            verdict = {True: "PASS", False: "MISS", None: "n/a"}[t["pass"]]
            text += f" {label}: {fmt(t['value'], '.2f')} ({verdict}, target {t['threshold']})."
    p = f.get("profile")
    if p:
        text += (
            f" Profile per step: the engine's step jitted and called from Python "
            f"{p['step_jit']:.1f} ms ({fmt(f['step_gflops_jit'], '.0f')} GFLOP/s of "
            f"convolutions and matmuls, peak {fmt(f['peak_gflops'], '.0f')}), the same step "
            f"inside a lax.scan {p['step_scan']:.1f} ms ({fmt(f['scan_over_jit'], '.1f')}x); "
            f"the second convolution's forward and backward alone {p['conv2_fwd_bwd_jit']:.1f}"
            f" ms jitted vs {p['conv2_fwd_bwd_scan']:.1f} ms in a scan "
            f"({fmt(f['conv_scan_over_jit'], '.1f')}x): XLA's CPU backend runs convolutions "
            "inside a while loop far slower than outside one (jax-ml/jax#12868), so a "
            "whole-epoch scan is the wrong loop for conv nets on CPU. Without dropout the "
            f"jitted step costs {p['step_jit_without_dropout']:.1f} ms (dropout's share "
            f"{fmt(f['dropout_share'], '.0%')})."
        )
        if "step_jit_flax_max_pool" in p:
            text += (
                f" Pooling with Flax's max_pool (XLA's reduce_window, its gradient a "
                f"select_and_scatter) the jitted step costs {p['step_jit_flax_max_pool']:.1f} ms"
                f" against {p['step_jit']:.1f} ms with jaxreg.nn.max_pool2d (the rows' model)."
            )
        eager = f["epoch_median_s"].get(f.get("faster_torch_eager") or "")
        if "convs_fwd_bwd_jit" in p and eager and f["steps_per_epoch"]:
            torch_step = eager / f["steps_per_epoch"] * 1e3
            text += (
                f" What stands between the engine and torch eager: XLA's two convolutions "
                f"alone (forward, kernel gradients and conv2's input gradient) take "
                f"{p['convs_fwd_bwd_jit']:.1f} ms per step, "
                f"{p['convs_fwd_bwd_jit'] / p['step_jit']:.0%} of the jitted step, against "
                f"{torch_step:.1f} ms for torch eager's whole step (oneDNN convolutions); the "
                "rest of the step (pools, dense layers, dropout, loss, AdamW) costs "
                f"{p['step_jit'] - p['convs_fwd_bwd_jit']:.1f} ms."
            )
    if f["errors"]:
        text += " Failed rows: " + "; ".join(f"{k}: {v[:160]}" for k, v in f["errors"].items())
    return text


_FINDINGS: dict[str, Callable[[dict], str]] = {
    "jax_step_profile": _step_profile,
    "roofline": _roofline,
    "speedup_vs_torch_eager": _vs_eager,
    "speedup_vs_torch_compile": _vs_compile,
    "step_over_matmuls": _step_over_matmuls,
    "cnn": _cnn,
    "sweep_cost": _sweep,
    "compile_cache": _compile_cache,
}


def explain(findings: dict[str, dict]) -> dict[str, str]:
    """One paragraph per finding of ``analysis.build``, in that order."""
    return {name: _FINDINGS[name](f) for name, f in findings.items() if name in _FINDINGS}

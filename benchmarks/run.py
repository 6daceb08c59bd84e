"""``make bench``: JAX vs PyTorch on the seed 003/004 dropout MLP (against the matmul roofline)
and on a small CNN (issue 17), with the JAX peers (Keras 3, Flax NNX, Equinox).

The entry point is the plain function :func:`run` (``jaxreg bench`` calls it; so does
``python -m benchmarks.run [--quick]``, which takes no other argument)::

    from benchmarks.run import run
    run()              # the full run (under 15 minutes on 2 cores)
    run(quick=True)    # a smoke run on a slice (a few minutes)

Every row runs in a fresh Python process, so that one framework's thread pools, allocator and
compiled caches never share a process with the other's, and the peak-memory figure is that
row's own. ``benchmarks.analysis`` turns the rows into results, ``benchmarks.render`` writes
them: ``benchmarks/results/<machine>-<date>.json`` / ``.md`` / ``.png`` (quick runs:
``runs/bench-quick/``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Row name -> (module, function). Order = execution order: the roofline is measured first and
# last, so a machine that got busier in between shows up as two different peaks.
ROWS: dict[str, tuple[str, str]] = {
    "init": ("benchmarks.jax_rows", "init_params"),
    "peak_start": ("benchmarks.jax_rows", "peak"),
    "torch_gemms": ("benchmarks.torch_rows", "gemms"),
    "numpy_peak": ("benchmarks.numpy_rows", "peak"),
    "jax_profile": ("benchmarks.jax_profile", "profile"),
    "torch_dataloader": ("benchmarks.torch_rows", "eager_dataloader"),
    "torch_eager": ("benchmarks.torch_rows", "eager_memory"),
    "torch_compile": ("benchmarks.torch_rows", "compiled"),
    "jax_step": ("benchmarks.jax_rows", "jitted_step"),
    "jax_scan": ("benchmarks.jax_rows", "scan"),
    "jax_scan_bits16": ("benchmarks.jax_rows", "scan_bits16"),
    # The JAX peers, each as its own docs teach (benchmarks/peer_rows.py; the `bench` extra).
    "keras_fit": ("benchmarks.peer_rows", "keras_fit"),
    "nnx_jit": ("benchmarks.peer_rows", "nnx_jit"),
    "equinox_filter_jit": ("benchmarks.peer_rows", "equinox_filter_jit"),
    # The CNN workload (issue 17; benchmarks/cnn_rows.py): shared weights first, then the profile
    # (step in and out of a scan), the engine's loop forms, its jitted step, torch, the peers.
    "cnn_init": ("benchmarks.cnn_rows", "init_row"),
    "cnn_profile": ("benchmarks.cnn_rows", "profile"),
    "cnn_engine_auto": ("benchmarks.cnn_rows", "engine_auto"),
    "cnn_engine_scan": ("benchmarks.cnn_rows", "engine_scan"),
    "cnn_engine_stepped": ("benchmarks.cnn_rows", "engine_stepped"),
    "cnn_step_loop": ("benchmarks.cnn_rows", "step_loop"),
    "cnn_torch_eager_1thread": ("benchmarks.cnn_rows", "torch_eager_1thread"),
    "cnn_torch_eager": ("benchmarks.cnn_rows", "torch_eager"),
    "cnn_torch_compile": ("benchmarks.cnn_rows", "torch_compiled"),
    "cnn_keras_fit": ("benchmarks.cnn_rows", "keras_fit"),
    "cnn_nnx_jit": ("benchmarks.cnn_rows", "nnx_jit"),
    # The same program compiled by two fresh processes sharing one new cache folder.
    "compile_cold": ("benchmarks.jax_rows", "compile_cache"),
    "compile_warm": ("benchmarks.jax_rows", "compile_cache"),
    "sweep_jax_vmap": ("benchmarks.sweep_rows", "jax_vmap"),
    "sweep_jax_vmap_chunked": ("benchmarks.sweep_rows", "jax_vmap_chunked"),
    "sweep_torch_func": ("benchmarks.sweep_rows", "torch_func"),
    "sweep_torch_sequential": ("benchmarks.sweep_rows", "torch_sequential"),
    "peak_end": ("benchmarks.jax_rows", "peak"),
}

# The parts of a comparison run (benchmarks/compare_rows.py): run by its own script, not by
# `make bench`, through the same fresh-process machinery.
COMPARE_ROWS: dict[str, tuple[str, str]] = {
    f"compare_{name}": ("benchmarks.compare_rows", name)
    for name in (
        "jax32",
        "jax64",
        "masks",
        "torch32_1thread",
        "torch32_2threads",
        "torch64_1thread",
        "torch64_2threads",
        "torch32_matched",
    )
}

ROW_TIMEOUT_S = 900


def _child(spec_path: str) -> None:
    """Child mode: run the row a JSON spec names here and write its result beside the spec."""
    spec = json.loads(Path(spec_path).read_text())
    module_name, function_name = {**ROWS, **COMPARE_ROWS}[spec["row"]]
    workload = common.Workload(**spec["workload"])
    module = importlib.import_module(module_name)
    result = getattr(module, function_name)(workload, spec["init"], device=spec["device"])
    Path(spec["result"]).write_text(json.dumps(result, default=_jsonable))


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def run_row(
    name: str,
    workload: common.Workload,
    init_path: str,
    device: str,
    tmp: Path,
    settle_s: float = 0.0,
) -> dict:
    """Runs one row in a fresh process; a crash or timeout becomes ``{"error": ...}``.

    Waits up to ``settle_s`` for an idle machine first, and records how much CPU other
    processes took while the row ran (``foreign_cpu_fraction``).
    """
    result_path = tmp / f"{name}.json"
    spec_path = tmp / f"{name}.spec.json"
    spec = {
        "row": name,
        "workload": dataclasses.asdict(workload),
        "init": init_path,
        "result": str(result_path),
        "device": device,
    }
    spec_path.write_text(json.dumps(spec))
    command = [
        sys.executable,
        "-c",
        "import sys; from benchmarks.run import _child; _child(sys.argv[1])",
        str(spec_path),
    ]
    env = dict(os.environ)
    # A cold Inductor cache in every run: torch.compile's compile time is then the cost a fresh
    # clone pays, as JAX's is (its persistent compilation cache is off by default).
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
    waited = common.wait_for_quiet_cpu(settle_s) if settle_s > 0 else 0.0
    before = common.cpu_busy_seconds(), _children_cpu_seconds()
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=ROW_TIMEOUT_S,
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {ROW_TIMEOUT_S} s", "wall_s": ROW_TIMEOUT_S}
    wall = time.perf_counter() - start
    busy = common.cpu_busy_seconds() - before[0]
    own = _children_cpu_seconds() - before[1]
    noise = {
        "wall_s": wall,
        "waited_for_quiet_s": waited,
        # CPU time that other processes used while this row ran, as a fraction of the machine.
        "foreign_cpu_fraction": max(busy - own, 0.0) / (wall * (os.cpu_count() or 1)),
    }
    if proc.returncode != 0 or not result_path.exists():
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-4000:], **noise}
    return {**json.loads(result_path.read_text()), **noise}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_slug(machine: dict[str, Any]) -> str:
    """A file-name-safe machine name: the GPU if there is one, else the CPU and core count."""
    if machine.get("gpu"):
        name = machine["gpu"]
    else:
        name = f"{machine['cpu']}-{machine['cores']}core"
    slug = "".join(c.lower() if c.isalnum() else "-" for c in name)
    return "-".join(part for part in slug.split("-") if part)


def run(
    quick: bool = False,
    rows: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    *,
    workload: common.Workload | None = None,
    device: str = "auto",
    settle_s: float | None = None,
    plot: bool = True,
) -> Path:
    """Runs the benchmark rows, each in a fresh process, and writes the results files.

    Args:
      quick: the smoke workload (``common.QUICK``, a data slice) instead of the full one.
      rows: names from ``ROWS`` to run (``init`` is always added, ``cnn_init`` with any CNN
        row); None = all of them.
      out: results folder; None = ``benchmarks/results`` (quick: ``runs/bench-quick``).
      workload: explicit sizes, replacing the choice ``quick`` makes.
      device: torch device, "auto" (CUDA when available), "cpu" or "cuda"; JAX uses its
        default backend.
      settle_s: wait up to this long for an idle CPU before each row (None: 8 s, quick 0).
      plot: write the PNG.

    Returns:
      The Markdown results file.

    Raises:
      ValueError: an unknown row name or device.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    names = list(ROWS) if rows is None else list(rows)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ValueError(f"rows: unknown {unknown}; allowed: {list(ROWS)}")
    if "init" not in names:
        names.insert(0, "init")
    if any(n.startswith("cnn_") for n in names) and "cnn_init" not in names:
        names.insert(1, "cnn_init")
    if workload is None:
        workload = common.QUICK if quick else common.FULL
    if settle_s is None:
        settle_s = 0.0 if quick else 8.0
    from benchmarks import analysis, render

    started = time.perf_counter()
    machine = common.machine_info()
    results_rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="jaxreg-bench-") as tmp:
        init_path = str(Path(tmp) / "init.npz")
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            results_rows[name] = run_row(
                name, workload, init_path, device, Path(tmp), settle_s=settle_s
            )
            row = results_rows[name]
            status = row.get("error") or f"{row['wall_s']:.1f} s"
            print(f"[bench] {name}: {status}", flush=True)
    machine.update(results_rows.get("init", {}).get("machine", {}))
    torch_settings = results_rows.get("torch_eager", {}).get("settings", {})
    machine["gpu"] = machine.get("gpu") or torch_settings.get("gpu")
    machine["torch_settings"] = torch_settings
    machine["jax_settings"] = results_rows.get("peak_start", {}).get("settings", {})
    machine["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results = analysis.build(machine, workload, results_rows, wall_s=time.perf_counter() - started)
    folder = Path(out) if out is not None else (Path("runs/bench-quick") if quick else RESULTS_DIR)
    stem = f"{machine_slug(machine)}-{datetime.date.today().isoformat()}"
    if quick:
        stem += "-quick"
    paths = render.write(results, folder, stem, plot=plot)
    if not quick and folder.resolve() == RESULTS_DIR:
        paths.append(render.write_index(RESULTS_DIR, results, paths[1]))
    print(render.headline(results))
    for path in paths:
        print(f"[bench] wrote {path}")
    return paths[1]


if __name__ == "__main__":
    # The command line is jaxreg's (``jaxreg bench``); this keeps ``make bench`` and
    # ``python -m benchmarks.run --quick`` working without a parser of its own.
    if sys.argv[1:] not in ([], ["--quick"]):
        sys.exit("usage: python -m benchmarks.run [--quick]  (options: jaxreg bench --help)")
    run(quick=sys.argv[1:] == ["--quick"])

"""``make bench``: JAX vs PyTorch on the seed 003/004 dropout MLP, against the matmul roofline.

Usage::

    .venv/bin/python -m benchmarks.run            # the full run (under 15 minutes on 2 cores)
    .venv/bin/python -m benchmarks.run --quick    # a smoke run on a slice (a few minutes)

Every row runs in a fresh Python process, so that one framework's thread pools, allocator and
compiled caches never share a process with the other's, and the peak-memory figure is that
row's own. The results land in ``benchmarks/results/<machine>-<date>.json`` / ``.md`` / ``.png``
(``--quick``: ``runs/bench-quick/``).
"""

from __future__ import annotations

import argparse
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
    "jax_profile": ("benchmarks.jax_rows", "profile"),
    "torch_dataloader": ("benchmarks.torch_rows", "eager_dataloader"),
    "torch_eager": ("benchmarks.torch_rows", "eager_memory"),
    "torch_compile": ("benchmarks.torch_rows", "compiled"),
    "jax_step": ("benchmarks.jax_rows", "jitted_step"),
    "jax_scan": ("benchmarks.jax_rows", "scan"),
    "sweep_jax_vmap": ("benchmarks.sweep_rows", "jax_vmap"),
    "sweep_jax_vmap_chunked": ("benchmarks.sweep_rows", "jax_vmap_chunked"),
    "sweep_torch_func": ("benchmarks.sweep_rows", "torch_func"),
    "sweep_torch_sequential": ("benchmarks.sweep_rows", "torch_sequential"),
    "peak_end": ("benchmarks.jax_rows", "peak"),
}

ROW_TIMEOUT_S = 900


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run on a data slice")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--rows", default=None, help="comma-separated subset of: " + ",".join(ROWS))
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="torch device (auto: CUDA when available); JAX uses its default backend",
    )
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder")
    for field in dataclasses.fields(common.Workload):
        if field.name != "data_dir":
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=int, default=None, help=f"override {field.name}")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--settle-s",
        type=float,
        default=None,
        help="wait up to this long for an idle CPU before each row (default 8, --quick 0)",
    )
    # Internal: run one row in this process and write its JSON.
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--init", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _workload(args: argparse.Namespace) -> common.Workload:
    base = common.QUICK if args.quick else common.FULL
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(common.Workload)
        if f.name != "data_dir" and getattr(args, f.name) is not None
    }
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return dataclasses.replace(base, **overrides)


def _run_child(args: argparse.Namespace) -> int:
    """Child mode: run ``args.row`` here and write its result (or its error) to ``args.result``."""
    module_name, function_name = ROWS[args.row]
    workload = common.Workload(**json.loads(args.workload))
    module = importlib.import_module(module_name)
    result = getattr(module, function_name)(workload, args.init, device=args.device)
    Path(args.result).write_text(json.dumps(result, default=_jsonable))
    return 0


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
    command = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--row",
        name,
        "--workload",
        json.dumps(dataclasses.asdict(workload)),
        "--init",
        init_path,
        "--result",
        str(result_path),
        "--device",
        device,
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


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark rows and writes the results files; returns the exit status."""
    args = _parse(argv)
    if args.row:
        return _run_child(args)
    from benchmarks import report

    workload = _workload(args)
    if args.settle_s is None:
        args.settle_s = 0.0 if args.quick else 8.0
    names = list(ROWS) if args.rows is None else args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"--rows: unknown {unknown}; allowed: {list(ROWS)}")
    if "init" not in names:
        names.insert(0, "init")
    started = time.perf_counter()
    machine = common.machine_info()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="jaxreg-bench-") as tmp:
        init_path = str(Path(tmp) / "init.npz")
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            rows[name] = run_row(
                name, workload, init_path, args.device, Path(tmp), settle_s=args.settle_s
            )
            status = rows[name].get("error") or f"{rows[name]['wall_s']:.1f} s"
            print(f"[bench] {name}: {status}", flush=True)
    machine.update(rows.get("init", {}).get("machine", {}))
    torch_settings = rows.get("torch_eager", {}).get("settings", {})
    machine["gpu"] = machine.get("gpu") or torch_settings.get("gpu")
    machine["torch_settings"] = torch_settings
    machine["jax_settings"] = rows.get("peak_start", {}).get("settings", {})
    machine["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results = report.build(machine, workload, rows, wall_s=time.perf_counter() - started)
    out = args.out or (Path("runs/bench-quick") if args.quick else RESULTS_DIR)
    stem = f"{machine_slug(machine)}-{datetime.date.today().isoformat()}"
    if args.quick:
        stem += "-quick"
    paths = report.write(results, Path(out), stem, plot_png=not args.no_plot)
    if not args.quick and Path(out).resolve() == RESULTS_DIR:
        paths.append(report.write_index(RESULTS_DIR, results, paths[1]))
    print(report.headline(results))
    for path in paths:
        print(f"[bench] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

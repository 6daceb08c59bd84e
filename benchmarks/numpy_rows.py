"""The NumPy row: the float32 matmul peak of NumPy's BLAS, one of the machine's three rooflines.

``roofline_fraction_machine`` divides the engine's achieved GFLOP/s by the best large float32
matmul any library on the machine reaches in the same run (XLA: ``jax_rows.peak``, torch:
``torch_rows.gemms``, NumPy: this row), so that a slow XLA matmul cannot flatter the fraction.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common
from jaxreg.lab import timing


def peak(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``np.matmul`` of two ``peak_size`` square float32 arrays, best of 7 after one warm-up."""
    size = workload.peak_size
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    best = min(timing.time_calls(np.matmul, a, b, repeats=7, warmup=1, block=False))
    config = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = (config or {}).get("Build Dependencies", {}).get("blas", {})
    return {
        "peak_gflops": 2 * size**3 / best / 1e9,
        "peak_size": size,
        "best_s": best,
        "numpy_version": np.__version__,
        "blas": blas.get("name"),
        "method": f"np.matmul of two {size}x{size} float32 arrays, best of 7 after warm-up",
    }

"""Matmul precision probes: the pinning the other cases rely on, and JAX's default precision.

Every case of the suite runs under ``jax.default_matmul_precision("highest")`` with torch's TF32
off (``conftest.py``). ``pinned`` checks that this took effect: the flags are set, and a float32
matmul and convolution agree with torch and with a float64 reference at the float32 tolerance
(TF32, with its 10-bit mantissa, would be off by ~1e-3 on a GPU). ``jax_default_precision``
documents the looser bound for JAX's default precision: on a GPU it may use TF32 for float32
(``tf32`` tolerance, 1e-2); on a CPU, and for float64, the default is full precision.
"""

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _parity import TF32_DEFAULT, Tol, base_tol, to_jax, to_torch

FAMILY = "precision"


def _operands(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 1024)), rng.standard_normal((1024, 256))
    x, w = rng.standard_normal((4, 16, 16, 32)), rng.standard_normal((3, 3, 32, 64))
    return [v.astype(dtype) for v in (a, b, x, w)]


def _jax_ops(a, b, x, w, dtype):
    mm = to_jax(a, dtype) @ to_jax(b, dtype)
    conv = jax.lax.conv_general_dilated(
        to_jax(x, dtype),
        to_jax(w, dtype),
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return mm, conv


def _torch_ops(a, b, x, w, dtype, device):
    mm = to_torch(a, dtype, device) @ to_torch(b, dtype, device)
    xt = to_torch(x.transpose(0, 3, 1, 2), dtype, device)
    wt = to_torch(w.transpose(3, 2, 0, 1), dtype, device)
    conv = F.conv2d(xt, wt, padding=1).permute(0, 2, 3, 1)
    return mm, conv


def case_pinned(parity, dtype, device):
    assert jax.config.jax_default_matmul_precision == "highest"
    assert torch.get_float32_matmul_precision() == "highest"
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    a, b, x, w = _operands(dtype)
    ours = _jax_ops(a, b, x, w, dtype)
    theirs = _torch_ops(a, b, x, w, dtype, device)
    exact = _torch_ops(a, b, x, w, "float64", "cpu")
    tol = base_tol(dtype, device)
    for name, o, t, e in zip(("matmul", "conv2d"), ours, theirs, exact, strict=True):
        parity.check(name, o, t, tol)
        parity.check(f"{name} vs float64", o, e, tol)


def case_jax_default_precision(parity, dtype, device):
    a, b, x, w = _operands(dtype)
    with jax.default_matmul_precision("default"):
        ours = _jax_ops(a, b, x, w, dtype)
    theirs = _torch_ops(a, b, x, w, dtype, device)
    tol = TF32_DEFAULT if (device == "gpu" and dtype == "float32") else base_tol(dtype, device)
    if tol is not TF32_DEFAULT:
        tol = Tol(f"{tol.label}-default", tol.value, f"{tol.reason}; JAX's default precision is "
                  "full precision here (CPU, or float64)")  # fmt: skip
    for name, o, t in zip(("matmul", "conv2d"), ours, theirs, strict=True):
        parity.check(name, o, t, tol)


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_precision(case, dtype, device, parity):
    CASES[case](parity, dtype, device)

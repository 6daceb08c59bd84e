"""Smoke tests of the JAX peer rows of ``make bench`` (Keras 3 on JAX, Flax NNX, Equinox).

No timing is asserted: these check that each twin is the benchmark's model (same forward pass
as ``jaxreg.models.DropoutMLP`` from the shared initial weights) and that each row trains and
reports what ``benchmarks.run`` reads (skipped where the ``bench`` extra is not installed),
and that the analysis derives issue 12's headline ratios from the rows.
"""

import dataclasses
import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Keras picks its backend at import; without this it looks for TensorFlow.
os.environ["KERAS_BACKEND"] = "jax"


from benchmarks import analysis, common, peer_rows  # noqa: E402
from jaxreg.convert import flax_to_torch  # noqa: E402
from jaxreg.models import DropoutMLP  # noqa: E402

needs_peers = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("keras", "equinox")),
    reason="the bench extra (keras, equinox) is not installed",
)

ROWS = ["keras_fit", "nnx_jit", "equinox_filter_jit"]


@pytest.fixture(scope="module")
def init(tmp_path_factory):
    """The ``init`` row's file: jaxreg's initial weights under torch names, and the params."""
    params = DropoutMLP().init(jax.random.key(0), jnp.ones((1, 784)))["params"]
    path = tmp_path_factory.mktemp("init") / "init.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in flax_to_torch(params).items()})
    return str(path), params


def _eval_logits(name, model, x):
    if name == "keras_fit":
        return np.asarray(model(x, training=False))
    if name == "nnx_jit":
        model.eval()
        return np.asarray(model(x))
    return np.asarray(jax.vmap(lambda e: model(e, inference=True))(x))


BUILDERS = {
    "keras_fit": peer_rows.build_keras,
    "nnx_jit": peer_rows.build_nnx,
    "equinox_filter_jit": peer_rows.build_equinox,
}


@pytest.mark.slow
@needs_peers
@pytest.mark.parametrize("name", ROWS)
def test_twin_is_the_benchmark_model(name, init):
    path, params = init
    x = jax.random.uniform(jax.random.key(1), (8, 784))
    expected = np.asarray(DropoutMLP().apply({"params": params}, x, deterministic=True))
    shared = peer_rows._shared_init(path)
    got = _eval_logits(name, BUILDERS[name](shared), np.asarray(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
    # Without the file each library keeps its own initializer: a different function.
    own = _eval_logits(name, BUILDERS[name](None), np.asarray(x))
    assert not np.allclose(own, expected, atol=1e-3), name


@needs_peers
@pytest.mark.parametrize(
    "name",
    # One peer in the fast tier (every peer row is the same machinery); all with -m slow.
    [pytest.param(n, marks=[] if n == "nnx_jit" else [pytest.mark.slow]) for n in ROWS],
)
def test_row_trains_and_reports(name, init):
    path, _ = init
    workload = dataclasses.replace(
        common.QUICK, train_size=1024, test_size=256, warmup_epochs=1, epochs=2
    )
    try:
        result = getattr(peer_rows, name)(workload, path)
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST not found: {err}")
    assert result["steps_per_epoch"] == 1024 // common.BATCH_SIZE
    assert result["samples_per_epoch"] == 1024
    assert len(result["epoch_times_s"]) == 2 and len(result["warmup_times_s"]) == 1
    assert all(t > 0 for t in result["epoch_times_s"] + result["warmup_times_s"])
    assert result["epoch"]["n"] == 2 and result["compile_s"] is not None
    # The row really trains: the mean loss falls below the first epoch's (lr 0.5 on 4 batches an
    # epoch is noisy, so not necessarily monotonically), and twelve SGD steps lift the accuracy
    # above chance (0.1).
    losses = result["train_loss_per_epoch"]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert min(losses[1:]) < losses[0] and losses[-1] == result["train_loss_last_epoch"], losses
    assert 0.2 < result["test_acc"] <= 1.0, result["test_acc"]
    assert result["peak_mem_mb"] >= 0 and result["framework"]


def _timed(median_s, **extra):
    return {
        "epoch": {"median_s": median_s, "min_s": median_s, "max_s": median_s, "n": 1},
        "samples_per_epoch": 256 * 234,
        "steps_per_epoch": 234,
        **extra,
    }


def test_analysis_headline_ratios_from_the_rows():
    rows = {
        "peak_start": {"peak_gflops": 250.0},
        "peak_end": {"peak_gflops": 270.0},
        "torch_gemms": {"peak_gflops": 340.0},
        "numpy_peak": {"peak_gflops": 300.0},
        "jax_profile": {
            "parts_ms": {
                "engine_step": 2.2,
                "engine_step_bits16": 1.9,
                "step_with_dropout": 2.1,
                "step_without_dropout": 1.4,
                "dropout_masks_only": 0.8,
                "gemms_only": 1.6,
            },
            "gemm_gflops": 200.0,
        },
        "jax_scan": _timed(0.5),
        "keras_fit": _timed(0.55),
        "nnx_jit": _timed(0.8),
        "equinox_filter_jit": {"error": "exit 1"},
        "sweep_jax_vmap": _timed(9.0, config_epoch={"median_s": 0.55}, configs=64),
    }
    results = analysis.build({"gpu": None}, common.QUICK, rows, wall_s=1.0)
    assert results["speedup_vs_fastest_jax_peer"] == pytest.approx(0.55 / 0.5)
    assert results["fastest_jax_peer"] == "keras_fit"
    # The engine's own Train.step, not the decomposed copy, over the matmuls alone.
    assert results["step_over_matmuls"] == pytest.approx(2.2 / 1.6)
    assert results["step_over_matmuls_bits16"] == pytest.approx(1.9 / 1.6)
    scan_gflops = common.FLOPS_PER_EXAMPLE * 256 * 234 / 0.5 / 1e9
    assert results["roofline_fraction_machine"] == pytest.approx(scan_gflops / 340.0)
    assert results["roofline_fraction"] == pytest.approx(scan_gflops / 270.0)
    assert results["machine_peak"]["library"] == "torch"
    assert results["sweep_cost_ratio"] == pytest.approx(0.55 / 0.5)
    verdicts = {t["target"]: t["pass"] for t in results["targets"]}
    assert verdicts[next(k for k in verdicts if "fastest JAX peer" in k)] is False
    assert verdicts[next(k for k in verdicts if "matmuls alone" in k)] is False
    # Without peer rows, the peer ratio is missing (None), not a made-up number.
    bare = {k: v for k, v in rows.items() if k not in ROWS}
    assert (
        analysis.build({"gpu": None}, common.QUICK, bare, 1.0)["speedup_vs_fastest_jax_peer"]
        is None
    )

"""Smoke tests of the JAX peer rows of ``make bench`` (Keras 3 on JAX, Flax NNX, Equinox).

No timing is asserted: these check that each twin is the benchmark's model (same forward pass
as ``jaxreg.models.DropoutMLP`` from the shared initial weights) and that each row trains and
reports what ``benchmarks.run`` reads. Skipped where the ``bench`` extra is not installed.
"""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Keras picks its backend at import; without this it looks for TensorFlow.
os.environ["KERAS_BACKEND"] = "jax"

keras = pytest.importorskip("keras")
eqx = pytest.importorskip("equinox")

from benchmarks import common, peer_rows  # noqa: E402
from jaxreg.convert import flax_to_torch  # noqa: E402
from jaxreg.models import DropoutMLP  # noqa: E402

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


@pytest.mark.parametrize("name", ROWS)
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

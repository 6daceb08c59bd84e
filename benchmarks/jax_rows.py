"""The JAX rows: the matmul roofline, jitted step + Python loop, whole-epoch scan, a step profile,
and compilation with the persistent compilation cache cold and warm.

Each row function runs in its own process (see ``benchmarks.run``) and returns a dict of figures.
Training goes through ``jaxreg.lab.engine`` (the harness's one training loop); this module only
times it, with ``jaxreg.lab.timing`` (the one compile-and-time helper).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxreg.lab import timing


def setup() -> None:
    """Matmul precision identical to the torch rows: full float32 everywhere (no TF32 on GPU)."""
    jax.config.update("jax_default_matmul_precision", "highest")


def settings() -> dict[str, Any]:
    """The JAX side's fairness settings, for the results file."""
    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": getattr(device, "device_kind", None),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "threads": (
            "XLA CPU default: one intra-op thread pool over all cores "
            f"({os.cpu_count()}); no XLA_FLAGS set by the benchmark"
        ),
        "default_matmul_precision": "highest",
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "dropout_rng": (
            f"jax.random ({jax.config.jax_default_prng_impl}); one key per step derived from "
            "the run key inside the compiled function"
        ),
        "shuffling": "one jax.random.permutation per epoch, inside the compiled function",
        "sync": "jax.block_until_ready on the outputs before each epoch's clock stops",
    }


def peak(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The roofline: a large square float32 matmul in XLA, best of several runs."""
    setup()
    size = workload.peak_size
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    best = min(timing.time_calls(matmul, a, b, repeats=7, warmup=1))
    return {
        "peak_gflops": 2 * size**3 / best / 1e9,
        "peak_size": size,
        "best_s": best,
        "method": f"jit(jnp.matmul) of two {size}x{size} float32 arrays, best of 7 after warm-up",
        "settings": settings(),
    }


def _data(workload: common.Workload):
    from jaxreg.lab.data import load_fashion_mnist

    return load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )


def _model():
    from jaxreg.models import DropoutMLP

    return DropoutMLP(**common.model_kwargs())


def _make_train(workload: common.Workload, epochs: int, ds=None):
    """The library's engine for the seed 003 recipe; drop_last keeps every step 256 examples."""
    from jaxreg.lab.engine import TrainConfig, make_train

    config = TrainConfig(
        model=_model(),
        lr=common.LEARNING_RATE,
        batch_size=common.BATCH_SIZE,
        epochs=epochs,
        drop_last=True,
        # Evaluate after the first and the last epoch only: the timed epochs train, as in torch.
        eval_every=max(epochs, 1),
    )
    return make_train(config, ds if ds is not None else _data(workload))


HPARAMS = {"lr": common.LEARNING_RATE, "dropout1": common.DROPOUT[0], "dropout2": common.DROPOUT[1]}
INIT_KEY = 0
VMAP_CONFIGS = 8


def init_params(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Writes the engine's initial weights as torch-named arrays for the torch rows.

    Unprefixed keys: ``jax.random.key(INIT_KEY)`` (the single-model rows); ``seed{s}/`` keys:
    ``jax.random.key(s)`` for each seed of the sweep preset.
    """
    from jaxreg.convert import flax_to_torch

    setup()
    ds = _data(dataclasses.replace(workload, train_size=common.BATCH_SIZE, test_size=16))
    train = _make_train(workload, 1, ds)

    def torch_arrays(seed: int) -> dict[str, np.ndarray]:
        params = train.init(jax.random.key(seed), HPARAMS).params
        return {k: np.asarray(v) for k, v in flax_to_torch(params).items()}

    arrays = torch_arrays(INIT_KEY)
    _, seeds = common.grid_runs(workload.sweep_configs)
    for seed in sorted(set(seeds)):
        arrays.update({f"seed{seed}/{k}": v for k, v in torch_arrays(seed).items()})
    np.savez(init_path, **arrays)
    gpu = jax.devices()[0].device_kind if jax.default_backend() == "gpu" else None
    return {"params": sorted(arrays), "machine": {"gpu": gpu}}


def _memory(rss: common.PeakRSS) -> dict[str, Any]:
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {
            "peak_mem_mb": stats["peak_bytes_in_use"] / 2**20,
            "mem_method": "jax device memory_stats()['peak_bytes_in_use']",
        }
    return {
        "peak_mem_mb": rss.delta / 2**20,
        "mem_method": "RSS delta (peak during training minus before; /proc sampled every 10 ms)",
    }


def scan(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``jaxreg.lab.engine``: each epoch one compiled ``lax.scan`` over its minibatches.

    ``Train.fit`` runs one jitted epoch per call and reads the epoch's metrics back (the sync);
    an epoch's time is the time between two ``on_epoch`` callbacks. The first epoch holds the
    compilation (init and epoch functions).
    """
    setup()
    epochs = workload.warmup_epochs + workload.epochs
    train = _make_train(workload, epochs)
    marks: list[float] = []
    with common.PeakRSS() as rss:
        marks.append(time.perf_counter())
        result = train.fit(
            jax.random.key(INIT_KEY),
            HPARAMS,
            on_epoch=lambda epoch, metrics: marks.append(time.perf_counter()),
        )
    times = np.diff(marks).tolist()
    warm, timed = times[: workload.warmup_epochs], times[workload.warmup_epochs :]
    median = common.summarize(timed)["median_s"]
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": warm[0] - median,
        "compile_note": "first epoch minus the median epoch (init + epoch compilation)",
        "steps_per_epoch": train.steps_per_epoch,
        "samples_per_epoch": train.steps_per_epoch * train.batch_size,
        "train_loss_last_epoch": float(result.metrics["train_loss"][-1]),
        "test_acc": float(result.metrics["test_acc"][-1]),
        "compile_count": train._jit_epoch._cache_size(),
        "device": str(jax.devices()[0]),
        "note": (
            "the last timed epoch also evaluates the test set (a lax.cond); the median is "
            "unaffected"
        ),
        **_memory(rss),
    }


def compile_cache(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Compiles the engine's whole training run with the persistent compilation cache on.

    The program is ``jax.jit(train.pure)`` of the seed 003 recipe, what ``jaxreg run dropout``
    compiles. The cache folder is the benchmark's own (beside ``init_path``), empty when the run
    starts: the first process to call this row compiles cold and fills it, the next one (a
    fresh process, as a rerun of an experiment is) reads its program from it.
    """
    setup()
    folder = timing.enable_compilation_cache(Path(init_path).parent / "jax-cache")
    train = _make_train(workload, 1)
    hp = train.normalize_hparams(HPARAMS)
    with timing.count_cache_events() as events:
        _, compile_s = timing.compile_and_time(
            train.pure, train.data, jax.random.key(INIT_KEY), hp, None
        )
    return {
        "compile_s": compile_s,
        "cache_dir": None if folder is None else str(folder),
        "cache_requests": events["requests"],
        "cache_hits": events["hits"],
        "cache_writes": events["misses"],
        "compile_saved_s": events["saved_s"],
        "method": "jaxreg.lab.timing.compile_and_time(jax.jit(train.pure)) in a fresh process",
    }


def make_step(model, optimizer, rates, deterministic: bool = False):
    """One SGD step as the engine's scan body does it, jitted alone for the Python-loop row.

    ``jaxreg.lab.engine`` keeps its step inside the epoch function, so the per-step row needs this
    small standalone copy of the same computation: gather the batch by index, dropout with key
    ``fold_in(key, step)``, mean cross-entropy, ``torch_sgd`` update.
    """
    import optax

    def step(params, opt_state, x_all, y_all, order, i, key):
        idx = jax.lax.dynamic_index_in_dim(order, i, keepdims=False)
        xb, yb = x_all[idx], y_all[idx]

        def loss_fn(p):
            logits = model.apply(
                {"params": p},
                xb,
                deterministic=deterministic,
                rates=rates,
                rngs={"dropout": jax.random.fold_in(key, i)},
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def jitted_step(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """A jitted step called from a Python loop: one dispatch per minibatch."""
    from jaxreg.optim import torch_sgd

    setup()
    ds = _data(workload)
    train = _make_train(workload, 1, ds)
    params = train.init(jax.random.key(INIT_KEY), HPARAMS).params
    optimizer = torch_sgd(common.LEARNING_RATE)
    opt_state = optimizer.init(params)
    rates = tuple(jnp.float32(r) for r in common.DROPOUT)
    step = jax.jit(make_step(_model(), optimizer, rates), donate_argnums=(0, 1))
    x_all, y_all = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train.astype(np.int32))
    n, b = len(ds.x_train), common.BATCH_SIZE
    steps = common.steps_per_epoch(n)

    @jax.jit
    def epoch_order(key, epoch):
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
        return perm[: steps * b].reshape(steps, b)

    key, dropout_key = jax.random.split(jax.random.key(1))
    order0 = epoch_order(key, 0)
    compiled, compile_s = timing.compile_and_time(
        step, params, opt_state, x_all, y_all, order0, 0, key
    )
    state = {"params": params, "opt_state": opt_state}
    losses = []

    def run_epoch(epoch: int) -> None:
        order = epoch_order(key, epoch)
        # The step folds its index into this key: a new key per epoch, new masks every step.
        epoch_key = jax.random.fold_in(dropout_key, epoch)
        p, o = state["params"], state["opt_state"]
        total = jnp.float32(0)
        for i in range(steps):
            p, o, loss = compiled(p, o, x_all, y_all, order, i, epoch_key)
            total = total + loss
        jax.block_until_ready((p, total))
        state["params"], state["opt_state"] = p, o
        losses.append(float(total) / steps)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    test_acc = _accuracy(state["params"], ds)
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": compile_s,
        "compile_note": "AOT lower + compile of the step",
        "steps_per_epoch": steps,
        "samples_per_epoch": steps * b,
        "train_loss_last_epoch": losses[-1],
        "test_acc": test_acc,
        "device": str(jax.devices()[0]),
        "note": "the step is a standalone copy of the engine's scan body (no step API there)",
        **_memory(rss),
    }


def _accuracy(params, ds) -> float:
    logits = jax.jit(lambda p, x: _model().apply({"params": p}, x, deterministic=True))(
        params, jnp.asarray(ds.x_test)
    )
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(ds.y_test)))

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


def _make_train(workload: common.Workload, epochs: int, ds=None, generator: str | None = None):
    """The library's engine for the seed 003 recipe; drop_last keeps every step 256 examples.

    ``generator``: the dropout masks' generator (``TrainConfig.dropout_generator``; None = the
    default, ``"bernoulli"``).
    """
    from jaxreg.lab.engine import TrainConfig, make_train

    config = TrainConfig(
        model=_model(),
        lr=common.LEARNING_RATE,
        batch_size=common.BATCH_SIZE,
        epochs=epochs,
        drop_last=True,
        # Evaluate after the first and the last epoch only: the timed epochs train, as in torch.
        eval_every=max(epochs, 1),
        dropout_generator=generator,
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


def scan(
    workload: common.Workload, init_path: str, device: str = "auto", generator: str | None = None
) -> dict:
    """``jaxreg.lab.engine``: each epoch one compiled ``lax.scan`` over its minibatches.

    ``Train.fit`` runs one jitted epoch per call and reads the epoch's metrics back (the sync);
    an epoch's time is the time between two ``on_epoch`` callbacks. The first epoch holds the
    compilation (init and epoch functions). ``generator`` picks the dropout mask generator.
    """
    setup()
    epochs = workload.warmup_epochs + workload.epochs
    train = _make_train(workload, epochs, generator=generator)
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
        # The loop form the engine's default (TrainConfig(loop="auto")) resolved to.
        "loop_used": getattr(train, "loop", "scan"),
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


def scan_bits16(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The ``scan`` row with the ``"bits16"`` dropout masks (16 random bits per element)."""
    return scan(workload, init_path, device, generator="bits16")


def jitted_step(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The engine's ``Train.step`` jitted and called from a Python loop: one dispatch per batch.

    Each call gathers its minibatch by index from the device-resident training set (the
    engine's ``batch_order``) and runs ``train.step`` on it: the same objective, update and
    dropout keys as the scan's body.
    """
    setup()
    ds = _data(workload)
    train = _make_train(workload, 1, ds)
    key = jax.random.key(INIT_KEY)
    hp = train.normalize_hparams(HPARAMS)
    state = train.init(key, HPARAMS)
    x_all, y_all = train.data["x_train"], train.data["y_train"]

    def step(state, x_all, y_all, order, i, key, hp):
        idx = jax.lax.dynamic_index_in_dim(order, i, keepdims=False)
        return train.step(state, (x_all[idx], y_all[idx]), key, hp)

    epoch_order = jax.jit(lambda key, epoch: train.batch_order(key, epoch)[0])
    order0 = epoch_order(key, 0)
    compiled, compile_s = timing.compile_and_time(
        jax.jit(step, donate_argnums=(0,)), state, x_all, y_all, order0, 0, key, hp
    )
    steps, b = train.steps_per_epoch, train.batch_size
    holder, losses = {"state": state}, []

    def run_epoch(epoch: int) -> None:
        order = epoch_order(key, epoch)
        s, total = holder["state"], jnp.float32(0)
        for i in range(steps):
            s, out = compiled(s, x_all, y_all, order, i, key, hp)
            total = total + out["loss"]
        holder["state"] = jax.block_until_ready(s)
        losses.append(float(total) / steps)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": compile_s,
        "compile_note": "AOT lower + compile of the step (jaxreg.lab.timing.compile_and_time)",
        "steps_per_epoch": steps,
        "samples_per_epoch": steps * b,
        "train_loss_last_epoch": losses[-1],
        "test_acc": _accuracy(holder["state"].params, ds),
        "device": str(jax.devices()[0]),
        "note": "jaxreg.lab.engine's Train.step; the minibatch is gathered inside the jitted call",
        **_memory(rss),
    }


def _accuracy(params, ds) -> float:
    logits = jax.jit(lambda p, x: _model().apply({"params": p}, x, deterministic=True))(
        params, jnp.asarray(ds.x_test)
    )
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(ds.y_test)))

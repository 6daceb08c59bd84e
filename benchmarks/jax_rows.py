"""The JAX rows: the matmul roofline, jitted step + Python loop, whole-epoch scan, a step profile.

Each row function runs in its own process (see ``benchmarks.run``) and returns a dict of figures.
Training goes through ``jaxreg.lab.engine`` (the library's one training loop); this module only
times it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common


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


def _best_of(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def peak(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The roofline: a large square float32 matmul in XLA, best of several runs."""
    setup()
    size = workload.peak_size
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    best = _best_of(lambda: matmul(a, b), repeats=7)
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

    return DropoutMLP(dropout1=common.DROPOUT[0], dropout2=common.DROPOUT[1], style="scratch")


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
    from benchmarks.sweep_rows import grid_runs
    from jaxreg.convert import flax_to_torch

    setup()
    ds = _data(dataclasses.replace(workload, train_size=common.BATCH_SIZE, test_size=16))
    train = _make_train(workload, 1, ds)

    def torch_arrays(seed: int) -> dict[str, np.ndarray]:
        params = train.init(jax.random.key(seed), HPARAMS).params
        return {k: np.asarray(v) for k, v in flax_to_torch(params).items()}

    arrays = torch_arrays(INIT_KEY)
    _, seeds = grid_runs(workload.sweep_configs)
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
    start = time.perf_counter()
    lowered = step.lower(params, opt_state, x_all, y_all, order0, 0, key)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
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


def _scan_time(body, carry, operands, steps: int, repeats: int = 5) -> float:
    """Seconds per iteration of ``body(carry, i, operands)`` run ``steps`` times in one scan.

    The operands are arguments of the compiled function, not closed-over constants, so XLA can
    neither fold them at compile time nor hoist work on them out of the loop.
    """

    @jax.jit
    def loop(carry, operands):
        def scan_body(c, i):
            return body(c, i, operands), None

        return jax.lax.scan(scan_body, carry, jnp.arange(steps))[0]

    compiled = loop.lower(carry, operands).compile()
    return _best_of(lambda: compiled(carry, operands), repeats) / steps


def profile(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Times the parts of one training step, each run N times inside one compiled scan.

    Parts: the step's eight executed matmuls alone (forward, dW, and dX but for layer 1); the step
    without dropout; the real step (dropout 0.2 / 0.5); the two dropout masks alone; the
    minibatch gather alone. The differences say where an epoch's time goes beyond the matmuls.
    """
    from jaxreg.optim import torch_sgd

    setup()
    ds = _data(workload)
    b = common.BATCH_SIZE
    data = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train.astype(np.int32)))
    steps = min(100, common.steps_per_epoch(len(ds.x_train)))
    steps -= steps % 4
    order = jax.random.permutation(jax.random.key(2), len(ds.x_train))[: steps * b]
    order = order.reshape(steps, b)
    train = _make_train(workload, 1, ds)
    params = train.init(jax.random.key(INIT_KEY), HPARAMS).params
    optimizer = torch_sgd(common.LEARNING_RATE)
    rates = tuple(jnp.float32(r) for r in common.DROPOUT)
    key = jax.random.key(3)

    def step_body(deterministic):
        step = make_step(_model(), optimizer, rates, deterministic=deterministic)

        def body(carry, i, operands):
            x_all, y_all, order = operands
            p, o, _ = step(*carry, x_all, y_all, order, i, key)
            return p, o

        return body

    def vmapped_seconds(configs: int, deterministic: bool = False) -> float:
        """Per configuration and step: the step vmapped over ``configs`` models (own weights,
        batches and dropout keys), as the sweep runs it."""
        stack = lambda tree: jax.tree.map(lambda a: jnp.stack([a] * configs), tree)  # noqa: E731
        orders = jnp.stack([jnp.roll(order, c, axis=1) for c in range(configs)])
        config_keys = jax.random.split(key, configs)
        vmapped = jax.vmap(
            make_step(_model(), optimizer, rates, deterministic=deterministic),
            in_axes=(0, 0, None, None, 0, None, 0),
        )

        def body(carry, i, operands):
            x_all, y_all, orders = operands
            p, o, _ = vmapped(*carry, x_all, y_all, orders, i, config_keys)
            return p, o

        vsteps = max(steps // 4, 1)
        carry = (stack(params), stack(optimizer.init(params)))
        return _scan_time(body, carry, (*data, orders[:, :vsteps]), vsteps) / configs

    shapes = common.step_gemm_shapes(b)
    keys = jax.random.split(jax.random.key(4), 2 * len(shapes))
    # Two left operands per matmul, picked by the step index: the matmuls depend on the loop
    # counter, so none is loop-invariant.
    gemm_operands = [
        (jax.random.normal(keys[2 * j], (2, m, k)), jax.random.normal(keys[2 * j + 1], (k, n)))
        for j, (m, k, n) in enumerate(shapes)
    ]
    gemm_flops = sum(2 * m * k * n for m, k, n in shapes)
    # The same matmuls at 4x the batch: how much of the gap to the peak is their size.
    big_shapes = common.step_gemm_shapes(4 * b)
    big_operands = [
        (jax.random.normal(keys[2 * j], (2, m, k)), jax.random.normal(keys[2 * j + 1], (k, n)))
        for j, (m, k, n) in enumerate(big_shapes)
    ]

    def gemm_body(c, i, operands):
        # The products themselves are the loop state: reducing them (sum of a dot) would let
        # XLA fuse dot and reduction into one YNNPACK kernel ~3x slower than the step's
        # matmuls. Each product picks its operand through the previous one, so they run one
        # after another, as in the step, instead of competing for the cores.
        products, j = [], i
        for a, w in operands:
            products.append(a[j % 2] @ w)
            j = j + (products[-1][0, 0] > 1e30).astype(j.dtype)
        return tuple(products)

    def mask_body(c, i, operands):
        (base,) = operands
        k1, k2 = jax.random.split(jax.random.fold_in(base, i))
        m1 = jax.random.bernoulli(k1, 1 - rates[0], (b, common.LAYERS[0][1]))
        m2 = jax.random.bernoulli(k2, 1 - rates[1], (b, common.LAYERS[1][1]))
        return c + jnp.sum(m1) + jnp.sum(m2)

    def gather_body(c, i, operands):
        x_all, order = operands
        return c + 1e-30 * jnp.sum(x_all[order[i]])

    carry = (params, optimizer.init(params))
    seconds = {
        "gemms_only": _scan_time(
            gemm_body, tuple(jnp.zeros((m, n)) for m, _, n in shapes), gemm_operands, steps
        ),
        f"step_vmapped_{VMAP_CONFIGS}_per_config": vmapped_seconds(VMAP_CONFIGS),
        f"step_vmapped_{VMAP_CONFIGS}_without_dropout_per_config": vmapped_seconds(
            VMAP_CONFIGS, deterministic=True
        ),
        # All the sweep's configurations in one program: their weights and gradients no longer
        # fit in the caches together.
        f"step_vmapped_{workload.sweep_configs}_per_config": vmapped_seconds(
            workload.sweep_configs
        ),
        "step_without_dropout": _scan_time(step_body(True), carry, (*data, order), steps),
        "step_with_dropout": _scan_time(step_body(False), carry, (*data, order), steps),
        "dropout_masks_only": _scan_time(mask_body, jnp.int32(0), (key,), steps),
        # The same masks from XLA's RngBitGenerator instead of threefry: the RNG's share.
        "dropout_masks_only_rbg": _scan_time(
            mask_body, jnp.int32(0), (jax.random.key(3, impl="rbg"),), steps
        ),
        "gather_only": _scan_time(gather_body, jnp.float32(0), (data[0], order), steps),
    }
    big_s = _scan_time(
        gemm_body,
        tuple(jnp.zeros((m, n)) for m, _, n in big_shapes),
        big_operands,
        max(steps // 4, 1),
    )
    parts_ms = {k: v * 1e3 for k, v in seconds.items()}
    return {
        "parts_ms": parts_ms,
        "gemm_ms": parts_ms["gemms_only"],
        "gemm_gflops": gemm_flops / seconds["gemms_only"] / 1e9,
        "gemm_gflops_batch_1024": 4 * gemm_flops / big_s / 1e9,
        "step_gflops": common.FLOPS_PER_EXAMPLE * b / seconds["step_with_dropout"] / 1e9,
        "gemm_flops_per_step": gemm_flops,
        "steps_per_measure": steps,
        "method": (
            f"each part {steps} times ({steps // 4} for the vmapped ones) in one jit(lax.scan), "
            "best of 5 after AOT compile"
        ),
    }

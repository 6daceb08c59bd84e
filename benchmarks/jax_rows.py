"""The JAX rows: the matmul roofline, jitted step + Python loop, whole-epoch scan, a step profile.

Each row function runs in its own process (see ``benchmarks.run``) and returns a dict of figures.
Training goes through ``jaxreg.engine`` (the library's one training loop); this module only
times it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp

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
    from jaxreg.data import load_fashion_mnist

    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    return ds


def _model():
    from jaxreg.models import DropoutMLP

    return DropoutMLP(dropout1=common.DROPOUT[0], dropout2=common.DROPOUT[1], style="scratch")


def _scan_time(body, carry, steps: int, repeats: int = 3) -> float:
    """Seconds per iteration of ``body`` run ``steps`` times inside one compiled ``lax.scan``."""

    @jax.jit
    def loop(carry):
        return jax.lax.scan(lambda c, i: (body(c, i), None), carry, jnp.arange(steps))[0]

    compiled = loop.lower(carry).compile()
    return _best_of(lambda: compiled(carry), repeats) / steps


def profile(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Times the parts of one training step, each ``steps`` times inside one compiled scan.

    Parts: the step's nine matmuls alone; a full step without dropout; the real step (dropout
    0.2 / 0.5); drawing the two dropout masks alone; gathering one minibatch by index. The
    differences say where an epoch's time goes beyond the matmuls.
    """
    from jaxreg.optim import torch_sgd

    setup()
    ds = _data(workload)
    model = _model()
    b = common.BATCH_SIZE
    x_all = jnp.asarray(ds.x_train)
    y_all = jnp.asarray(ds.y_train)
    x, y = x_all[:b], y_all[:b]
    params = model.init(jax.random.key(0), x[:1])
    optimizer = torch_sgd(common.LEARNING_RATE)
    opt_state = optimizer.init(params)
    rates = tuple(jnp.float32(r) for r in common.DROPOUT)
    steps = 20 if workload.train_size and workload.train_size < 20_000 else 100

    def train_step(carry, i, deterministic):
        import optax

        params, opt_state, key = carry

        def loss_fn(p):
            logits = model.apply(
                p,
                x,
                deterministic=deterministic,
                rates=rates,
                rngs={"dropout": jax.random.fold_in(key, i)},
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    shapes = []
    for n_in, n_out in common.LAYERS:
        shapes += [(b, n_in, n_out), (b, n_out, n_in), (n_in, b, n_out)]
    operands = [
        (jnp.ones((m, k), jnp.float32), jnp.full((k, n), 1e-3, jnp.float32)) for m, k, n in shapes
    ]
    gemm_flops = sum(2 * m * k * n for m, k, n in shapes)

    def gemm_body(c, i):
        # The scalar carry feeds every operand, so XLA cannot hoist the matmuls out of the loop.
        total = c
        for a, w in operands:
            total = total + 1e-30 * jnp.sum((a * (1.0 + c)) @ w)
        return total

    def mask_body(c, i):
        k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(1), i))
        m1 = jax.random.bernoulli(k1, 1 - rates[0], (b, 256))
        m2 = jax.random.bernoulli(k2, 1 - rates[1], (b, 256))
        return c + jnp.sum(m1) + jnp.sum(m2)

    def gather_body(c, i):
        perm = jax.random.permutation(jax.random.key(2), x_all.shape[0])
        idx = jax.lax.dynamic_slice_in_dim(perm, (i * b) % (x_all.shape[0] - b), b)
        return c + jnp.sum(x_all[idx]) * 1e-30

    carry = (params, opt_state, jax.random.key(3))
    parts = {
        "gemms_only": _scan_time(gemm_body, jnp.float32(0), steps),
        "step_without_dropout": _scan_time(
            lambda c, i: train_step(c, i, deterministic=True), carry, steps
        ),
        "step_with_dropout": _scan_time(
            lambda c, i: train_step(c, i, deterministic=False), carry, steps
        ),
        "dropout_masks_only": _scan_time(mask_body, jnp.int32(0), steps),
    }
    # The gather body draws a whole permutation each iteration; its cost is the permutation
    # (paid once per epoch by the real loop) plus one gather, so it is reported separately.
    gather_s = _scan_time(gather_body, jnp.float32(0), steps)
    parts_ms = {k: v * 1e3 for k, v in parts.items()}
    return {
        "parts_ms": parts_ms,
        "gemm_ms": parts_ms["gemms_only"],
        "gemm_gflops": gemm_flops / parts["gemms_only"] / 1e9,
        "step_gflops": common.FLOPS_PER_EXAMPLE * b / parts["step_with_dropout"] / 1e9,
        "permutation_plus_gather_ms": gather_s * 1e3,
        "steps_per_measure": steps,
        "method": "each part run N times in one jit(lax.scan), best of 3 after AOT compile",
    }

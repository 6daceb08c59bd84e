"""The JAX step profile: where one training step's time goes, each part alone in a compiled scan.

Parts: the step's executed matmuls alone, the step with and without dropout, vmapped over
configurations, the dropout masks alone (threefry, rbg and the "bits16" generator of
``jaxreg.keep_masks``, also timed inside the engine's step), the minibatch gather alone. Runs in
its own process like every row (see ``benchmarks.run``); timed with ``jaxreg.lab.timing``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.jax_rows import (
    HPARAMS,
    INIT_KEY,
    VMAP_CONFIGS,
    _data,
    _make_train,
    _model,
    setup,
)
from jaxreg.dropout import dropout_mask
from jaxreg.lab import timing
from jaxreg.lab.engine import make_train


def make_step(model, optimizer, rates, deterministic: bool = False):
    """The training step taken apart for the profile: dropout can be switched off.

    The same computation as ``jaxreg.lab.engine``'s ``Train.step`` (gather by index, dropout with
    key ``fold_in(key, step)``, mean cross-entropy, ``torch_sgd`` update), written out so that
    its parts can be timed with and without dropout and vmapped over configurations; the
    ``engine_step`` part times ``Train.step`` itself beside it.
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

    compiled, _ = timing.compile_and_time(loop, carry, operands)
    return min(timing.time_calls(compiled, carry, operands, repeats=repeats, warmup=1)) / steps


def profile(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Times the parts of one training step, each run N times inside one compiled scan.

    Parts: the engine's ``Train.step`` (with the default and the ``"bits16"`` mask generator);
    the step's eight executed matmuls alone (forward, dW, and
    dX but for layer 1); the step without dropout; the real step (dropout 0.2 / 0.5); the two
    dropout masks alone; the minibatch gather alone. The differences say where an epoch's time
    goes beyond the matmuls.
    """
    from jaxreg.optim import torch_sgd

    setup()
    ds = _data(workload)
    b = common.BATCH_SIZE
    data = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train.astype(np.int32)))
    steps = min(100, common.steps_per_epoch(len(ds.x_train)))
    if steps >= 4:
        # A multiple of 4: the vmapped parts run a quarter of the steps.
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

    def mask_body_bits16(c, i, operands):
        (base,) = operands
        k1, k2 = jax.random.split(jax.random.fold_in(base, i))
        m1 = dropout_mask(k1, rates[0], (b, common.LAYERS[0][1]), generator="bits16")
        m2 = dropout_mask(k2, rates[1], (b, common.LAYERS[1][1]), generator="bits16")
        return c + jnp.sum(m1) + jnp.sum(m2)

    def gather_body(c, i, operands):
        x_all, order = operands
        return c + 1e-30 * jnp.sum(x_all[order[i]])

    hp = train.normalize_hparams(HPARAMS)

    def engine_body_of(train):
        def engine_body(state, i, operands):
            x_all, y_all, order = operands
            idx = order[i]
            return train.step(state, (x_all[idx], y_all[idx]), key, hp)[0]

        return engine_body

    engine_body = engine_body_of(train)
    # The same engine with the cheaper mask generator (jaxreg.keep_masks, "bits16").
    model16 = train.config.model.clone(dropout_generator="bits16")
    train16 = make_train(dataclasses.replace(train.config, model=model16), ds)

    carry = (params, optimizer.init(params))
    seconds = {
        # jaxreg.lab.engine's own Train.step: the decomposed copy above should cost the same.
        "engine_step": _scan_time(
            engine_body, train.init(jax.random.key(INIT_KEY), HPARAMS), (*data, order), steps
        ),
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
        "engine_step_bits16": _scan_time(
            engine_body_of(train16),
            train16.init(jax.random.key(INIT_KEY), HPARAMS),
            (*data, order),
            steps,
        ),
        "dropout_masks_only_bits16": _scan_time(mask_body_bits16, jnp.int32(0), (key,), steps),
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

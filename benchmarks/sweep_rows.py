"""The 64-configuration sweep: JAX vmapped vs PyTorch sequential vs ``torch.func`` vmap.

The grid is jaxreg.sweep's ``fmnist-64`` preset (8 weight-decay lambdas x 4 dropout rates x 2
seeds, seed 003/004 recipe: SGD lr 0.5, batch 256), cut to ``workload.sweep_configs`` runs.
Each run ``r`` is point ``r // seeds``, seed ``r % seeds``, as ``jaxreg.sweep.run_sweep`` orders
them; every framework starts run ``r`` from the same weights (``jax.random.key(seed)`` through
the engine's init).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import common

PRESET = "fmnist-64"


def grid_runs(configs: int) -> tuple[list[dict[str, float]], list[int]]:
    """The first ``configs`` (hyperparameters, seed) runs of the preset, in run order."""
    from jaxreg.sweep import PRESETS

    plan = PRESETS[PRESET]()
    runs = [
        ({k: v for k, v in point.items() if k != "name"}, seed)
        for point in plan.points
        for seed in plan.seeds
    ]
    if configs > len(runs):
        raise ValueError(f"sweep_configs={configs}: the {PRESET} preset has {len(runs)} runs")
    runs = runs[:configs]
    return [hp for hp, _ in runs], [seed for _, seed in runs]


def _preset_config(epochs: int):
    import dataclasses

    from jaxreg.sweep import PRESETS

    return dataclasses.replace(PRESETS[PRESET]().config, epochs=epochs, drop_last=True)


def jax_vmap(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``jax.vmap(train.pure)`` over the runs: the computation ``jaxreg.sweep.run_sweep`` compiles
    for a chunk, called one epoch at a time (each call continues from the previous state) so
    that every epoch can be timed.
    """
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_rows
    from jaxreg.data import load_fashion_mnist
    from jaxreg.engine import TrainResult, make_train

    jax_rows.setup()
    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    points, seeds = grid_runs(workload.sweep_configs)
    # No test split inside the timed function: accuracy is measured once, after training.
    train = make_train(_preset_config(1), (ds.x_train, ds.y_train))
    hp = train.normalize_hparams(
        {k: np.array([p[k] for p in points], np.float32) for k in points[0]}
    )
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    init = jax.vmap(train.init)(keys, hp)

    def sweep_epoch(data, keys, hp, state):
        # state = (params, opt_state): each call continues training where the last one stopped.
        result = jax.vmap(lambda k, h, s: train.pure(data, k, h, TrainResult(*s, {})))(
            keys, hp, state
        )
        return (result.params, result.opt_state), result.metrics["train_loss"][:, -1]

    epoch_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))
    carry = {"state": (init.params, init.opt_state)}
    start = time.perf_counter()
    compiled = (
        jax.jit(sweep_epoch, donate_argnums=(3,))
        .lower(train.data, epoch_keys(keys, 0), hp, carry["state"])
        .compile()
    )
    compile_s = time.perf_counter() - start
    losses = []

    def run_epoch(epoch: int) -> None:
        state, loss = compiled(train.data, epoch_keys(keys, epoch), hp, carry["state"])
        carry["state"] = jax.block_until_ready(state)
        losses.append(np.asarray(loss))

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.sweep_epochs)
    params = carry["state"][0]
    accs = _jax_accuracy(params, ds)
    return _sweep_result(
        warm,
        timed,
        len(points),
        common.steps_per_epoch(len(ds.x_train)) * common.BATCH_SIZE,
        accs,
        compile_s=compile_s,
        memory=jax_rows._memory(rss),
        losses=losses[-1],
        note=(
            "jax.vmap(train.pure) over all runs, one compiled call per epoch (run_sweep "
            "compiles the same function for all epochs at once)"
        ),
    )


def _jax_accuracy(params, ds) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_rows

    model = jax_rows._model()
    x, y = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)

    @jax.jit
    def accuracy(p):
        logits = model.apply({"params": p}, x, deterministic=True)
        return jnp.mean(jnp.argmax(logits, -1) == y)

    return np.asarray(jax.lax.map(accuracy, params))


def _sweep_result(
    warm, timed, configs, samples_per_epoch, accs, *, compile_s, memory, losses, note
) -> dict[str, Any]:
    per_config = [t / configs for t in timed]
    return {
        "configs": configs,
        "epoch": common.summarize(timed),
        "config_epoch": common.summarize(per_config),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": compile_s,
        "samples_per_epoch": samples_per_epoch,
        "test_acc_per_config": [float(a) for a in accs],
        "mean_test_acc": float(np.mean(accs)),
        "train_loss_last_epoch": [float(v) for v in np.ravel(losses)],
        "note": note,
        **memory,
    }

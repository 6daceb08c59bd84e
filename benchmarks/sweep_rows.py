"""The 64-configuration sweep: JAX vmapped vs PyTorch sequential vs ``torch.func`` vmap.

The grid is jaxreg.lab.sweep's ``fmnist-64`` preset (8 weight-decay lambdas x 4 dropout rates x 2
seeds, seed 003/004 recipe), cut to ``workload.sweep_configs`` runs (``common.grid_runs``).
Every framework starts run ``r`` from the same weights (``jax.random.key(seed)`` through the
engine's init). This module imports ``jax_rows`` (its setup and model); ``jax_rows`` imports only
``common``, never this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import common
from jaxreg.lab import timing

WARMUP_CALLS = 3


def _preset_config(epochs: int):
    import dataclasses

    return dataclasses.replace(common.sweep_plan().config, epochs=epochs, drop_last=True)


def jax_vmap(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``jax.vmap(train.pure)`` over all runs in one program: the computation
    ``jaxreg.lab.sweep.run_sweep`` compiles for a chunk holding the whole grid, called one epoch at
    a time (each call continues from the previous state) so that every epoch can be timed.
    """
    return _jax_sweep(workload, chunk=workload.sweep_configs)


def jax_vmap_chunked(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The same sweep as ``jax_vmap`` in chunks of ``workload.sweep_chunk`` runs, one after
    another (``run_sweep(chunk_size=...)``): one compiled program serves every chunk, and a
    chunk's weights and gradients stay in the caches."""
    return _jax_sweep(workload, chunk=workload.sweep_chunk)


def _jax_sweep(workload: common.Workload, chunk: int) -> dict:
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_rows
    from jaxreg.lab.data import load_fashion_mnist
    from jaxreg.lab.engine import TrainResult, make_train

    jax_rows.setup()
    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    points, seeds = common.grid_runs(workload.sweep_configs)
    if len(points) % chunk:
        raise ValueError(f"sweep_chunk={chunk} must divide sweep_configs={len(points)}")
    # No test split inside the timed function: accuracy is measured once, after training.
    train = make_train(_preset_config(1), (ds.x_train, ds.y_train))
    hp = train.normalize_hparams(
        {k: np.array([p[k] for p in points], np.float32) for k in points[0]}
    )
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    init = jax.vmap(train.init)(keys, hp)
    chunks = [slice(c, c + chunk) for c in range(0, len(points), chunk)]
    pick = lambda tree, sl: jax.tree.map(lambda a: a[sl], tree)  # noqa: E731

    def sweep_epoch(data, keys, hp, state):
        # Each call continues the runs where the last one stopped, step and epoch counters
        # included, so every epoch draws the run's next shuffles and masks (none replayed).
        def one(k, h, s):
            result = train.pure(data, k, h, TrainResult(s[0], s[1], {}, None, s[2], s[3]))
            return (result.params, result.opt_state, result.step, result.epoch), result.metrics

        state, metrics = jax.vmap(one)(keys, hp, state)
        return state, metrics["train_loss"][:, -1]

    states = [pick((init.params, init.opt_state, init.step, init.epoch), sl) for sl in chunks]
    compiled, compile_s = timing.compile_and_time(
        jax.jit(sweep_epoch, donate_argnums=(3,)),
        train.data,
        keys[chunks[0]],
        pick(hp, chunks[0]),
        states[0],
    )
    losses = []

    def run_epoch(epoch: int) -> None:
        epoch_losses = []
        for c, sl in enumerate(chunks):
            states[c], loss = compiled(train.data, keys[sl], pick(hp, sl), states[c])
            epoch_losses.append(loss)
        jax.block_until_ready(states)
        losses.append(np.concatenate([np.asarray(v) for v in epoch_losses]))

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(
            run_epoch, workload.sweep_warmup_epochs, workload.sweep_epochs
        )
    params = jax.tree.map(lambda *a: jnp.concatenate(a), *[s[0] for s in states])
    accs = _jax_accuracy(params, ds)
    layout = "one program" if chunk == len(points) else f"{len(chunks)} chunks of {chunk}"
    return {
        **_sweep_result(
            warm,
            timed,
            len(points),
            common.steps_per_epoch(len(ds.x_train)) * common.BATCH_SIZE,
            accs,
            compile_s=compile_s,
            memory=jax_rows._memory(rss),
            losses=losses[-1],
            note=(
                f"jax.vmap(train.pure) over the runs, {layout}, one compiled call per chunk "
                "and epoch (run_sweep compiles the same function for all epochs at once)"
            ),
        ),
        "chunk": chunk,
    }


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


def _torch_data(workload: common.Workload, device):
    import torch

    from jaxreg.lab.data import load_fashion_mnist

    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    return ds, tuple(
        torch.tensor(a, dtype=dtype, device=device)
        for a, dtype in (
            (ds.x_train, torch.float32),
            (ds.y_train, torch.int64),
            (ds.x_test, torch.float32),
            (ds.y_test, torch.int64),
        )
    )


def torch_sequential(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The PyTorch way without vmap: one configuration after another, each an eager model.

    Only ``workload.torch_sequential_configs`` runs are trained, one timed epoch each (the first
    after one untimed warm-up epoch); the sweep's epoch is extrapolated as the median
    configuration-epoch times the number of configurations.
    """
    import torch

    from benchmarks import torch_rows
    from jaxreg.torch_ref import engine as torch_engine

    dev = torch_rows.setup(device)
    points, seeds = common.grid_runs(workload.sweep_configs)
    _, (x_train, y_train, _, _) = _torch_data(workload, dev)
    subset = common.spread(len(points), workload.torch_sequential_configs)
    measured = len(subset)
    timed, warm, losses = [], [], []
    with common.PeakRSS() as rss:
        for j, r in enumerate(subset):
            hp, seed = points[r], seeds[r]
            model = torch_rows.load_model(
                init_path, dev, rates=(hp["dropout1"], hp["dropout2"]), prefix=f"seed{seed}/"
            )
            # Seed 004's param groups: the optimizer decays the weights, not the biases.
            groups = torch_engine.param_groups(
                model,
                hp.get("weight_decay", 0.0),
                [n for n, _ in model.named_parameters() if n.endswith("weight")],
            )
            optimizer = torch.optim.SGD(groups, lr=hp.get("lr", common.LEARNING_RATE))
            step = torch_rows.make_step(model, optimizer)
            generator = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            model.train()
            epoch_losses = []

            def run_epoch(_: int, step=step, generator=generator, out=epoch_losses) -> None:
                out.append(torch_rows.train_epoch_in_memory(step, x_train, y_train, generator, dev))

            # The first configuration pays the warm-up epochs; every one is timed for one epoch.
            w, t = common.time_epochs(run_epoch, workload.warmup_epochs if j == 0 else 0, 1)
            warm += w
            timed += t
            losses.append(epoch_losses[-1])
    configs = len(points)
    per_config = common.summarize(timed)
    return {
        "configs": configs,
        "configs_measured": measured,
        "run_indices": subset,
        "config_epoch": per_config,
        "epoch": {k: v * configs if k.endswith("_s") else v for k, v in per_config.items()},
        "config_epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": 0.0,
        "samples_per_epoch": common.steps_per_epoch(len(x_train)) * common.BATCH_SIZE,
        "train_loss_last_epoch": losses,
        "device": str(dev),
        "note": (
            f"measured on {measured} of the {configs} configurations (one epoch each) and "
            f"extrapolated: sweep epoch = median configuration-epoch x {configs}; no accuracy "
            "(one epoch per configuration)"
        ),
        **torch_rows._memory(dev, rss),
    }


def _functional_mlp(params, x, rates, train: bool):
    """The scratch twin's forward as a function of its parameters, for ``torch.func``.

    ``jaxreg.torch_ref.models.DropoutMLP`` keeps its rates as Python floats (d2l's
    ``dropout_layer`` branches on them), which ``vmap`` cannot batch; this is the same
    computation with the rates as tensors: ``relu(x W^T + b)``, then d2l's
    ``(rand > rate) * h / (1 - rate)``.
    """
    import torch

    h = x
    for i, name in enumerate(("lin1", "lin2", "lin3")):
        h = torch.nn.functional.linear(h, params[f"{name}.weight"], params[f"{name}.bias"])
        if i < 2:
            h = torch.relu(h)
            if train:
                h = (torch.rand_like(h) > rates[i]) * h / (1.0 - rates[i])
    return h


def torch_func(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``torch.func``: the runs' parameters stacked, ``vmap(grad(loss))`` per minibatch.

    Dropout uses ``vmap(randomness="different")``: an independent mask per configuration, from
    torch's global generator. Shuffling: one permutation per seed and epoch (runs sharing a seed
    see the same batches, as in the JAX sweep). The SGD update (coupled weight decay on weights
    only, per-configuration lr) is applied to the stacked tensors in place.

    ``jaxreg.torch_ref.sweep.func_sweep`` is not timed here: it vmaps the twin module, whose
    Python-float rates split this grid into one program per rate pair, it runs on the CPU only,
    evaluates every epoch and exposes no per-epoch time; this row needs one program for all
    configurations (as JAX has), per-epoch times, the shared initial weights and CUDA.
    """
    import torch
    from torch.func import grad_and_value, vmap

    from benchmarks import torch_rows

    dev = torch_rows.setup(device)
    all_points, all_seeds = common.grid_runs(workload.sweep_configs)
    subset = common.spread(len(all_points), workload.torch_func_configs)
    points, seeds = [all_points[r] for r in subset], [all_seeds[r] for r in subset]
    _, (x_train, y_train, x_test, y_test) = _torch_data(workload, dev)
    configs = len(points)
    with np.load(init_path) as state:
        names = [k.split("/", 1)[1] for k in state.files if k.startswith(f"seed{seeds[0]}/")]
        params = {
            name: torch.stack([torch.tensor(state[f"seed{s}/{name}"]) for s in seeds]).to(dev)
            for name in names
        }

    def column(key: str, default: float) -> torch.Tensor:
        return torch.tensor([p.get(key, default) for p in points], device=dev)

    lr, decay = column("lr", common.LEARNING_RATE), column("weight_decay", 0.0)
    rates = torch.stack([column("dropout1", 0.0), column("dropout2", 0.0)], dim=1)

    def loss_fn(p, x, y, r):
        logits = _functional_mlp(p, x, r, train=True)
        return torch.nn.functional.cross_entropy(logits, y)

    grad_fn = vmap(grad_and_value(loss_fn), randomness="different")
    torch.manual_seed(0)
    generators = {s: torch.Generator().manual_seed(s) for s in sorted(set(seeds))}
    n, b = len(x_train), common.BATCH_SIZE
    steps = common.steps_per_epoch(n)
    losses = []

    def run_epoch(_: int) -> None:
        perms = {s: torch.randperm(n, generator=g)[: steps * b] for s, g in generators.items()}
        order = torch.stack([perms[s] for s in seeds]).view(configs, steps, b).to(dev)
        total = torch.zeros(configs, device=dev)
        for i in range(steps):
            idx = order[:, i]
            grads, loss = grad_fn(params, x_train[idx], y_train[idx], rates)
            with torch.no_grad():
                for name, p in params.items():
                    g = grads[name]
                    if name.endswith("weight"):
                        g = g + decay.view(-1, 1, 1) * p
                    p.sub_(lr.view((-1,) + (1,) * (p.dim() - 1)) * g)
            total += loss.detach()
        torch_rows.sync(dev)
        losses.append((total / steps).cpu().numpy())

    # Warm-up: a few gradient evaluations whose results are dropped (no weight changes).
    warm_index = torch.arange(configs * b, device=dev).view(configs, b) % n
    for _ in range(WARMUP_CALLS):
        grad_fn(params, x_train[warm_index], y_train[warm_index], rates)
    torch_rows.sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(
            run_epoch, workload.sweep_warmup_epochs, workload.sweep_epochs
        )
    with torch.no_grad():
        logits = vmap(lambda p: _functional_mlp(p, x_test, None, train=False))(params)
        accs = (logits.argmax(-1) == y_test).float().mean(-1).cpu().numpy()
    result = _sweep_result(
        warm,
        timed,
        configs,
        steps * b,
        accs,
        compile_s=0.0,
        memory=torch_rows._memory(dev, rss),
        losses=losses[-1],
        note=(
            "torch.func.vmap(grad_and_value(loss)) over stacked parameters; the model is a "
            "functional copy of the scratch twin (its Python-float rates cannot be vmapped)"
        ),
    )
    if configs < len(all_points):
        result["note"] += (
            f"; measured on {configs} of the {len(all_points)} configurations (spread over the "
            "grid) and extrapolated linearly: every configuration has its own weights and "
            "batches, so a vmapped step's work grows in proportion to the configurations"
        )
    return {
        **result,
        "configs": len(all_points),
        "configs_measured": configs,
        "epoch_configs": configs,
        "run_indices": subset,
        "device": str(dev),
    }

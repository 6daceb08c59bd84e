"""activity (seed 001): L1 on layer1_out and an L2 norm on layer2_out, SGD 1e-4, 1000 steps.

Each step sees a fresh ``rand(4, 128)`` batch with all targets 1, as in the seed. The batches are
drawn once in JAX from the run's seed and fed to both frameworks as one unshuffled pass of batch
4 over the spec ``experiments/activity.py``, trained by :mod:`jaxreg.lab.runner`: the engine's
activity penalties (``Activity("l1", 1)``, ``Activity("l2_norm", 2)``) and, derived from the
same spec, the torch loop with seed 001's penalty formulas; the per-step losses are the runs'
``step_objective``. Both start from the same initial weights. ``--faithful`` is the seed quirk
this recipe keeps: both re-create the model and optimizer every step (JAX: ``Train.step`` from a
fresh init in one scan; torch: seed 001's loop, ``train_activity``).
"""

from __future__ import annotations

import time

import numpy as np

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome


def _jax_losses(train, batches, key, hp, faithful: bool):
    """Runs the steps as one compiled scan of ``train.step``; (objective, CE) per step, timings."""
    import jax
    import jax.numpy as jnp

    from jaxreg.lab import timing

    ones = jnp.ones(batches.shape[1], jnp.int32)

    def one_step(state, inputs):
        i, xb = inputs
        if faithful:
            # The seed's MLP() inside the loop: a fresh model and optimizer from a fresh key.
            state = train.init(jax.random.fold_in(key, i), hp)
        state, out = train.step(state, (xb, ones), key, hp)
        return state, (out["objective"], out["loss"])

    def run_all(state, batches):
        return jax.lax.scan(one_step, state, (jnp.arange(batches.shape[0]), batches))[1]

    init = train.init(key, hp)
    compiled, compile_s = timing.compile_and_time(run_all, init, batches)
    (objective, ce), wall = timing.timed_call(compiled, init, batches)
    return np.asarray(objective), np.asarray(ce), wall, compile_s


def run(ctx: Context) -> Outcome:
    """Runs the activity-penalty loop in each framework and plots the loss per step."""
    import jax

    from jaxreg.lab import runner as runner_mod

    spec = ctx.config
    opts = ctx.options
    steps = int(opts.epochs or spec.meta["steps"])
    faithful = opts.faithful
    key = jax.random.key(opts.seed)
    batches = jax.random.uniform(jax.random.fold_in(key, 1), (steps, spec.batch_size, 128))
    # One pass over the batches drawn up front, in order: step i trains on batch i.
    flat = np.asarray(batches).reshape(-1, batches.shape[-1])
    data = {"x_train": flat, "y_train": np.ones(len(flat), np.int32)}
    runner = runner_mod.Runner(spec, runner_mod.Datasets(data, data), epochs=1)
    variant = spec.variants[0]
    series: dict[str, list[float]] = {}
    runs = {}
    if "jax" in ctx.frameworks:
        if faithful:
            hp = runner.train(variant).normalize_hparams(runner.hparams(variant))
            objective, ce, wall, compile_s = _jax_losses(
                runner.train(variant), batches, key, hp, faithful
            )
            runs["jax"] = (objective.tolist(), ce.tolist(), wall, compile_s)
        else:
            (run,) = runner.run_jax(variant, [opts.seed])
            runs["jax"] = (
                run.step_objective[0].tolist(),
                run.step_loss[0].tolist(),
                run.wall_s,
                run.compile_s,
            )
    if "torch" in ctx.frameworks:
        bar = ctx.progress(steps, "activity (torch)")
        if faithful:
            # The seed's quirk: a new torch-initialized model and optimizer every step.
            import torch

            from jaxreg.torch_ref import engine as torch_engine
            from jaxreg.torch_ref.models import ActivityMLP

            torch.manual_seed(opts.seed)
            lambdas = {a.hparam: a.strength for a in spec.activity}
            start = time.perf_counter()
            losses = torch_engine.train_activity(
                ActivityMLP,
                np.asarray(batches),
                lr=spec.optimizer.lr,
                lambda1=lambdas["act_l1"],
                lambda2=lambdas["act_l2"],
                faithful=True,
                progress=bar,
            )
            runs["torch"] = (losses, None, time.perf_counter() - start, None)
        else:
            (run,) = runner.run_torch(variant, [opts.seed])
            runs["torch"] = (run.step_objective[0].tolist(), None, run.wall_s, None)
        bar.close()
    label = "model per step (seed)" if faithful else variant.name
    for fw, (objective, ce, wall, compile_s) in runs.items():
        hist = {"train_objective": objective}
        if ce is not None:
            hist["train_loss"] = ce
        ctx.recorder.add_history(label, fw, hist)
        series[f"loss ({fw})"] = objective
        ctx.result(
            variant=label,
            framework=fw,
            metric="loss (CE + penalties), last step",
            train=objective[-1],
            detail=f"step 1: {objective[0]:.4f}; mean of the last 100 steps: "
            f"{np.mean(objective[-100:]):.4f}",
            wall_s=wall,
            compile_s=compile_s,
            seed_figure=variant.meta["seed_figure"],
        )
    plot = plots.plot_series(
        ctx.run_dir / "loss_per_step.png",
        series,
        xlabel="step",
        ylabel="CE + 0.5 L1(layer1) + 0.01 L2(layer2)",
        title="activity penalties (seed 001): JAX solid, torch dashed",
    )
    summary = ", ".join(
        f"{fw}: {r[0][0]:.4f} -> {r[0][-1]:.4f} (mean of the last 100 steps "
        f"{np.mean(r[0][-100:]):.4f})"
        for fw, r in runs.items()
    )
    notes = [
        f"Recipe: 128-32-16-2 MLP, loss = CE(out, 1) + {spec.activity[0].strength} * "
        f"sum|layer1_out| + {spec.activity[1].strength} * ||layer2_out||_2, SGD lr "
        f"{spec.optimizer.lr}, {steps} steps of a fresh "
        "uniform batch of 4 (the same batches in both frameworks).",
        "One model trained through all steps from the same initial weights in both frameworks."
        if not faithful
        else "--faithful: a new model and optimizer every step (the seed's loop): the loss is "
        "noise around its initial level and nothing is learned. The torch models use torch's "
        "own init, the JAX ones fresh keys.",
        f"Loss first -> last step: {summary}.",
    ]
    return Outcome(plots=[plot], notes=notes)

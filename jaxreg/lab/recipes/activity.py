"""activity (seed 001): L1 on layer1_out and an L2 norm on layer2_out, SGD 1e-4, 1000 steps.

Each step sees a fresh ``rand(4, 128)`` batch with all targets 1, as in the seed. The batches are
drawn once in JAX and fed to both frameworks. JAX: every step is the engine's step entry point
(``Train.step`` on the given batch, with the engine's ``activity=(("l1", 1), ("l2_norm", 2))``
penalties), scanned over the batches: the whole run is one compiled computation. torch: seed
001's loop with its verbatim penalty functions from ``jaxreg.torch_ref.penalties``. Without
``--faithful`` one model is trained through all steps (both frameworks from the same initial
weights); with it both re-create the model and optimizer every step, as the seed does.
"""

from __future__ import annotations

import time

import numpy as np

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import torch_twin


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

    from jaxreg import models
    from jaxreg.lab import engine

    cfg = ctx.config
    steps = ctx.epochs("steps")
    faithful = ctx.options.faithful
    key = jax.random.key(ctx.options.seed)
    batches = jax.random.uniform(jax.random.fold_in(key, 1), (steps, cfg["batch_size"], 128))
    first = {"x_train": np.asarray(batches[0]), "y_train": np.ones(cfg["batch_size"], np.int32)}
    config = engine.TrainConfig(
        model=models.ActivityMLP(),
        loss="cross_entropy",
        optimizer="sgd",
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        epochs=1,
        shuffle=False,
        activity=tuple((kind, index) for kind, index in cfg["activity"]),
    )
    train = engine.make_train(config, first)
    hp = train.normalize_hparams(
        {"lr": cfg["lr"], "act_l1": cfg["lambda1"], "act_l2": cfg["lambda2"]}
    )
    series: dict[str, list[float]] = {}
    runs = {}
    if "jax" in ctx.frameworks:
        objective, ce, wall, compile_s = _jax_losses(train, batches, key, hp, faithful)
        runs["jax"] = (objective.tolist(), ce.tolist(), wall, compile_s)
    if "torch" in ctx.frameworks:
        import torch

        from jaxreg.torch_ref import engine as torch_engine
        from jaxreg.torch_ref.models import ActivityMLP

        torch.manual_seed(ctx.options.seed)
        init_params = train.init(key, hp).params
        make_model = ActivityMLP if faithful else (lambda: torch_twin("ActivityMLP", init_params))
        bar = ctx.progress(steps, "activity (torch)")
        start = time.perf_counter()
        losses = torch_engine.train_activity(
            make_model,
            np.asarray(batches),
            lr=cfg["lr"],
            lambda1=cfg["lambda1"],
            lambda2=cfg["lambda2"],
            faithful=faithful,
            progress=bar,
        )
        bar.close()
        runs["torch"] = (losses, None, time.perf_counter() - start, None)
    variant = "model per step (seed)" if faithful else "one model"
    for fw, (objective, ce, wall, compile_s) in runs.items():
        hist = {"train_objective": objective}
        if ce is not None:
            hist["train_loss"] = ce
        ctx.recorder.add_history(variant, fw, hist)
        series[f"loss ({fw})"] = objective
        ctx.result(
            variant=variant,
            framework=fw,
            metric="loss (CE + penalties), last step",
            train=objective[-1],
            detail=f"step 1: {objective[0]:.4f}; mean of the last 100 steps: "
            f"{np.mean(objective[-100:]):.4f}",
            wall_s=wall,
            compile_s=compile_s,
            seed_figure=cfg["seed_figure"],
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
        f"Recipe: 128-32-16-2 MLP, loss = CE(out, 1) + {cfg['lambda1']} * sum|layer1_out| + "
        f"{cfg['lambda2']} * ||layer2_out||_2, SGD lr {cfg['lr']}, {steps} steps of a fresh "
        "uniform batch of 4 (the same batches in both frameworks).",
        "One model trained through all steps from the same initial weights in both frameworks."
        if not faithful
        else "--faithful: a new model and optimizer every step (the seed's loop): the loss is "
        "noise around its initial level and nothing is learned. The torch models use torch's "
        "own init, the JAX ones fresh keys.",
        f"Loss first -> last step: {summary}.",
    ]
    return Outcome(plots=[plot], notes=notes)

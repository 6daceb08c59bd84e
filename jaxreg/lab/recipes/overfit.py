"""overfit (seed 002): 20 noisy points, net_overfitting vs net_dropped, fit curves every 50 epochs.

The spec (``experiments/overfit.py``) is trained by :mod:`jaxreg.lab.runner`: JAX's
``jaxreg.models.RegressionNet`` full-batch through the engine (MSE, Adam) with parameter
snapshots at the evaluation epochs, from which the fit curves are drawn; torch's twin
``nn.Sequential`` nets with ``torch.optim.Adam`` from the same initial weights through the one
torch loop (full batch, unshuffled, evaluated every 50 epochs), whose eval-mode predictions at
those epochs draw its fit curves. Both train on the same points.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxreg.lab import plots as plot_mod
from jaxreg.lab import report
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import (
    final,
    record_histories,
    seed_mean,
    seeds_detail,
    spec_runner,
)


def _torch_fit(predictions: dict, x_test, net, epoch: int, metrics: dict) -> None:
    """After an evaluated epoch, the twin's eval-mode predictions (the seed's fit curves)."""
    import torch

    if not np.isfinite(metrics["test_loss"]):
        return
    was_training = net.training
    net.eval()
    with torch.no_grad():
        dtype = next(net.parameters()).dtype
        pred = net(torch.from_numpy(np.array(x_test)).to(dtype)).numpy().reshape(-1).copy()
    net.train(was_training)
    predictions.setdefault(id(net), []).append((epoch, pred, metrics["test_loss"]))


def _jax_fits(model, train, result, data) -> dict[str, list]:
    import jax

    epochs = train.snapshot_epochs.tolist()
    # One compiled call over the stacked snapshots (eager applies would compile op by op).
    x_test = data.x_test
    apply = jax.jit(jax.vmap(lambda p: model.apply({"params": p}, x_test, deterministic=True)))
    preds = np.asarray(apply(result.snapshots)).reshape(len(epochs), -1)
    losses = np.asarray(result.metrics["test_loss"])[epochs].tolist()
    return {"epochs": epochs, "pred": list(preds), "loss": losses}


def run(ctx: Context) -> Outcome:
    """Trains both nets in each framework; records losses, fit curves and learning curves."""
    spec = ctx.config
    opts = ctx.options
    epochs = ctx.epochs()
    every = min(spec.eval_every, epochs)
    fits: dict[str, dict] = {}
    mean_eval: dict[tuple[str, str], float | None] = {}
    runs = len(spec.variants) * len(ctx.frameworks) * opts.seeds
    bar = ctx.progress(runs * epochs, "overfit")
    # Seed 002 evaluates every 50 epochs: the engine keeps the parameters of those epochs too.
    runner = spec_runner(ctx, bar, eval_every=every, snapshot_every=every)
    data = runner.data.jax
    for variant in spec.variants:
        name = variant.name
        rows = {}
        if "jax" in ctx.frameworks:
            done = runner.run_jax(variant, opts.seed_list)
            train = runner.train(variant)
            fits[f"{name} (jax)"] = _jax_fits(train.config.model, train, done[0].extra, data)
            rows["jax"] = ([r.history for r in done], done[0].wall_s, done[0].compile_s)
        if "torch" in ctx.frameworks:
            predictions: dict[int, list] = {}
            done = runner.run_torch(
                variant,
                opts.seed_list,
                matched=opts.matched,
                on_epoch=functools.partial(_torch_fit, predictions, data.x_test),
            )
            for r in done:
                # Seed 002's loop reports the two losses only.
                r.history = {k: r.history[k] for k in ("train_loss", "test_loss")}
            fit = predictions[id(done[0].extra)]
            fits[f"{name} (torch)"] = {
                "epochs": [e for e, _, _ in fit],
                "pred": [p for _, p, _ in fit],
                "loss": [loss for _, _, loss in fit],
            }
            rows["torch"] = ([r.history for r in done], sum(r.wall_s for r in done), None)
        for fw, (hists, wall, compile_s) in rows.items():
            record_histories(ctx, name, fw, hists)
            means = []
            for hist in hists:
                evaluated = [v for v in hist["test_loss"][1:] if np.isfinite(v)]
                means.append(float(np.mean(evaluated)) if evaluated else None)
            # The last evaluation of a 20-point fit is noisy; compare means over evaluations.
            mean_eval[(name, fw)] = seed_mean(means)
            detail = None
            if mean_eval[(name, fw)] is not None:
                detail = (
                    "mean test loss over the evaluations after epoch 0: "
                    f"{mean_eval[(name, fw)]:.4f}"
                )
                if len(hists) > 1:
                    detail += f"; {seeds_detail(ctx)}"
            ctx.result(
                variant=name,
                framework=fw,
                metric="MSE loss",
                train=seed_mean([final(h["train_loss"]) for h in hists]),
                test=seed_mean([final(h["test_loss"]) for h in hists]),
                wall_s=wall,
                compile_s=compile_s,
                seed_figure=variant.meta.get("seed_figure"),
                detail=detail,
            )
    bar.close()
    report.write_json(ctx.run_dir / "fits.json", fits)
    xs = (data.x_train.reshape(-1), data.y_train.reshape(-1))
    ts = (data.x_test.reshape(-1), data.y_test.reshape(-1))
    plots = [
        plot_mod.plot_fit_curves(
            ctx.run_dir / "fit_curves.png",
            xs,
            ts,
            fits,
            title="seed 002: fits in eval mode (test losses in each panel)",
        ),
        plot_mod.plot_learning_curves(
            ctx.run_dir / "learning_curves.png",
            ctx.recorder.histories,
            ("train_loss", "test_loss"),
            title="overfit (seed 002): JAX solid, torch dashed",
        ),
    ]
    plain = next(v.name for v in spec.variants if v.meta["dropout_rate"] is None)
    dropped = next(v.name for v in spec.variants if v.meta["dropout_rate"] is not None)
    dcfg = spec.meta["data"]
    lower = []
    for fw in ctx.frameworks:
        loss_drop, loss_plain = mean_eval.get((dropped, fw)), mean_eval.get((plain, fw))
        if loss_drop is not None and loss_plain is not None and loss_drop < loss_plain:
            lower.append(fw)
    notes = [
        f"Recipe: {dcfg['n_samples']} points x = linspace(-1, 1), y = x + {dcfg['noise']} N(0,1) "
        "(NumPy generator, the same points in both frameworks), full-batch MSE, Adam lr 0.001 "
        f"(overfitting) / 0.01 (dropout 0.5 before each ReLU), {epochs} epochs, evaluated in "
        f"eval mode every {every} epochs and after the last. Both frameworks start from the same "
        "weights.",
        "The seed shows only plots, in which the dropout net's test loss is the lower one; here "
        "its mean test loss over the evaluations after epoch 0 is lower in: "
        f"{', '.join(lower) if lower else 'neither framework'}. With 20 points and different "
        "dropout masks in the two frameworks, single evaluations differ by a few hundredths.",
        "Test loss at the second evaluation -> the last: "
        + "; ".join(
            f"{label} {fit['loss'][1]:.4f} -> {fit['loss'][-1]:.4f}"
            for label, fit in fits.items()
            if len(fit["loss"]) > 1
        )
        + " (a rising test loss while the training loss falls is the over-fitting the seed "
        "plots).",
    ]
    return Outcome(plots=plots, notes=notes)

"""overfit (seed 002): 20 noisy points, net_overfitting vs net_dropped, fit curves every 50 epochs.

JAX: ``jaxreg.models.RegressionNet`` trained full-batch by ``jaxreg.lab.engine`` (MSE, Adam), with
parameter snapshots at the evaluation epochs from which the fit curves are drawn. torch: the
twin ``nn.Sequential`` nets with ``torch.optim.Adam`` from the same initial weights. Both train
on the same points (``jaxreg.lab.data.regression_data``).
"""

from __future__ import annotations

import numpy as np

from jaxreg.lab import plots as plot_mod
from jaxreg.lab import report
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import (
    JaxRunner,
    final,
    history,
    record_histories,
    seed_mean,
    seeds_detail,
    torch_runs,
    torch_twin,
)


def _jax_fits(model, train, result, x_test) -> dict[str, list]:
    import jax

    epochs = train.snapshot_epochs.tolist()
    # One compiled call over the stacked snapshots (eager applies would compile op by op).
    apply = jax.jit(jax.vmap(lambda p: model.apply({"params": p}, x_test, deterministic=True)))
    preds = np.asarray(apply(result.snapshots)).reshape(len(epochs), -1)
    losses = np.asarray(result.metrics["test_loss"])[epochs].tolist()
    return {"epochs": epochs, "pred": list(preds), "loss": losses}


def run(ctx: Context) -> Outcome:
    """Trains both nets in each framework; records losses, fit curves and learning curves."""

    from jaxreg import models
    from jaxreg.lab import engine
    from jaxreg.lab.data import regression_data

    cfg = ctx.config
    dcfg = cfg["data"]
    data = regression_data(dcfg["seed"], n_samples=dcfg["n_samples"], noise=dcfg["noise"])
    epochs = ctx.epochs()
    every = min(cfg["eval_every"], epochs)
    runner = JaxRunner()
    fits: dict[str, dict] = {}
    mean_eval: dict[tuple[str, str], float | None] = {}
    runs = len(cfg["variants"]) * len(ctx.frameworks) * ctx.options.seeds
    bar = ctx.progress(runs * epochs, "overfit")
    for variant in cfg["variants"]:
        name, rate = variant["name"], variant["dropout_rate"]
        model_kw = {"hidden": cfg["model"]["hidden"], "dropout_rate": rate}
        model = models.RegressionNet(**model_kw)
        config = engine.TrainConfig(
            model=model,
            loss="mse",
            optimizer="adam",
            lr=variant["lr"],
            batch_size=None,
            epochs=epochs,
            shuffle=False,
            eval_every=every,
            snapshot_every=every,
            dtype=ctx.options.dtype,
        )
        train = engine.make_train(config, data)
        hp = {"lr": variant["lr"]}
        rows = {}
        if "jax" in ctx.frameworks:
            results, wall, compile_s = runner.run_seeds(train, ctx.options.seed_list, hp)
            fits[f"{name} (jax)"] = _jax_fits(model, train, results[0], data.x_test)
            rows["jax"] = ([history(r) for r in results], wall, compile_s)
            bar.update(epochs * len(results))
        if "torch" in ctx.frameworks:

            def run_one(params, seed, streams, dtype, lr=variant["lr"], rate=rate):
                import torch

                from jaxreg.torch_ref import engine as torch_engine

                net = torch_twin(
                    "RegressionNet", params, hidden=cfg["model"]["hidden"], dropout_rate=rate
                ).to(dtype)
                return torch_engine.train_regression(
                    net,
                    torch.optim.Adam(net.parameters(), lr=lr),
                    (data.x_train, data.y_train),
                    (data.x_test, data.y_test),
                    epochs=epochs,
                    eval_every=every,
                    seed=seed,
                    progress=bar,
                    matched=streams,
                    dtype=dtype,
                )

            def to_history(out):
                test_loss = [float("nan")] * epochs
                for e, loss in zip(out["eval_epochs"], out["test_loss"], strict=True):
                    test_loss[e] = loss
                return {"train_loss": out["train_loss"], "test_loss": test_loss}

            outs, wall = torch_runs(ctx, train, hp, run_one, variant=name, to_history=to_history)
            hists = [to_history(out) for out in outs]
            fits[f"{name} (torch)"] = {
                "epochs": outs[0]["eval_epochs"],
                "pred": outs[0]["test_pred"],
                "loss": outs[0]["test_loss"],
            }
            rows["torch"] = (hists, wall, None)
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
                seed_figure=variant["seed_figure"],
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
    plain = next(v["name"] for v in cfg["variants"] if v["dropout_rate"] is None)
    dropped = next(v["name"] for v in cfg["variants"] if v["dropout_rate"] is not None)
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

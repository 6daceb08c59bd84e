"""dropout (seeds 003/004): the scratch and the concise MLP, rates 0.2 / 0.5, lr 0.5.

JAX: ``jaxreg.models.DropoutMLP`` trained by ``jaxreg.lab.engine`` with the rates passed as traced
hyperparameters. torch: the twin ``jaxreg.torch_ref.models.DropoutMLP`` (the scratch net uses
d2l's ``dropout_layer``, the concise one ``nn.Dropout``) from the same initial weights.
Evaluation is deterministic; ``--faithful`` keeps dropout on while evaluating, as seed 004 did.
"""

from __future__ import annotations

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import (
    JaxRunner,
    fashion_mnist,
    gap_notes,
    history,
    record_classifier,
    torch_runs,
    torch_twin,
)

PLOT_METRICS = ("train_loss", "train_acc", "test_acc")


def run(ctx: Context) -> Outcome:
    """Trains both styles in each framework and records them."""
    from jaxreg import models
    from jaxreg.lab import engine

    cfg = ctx.config
    data = fashion_mnist(ctx)
    epochs = ctx.epochs()
    faithful = ctx.options.faithful
    rate1, rate2 = cfg["rates"]
    model_kw = {k: v for k, v in cfg["model"].items() if k != "name"}
    model_kw.update(dropout1=rate1, dropout2=rate2)
    runner = JaxRunner()
    runs = len(cfg["variants"]) * len(ctx.frameworks) * ctx.options.seeds
    bar = ctx.progress(runs * epochs, "dropout")
    hp = {"dropout1": rate1, "dropout2": rate2}
    for variant in cfg["variants"]:
        kw = dict(model_kw, style=variant["style"], weight_init=variant["weight_init"])
        config = engine.TrainConfig(
            model=models.DropoutMLP(**kw),
            loss="cross_entropy",
            optimizer="sgd",
            lr=cfg["lr"],
            batch_size=cfg["batch_size"],
            epochs=epochs,
            eval_dropout_active=faithful,
            dtype=ctx.options.dtype,
        )
        train = engine.make_train(config, data)
        if "jax" in ctx.frameworks:
            results, wall, compile_s = runner.run_seeds(train, ctx.options.seed_list, hp)
            record_classifier(
                ctx,
                variant["name"],
                "jax",
                [history(r) for r in results],
                wall_s=wall,
                compile_s=compile_s,
                seed_figure=variant["seed_figure"],
            )
            bar.update(epochs * len(results))
        if "torch" in ctx.frameworks:

            def run_one(params, seed, streams, dtype, kw=kw):
                import torch

                from jaxreg.torch_ref import engine as torch_engine

                net = torch_twin("DropoutMLP", params, **kw).to(dtype)
                return torch_engine.train_classifier(
                    net,
                    torch.optim.SGD(net.parameters(), lr=cfg["lr"]),
                    (data.x_train, data.y_train),
                    (data.x_test, data.y_test),
                    epochs=epochs,
                    batch_size=cfg["batch_size"],
                    seed=seed,
                    eval_dropout=faithful,
                    progress=bar,
                    matched=streams,
                    dtype=dtype,
                )

            hists, wall = torch_runs(ctx, train, hp, run_one, variant=variant["name"])
            record_classifier(
                ctx,
                variant["name"],
                "torch",
                hists,
                wall_s=wall,
                compile_s=None,
                seed_figure=variant["seed_figure"],
            )
    bar.close()
    plot = plots.plot_learning_curves(
        ctx.run_dir / "learning_curves.png",
        ctx.recorder.histories,
        PLOT_METRICS,
        title="dropout (seeds 003/004): JAX solid, torch dashed",
    )
    notes = [
        f"Recipe: 784-256-256-10, dropout {rate1} / {rate2} after the hidden ReLUs, SGD lr "
        f"{cfg['lr']}, batch {cfg['batch_size']}, {epochs} epochs, cross-entropy; scratch = "
        "torch default init, concise = N(0, 0.01) weights. Both frameworks start from the same "
        "weights (initialized in JAX, converted); "
        + (
            "their shuffles and dropout masks are shared (--matched)."
            if ctx.options.matched
            else "their dropout masks and shuffles differ."
        ),
        "Evaluated with dropout ACTIVE (--faithful), as seed 004's evaluate_accuracy did."
        if faithful
        else "Evaluated in deterministic mode (dropout off). Seed 004's figures were measured "
        "with dropout active (its evaluate_accuracy never called eval()): run --faithful to "
        "compare like with like.",
        "`final train` is the running training accuracy of the last epoch, measured with "
        "dropout on (as the seed's train_acc). The seed reports scratch 0.841 at epoch 10 "
        "(0.860 best epoch) and concise 0.849.",
        *gap_notes(ctx.recorder.rows),
    ]
    return Outcome(plots=[plot], notes=notes)

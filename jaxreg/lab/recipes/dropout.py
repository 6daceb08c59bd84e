"""dropout (seeds 003/004): the scratch and the concise MLP, rates 0.2 / 0.5, lr 0.5.

The spec (``experiments/dropout.py``) is trained by :mod:`jaxreg.lab.runner` in both frameworks:
``jaxreg.models.DropoutMLP`` with its declared rates traced, and its torch twin from the same
initial weights. This recipe keeps only the notes, the plot and the seed quirk: evaluation is
deterministic; ``--faithful`` keeps dropout on while evaluating, as seed 004 did.
"""

from __future__ import annotations

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import gap_notes, record_runs, spec_runner


def run(ctx: Context) -> Outcome:
    """Trains both styles in each framework and records them."""
    spec = ctx.config
    epochs = ctx.epochs()
    opts = ctx.options
    faithful = opts.faithful
    runs = len(spec.variants) * len(ctx.frameworks) * opts.seeds
    bar = ctx.progress(runs * epochs, "dropout")
    runner = spec_runner(ctx, bar, eval_dropout_active=faithful)
    for variant in spec.variants:
        figure = variant.meta.get("seed_figure")
        if "jax" in ctx.frameworks:
            record_runs(ctx, runner.run_jax(variant, opts.seed_list), seed_figure=figure)
        if "torch" in ctx.frameworks:
            done = runner.run_torch(variant, opts.seed_list, matched=opts.matched)
            record_runs(ctx, done, seed_figure=figure)
    bar.close()
    plot = plots.plot_learning_curves(
        ctx.run_dir / "learning_curves.png",
        ctx.recorder.histories,
        spec.plots,
        title="dropout (seeds 003/004): JAX solid, torch dashed",
    )
    rate1, rate2 = spec.hparams["dropout1"], spec.hparams["dropout2"]
    notes = [
        f"Recipe: 784-256-256-10, dropout {rate1} / {rate2} after the hidden ReLUs, SGD lr "
        f"{spec.optimizer.lr}, batch {spec.batch_size}, {epochs} epochs, cross-entropy; scratch "
        "= torch default init, concise = N(0, 0.01) weights. Both frameworks start from the "
        "same weights (initialized in JAX, converted); "
        + (
            "their shuffles and dropout masks are shared (--matched)."
            if opts.matched
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

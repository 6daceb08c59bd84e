"""weight-decay (seed 004): no penalty, l2_penalty in the loss, optimizer decay on the weights.

The spec (``experiments/weight_decay.py``) is trained by :mod:`jaxreg.lab.runner`: on the JAX
side ONE compiled engine training (penalty ``"l2_mean"`` and SGD weight decay both masked to W1,
W2) run three times with different traced hyperparameters (``l2`` = 0 or 1, ``weight_decay`` =
0 or 0.01); on the torch side ``torch.optim.SGD`` with param groups derived from the same mask.
Every variant starts from the same initialization (drawn in JAX, converted to torch) unless
``--faithful``, the seed quirk this recipe keeps: one network trained on through the three
runs, as the seed did.
"""

from __future__ import annotations

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import gap_notes, record_runs, spec_runner


def run(ctx: Context) -> Outcome:
    """Trains the three variants in each framework and records them."""
    spec = ctx.config
    opts = ctx.options
    epochs = ctx.epochs()
    faithful = opts.faithful
    runs = len(spec.variants) * len(ctx.frameworks) * opts.seeds
    bar = ctx.progress(runs * epochs, "weight-decay")
    runner = spec_runner(ctx, bar)

    if "jax" in ctx.frameworks:
        state = None
        for variant in spec.variants:
            if faithful:
                # Faithful runs continue from the previous result: its step and epoch counters
                # carry on, so the shuffles go on from where the last run stopped.
                done = runner.run_jax(variant, opts.seed_list, init_state=state)
                state = done[0].extra
            else:
                done = runner.run_jax(variant, opts.seed_list)
            record_runs(ctx, done, seed_figure=variant.meta.get("seed_figure"))

    if "torch" in ctx.frameworks:
        nets: dict = {}
        for i, variant in enumerate(spec.variants):
            quirks = {}
            if faithful:
                # One torch network per seed through the three runs, its RNG seed moved on by
                # the run's index, and (--matched) the streams of the JAX run's i-th leg.
                quirks = {"nets": nets, "seed_offset": i, "streams": _continued(i, epochs)}
            done = runner.run_torch(variant, opts.seed_list, matched=opts.matched, **quirks)
            record_runs(ctx, done, seed_figure=variant.meta.get("seed_figure"))
    bar.close()

    plot = plots.plot_learning_curves(
        ctx.run_dir / "learning_curves.png",
        ctx.recorder.histories,
        spec.plots,
        title="weight decay (seed 004): JAX solid, torch dashed",
    )
    notes = [
        "Recipe: 784-256-10 MLP on raw W1 b1 W2 b2, W ~ N(0, 1), b = 0; SGD lr "
        f"{spec.optimizer.lr}, batch {spec.batch_size}, {epochs} epochs; `l2-penalty` adds "
        "`(W**2).mean()/2` of W1 and W2 to the loss (jaxreg.l2_penalty(reduction='mean')), "
        "`weight-decay` is SGD weight_decay 0.01 on W1, W2 only (seed 004's param groups). "
        "`final train` is the running training accuracy of the last epoch (dropout-free here).",
        "Each variant starts from the same initialization."
        if not faithful
        else "--faithful: one network trained on through the three runs (the seed's order).",
        "Why the gaps to the seed: (1) the seed trained ONE network through the three runs, "
        "so its 0.810 and 0.822 come after 20 and 30 epochs from the first run's weights, not "
        "from a fresh init (run --faithful for that ordering); (2) the mean-form penalty's "
        "gradient is lambda * w / numel(w), i.e. w / 200704 for W1 and w / 2560 for W2: "
        "2000 (W1) and 26 (W2) times weaker than weight decay 0.01, so `l2-penalty` from a "
        "fresh init trains almost like `no-penalty` (seed 004's defect: the strength depends "
        "on the layer size).",
        *gap_notes(ctx.recorder.rows),
    ]
    return Outcome(plots=[plot], notes=notes)


def _continued(index: int, epochs: int):
    """The matched streams of the ``index``-th leg of a continued (faithful) JAX run."""

    def streams(train, seed, hparams):
        import jax

        from jaxreg.lab import matched

        return matched.MatchedStreams(
            train,
            jax.random.key(seed),
            hparams,
            first_step=index * epochs * train.steps_per_epoch,
            first_epoch=index * epochs,
        )

    return streams

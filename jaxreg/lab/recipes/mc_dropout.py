"""mc-dropout (seed 001): Monte-Carlo averaging of M dropout passes vs weight scaling.

Seed 001's ``TwoLayerNet`` (784-128-10, dropout 0.5, log_softmax) is trained on Fashion-MNIST by
:mod:`jaxreg.lab.runner` from the spec ``experiments/mc_dropout.py`` (the NLL loss in both
frameworks, SGD, the same initial weights). At test time it is evaluated two ways: the
deterministic pass (inverted dropout already scaled the kept units by 1/keep during training,
which is "weight scaling"), and the mean of the softmax over M stochastic passes
(``jaxreg.mc_dropout_predict``; torch: M passes in ``train()`` mode). For each: test accuracy
and the mean predictive variance. ``--faithful`` (the seed's always-on ``F.dropout``) is the
quirk this recipe keeps.
"""

from __future__ import annotations

import time

import numpy as np

from jaxreg.lab import plots
from jaxreg.lab.recipes._common import Context, Outcome
from jaxreg.lab.recipes._sides import final, spec_runner

CHUNK = 2500


def _jax_mc(model, params, x, key, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from jaxreg.dropout import mc_dropout_predict

    @jax.jit
    def chunk(xb, k):
        def probs(xs, kk):
            out = model.apply({"params": params}, xs, deterministic=False, rngs={"dropout": kk})
            return jnp.exp(out)

        return mc_dropout_predict(probs, xb, key=k, num_samples=num_samples)

    means, variances = [], []
    for i, start in enumerate(range(0, len(x), CHUNK)):
        mean, var = chunk(x[start : start + CHUNK], jax.random.fold_in(key, i))
        means.append(np.asarray(mean))
        variances.append(np.asarray(var))
    return np.concatenate(means), np.concatenate(variances)


def _jax_deterministic(model, params, x, key) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    out = jax.jit(
        lambda xs: model.apply({"params": params}, xs, deterministic=True, rngs={"dropout": key})
    )(jnp.asarray(x))
    return np.exp(np.asarray(out))


def run(ctx: Context) -> Outcome:
    """Trains TwoLayerNet in each framework, then compares the test-time estimators."""
    import functools

    import jax

    spec = ctx.config
    epochs = ctx.epochs()
    faithful = ctx.options.faithful
    if faithful:
        # The seed's quirk: its F.dropout never turns off (both twins take always_dropout).
        spec = spec.replace(
            model=spec.model.clone(always_dropout=True),
            torch_model=functools.partial(spec.torch_model, always_dropout=True),
        )
        ctx.config = spec
    variant = spec.variants[0]
    bar = ctx.progress(len(ctx.frameworks) * epochs, "mc-dropout")
    runner = spec_runner(ctx, bar)
    data = runner.data.jax
    model = runner.train(variant).config.model
    seed = ctx.options.seed
    eval_key = jax.random.fold_in(jax.random.key(seed), 7)
    y_test = np.asarray(data.y_test)
    estimates: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None, float]]] = {}
    train_rows: dict[str, tuple] = {}
    mc_samples = spec.meta["mc_samples"]

    if "jax" in ctx.frameworks:
        (run,) = runner.run_jax(variant, [seed])
        ctx.recorder.add_history("training", "jax", run.history)
        params = run.extra.params
        start = time.perf_counter()
        probs = _jax_deterministic(model, params, data.x_test, eval_key)
        est = {"deterministic": (probs, None, time.perf_counter() - start)}
        for m in mc_samples:
            start = time.perf_counter()
            mean, var = _jax_mc(model, params, data.x_test, eval_key, m)
            est[f"MC M={m}"] = (mean, var, time.perf_counter() - start)
        estimates["jax"] = est
        train_rows["jax"] = (run.history, run.wall_s, run.compile_s)

    if "torch" in ctx.frameworks:
        import torch

        from jaxreg.torch_ref import engine as torch_engine

        (run,) = runner.run_torch(variant, [seed])
        net = run.extra
        train_rows["torch"] = (run.history, run.wall_s, None)
        ctx.recorder.add_history("training", "torch", run.history)
        x_test = torch_engine.to_tensor(runner.data.torch.x_test, torch.float32)
        start = time.perf_counter()
        net.eval()
        with torch.no_grad():
            probs = torch.exp(net(x_test)).numpy()
        est = {"deterministic": (probs, None, time.perf_counter() - start)}
        for m in mc_samples:
            start = time.perf_counter()
            mean, var = torch_engine.mc_dropout_predict(net, x_test, num_samples=m, seed=seed + 1)
            est[f"MC M={m}"] = (mean, var, time.perf_counter() - start)
        estimates["torch"] = est
    bar.close()

    deterministic = "one stochastic pass (seed)" if faithful else "weight scaling"
    for fw, est in estimates.items():
        hist, wall, compile_s = train_rows[fw]
        for name, (probs, var, eval_s) in est.items():
            acc = float(np.mean(probs.argmax(axis=1) == y_test))
            detail = f"eval {eval_s:.2f} s"
            if var is not None:
                detail = f"mean predictive variance {float(np.mean(var)):.3g}; " + detail
            ctx.result(
                variant=deterministic if name == "deterministic" else name,
                framework=fw,
                metric="accuracy",
                train=final(hist["train_acc"]),
                test=acc,
                wall_s=wall,
                compile_s=compile_s,
                seed_figure=variant.meta["seed_figure"],
                detail=detail,
            )
    plot = plots.plot_learning_curves(
        ctx.run_dir / "learning_curves.png",
        ctx.recorder.histories,
        spec.plots,
        title="TwoLayerNet training (seed 001): JAX solid, torch dashed",
    )
    notes = [
        f"Training: TwoLayerNet, dropout {spec.model.dropout_rate}, NLL on log_softmax, SGD "
        f"lr {spec.optimizer.lr}, batch {spec.batch_size}, {epochs} epochs (the seed gives no "
        "training recipe for it; this is the dropout experiment's). `wall s` / `compile s` are the "
        "training's; `detail` has each estimator's evaluation time.",
        "Predictive variance: the variance of the softmax probabilities over the M passes, "
        "averaged over classes and test examples (0 for M = 1 and for the deterministic pass).",
        "--faithful: the seed's F.dropout never turns off, so there is no deterministic pass; "
        "its evaluation is a single stochastic pass."
        if faithful
        else "Inverted dropout makes the deterministic pass the weight-scaling approximation; "
        "MC averaging approaches it as M grows.",
    ]
    return Outcome(plots=[plot], notes=notes)

"""What the recipes share: data, timed JAX runs through the engine, torch twins, result rows."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jaxreg.lab.recipes._common import Context


def fashion_mnist(ctx: Context):
    """Fashion-MNIST with ``--data-dir`` / ``--limit-train`` / ``--limit-test`` applied."""
    from jaxreg.lab.data import load_fashion_mnist

    opts = ctx.options
    return load_fashion_mnist(opts.data_dir, train_size=opts.limit_train, test_size=opts.limit_test)


class JaxRunner:
    """Runs ``jaxreg.lab.engine`` trainings ahead-of-time compiled, timing compile and run apart.

    A compiled function is cached per (Train, initial-state structure), so variants that differ
    only in traced hyperparameters (weight-decay's three runs) compile once.
    """

    def __init__(self):
        self._cache: dict[Any, Any] = {}

    def run(self, train, key, hparams=None, init_state=None):
        """Returns ``(TrainResult, run seconds, compile seconds)`` of ``train(key, hparams)``."""
        import jax

        from jaxreg.lab import timing

        hp = train.normalize_hparams(hparams)
        args = (train.data, key, hp, init_state)
        cache_key = (id(train), jax.tree.structure(init_state))
        compile_s = 0.0
        if cache_key not in self._cache:
            self._cache[cache_key], compile_s = timing.compile_and_time(train.pure, *args)
        result, wall = timing.timed_call(self._cache[cache_key], *args)
        return result, wall, compile_s

    def run_seeds(self, train, seeds, hparams=None):
        """One compiled program over ``seeds``: ``(per-seed TrainResults, run s, compile s)``.

        ``jax.vmap(train.pure)`` over the seeds' keys (data and hyperparameters shared), as
        ``jaxreg sweep`` does; one seed is the plain :meth:`run`, so a single-seed run is
        unchanged by the multi-seed path.
        """
        import jax
        import jax.numpy as jnp

        from jaxreg.lab import timing

        if len(seeds) == 1:
            result, wall, compile_s = self.run(train, jax.random.key(seeds[0]), hparams)
            return [result], wall, compile_s
        hp = train.normalize_hparams(hparams)
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
        args = (train.data, keys, hp, None)
        cache_key = (id(train), "seeds", len(seeds))
        compile_s = 0.0
        if cache_key not in self._cache:
            batched = jax.vmap(train.pure, in_axes=(None, 0, None, None))
            self._cache[cache_key], compile_s = timing.compile_and_time(batched, *args)
        stacked, wall = timing.timed_call(self._cache[cache_key], *args)
        results = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(len(seeds))]
        return results, wall, compile_s


def torch_runs(
    ctx: Context, train, hparams, run_one, *, variant: str, to_history=None
) -> tuple[list[Any], float]:
    """The torch side, one seed after another: ``([run_one(...) per seed], seconds)``.

    ``run_one(params, seed, streams, dtype)`` trains the torch twin from ``params`` (the JAX
    initialization of that seed) with torch's RNG seeded by ``seed``; ``streams`` is the seed's
    :class:`jaxreg.lab.matched.MatchedStreams` under ``--matched`` (else None) and ``dtype``
    the torch dtype of the run. A matched float32 run also trains each seed once more on
    :class:`jaxreg.lab.comparison.ReorderedStreams` (float32's own noise, the bound of the
    comparison): kept in ``ctx.runs[(variant, comparison.NOISE)]`` (through ``to_history``),
    not timed and not in metrics.jsonl.
    """
    import jax
    import torch

    from jaxreg.lab import comparison, matched

    opts = ctx.options
    dtype = torch.float64 if opts.dtype == "float64" else torch.float32
    outs, noise, wall = [], [], 0.0
    for seed in opts.seed_list:
        key = jax.random.key(seed)
        streams = matched.MatchedStreams(train, key, hparams) if opts.matched else None
        params = train.init(key).params
        start = time.perf_counter()
        outs.append(run_one(params, seed, streams, dtype))
        wall += time.perf_counter() - start
        if streams is not None and opts.dtype == "float32":
            out = run_one(params, seed, comparison.ReorderedStreams(streams, seed), dtype)
            noise.append(to_history(out) if to_history else out)
    if noise:
        ctx.runs[(variant, comparison.NOISE)] = noise
    return outs, wall


def record_histories(ctx: Context, variant: str, framework: str, hists: list[dict]) -> None:
    """Writes every seed's per-epoch rows and keeps them for the comparison sections.

    The rows gain ``seed``, ``matched`` and ``dtype`` fields only when the run asked for a
    comparison (a plain run's metrics.jsonl stays as it was). The learning-curve plots show
    the first seed.
    """
    ctx.runs[(variant, framework)] = hists
    for seed, hist in zip(ctx.options.seed_list, hists, strict=True):
        rows = dict(hist)
        if ctx.options.compared:
            epochs = max(len(v) for v in hist.values())
            opts = ctx.options
            # Constant series become constant fields of each epoch's row.
            rows.update(seed=[seed] * epochs, matched=[opts.matched] * epochs)
            rows["dtype"] = [opts.dtype] * epochs
        ctx.recorder.add_history(variant, framework, rows)
    ctx.recorder.histories[(variant, framework)] = hists[0]


def seeds_detail(ctx: Context) -> str | None:
    """The results row's note when its figures are means over seeds."""
    seeds = ctx.options.seed_list
    if len(seeds) == 1:
        return None
    return f"mean over seeds {seeds[0]}..{seeds[-1]} (n={len(seeds)}; intervals below)"


def history(result) -> dict[str, list[float]]:
    """Per-epoch metrics of a ``TrainResult`` as lists (scalars such as diverged_step dropped)."""
    out = {}
    for name, value in result.metrics.items():
        value = np.asarray(value)
        if value.ndim == 1:
            out[name] = value.astype(float).tolist()
    return out


def torch_state(params) -> dict[str, np.ndarray]:
    """Flax params -> a torch ``state_dict`` of numpy arrays (``jaxreg.convert.flax_to_torch``)."""
    from jaxreg import convert

    return convert.flax_to_torch(params)


def torch_twin(name: str, params=None, **kwargs):
    """Builds the torch twin of ``jaxreg.models.<name>`` and, given Flax params, loads them."""
    from jaxreg.torch_ref import engine as torch_engine
    from jaxreg.torch_ref import models as torch_models

    model = getattr(torch_models, name)(**kwargs)
    if params is not None:
        torch_engine.load_params(model, torch_state(params))
    return model


def final(values: list[float]) -> float | None:
    """The last finite value of a metric series (NaN entries are epochs not evaluated)."""
    finite = [v for v in values if np.isfinite(v)]
    return finite[-1] if finite else None


def record_classifier(
    ctx: Context,
    variant: str,
    framework: str,
    hist: dict[str, list[float]],
    *,
    wall_s: float,
    compile_s: float | None,
    seed_figure: Any,
) -> dict[str, Any]:
    """Writes a classifier's per-epoch metrics and its final accuracies row.

    ``hist`` is one history, or a list of one history per seed of the run (the row then holds
    the means over seeds).
    """
    hists = hist if isinstance(hist, list) else [hist]
    record_histories(ctx, variant, framework, hists)
    return ctx.result(
        variant=variant,
        framework=framework,
        metric="accuracy",
        train=seed_mean([final(h["train_acc"]) for h in hists]),
        test=seed_mean([final(h["test_acc"]) for h in hists]),
        wall_s=wall_s,
        compile_s=compile_s,
        seed_figure=seed_figure,
        detail=seeds_detail(ctx),
    )


def seed_mean(values: list[float | None]) -> float | None:
    """One seed's value as it is; the mean of several (None if any is None)."""
    if len(values) == 1 or any(v is None for v in values):
        return values[0] if len(values) == 1 else None
    return float(np.mean(values))


def gap_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per variant: JAX vs torch test accuracy and the seed's figure."""
    by_variant: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], {})[row["framework"]] = row
    lines = []
    for variant, fws in by_variant.items():
        parts = [f"{fw} {r['test']:.4f}" for fw, r in fws.items() if r.get("test") is not None]
        seed = next(iter(fws.values())).get("seed_figure")
        if "jax" in fws and "torch" in fws:
            gap = 100 * (fws["jax"]["test"] - fws["torch"]["test"])
            parts.append(f"JAX - torch = {gap:+.2f} points")
        lines.append(f"- {variant}: test accuracy " + ", ".join(parts) + f"; seed reports {seed}.")
    return lines

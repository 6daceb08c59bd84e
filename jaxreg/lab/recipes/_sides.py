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

        hp = train.normalize_hparams(hparams)
        args = (train.data, key, hp, init_state)
        cache_key = (id(train), jax.tree.structure(init_state))
        compile_s = 0.0
        if cache_key not in self._cache:
            start = time.perf_counter()
            self._cache[cache_key] = jax.jit(train.pure).lower(*args).compile()
            compile_s = time.perf_counter() - start
        start = time.perf_counter()
        result = jax.block_until_ready(self._cache[cache_key](*args))
        return result, time.perf_counter() - start, compile_s


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
    """Writes a classifier's per-epoch metrics and its final accuracies row."""
    ctx.recorder.add_history(variant, framework, hist)
    return ctx.result(
        variant=variant,
        framework=framework,
        metric="accuracy",
        train=final(hist["train_acc"]),
        test=final(hist["test_acc"]),
        wall_s=wall_s,
        compile_s=compile_s,
        seed_figure=seed_figure,
    )


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

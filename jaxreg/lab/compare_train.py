"""A spec trained in both frameworks, compared step by step and over seeds.

:func:`train_matched` trains one seed of a :class:`jaxreg.lab.spec.Spec` in JAX and in torch
through the one runner (:mod:`jaxreg.lab.runner`) with the streams shared
(:mod:`jaxreg.lab.matched`): the same initial weights, the same batches in the same order, the
same random draws. In float64 the two must agree at every optimizer step (the gate,
:func:`jaxreg.lab.verdict.float64_gate`); float32 is reported, not gated: per step, the JAX-torch
float32 gap beside each side's own float32 error (:func:`jaxreg.lab.verdict.float32_attribution`),
so one reads which side drifted.

:func:`compare_seeds` trains several seeds per side and gives every final metric's mean and 95%
interval per framework and the JAX-torch difference with its interval and verdict
(:func:`jaxreg.lab.comparison.seed_statistics`; paired when matched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxreg.lab import stats

DTYPES = ("float32", "float64")
SAME_START = 1e-4
"""The largest step-1 loss difference of a float32 and a float64 run of the same side that
rounding explains: one forward pass rounds at ~1e-7 relative, so 1e-4 is a different start."""


def _runs(spec, dtype, *, matched, seeds, epochs, variant, data):
    import jax

    from jaxreg.lab import runner

    # A float64 run needs 64-bit JAX; scoped, so the caller's configuration is left alone.
    with jax.enable_x64(dtype == "float64"):
        return runner.run(
            spec,
            matched=matched,
            dtype=dtype,
            seeds=seeds,
            epochs=epochs,
            variants=[variant],
            data=data,
        )


def _torch_named(params: Any, torch_run: Any) -> tuple[dict, dict]:
    """Final parameters of both sides as ``{torch name: array}`` (the twin's parameters only)."""
    from jaxreg.convert import flax_to_torch
    from jaxreg.lab.compare_batch import _by_module

    names = [n for n, _ in torch_run.extra.named_parameters()]
    theirs = {n: np.asarray(torch_run.params[n]) for n in names}
    ours = flax_to_torch(_by_module(params), template=theirs)
    return ours, theirs


@dataclasses.dataclass
class MatchedReport:
    """What :func:`train_matched` found.

    Attributes:
        spec: the spec's name.
        variant: the variant trained.
        seed: the seed of both sides.
        steps: ``{(dtype, framework): per-step losses [epochs, steps]}``.
        gate: the float64 gate's :class:`jaxreg.lab.verdict.Gate` (None without float64).
        attribution: the float32 :class:`jaxreg.lab.verdict.Attribution` (None unless both
            dtypes ran).
        seconds: ``{(dtype, framework): training seconds}`` (JAX compilation excluded).
    """

    spec: str
    variant: str
    seed: int
    steps: dict[tuple[str, str], np.ndarray]
    gate: Any
    attribution: Any
    seconds: dict[tuple[str, str], float]

    @property
    def ok(self) -> bool:
        """The float64 gate passed (True when no float64 pair ran: float32 is not gated)."""
        return self.gate is None or bool(self.gate.passed)

    def raise_for_mismatch(self) -> MatchedReport:
        """Raises :class:`jaxreg.lab.compare.MismatchError` unless :attr:`ok`; returns self."""
        from jaxreg.lab.compare_batch import MismatchError

        if not self.ok:
            raise MismatchError(str(self))
        return self

    def __str__(self) -> str:
        from jaxreg.lab import verdict

        shape = next(iter(self.steps.values())).shape
        lines = [
            f"matched training of {self.spec!r} (variant {self.variant!r}, seed {self.seed}): "
            f"{shape[0]} epoch(s) x {shape[-1]} steps, same initial weights, batches and draws"
        ]
        for (dtype, framework), seconds in sorted(self.seconds.items()):
            first = float(self.steps[(dtype, framework)].ravel()[0])
            last = float(self.steps[(dtype, framework)].ravel()[-1])
            lines.append(
                f"  {dtype} {framework:5}: loss step 1 {first:.6f}, last step {last:.6f} "
                f"({seconds:.2f} s)"
            )
        if self.gate is not None:
            lines.append(self.gate.summary())
        if self.attribution is not None:
            first = float(np.max(self.attribution.jax_error.ravel()[:1]))
            if first > SAME_START:
                lines.append(
                    f"WARNING: the JAX float32 and float64 runs differ by {first:.1e} at step 1, "
                    f"more than float32 rounding of one forward pass (<= {SAME_START:g}): they "
                    "did not share their initial weights, batches or random draws (masks drawn "
                    "in the run's dtype?), so the attribution below is not rounding alone"
                )
            lines.append(verdict.attribution_summary(self.attribution))
            lines.append(verdict.attribution_table(self.attribution))
        elif self.gate is None:
            lines.append("float32 only: reported, not gated (the gate is float64)")
        return "\n".join(lines)


def train_matched(
    spec: Any,
    *,
    dtypes: Sequence[str] = DTYPES,
    epochs: int | None = None,
    seed: int | None = None,
    variant: str | None = None,
    data: Any = None,
) -> MatchedReport:
    """Trains one seed of ``spec`` in JAX and in torch on shared streams; compares every step.

    Both sides start from the JAX initialization (converted for the twin), visit the same
    batches in the same order and use the same random draws (dropout masks, noise), so in
    float64 they differ only by rounding: every step's loss must agree to
    :data:`jaxreg.lab.verdict.GATE_RTOL` (1e-8) relative and so must the final parameters. With
    both dtypes, the float32 gap is attributed per step to each side's own float32 error.

    PyTorch equivalent: running the torch twin's training loop with ``model.double()`` beside
    the JAX run, feeding it the JAX run's batch order and masks, and asserting per step.

    Args:
        spec: a :class:`jaxreg.lab.spec.Spec` with a ``torch_model``.
        dtypes: ``"float32"`` and/or ``"float64"``.
        epochs: overrides the spec's.
        seed: the seed (default: the spec's first).
        variant: the variant's name (default: the first).
        data: preloaded :class:`jaxreg.lab.runner.Datasets` (default: the spec's data).

    Returns:
        A :class:`MatchedReport` (``print`` it; ``.ok`` is the float64 gate's verdict).

    Raises:
        ValueError: a bad dtype, or a spec without a torch model.
        jaxreg.lab.draws.UnsharedDrawError: a random op that cannot be shared.

    Example:
        >>> report = train_matched(get_config(), epochs=1)  # doctest: +SKIP
        >>> report.raise_for_mismatch()  # doctest: +SKIP
    """
    from jaxreg.lab import runner, verdict

    dtypes = tuple(dtypes)
    if not dtypes or any(d not in DTYPES for d in dtypes):
        raise ValueError(f"dtypes={dtypes!r}: allowed values are {DTYPES} (at least one)")
    if spec.torch_model is None:
        raise ValueError(f"spec {spec.name!r} has no torch_model: nothing to compare against")
    name = spec.variant(variant).name
    seed = spec.seeds[0] if seed is None else int(seed)
    data = data if data is not None else runner.load_data(spec)
    steps, seconds, params = {}, {}, {}
    for dtype in dtypes:
        results = _runs(
            spec, dtype, matched=True, seeds=[seed], epochs=epochs, variant=name, data=data
        )
        (jax_run,) = results.select(name, "jax")
        (torch_run,) = results.select(name, "torch")
        for run in (jax_run, torch_run):
            if run.step_loss is None:
                raise ValueError(
                    f"the {run.framework} run recorded no per-step losses (metrics['step_loss'])"
                )
            steps[(dtype, run.framework)] = np.asarray(run.step_loss, np.float64)
            seconds[(dtype, run.framework)] = float(run.wall_s or 0.0)
        params[dtype] = _torch_named(jax_run.params, torch_run)
    gate = attribution = None
    if "float64" in dtypes:
        ours, theirs = params["float64"]
        gate = verdict.float64_gate(
            steps[("float64", "jax")],
            steps[("float64", "torch")],
            jax_params=ours,
            torch_params=theirs,
        )
    if len(dtypes) == 2:
        attribution = verdict.float32_attribution(
            *(steps[(d, f)] for f, d in _ORDER),
        )
    return MatchedReport(spec.name, name, seed, steps, gate, attribution, seconds)


_ORDER = (("jax", "float32"), ("jax", "float64"), ("torch", "float32"), ("torch", "float64"))


# ---- seeds ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class SeedsReport:
    """What :func:`compare_seeds` found: one row per (variant, final metric).

    Attributes:
        spec: the spec's name.
        rows: :func:`jaxreg.lab.comparison.seed_statistics` rows: ``variant, metric, jax,
            torch`` (:class:`jaxreg.lab.stats.Interval`), ``difference`` (JAX - torch),
            ``verdict`` (``"consistent"``: the interval holds 0; ``"different"``), ``method``
            (``"paired"`` when matched, ``"welch"``), ``n``.
        seeds: the seeds.
        dtype: the runs' dtype.
        matched: whether seed ``i`` of both sides shared its streams (paired intervals).
        seconds: total training seconds per framework.
    """

    spec: str
    rows: list[dict[str, Any]]
    seeds: tuple[int, ...]
    dtype: str
    matched: bool
    seconds: dict[str, float]

    def verdict(self, metric: str = "test_acc", variant: str | None = None) -> str:
        """The verdict of one final metric (of the first variant by default)."""
        for row in self.rows:
            if row["metric"] == metric and (variant is None or row["variant"] == variant):
                return row["verdict"]
        raise ValueError(f"metric={metric!r}: not in the report ({self.metrics()})")

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r["metric"] for r in self.rows))

    def __str__(self) -> str:
        how = "matched pairs (paired t)" if self.matched else "independent runs (Welch)"
        lines = [
            f"{len(self.seeds)} seeds per side ({self.dtype}, {how}), final metrics: mean "
            f"[95% interval]; JAX - torch with its interval and verdict"
        ]
        for r in self.rows:
            cells = [
                f"{r['variant']:10} {r['metric']:11}",
                f"jax {stats.format_interval(r['jax'])}",
                f"torch {stats.format_interval(r['torch'])}",
                f"diff {stats.format_interval(r['difference'], 5)}: {r['verdict']}",
            ]
            lines.append("  " + " | ".join(cells))
        lines.append(
            "  training seconds: "
            + ", ".join(f"{fw} {s:.2f}" for fw, s in sorted(self.seconds.items()))
        )
        return "\n".join(lines)


def compare_seeds(
    spec: Any,
    *,
    seeds: int | Sequence[int] | None = None,
    epochs: int | None = None,
    dtype: str | None = None,
    matched: bool = True,
    variant: str | None = None,
    data: Any = None,
    level: float = 0.95,
) -> SeedsReport:
    """Trains several seeds of ``spec`` per side; every final metric with intervals and verdicts.

    JAX trains all seeds in one vmapped program, torch seed by seed. Matched (default), seed
    ``i`` of both sides shares its initial weights, batches and draws, and the JAX-torch
    difference is a paired t interval over the seeds; unmatched, each side draws its own and the
    interval is Welch's.

    PyTorch equivalent: a seed loop around the torch training script, then a t test.

    Args:
        spec: a :class:`jaxreg.lab.spec.Spec` with a ``torch_model``.
        seeds: a count (seeds ``0..n-1``) or the seeds (default: the spec's).
        epochs: overrides the spec's.
        dtype: overrides the spec's.
        matched: share each seed's streams between the sides.
        variant: the variant's name (default: the first).
        data: preloaded :class:`jaxreg.lab.runner.Datasets`.
        level: confidence level of the intervals.

    Returns:
        A :class:`SeedsReport`.

    Raises:
        ValueError: fewer than 2 seeds (no interval without a spread), a bad dtype.

    Example:
        >>> print(compare_seeds(get_config(), seeds=3, epochs=1))  # doctest: +SKIP
    """
    from jaxreg.lab import comparison, runner

    if seeds is None:
        seeds = spec.seeds
    elif isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) < 2:
        raise ValueError(f"seeds={seeds!r}: at least 2 seeds (an interval needs a spread)")
    dtype = dtype or spec.dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: allowed values are {DTYPES}")
    name = spec.variant(variant).name
    data = data if data is not None else runner.load_data(spec)
    results = _runs(
        spec, dtype, matched=matched, seeds=list(seeds), epochs=epochs, variant=name, data=data
    )
    runs = {(name, fw): results.histories(name, fw) for fw in ("jax", "torch")}
    rows = comparison.seed_statistics(runs, paired=matched, level=level)
    seconds = {
        fw: float(sum((r.wall_s or 0.0) for r in results.select(name, fw)))
        for fw in ("jax", "torch")
    }
    # JAX trains every seed in one program: its wall time is that program's, once per run row.
    seconds["jax"] = float(results.select(name, "jax")[0].wall_s or 0.0)
    return SeedsReport(spec.name, rows, seeds, dtype, matched, seconds)

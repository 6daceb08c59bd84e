"""Sweep presets: configs in ``experiments/sweeps/`` turned into a runnable plan, run, reported.

A preset file's ``get_config()`` returns plain data (see ``experiments/sweeps/__init__.py``):

* ``base``: the experiment whose spec the sweep trains, ``"dropout"`` or ``"weight_decay"``
  (``experiments/<base>.py``'s :class:`jaxreg.lab.spec.Spec`: model, optimizer, penalty, batch
  size, epochs, the model's declared hyperparameters), and ``variant``: which of its variants'
  model to train; so the seeds 003/004 constants are written once, in those two files;
* ``overrides``: ``TrainConfig`` fields changed for the sweep (``epochs``, ...);
* ``points`` (dicts, an optional ``"name"`` each) or ``grid`` (name -> values, their product);
* ``seeds``, ``validation`` (images held out of training), ``plots`` (``{"file", "kind", ...}``
  with kind ``curves`` / ``final_vs`` / ``heatmap`` / ``activation_variance``) and ``analysis``
  (a key of :data:`jaxreg.lab.analysis.ANALYSES`).

:func:`build_plan` reads a preset (with the command line's overrides) into a :class:`Plan`,
:func:`load_dataset` loads its data and :func:`run_plan` runs it with
:func:`jaxreg.lab.sweep.run_sweep` and writes the folder with
:func:`jaxreg.lab.report.write_sweep_report`. ``jaxreg sweep`` (:mod:`jaxreg.lab.cli`) is these
three calls.

PyTorch equivalent: none built in; a script per exercise looping over configurations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxreg.lab import configs

SWEEPS_DIR = "sweeps"
# --model choices of `jaxreg sweep` -> the experiment config whose recipe the sweep trains.
MODEL_BASES = {"dropout-mlp": "dropout", "weight-decay-mlp": "weight_decay"}
_KEYS = {"name", "description", "base", "variant", "overrides", "points", "grid", "seeds"}
_KEYS |= {"validation", "plots", "analysis"}
_WIDTHS = ("num_hiddens1", "num_hiddens2", "num_hidden")


@dataclasses.dataclass
class Plan:
    """A sweep ready to run: engine config, points, seeds, data split, plots and analysis."""

    name: str
    description: str
    config: Any
    points: list[dict[str, Any]]
    seeds: tuple[int, ...] = (0,)
    validation: int = 0
    plots: list[tuple[str, Callable[[Any, Path], Path]]] = dataclasses.field(default_factory=list)
    notes: Callable[[Any], list[str]] | None = None


def preset_names() -> list[str]:
    """The presets in ``experiments/sweeps/`` (``lambda_curve.py`` is ``lambda-curve``).

    Example:
      >>> "lambda-curve" in preset_names()
      True
    """
    folder = configs.experiments_dir() / SWEEPS_DIR
    return sorted(p.stem.replace("_", "-") for p in folder.glob("*.py") if p.stem != "__init__")


def load_preset(name: str) -> dict[str, Any]:
    """The data of preset ``name`` (``get_config()`` of ``experiments/sweeps/<name>.py``).

    Raises:
      ValueError: no such preset (the message lists them), or a key the format does not have.

    Example:
      >>> load_preset("dropout-swap")["base"]
      'dropout'
    """
    names = preset_names()
    if name not in names:
        raise ValueError(f"preset {name!r} does not exist; allowed presets: {', '.join(names)}")
    module = name.replace("-", "_")
    path = configs.experiments_dir() / SWEEPS_DIR / f"{module}.py"
    preset = configs.load_config_file(path, name=f"sweep_{module}")
    unknown = sorted(set(preset) - _KEYS)
    if unknown:
        raise ValueError(f"preset {path}: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    return preset


def base_spec(base: str):
    """The :class:`jaxreg.lab.spec.Spec` of ``experiments/<base>.py`` (``dropout``, ...).

    Raises:
      ValueError: the file's ``get_config()`` does not return a spec.

    Example:
      >>> base_spec("dropout").optimizer.lr
      0.5
    """
    from jaxreg.lab.spec import Spec

    spec = configs.load_config_file(configs.experiments_dir() / f"{base}.py", name=base)
    if not isinstance(spec, Spec):
        raise ValueError(
            f"base={base!r}: experiments/{base}.py's get_config() returns a "
            f"{type(spec).__name__}, not a jaxreg.lab.spec.Spec; a sweep trains a spec's model"
        )
    return spec


def train_config(base: str, variant: str | None = None, overrides: Mapping[str, Any] = ()):
    """The engine config of an experiment's spec (``experiments/<base>.py``).

    Built by :func:`jaxreg.lab.runner.train_config`, so a sweep trains exactly the experiment's
    model, optimizer and penalty (its traced hyperparameters become the sweep's axes).

    Args:
      base: ``"dropout"`` or ``"weight_decay"`` (any experiment whose ``get_config()`` is a
        spec).
      variant: a variant name of that spec whose model applies; None: the spec's own model.
      overrides: ``TrainConfig`` fields to change.

    Returns:
      A ``jaxreg.lab.engine.TrainConfig``.

    Example:
      >>> train_config("weight_decay").model.num_hidden
      256
    """
    from jaxreg.lab import runner
    from jaxreg.lab.spec import Variant

    spec = base_spec(base)
    if variant is not None:
        names = [v.name for v in spec.variants]
        if variant not in names:
            raise ValueError(f"variant {variant!r} is not one of experiments/{base}.py's: {names}")
        chosen = spec.variant(variant)
        # The variant's model only: its traced values are the sweep's to set.
        model = chosen.model if chosen.model is not None else spec.model
    else:
        model = spec.model
    spec = spec.replace(variants=(Variant("sweep", model=model),))
    return runner.train_config(spec, "sweep", **dict(overrides))


def _plot(spec: Mapping[str, Any]) -> tuple[str, Callable[[Any, Path], Path]]:
    from jaxreg.lab import plots

    kind, spec = spec["kind"], dict(spec)
    if kind == "curves":
        return spec["file"], lambda r, p: plots.plot_curves(r, p, spec.get("metric"))
    if kind == "heatmap":
        return spec["file"], lambda r, p: plots.plot_heatmap(r, spec["rows"], spec["cols"], p)
    if kind == "activation_variance":
        return spec["file"], plots.plot_activation_variance
    if kind == "final_vs":

        def final_vs(result, path):
            mark = spec.get("mark")
            if mark is not None:
                mark = result.best(mark if mark in result.metrics else "test_acc")
            return plots.plot_final_vs(result, spec["axis"], path, mark=mark)

        return spec["file"], final_vs
    raise ValueError(
        f"plot kind {kind!r}: allowed kinds are curves, final_vs, heatmap, activation_variance"
    )


def check_points(config: Any, points: Sequence[Mapping[str, Any]]) -> None:
    """Raises a ValueError naming any hyperparameter of ``points`` that ``config`` does not use.

    A sweep axis that does nothing reports identical rows, which reads as "no effect".

    Example:
      >>> check_points(train_config("dropout"), [{"l1": 0.1}])  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: hyperparameter 'l1' is not used by this sweep's run (penalty='none'); ...
    """
    used = config.used_hparams()
    for name in dict.fromkeys(k for p in points for k in p if k != "name"):
        if name not in used:
            raise ValueError(
                f"hyperparameter {name!r} is not used by this sweep's run "
                f"({config.unused_reason(name)}); it uses {', '.join(used)}"
            )


def build_plan(
    name: str,
    *,
    model: str | None = None,
    hidden: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
    seeds: Sequence[int] | None = None,
) -> Plan:
    """Preset ``name`` with the command line's overrides, checked.

    Args:
      name: a preset of :func:`preset_names`.
      model: a key of :data:`MODEL_BASES`: train that experiment's model instead.
      hidden: hidden width(s) of the MLP.
      epochs: epochs per run.
      lr: the default learning rate (a point's ``lr`` wins).
      grid: axes whose product replaces the preset's points.
      seeds: seeds replacing the preset's.

    Returns:
      A :class:`Plan`.

    Raises:
      ValueError: unknown preset or model, or a hyperparameter the run does not use.

    Example:
      >>> plan = build_plan("custom", grid={"dropout1": [0.0, 0.5]}, epochs=1)
      >>> plan.points, plan.config.epochs
      ([{'dropout1': 0.0}, {'dropout1': 0.5}], 1)
    """
    from jaxreg.lab import analysis, grids

    preset = load_preset(name)
    base, variant = preset["base"], preset.get("variant")
    if model is not None:
        if model not in MODEL_BASES:
            raise ValueError(f"model {model!r}: allowed models are {', '.join(MODEL_BASES)}")
        if MODEL_BASES[model] != base:
            base, variant = MODEL_BASES[model], None
    overrides = dict(preset.get("overrides", {}))
    overrides.update({k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None})
    config = train_config(base, variant, overrides)
    if hidden is not None:
        net = config.model
        widths = {w: hidden for w in _WIDTHS if hasattr(net, w)}
        config = dataclasses.replace(config, model=net.clone(**widths, parent=None))
    if grid:
        points = grids.grid(**grid)
    elif "grid" in preset:
        points = grids.grid(**preset["grid"])
    else:
        points = [dict(p) for p in preset["points"]]
    check_points(config, points)
    analysis_name = preset.get("analysis")
    return Plan(
        name=preset["name"],
        description=preset["description"],
        config=config,
        points=points,
        seeds=tuple(int(s) for s in (seeds or preset.get("seeds", (0,)))),
        validation=int(preset.get("validation", 0)),
        plots=[_plot(spec) for spec in preset.get("plots", [])],
        notes=analysis.ANALYSES[analysis_name] if analysis_name else None,
    )


def load_dataset(
    plan: Plan,
    *,
    data_dir: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    validation: int | None = None,
    synthetic: int | None = None,
):
    """The sweep's data: Fashion-MNIST (or ``synthetic`` blobs of that many training examples).

    Args:
      plan: the plan (its ``validation`` is the default split).
      data_dir: folder with the Fashion-MNIST IDX files.
      train_size: first N training images.
      test_size: first N test images.
      validation: images held out of training, instead of the plan's.
      synthetic: N: synthetic classification blobs (N train, N // 4 test) instead.

    Returns:
      A ``jaxreg.lab.data`` dataset tuple.
    """
    from jaxreg.lab import data as data_mod

    validation = plan.validation if validation is None else validation
    if synthetic:
        dataset = data_mod.synthetic_classification(
            synthetic, max(synthetic // 4, 1), validation=validation, seed=0
        )
        if test_size:
            dataset = dataset._replace(
                x_test=dataset.x_test[:test_size], y_test=dataset.y_test[:test_size]
            )
        return dataset
    return data_mod.load_fashion_mnist(
        data_dir, validation=validation, seed=0, train_size=train_size, test_size=test_size
    )


def default_out(plan: Plan, data_options: Mapping[str, Any]) -> Path:
    """``runs/sweep/<name>-<id>``, ``id`` a hash of the plan and data: the same command resumes."""
    key = [plan.name, repr(plan.config), plan.points, plan.seeds, sorted(data_options.items())]
    ident = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:8]
    return Path("runs") / "sweep" / f"{plan.name}-{ident}"


def run_plan(
    plan: Plan,
    dataset: Any,
    out: str | Path,
    *,
    command: str = "",
    source: str = "fashion-mnist",
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    devices: int | None = None,
    resume: bool = True,
    baseline: bool = False,
    quiet: bool = False,
) -> Path | None:
    """Runs the plan and writes its sweep folder (on process 0 of a multi-host job).

    Args:
      plan: from :func:`build_plan`.
      dataset: from :func:`load_dataset`.
      out: the sweep folder (chunk checkpoints in ``out/chunks``; the same ``out`` resumes).
      command: the command line, for the report.
      source: where the data came from, for ``config.json``.
      chunk_size: runs per compiled call; None: by memory.
      memory_budget: bytes per device for the automatic chunk size.
      devices: use only the first N devices.
      resume: reuse finished chunks.
      baseline: also time one un-vmapped single-model run.
      quiet: no progress bar and no report on stdout.

    Returns:
      The path of ``report.md``, or None on processes other than 0.
    """
    import jax

    from jaxreg.lab import engine, report, sweep

    train = engine.make_train(plan.config, dataset)
    is_main = jax.process_index() == 0
    n_runs = len(plan.points) * len(plan.seeds)
    progress = None
    if is_main and not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=n_runs, desc=f"sweep {plan.name}", unit="run")
    result = sweep.run_sweep(
        train,
        plan.points,
        plan.seeds,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        out_dir=out,
        resume=resume,
        devices=jax.devices()[:devices] if devices else None,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    timed = None
    if baseline:
        timed = sweep.time_single_run(train, plan.points[0], plan.seeds[0])
    if not is_main:
        return None
    cfg = plan.config
    config = {
        "preset": plan.name,
        "description": plan.description,
        "train_config": {f.name: repr(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)},
        "data": {
            "train": len(dataset.x_train),
            "test": len(dataset.x_test) if dataset.x_test is not None else 0,
            "validation": 0 if dataset.x_val is None else len(dataset.x_val),
            "source": source,
        },
        "baseline": timed,
    }
    return report.write_sweep_report(
        result,
        out,
        name=plan.name,
        command=command,
        config=config,
        notes=[plan.description, "", *(plan.notes(result) if plan.notes else [])],
        baseline=timed,
        plots=plan.plots,
    )


def jax_demo_sweep(data: Any, points, seeds, *, epochs: int, hidden: int) -> dict[str, Any]:
    """jaxreg's vmapped sweep of seeds 003/004's MLP (SGD lr 0.5) over ``points`` x ``seeds``.

    The JAX row of :func:`jaxreg.torch_ref.sweep.compare_sweeps` (pass it as ``jax_sweep=``).

    Returns:
      ``{"test_acc": [points, seeds, epochs], "seconds": run s, "compile": compile s}``.
    """
    import numpy as np

    from jaxreg.lab import engine, sweep
    from jaxreg.models import DropoutMLP

    inputs = int(np.prod(np.shape(data.x_train)[1:]))
    model = DropoutMLP(num_inputs=inputs, num_hiddens1=hidden, num_hiddens2=hidden)
    cfg = engine.TrainConfig(model=model, lr=0.5, epochs=epochs)
    res = sweep.run_sweep(engine.make_train(cfg, data), points, seeds)
    return {
        "test_acc": res.metrics["test_acc"],
        "seconds": res.stats["run_s"],
        "compile": res.stats["compile_s"],
    }

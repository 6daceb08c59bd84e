"""Seed 004's open exercise, answered with statistics: which noise injection beats dropout?

``jaxreg sweep noise-injection`` trains seeds 003/004's 784-256-256-10 MLP (SGD lr 0.5, batch
256, from ``experiments/dropout.py``) on Fashion-MNIST with each regularizer of the preset
``experiments/sweeps/noise_injection.py`` and decides by a tune-then-confirm procedure:

1. **Tune**: each technique trains every point of its small grid on ``tune_seeds``, holding out
   a validation split of the training set; the point with the best mean validation accuracy is
   chosen. The test set plays no part in the choice.
2. **Confirm**: the chosen point trains on ``seeds`` (disjoint from the tuning seeds, so the
   confirmation is not the draw that won the tuning); the test accuracies give a mean and a 95%
   Student-t interval per technique, and the difference to the reference (dropout) an interval
   and a verdict (:mod:`jaxreg.lab.stats`).

Seed ``i`` gives every technique the same initial weights and batch order
(:class:`jaxreg.models.NoiseMLP` names its layers alike for every technique), so the
differences are paired. Every technique is one :class:`jaxreg.lab.engine.TrainConfig`; its
grid and its seeds run vmapped as one compiled program (:func:`jaxreg.lab.sweep.run_sweep`),
the strength, weight decay and max-norm bound being traced hyperparameters. The figures of the
report (:mod:`jaxreg.lab.noise_report`: intervals, verdicts, files) all come from the run.

PyTorch equivalent: none built in; a loop over techniques, grid points and seeds around a torch
training loop, then ``scipy.stats.ttest_rel``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxreg.lab import configs
from jaxreg.lab.noise_report import tuning_mean

PRESET = "noise-injection"
_TOP_KEYS = {"name", "description", "base", "validation", "tune_seeds", "seeds"}
_TOP_KEYS |= {"reference", "techniques"}
_TECH_KEYS = {"name", "technique", "grid", "max_norm", "inherit", "note"}
_GRID_HPARAMS = ("strength", "weight_decay", "max_norm")
_WIDTHS = ("num_inputs", "num_hiddens1", "num_hiddens2", "num_outputs")


def load_preset(path: str | Path | None = None) -> dict[str, Any]:
    """The data of ``experiments/sweeps/noise_injection.py`` (its ``get_config()``), checked.

    Args:
      path: another preset file of the same form; None: the shipped one.

    Example:
      >>> load_preset()["reference"]
      'dropout'
    """
    path = configs.experiments_dir() / "sweeps" / "noise_injection.py" if path is None else path
    return check_preset(configs.load_config_file(path, name="sweep_noise_injection"))


def check_preset(preset: Mapping[str, Any]) -> dict[str, Any]:
    """Validates a noise-injection preset; returns it as a plain dict.

    Raises:
      ValueError: an unknown key, an unknown ``technique``, a grid over a hyperparameter other
        than ``strength``/``weight_decay``/``max_norm``, an empty grid, an ``inherit`` from a
        technique not listed before, overlapping tuning and confirmation seeds, or a
        ``reference`` that is not a technique's name.

    Example:
      >>> check_preset({"techniques": [{"name": "x", "technique": "l2"}]})  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: technique 'x': technique='l2'; allowed values are ('none', 'dropout', ...
    """
    from jaxreg.models import NOISE_TECHNIQUES

    preset = dict(preset)
    unknown = sorted(set(preset) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"preset: unknown keys {unknown}; allowed: {sorted(_TOP_KEYS)}")
    names: list[str] = []
    for tech in preset.get("techniques", []):
        name = tech.get("name")
        bad = sorted(set(tech) - _TECH_KEYS)
        if bad:
            raise ValueError(
                f"technique {name!r}: unknown keys {bad}; allowed: {sorted(_TECH_KEYS)}"
            )
        if tech.get("technique") not in NOISE_TECHNIQUES:
            raise ValueError(
                f"technique {name!r}: technique={tech.get('technique')!r}; allowed values are "
                f"{NOISE_TECHNIQUES}"
            )
        for axis, values in tech.get("grid", {}).items():
            if axis not in _GRID_HPARAMS:
                raise ValueError(
                    f"technique {name!r}: grid axis {axis!r}; allowed: {_GRID_HPARAMS}"
                )
            if not values or not all(math.isfinite(float(v)) for v in values):
                raise ValueError(f"technique {name!r}: grid axis {axis!r} needs finite values")
        for axis, source in tech.get("inherit", {}).items():
            if source not in names:
                raise ValueError(
                    f"technique {name!r}: inherit {axis!r} from {source!r}, which is not a "
                    f"technique listed before it ({names})"
                )
        if name in names:
            raise ValueError(f"technique name {name!r} appears twice")
        names.append(name)
    if not names:
        raise ValueError("preset: 'techniques' is empty")
    if preset.get("reference") not in names:
        raise ValueError(f"reference={preset.get('reference')!r}: allowed values are {names}")
    overlap = set(preset.get("tune_seeds", ())) & set(preset.get("seeds", ()))
    if overlap:
        raise ValueError(f"tune_seeds and seeds share {sorted(overlap)}: keep them disjoint")
    return preset


def train_config(preset: Mapping[str, Any], tech: Mapping[str, Any], epochs: int | None = None):
    """The :class:`jaxreg.lab.engine.TrainConfig` of one technique of the preset.

    The model widths, learning rate, batch size and epochs are the base experiment's
    (``experiments/dropout.py``: seeds 003/004); the model is a :class:`jaxreg.models.NoiseMLP`
    with the technique's noise; ``max_norm`` (the default bound) turns the constraint on.
    Only the last epoch is evaluated (its validation and test accuracy are what the procedure
    reads).

    Example:
      >>> cfg = train_config(load_preset(), {"name": "gn", "technique": "gaussian_noise"}, 1)
      >>> type(cfg.model).__name__, cfg.model.technique, cfg.lr, cfg.batch_size
      ('NoiseMLP', 'gaussian_noise', 0.5, 256)
    """
    from jaxreg.lab.engine import TrainConfig
    from jaxreg.lab.presets import base_spec
    from jaxreg.models import NoiseMLP

    spec = base_spec(preset["base"])
    # The base model's widths (seeds 003/004's 784-256-256-10), its rates replaced by the noise.
    widths = {k: getattr(spec.model, k) for k in _WIDTHS if hasattr(spec.model, k)}
    epochs = int(epochs or spec.epochs)
    max_norm = tech.get("max_norm")
    return TrainConfig(
        model=NoiseMLP(technique=tech["technique"], **widths),
        lr=spec.optimizer.lr,
        batch_size=spec.batch_size,
        epochs=epochs,
        eval_every=epochs,
        max_norm=None if max_norm is None else float(max_norm),
    )


def _points(tech: Mapping[str, Any], chosen: Mapping[str, dict]) -> list[dict[str, float]]:
    from jaxreg.lab.sweep import grid

    fixed = {axis: chosen[source][axis] for axis, source in tech.get("inherit", {}).items()}
    # Every point names weight_decay (always a used hparam) so a technique with nothing to
    # tune is still a one-point sweep with a hyperparameter axis.
    base = {"weight_decay": 0.0, **fixed}
    axes = tech.get("grid", {})
    return [{**base, **p} for p in grid(**axes)] if axes else [base]


def _add_timing(timing: dict[str, float], stats: Mapping[str, Any]) -> None:
    timing["compile_s"] += stats["compile_s"]
    timing["run_s"] += stats["run_s_session"]


def _final(result: Any, metric: str) -> list[list[float]]:
    return [[float(v) for v in row] for row in result.final(metric)]


def tune_then_confirm(
    preset: Mapping[str, Any],
    dataset: Any,
    *,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    tune_seeds: Sequence[int] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Runs the procedure of the module docstring on ``dataset``; returns every measured number.

    Args:
      preset: from :func:`load_preset` (or :func:`check_preset`).
      dataset: a ``jaxreg.lab.data.FashionMNIST`` with a validation split (``x_val``).
      epochs: epochs per run instead of the base experiment's.
      seeds: confirmation seeds instead of the preset's.
      tune_seeds: tuning seeds instead of the preset's.
      log: optional ``log(str)`` for progress lines.

    Returns:
      A JSON-able dict: ``epochs``, ``seeds``, ``tune_seeds``, ``reference`` and
      ``techniques``, one entry per technique with its ``tuning`` (point, per-seed validation
      accuracy, mean), ``chosen`` point, per-seed ``test_acc``/``val_acc``/``train_acc``,
      diverged runs and timings.

    Raises:
      ValueError: no validation split, or overlapping seed sets.
    """
    from jaxreg.lab import engine, sweep

    if getattr(dataset, "x_val", None) is None:
        raise ValueError("dataset has no validation split: tuning never looks at the test set")
    seeds = [int(s) for s in (seeds if seeds is not None else preset["seeds"])]
    tune_seeds = [int(s) for s in (tune_seeds if tune_seeds is not None else preset["tune_seeds"])]
    check_preset({**preset, "seeds": seeds, "tune_seeds": tune_seeds})
    chosen: dict[str, dict[str, float]] = {}
    out = []
    # Techniques with the same static config (none and weight decay) share one Train, and both
    # phases run in chunks of len(seeds) runs: one compiled program per distinct config.
    trains: dict[Any, Any] = {}
    chunk = len(seeds)
    for tech in preset["techniques"]:
        cfg = train_config(preset, tech, epochs)
        if cfg not in trains:
            trains[cfg] = engine.make_train(cfg, dataset)
        train = trains[cfg]
        points = _points(tech, chosen)
        entry: dict[str, Any] = {"name": tech["name"], "technique": tech["technique"]}
        entry["max_norm"] = cfg.max_norm is not None
        entry["note"] = tech.get("note", "")
        timing = {"compile_s": 0.0, "run_s": 0.0}
        tuning = []
        best = 0
        if len(points) > 1:
            result = sweep.run_sweep(train, points, tune_seeds, chunk_size=chunk)
            val = _final(result, "val_acc")
            means = [tuning_mean(v) for v in val]
            # A diverged point (NaN mean) never wins; ties go to the first point.
            best = max(
                range(len(points)),
                key=lambda i: (means[i] if math.isfinite(means[i]) else -math.inf, -i),
            )
            tuning = [
                {"point": p, "val_acc": v, "val_acc_mean": m}
                for p, v, m in zip(points, val, means, strict=True)
            ]
            _add_timing(timing, result.stats)
        chosen[tech["name"]] = points[best]
        result = sweep.run_sweep(train, [points[best]], seeds, chunk_size=chunk)
        _add_timing(timing, result.stats)
        entry.update(
            tuning=tuning,
            chosen=points[best],
            test_acc=_final(result, "test_acc")[0],
            val_acc=_final(result, "val_acc")[0],
            train_acc=_final(result, "train_acc")[0],
            diverged=[s for s, d in zip(seeds, result.diverged[0], strict=True) if d],
            timing=timing,
        )
        out.append(entry)
        if log is not None:
            accs = ", ".join(f"{a:.4f}" for a in entry["test_acc"])
            log(f"{tech['name']}: chose {points[best]}; test acc {accs} ({timing['run_s']:.0f} s)")
    return {
        "epochs": cfg.epochs,
        "seeds": seeds,
        "tune_seeds": tune_seeds,
        "reference": preset["reference"],
        "data": {
            "train": len(dataset.x_train),
            "validation": len(dataset.x_val),
            "test": len(dataset.x_test),
        },
        "techniques": out,
    }


def run(
    out: str | Path,
    *,
    preset: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    tune_seeds: Sequence[int] | None = None,
    data_dir: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    validation: int | None = None,
    synthetic: int | None = None,
    command: str = "",
    log: Any = None,
    run_id: str = "",
) -> Path:
    """Loads the data, runs :func:`tune_then_confirm`, writes the report folder.

    Args:
      out: the output folder.
      preset: the preset data; None: :func:`load_preset`.
      epochs: epochs per run instead of the base experiment's.
      seeds: confirmation seeds instead of the preset's.
      tune_seeds: tuning seeds instead of the preset's.
      data_dir: folder with the Fashion-MNIST IDX files.
      train_size: keep the first N training images (after the validation split).
      test_size: keep the first N test images.
      validation: images held out for tuning instead of the preset's.
      synthetic: N: synthetic blobs (N train) instead of Fashion-MNIST (tests).
      command: the command line, for the report.
      log: optional ``log(str)``.
      run_id: the run folder's id, put on every result row.

    Returns:
      The path of ``report.md``.

    Example:
      >>> run("runs/sweep/noise-injection", epochs=1, train_size=2048)  # doctest: +SKIP
    """
    from jaxreg.lab import data, noise_report

    preset = load_preset() if preset is None else check_preset(preset)
    n_val = int(preset["validation"] if validation is None else validation)
    if n_val < 1:
        raise ValueError(f"validation={n_val}: the tuning needs a validation split (>= 1 image)")
    if synthetic:
        dataset = data.synthetic_classification(synthetic, max(synthetic // 4, 1), validation=n_val)
        if test_size:
            dataset = dataset._replace(
                x_test=dataset.x_test[:test_size], y_test=dataset.y_test[:test_size]
            )
    else:
        dataset = data.load_fashion_mnist(
            data_dir, validation=n_val, seed=0, train_size=train_size, test_size=test_size
        )
    results = tune_then_confirm(
        preset, dataset, epochs=epochs, seeds=seeds, tune_seeds=tune_seeds, log=log
    )
    results["level"] = 0.95
    results["data"]["source"] = f"synthetic({synthetic})" if synthetic else "fashion-mnist"
    rows = noise_report.analyse(results, results["level"])
    return noise_report.write(
        results,
        rows,
        out,
        command=command,
        description=preset.get("description", ""),
        run_id=run_id,
    )


# Options of `jaxreg sweep` that a tune-then-confirm run cannot honour (grids are per technique).
_REFUSED = ("grid", "model", "hidden", "lr", "chunk_size", "memory_budget", "devices", "no_resume")
_REFUSED += ("baseline", "distributed", "coordinator", "num_processes", "process_id")


def main(parser: Any, args: Any, argv: Sequence[str]) -> int:
    """``jaxreg sweep noise-injection [--epochs N] [--seeds S ...] [--train-size N] ...``.

    Called by :mod:`jaxreg.lab.cli` with its parsed ``sweep`` arguments; options that do not
    apply (``--grid``, ``--model``, multi-host, ...) end the command with one line naming them.

    Returns:
      The exit status.
    """
    import hashlib
    import json
    import sys

    given = [
        f"--{k.replace('_', '-')}"
        for k in _REFUSED
        if getattr(args, k, None) not in (None, False, [])
    ]
    if given:
        parser.error(
            f"{', '.join(given)}: not options of noise-injection (its grids are per technique, "
            "in experiments/sweeps/noise_injection.py)"
        )
    options = {
        "epochs": args.epochs,
        "seeds": args.seeds,
        "data_dir": args.data_dir,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "validation": args.validation,
        "synthetic": args.synthetic,
    }
    ident = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    out = args.out or Path("runs") / "sweep" / f"{PRESET}-{ident}"
    log = None if args.quiet else print
    from jaxreg.lab.cli_commands import open_folder
    from jaxreg.lab.run_folder import RunFolderError

    if getattr(args, "resume", False):
        parser.error("--resume: noise-injection cannot resume (it starts clean); use --overwrite")
    try:
        # One run per folder (refused if --out holds another; --overwrite replaces it).
        folder = open_folder(out, "sweep", args)
    except RunFolderError as err:
        print(f"jaxreg sweep: error: {err}", file=sys.stderr)
        return 1
    # Leaving the block completes the run (manifest last); an exception marks it failed.
    with folder:
        try:
            report = run(
                out, command="jaxreg " + " ".join(argv), log=log, run_id=folder.run_id, **options
            )
        except (FileNotFoundError, ValueError) as err:
            folder.fail(f"{type(err).__name__}: {err}")
            print(f"jaxreg sweep: error: {err}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(report.read_text())
    print(f"sweep {PRESET}: report in {report} (run {folder.run_id})")
    return 0

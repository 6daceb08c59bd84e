"""Registry, options, config loading and the run-folder plumbing shared by every recipe."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jaxreg.lab import configs, report
from jaxreg.lab.report import FRAMEWORKS


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One registered experiment: where its config and its runner live, what it shows."""

    module: str
    seeds: str
    summary: str
    faithful: str
    unmatched: str | None = None
    """Why ``--matched``, ``--dtype float64`` and ``--seeds N`` do not apply (None: they do)."""


EXPERIMENTS: dict[str, Experiment] = {
    "weight-decay": Experiment(
        "weight_decay",
        "004",
        "Fashion-MNIST MLP: no penalty / mean-form l2_penalty in the loss / optimizer weight "
        "decay on the weights only, each from the same initialization",
        "train one network on through the three runs, as the seed did",
    ),
    "dropout": Experiment(
        "dropout",
        "003/004",
        "Fashion-MNIST MLP with dropout 0.2/0.5, scratch and concise, lr 0.5, evaluated with "
        "dropout off",
        "evaluate with dropout active, as the seed's evaluate_accuracy did",
    ),
    "overfit": Experiment(
        "overfit",
        "002",
        "20-point regression, 300-300 MLP with and without dropout, fit curves every 50 epochs",
        "no difference (the seed already evaluates in eval mode)",
    ),
    "activity": Experiment(
        "activity",
        "001",
        "L1 on layer1_out + L2 norm on layer2_out, SGD 1e-4, 1000 steps on one model",
        "re-create the model and optimizer every step, as the seed does",
        "trains one model on batches drawn once in JAX and fed to both frameworks (matched "
        "by construction; ActivityMLP has no dropout), for steps, not epochs",
    ),
    "vgg-norms": Experiment(
        "vgg_norms",
        "000",
        "L1 and sum of per-tensor L2 norms over VGG16's 138M parameters, same weights",
        "no difference (the seed's sums are reproduced exactly)",
        "has no training loop: both frameworks sum the same weights once",
    ),
    "mc-dropout": Experiment(
        "mc_dropout",
        "001",
        "TwoLayerNet with dropout: Monte-Carlo averaging of M passes vs weight scaling",
        "train the seed's model whose F.dropout never turns off",
        "evaluates with Monte-Carlo dropout passes whose masks each framework draws itself "
        "(only its training could be shared)",
    ),
    "numpy-dropout": Experiment(
        "numpy_dropout",
        "000/002",
        "the seeds' NumPy dropout references vs jaxreg and torch on the same masks",
        "no difference (the references are the seeds' code)",
        "has no training loop: both sides already replay the NumPy references' masks, in float64",
    ),
}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Command-line options of ``jaxreg run`` / ``jaxreg main`` (see ``jaxreg.lab.cli``).

    Attributes:
      framework: ``"jax"``, ``"torch"`` or ``"both"``.
      epochs: epochs (steps for ``activity``) overriding the config's, or None.
      seed: the PRNG seed of both frameworks.
      faithful: reproduce the seed's defects (each experiment says which).
      out: output folder, or None for ``runs/NAME/<timestamp>/``.
      data_dir: Fashion-MNIST folder, or None for the default.
      limit_train: use only the first N training examples.
      limit_test: use only the first N test examples.
      progress: show tqdm progress bars.
      config_path: a config file to use instead of ``experiments/<name>.py``.
      command: the command line, written into report.md.
      matched: share batch orders and dropout masks between the frameworks
        (:mod:`jaxreg.lab.matched`) and report the per-epoch JAX-torch differences.
      dtype: ``"float32"`` or ``"float64"`` (both frameworks; needs 64-bit JAX enabled first).
      seeds: seeds ``seed .. seed + seeds - 1``: the JAX side vmapped over them in one compiled
        program, torch one after another; the report gives means, intervals and differences.
    """

    framework: str = "both"
    epochs: int | None = None
    seed: int = 0
    faithful: bool = False
    out: str | Path | None = None
    data_dir: str | Path | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    progress: bool = False
    config_path: str | Path | None = None
    command: str = ""
    matched: bool = False
    dtype: str = "float32"
    seeds: int = 1

    @property
    def seed_list(self) -> list[int]:
        """The run's seeds: ``seed, seed + 1, ..., seed + seeds - 1``."""
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def compared(self) -> bool:
        """Whether any of ``--matched``, ``--dtype float64``, ``--seeds N`` was asked for."""
        return self.matched or self.dtype != "float32" or self.seeds > 1

    @property
    def frameworks(self) -> tuple[str, ...]:
        """The frameworks to run, in table order."""
        if self.framework == "both":
            return FRAMEWORKS
        if self.framework not in FRAMEWORKS:
            raise ValueError(
                f"framework={self.framework!r}: allowed values are {(*FRAMEWORKS, 'both')}"
            )
        return (self.framework,)


@dataclasses.dataclass
class RunResult:
    """What a run produced: its folder, its result rows, their markdown table, its notes."""

    name: str
    run_dir: Path
    rows: list[dict[str, Any]]
    table: str
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Context:
    """Everything a recipe's ``run(ctx)`` needs: config, options and the recorder."""

    name: str
    config: Any
    """The experiment's ``get_config()``: a :class:`jaxreg.lab.spec.Spec` (weight-decay,
    dropout) or the plain dict of an experiment that is not a spec yet."""
    options: RunOptions
    recorder: report.RunRecorder
    runs: dict[tuple[str, str], list[dict[str, list[float]]]] = dataclasses.field(
        default_factory=dict
    )
    """``(variant, framework) -> [history per seed]``, for the comparison sections."""

    @property
    def run_dir(self) -> Path:
        return self.recorder.run_dir

    @property
    def frameworks(self) -> tuple[str, ...]:
        return self.options.frameworks

    def epochs(self, key: str = "epochs") -> int:
        """``--epochs`` if given, else the config's value under ``key`` (a spec's ``epochs``)."""
        if self.options.epochs:
            return int(self.options.epochs)
        if isinstance(self.config, Mapping):
            return int(self.config[key])
        return int(getattr(self.config, key))

    def progress(self, total: int, desc: str):
        """A tqdm bar, disabled unless ``options.progress`` (a terminal)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, disable=not self.options.progress)

    def result(self, **row: Any) -> dict[str, Any]:
        """Records a results row (see ``report.RESULT_COLUMNS``)."""
        return self.recorder.add_result(**row)


@dataclasses.dataclass
class Outcome:
    """What a recipe returns besides its rows: plots to embed and notes for report.md."""

    plots: list[Path] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def describe_experiments() -> str:
    """The text of ``jaxreg list``: name, seeds, what it shows, what --faithful changes."""
    lines = []
    for name, exp in EXPERIMENTS.items():
        lines.append(f"{name:<14} seed {exp.seeds:<8} {exp.summary}")
        lines.append(f"{'':<14} --faithful: {exp.faithful}")
        lines.append(f"{'':<14} config: experiments/{exp.module}.py")
    return "\n".join(lines)


def _check_name(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is unknown; allowed: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def check_options(name: str, options: RunOptions) -> None:
    """Raises ValueError (one line) when the options cannot apply to experiment ``name``.

    Example:
      >>> check_options("vgg-norms", RunOptions(matched=True))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: --matched applies to weight-decay, dropout, overfit only: vgg-norms has no ...
    """
    exp = _check_name(name)
    flags = [
        flag
        for flag, asked in (
            ("--matched", options.matched),
            (f"--dtype {options.dtype}", options.dtype != "float32"),
            (f"--seeds {options.seeds}", options.seeds > 1),
        )
        if asked
    ]
    if flags and exp.unmatched is not None:
        supported = ", ".join(n for n, e in EXPERIMENTS.items() if e.unmatched is None)
        raise ValueError(f"{flags[0]} applies to {supported} only: {name} {exp.unmatched}")
    if options.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={options.dtype!r}: allowed values are ('float32', 'float64')")
    if options.seeds < 1:
        raise ValueError(f"seeds={options.seeds!r}: expected a positive int")
    if options.matched and options.framework != "both":
        raise ValueError(
            "--matched shares one run's streams between JAX and torch: it needs --framework both"
        )
    if options.faithful and options.matched and name == "dropout":
        raise ValueError(
            "--faithful evaluates with dropout active, whose masks are not shared: "
            "it cannot be --matched (drop one of the two)"
        )
    if options.faithful and options.seeds > 1:
        raise ValueError("--faithful reproduces the seed's single run: use it with --seeds 1")
    if options.dtype == "float64":
        import jax

        if not jax.config.jax_enable_x64:
            raise ValueError(
                "--dtype float64 needs 64-bit JAX: call "
                "jax.config.update('jax_enable_x64', True) before any array "
                "(`jaxreg run` does)"
            )


def load_config(name: str, path: str | Path | None = None) -> Any:
    """Loads an experiment config: ``get_config()`` of ``experiments/<module>.py`` or ``path``.

    Args:
      name: experiment name, e.g. ``"dropout"``.
      path: a config file to use instead of the default one.

    Returns:
      What ``get_config()`` returns: a :class:`jaxreg.lab.spec.Spec` (weight-decay, dropout)
      or a dict.

    Example:
      >>> load_config("dropout").optimizer.lr
      0.5
    """
    exp = _check_name(name)
    path = Path(path) if path is not None else configs.experiments_dir() / f"{exp.module}.py"
    return configs.load_config_file(path, name=exp.module)


def _runner(name: str) -> Callable[[Context], Outcome]:
    exp = _check_name(name)
    return importlib.import_module(f"jaxreg.lab.recipes.{exp.module}").run


def run_experiment(name: str, options: RunOptions, *, out: str | Path | None = None) -> RunResult:
    """Runs one experiment and writes its run folder.

    Args:
      name: one of ``EXPERIMENTS``.
      options: the command-line options.
      out: output folder overriding ``options.out`` (``run_main`` uses subfolders).

    Returns:
      A ``RunResult`` (folder, rows, markdown table).

    Example:
      >>> run_experiment("numpy-dropout", RunOptions(framework="jax"))  # doctest: +SKIP
    """
    exp = _check_name(name)
    check_options(name, options)
    config = load_config(name, options.config_path)
    run_dir = report.make_run_dir(name, out if out is not None else options.out)
    recorder = report.RunRecorder(run_dir, name)
    from jaxreg.lab.spec import plain

    recorder.write_config(
        {"experiment": name, "config": plain(config), "options": options.__dict__}
    )
    ctx = Context(name, config, options, recorder)
    notes = [f"Seed(s) {exp.seeds}: {exp.summary}."]
    if "torch" in options.frameworks:
        from jaxreg.torch_ref.engine import THREADS_ENV, configure_threads

        threads = configure_threads()
        notes.append(f"torch ran with {threads} CPU thread(s) (${THREADS_ENV}).")
    start = time.perf_counter()
    outcome = _runner(name)(ctx)
    if options.faithful:
        notes.append(f"--faithful: {exp.faithful}.")
    notes += outcome.notes
    if options.compared:
        from jaxreg.lab import comparison

        notes += comparison.sections(
            ctx.runs,
            run_dir,
            matched=options.matched,
            dtype=options.dtype,
            seeds=options.seed_list,
        )
    notes.append(f"Total wall time {time.perf_counter() - start:.1f} s.")
    report.write_report(
        run_dir,
        f"{name} (seed {exp.seeds})",
        recorder.rows,
        plots=outcome.plots,
        notes=notes,
        command=options.command,
    )
    return RunResult(name, run_dir, recorder.rows, report.format_table(recorder.rows), notes)

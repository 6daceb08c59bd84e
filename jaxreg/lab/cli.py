"""The ``jaxreg`` command line, the project's one argument parser; the work is done elsewhere.

Usage::

    jaxreg list
    jaxreg run NAME [--framework jax|torch|both] [--epochs N] [--seed S] [--faithful]
                    [--matched] [--dtype float32|float64] [--seeds N] [--config FILE]
                    [--out DIR] [--overwrite] [--data-dir D] [--train-size N] [--test-size N]
    jaxreg main [--framework ...] [--epochs N] [--seed S] [--matched] [--dtype D] [--seeds N]
                    [--out DIR] [--overwrite] [--data-dir D]
    jaxreg sweep PRESET [--grid NAME=VALUES ...] [--seeds S ...] [--epochs N] [--model M]
                    [--chunk-size N] [--out DIR] [--overwrite | --resume | --no-resume]
                    [--synthetic N] [--baseline] [multi-host ...]
    jaxreg compare SPEC.py [--dtype D] [--epochs N] [--seeds N] [--out DIR] [--overwrite]
    jaxreg bench [--quick] [--rows ROW ...] [--out DIR]

``run`` and ``main`` go to :mod:`jaxreg.lab.recipes`; ``sweep`` to :mod:`jaxreg.lab.presets`
(presets in ``experiments/sweeps/``; ``jaxreg sweep --help`` lists them); ``compare`` to
``jaxreg.lab.compare_cli`` (imported when the parser is built: it imports no jax); ``bench`` to
``benchmarks.run.run`` of a source checkout; :mod:`jaxreg.lab.cli_commands` does the checks and
the dispatch. ``--out``, ``--data-dir``, ``--epochs``, ``--train-size`` and ``--test-size`` mean
the same in every subcommand; an ``--out`` folder holds one run (:mod:`jaxreg.lab.run_folder`).
Every value is checked before any work: a bad one ends the command with one line naming the
option and what it accepts (exit status 2), a file or folder problem with one line naming the
path (exit status 1), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxreg.lab import cli_commands as commands
from jaxreg.lab import cli_values as values

FRAMEWORK_CHOICES = ("jax", "torch", "both")

# Kept here (not imported from recipes) so that `jaxreg --help` and argument errors cost no
# jax import; tests check it equals jaxreg.lab.recipes.EXPERIMENTS' keys.
# fmt: off
EXPERIMENT_NAMES = (
    "weight-decay", "dropout", "overfit", "activity", "vgg-norms", "mc-dropout", "numpy-dropout"
)
# fmt: on
MODEL_CHOICES = ("dropout-mlp", "weight-decay-mlp")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line: the message names the option and the allowed values; the usage block
        # would bury it.
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ---- the parser --------------------------------------------------------------------------------
def _add_shared(parser: argparse.ArgumentParser, *, out_default: str) -> None:
    parser.add_argument(
        "--epochs",
        type=values.positive_int,
        default=None,
        help="epochs instead of the config's (activity: steps; numpy-dropout: trials; "
        "vgg-norms: ignored)",
    )
    parser.add_argument(
        "--out", default=None, help=f"output folder, one run per folder (default: {out_default})"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run that --out already holds"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the Fashion-MNIST IDX files (default: $JAXREG_DATA_DIR or "
        "/usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--train-size",
        "--limit-train",
        dest="train_size",
        type=values.positive_int,
        default=None,
        help="use only the first N training examples",
    )
    parser.add_argument(
        "--test-size",
        "--limit-test",
        dest="test_size",
        type=values.positive_int,
        default=None,
        help="use only the first N test examples",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_shared(parser, out_default="runs/NAME/<UTC timestamp>/")
    parser.add_argument(
        "--framework",
        choices=FRAMEWORK_CHOICES,
        default="both",
        help="which side runs the recipe (default: both)",
    )
    parser.add_argument("--seed", type=values.seed, default=0, help="PRNG seed (default: 0)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars even on a terminal"
    )
    parser.add_argument(
        "--matched",
        action="store_true",
        help="both frameworks share batch orders and dropout masks; report the per-epoch "
        "JAX-torch gaps",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--seeds",
        type=values.positive_int,
        default=None,
        help="N seeds from --seed (JAX vmapped, torch in turn): means, 95%% intervals, "
        "JAX-torch differences",
    )


# (flag, value type or None for a switch, help) of `jaxreg sweep`'s simple options.
_SWEEP_OPTIONS = (
    ("--lr", values.positive_float, "learning rate (a grid's lr wins)"),
    ("--hidden", values.positive_int, "hidden width(s) of the MLP"),
    ("--chunk-size", values.positive_int, "runs per compiled call (default: by memory)"),
    ("--memory-budget", values.positive_float, "bytes per device for automatic chunks"),
    ("--devices", values.positive_int, "use only the first N devices"),
    ("--resume", None, "continue the sweep --out holds, also a complete one (reads its chunks)"),
    ("--no-resume", None, "start an interrupted sweep in --out clean instead of resuming it"),
    ("--validation", values.nonneg_int, "images held out of training for validation"),
    ("--synthetic", values.positive_int, "N: synthetic blobs, N training examples"),
    ("--baseline", None, "also time one un-vmapped single-model run for the cost ratio"),
    ("--distributed", None, "multi-host: jax.distributed.initialize() detects the cluster"),
    ("--coordinator", str, "multi-host: coordinator HOST:PORT"),
    ("--num-processes", values.positive_int, "multi-host: number of processes"),
    ("--process-id", values.nonneg_int, "multi-host: this process's index"),
    ("--quiet", None, "no progress bar or table"),
)


def _add_sweep(sub) -> None:
    from jaxreg.lab.presets import preset_names

    sweep = sub.add_parser(
        "sweep",
        help="a hyperparameter grid x seeds as one vmapped, compiled JAX program",
        description="Train a hyperparameter grid x seeds as one vmapped, compiled JAX program "
        "(sharded over all devices, checkpointed per chunk, resumable: run the same command "
        "again). Presets are the configs in experiments/sweeps/.",
    )
    sweep.add_argument(
        "preset",
        choices=preset_names(),
        metavar="PRESET",
        help="which sweep: " + ", ".join(preset_names()),
    )
    _add_shared(sweep, out_default="runs/sweep/PRESET-<id>/")
    sweep.add_argument("--seeds", type=values.seed, nargs="+", help="seeds (default: the preset's)")
    sweep.add_argument(
        "--grid",
        type=values.grid_arg,
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="a grid axis, e.g. weight_decay=log:1e-5:1e-2:8 or dropout1=0,0.2,0.5 (repeatable; "
        "the product of the axes replaces the preset's points)",
    )
    sweep.add_argument("--model", choices=MODEL_CHOICES, help="train this MLP instead")
    for flag, kind, text in _SWEEP_OPTIONS:
        if kind is None:
            sweep.add_argument(flag, action="store_true", help=text)
        else:
            sweep.add_argument(flag, type=kind, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxreg`` argument parser: ``list``, ``run``, ``main``, ``sweep``, ``bench``.

    Returns:
      An ``argparse.ArgumentParser`` whose errors are one line (exit status 2).

    Example:
      >>> build_parser().parse_args(["run", "dropout", "--epochs", "2"]).epochs
      2
    """
    parser = _Parser(
        prog="jaxreg",
        description="Regularization experiments from the seed PyTorch tutorials, in JAX and "
        "PyTorch side by side.",
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile every program afresh, without JAX's persistent compilation cache "
        "(default: on, in $JAXREG_CACHE_DIR or ~/.cache/jaxreg/jax; also "
        "$JAXREG_NO_COMPILE_CACHE=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments")

    run = sub.add_parser("run", help="run one experiment by name")
    run.add_argument("name", choices=EXPERIMENT_NAMES, metavar="NAME", help=_names_help())
    _add_run_options(run)
    run.add_argument(
        "--faithful",
        action="store_true",
        help="reproduce the seed's recipe including its defects (see `jaxreg list`)",
    )
    run.add_argument(
        "--config", default=None, help="a config file with get_config() instead of the default"
    )

    main_job = sub.add_parser(
        "main", help="weight-decay and dropout on Fashion-MNIST in both frameworks, one table"
    )
    _add_run_options(main_job)

    _add_sweep(sub)
    _add_compare(sub)

    bench = sub.add_parser(
        "bench", help="the benchmarks of a source checkout (what `make bench` runs)"
    )
    bench.add_argument("--quick", action="store_true", help="the smoke workload (a data slice)")
    bench.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows")
    bench.add_argument("--out", default=None, help="results folder")
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bench.add_argument("--no-plot", action="store_true", help="no PNG")
    return parser


def _add_compare(sub) -> None:
    # H6's module: the subcommand appears as soon as it is installed (it imports no jax).
    try:
        from jaxreg.lab import compare_cli
    except ModuleNotFoundError as err:
        if err.name != "jaxreg.lab.compare_cli":
            raise
        return
    compare = compare_cli.add_parser(sub)
    if compare is not None and "--overwrite" not in compare._option_string_actions:
        compare.add_argument(
            "--overwrite", action="store_true", help="replace the run that --out already holds"
        )


def _names_help() -> str:
    return "experiment: " + ", ".join(EXPERIMENT_NAMES)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxreg`` console script.

    Args:
      argv: arguments without the program name (default: ``sys.argv[1:]``). From the command
        line (``argv`` None), ``run``, ``main`` and ``sweep`` turn on JAX's persistent
        compilation cache unless ``--no-compile-cache``; a call with a list leaves it alone.

    Returns:
      The process exit status (0 on success, 1 when the work failed with a reported error;
      argument errors exit with 2).

    Example:
      >>> main(["list"])  # doctest: +SKIP
    """
    parser = build_parser()
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if from_command_line and args.command in ("run", "main", "sweep", "compare"):
        # The console script turns the cache on for its own process; a caller of main([...])
        # keeps its process's JAX configuration as it is.
        commands.compile_cache(off=args.no_compile_cache)
    if args.command == "sweep":
        return commands.sweep(_subparser(parser, "sweep"), args, argv)
    if args.command == "bench":
        return commands.bench(args)
    if args.command == "compare":
        return commands.compare(args)

    from jaxreg.lab import recipes

    if args.command == "list":
        print(recipes.describe_experiments())
        return 0
    subparser = _subparser(parser, args.command)
    commands.check_torch(subparser, args.framework)
    if args.dtype != "float64":
        return commands.run_or_main(subparser, args, argv, recipes)
    import jax

    # Before any array is made, and restored after, for callers that stay in this process.
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return commands.run_or_main(subparser, args, argv, recipes)
    finally:
        jax.config.update("jax_enable_x64", previous)


if __name__ == "__main__":
    sys.exit(main())

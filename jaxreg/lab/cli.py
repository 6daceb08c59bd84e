"""The ``jaxreg`` command line, the project's one argument parser; the work is done elsewhere.

Usage::

    jaxreg list
    jaxreg run NAME [--framework jax|torch|both] [--epochs N] [--seed S] [--faithful]
                    [--matched] [--dtype float32|float64] [--seeds N]
                    [--config FILE] [--out DIR] [--data-dir D] [--train-size N] [--test-size N]
    jaxreg main [--framework ...] [--epochs N] [--seed S] [--matched] [--dtype D] [--seeds N]
                    [--out DIR] [--data-dir D]
    jaxreg sweep PRESET [--grid NAME=VALUES ...] [--seeds S ...] [--epochs N] [--model M]
                    [--chunk-size N] [--out DIR] [--synthetic N] [--baseline] [multi-host ...]
    jaxreg bench [--quick] [--rows ROW ...] [--out DIR]

``run`` and ``main`` go to :mod:`jaxreg.lab.recipes`; ``sweep`` to :mod:`jaxreg.lab.presets`
(presets in ``experiments/sweeps/``; ``jaxreg sweep --help`` lists them); ``bench`` to
``benchmarks.run.run`` of a source checkout. ``--out``, ``--data-dir``, ``--epochs``,
``--train-size`` and ``--test-size`` mean the same in every subcommand. Every value is checked
while parsing: a bad one ends the command with one line naming the option and what it accepts
(exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

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
    parser.add_argument("--out", default=None, help=f"output folder (default: {out_default})")
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
    ("--no-resume", None, "ignore finished chunks"),
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

    bench = sub.add_parser(
        "bench", help="the benchmarks of a source checkout (what `make bench` runs)"
    )
    bench.add_argument("--quick", action="store_true", help="the smoke workload (a data slice)")
    bench.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows")
    bench.add_argument("--out", default=None, help="results folder")
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bench.add_argument("--no-plot", action="store_true", help="no PNG")
    return parser


def _names_help() -> str:
    return "experiment: " + ", ".join(EXPERIMENT_NAMES)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _check_torch(parser: argparse.ArgumentParser, framework: str) -> None:
    if framework in ("torch", "both") and importlib.util.find_spec("torch") is None:
        parser.error(
            f"--framework {framework} needs PyTorch, which is not installed: "
            "pip install 'jaxreg[torch]' (CPU build: pip install torch==2.13.0), "
            "or use --framework jax"
        )


def _fail(command: str, err: Exception | str) -> int:
    print(f"jaxreg {command}: error: {err}", file=sys.stderr)
    return 1


def _sweep(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    from jaxreg.lab import distributed, presets

    if args.preset == "noise-injection":
        # A tune-then-confirm procedure over several configs, not one grid (issue 11).
        from jaxreg.lab import noise_injection

        return noise_injection.main(parser, args, argv)
    if (args.num_processes is None) != (args.process_id is None) or (
        args.num_processes is not None and not args.coordinator
    ):
        parser.error("--coordinator, --num-processes and --process-id go together")
    if args.num_processes is not None and args.process_id >= args.num_processes:
        parser.error(f"--process-id {args.process_id} must be < --num-processes")
    grid = dict(args.grid)
    if len(grid) != len(args.grid):
        parser.error("--grid: each hyperparameter may be given once")
    distributed.init_distributed(
        args.coordinator, args.num_processes, args.process_id, auto=args.distributed
    )
    try:
        plan = presets.build_plan(
            args.preset,
            model=args.model,
            hidden=args.hidden,
            epochs=args.epochs,
            lr=args.lr,
            grid=grid,
            seeds=args.seeds,
        )
    except ValueError as err:
        parser.error(str(err))
    data_options = {
        "data_dir": args.data_dir,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "validation": args.validation,
        "synthetic": args.synthetic,
    }
    try:
        dataset = presets.load_dataset(plan, **data_options)
        out = args.out or presets.default_out(plan, data_options)
        report = presets.run_plan(
            plan,
            dataset,
            out,
            command="jaxreg " + " ".join(argv),
            source=f"synthetic({args.synthetic})" if args.synthetic else "fashion-mnist",
            chunk_size=args.chunk_size,
            memory_budget=int(args.memory_budget) if args.memory_budget else None,
            devices=args.devices,
            resume=not args.no_resume,
            baseline=args.baseline,
            quiet=args.quiet,
        )
    except (FileNotFoundError, ValueError) as err:
        return _fail("sweep", err)
    if report is not None:
        if not args.quiet:
            print(report.read_text())
        n_runs = len(plan.points) * len(plan.seeds)
        print(f"sweep {plan.name}: {n_runs} runs, report in {report}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    # benchmarks/ is not installed with jaxreg: it is imported from the checkout being run in.
    if (Path.cwd() / "benchmarks" / "run.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        from benchmarks import run as bench_run
    except ModuleNotFoundError as err:
        if err.name != "benchmarks":
            raise
        return _fail("bench", "jaxreg bench runs from a source checkout (make bench)")
    try:
        bench_run.run(
            quick=args.quick,
            rows=args.rows,
            out=args.out,
            device=args.device,
            plot=not args.no_plot,
        )
    except ValueError as err:
        return _fail("bench", err)
    return 0


def _compile_cache(*, off: bool) -> None:
    # A rerun of the same experiment in a new process reads its compiled programs from disk.
    from jaxreg.lab import timing

    if off:
        timing.disable_compilation_cache()
    else:
        timing.enable_compilation_cache()


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
    if from_command_line and args.command in ("run", "main", "sweep"):
        # The console script turns the cache on for its own process; a caller of main([...])
        # keeps its process's JAX configuration as it is.
        _compile_cache(off=args.no_compile_cache)
    if args.command == "sweep":
        return _sweep(_subparser(parser, "sweep"), args, argv)
    if args.command == "bench":
        return _bench(args)

    from jaxreg.lab import recipes

    if args.command == "list":
        print(recipes.describe_experiments())
        return 0
    subparser = _subparser(parser, args.command)
    _check_torch(subparser, args.framework)
    if args.dtype != "float64":
        return _run(subparser, args, argv, recipes)
    import jax

    # Before any array is made, and restored after, for callers that stay in this process.
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return _run(subparser, args, argv, recipes)
    finally:
        jax.config.update("jax_enable_x64", previous)


def _run(subparser, args: argparse.Namespace, argv: list[str], recipes) -> int:
    options = recipes.RunOptions(
        framework=args.framework,
        epochs=args.epochs,
        seed=args.seed,
        faithful=getattr(args, "faithful", False),
        out=args.out,
        data_dir=args.data_dir,
        limit_train=args.train_size,
        limit_test=args.test_size,
        progress=not args.no_progress and sys.stdout.isatty(),
        config_path=getattr(args, "config", None),
        command="jaxreg " + " ".join(argv),
        matched=args.matched,
        dtype=args.dtype,
        seeds=args.seeds or (recipes.MAIN_SEEDS if args.command == "main" else 1),
    )
    names = recipes.MAIN_EXPERIMENTS if args.command == "main" else (args.name,)
    try:
        for name in names:
            recipes.check_options(name, options)
    except ValueError as err:
        subparser.error(str(err))
    try:
        if args.command == "main":
            result = recipes.run_main(options)
        else:
            result = recipes.run_experiment(args.name, options)
    except (FileNotFoundError, ValueError) as err:
        return _fail(args.command, err)
    print(result.table)
    print(f"\nresults in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``jaxreg`` command line: argument parsing only; the work is in ``jaxreg.lab.recipes``.

Usage::

    jaxreg list
    jaxreg run NAME [--framework jax|torch|both] [--epochs N] [--seed S] [--faithful]
                    [--out DIR] [--data-dir D] [--limit-train N] [--limit-test N]
    jaxreg main [--framework ...] [--epochs N] [--seed S] [--out DIR] [--data-dir D]
    jaxreg sweep ...            (handed to jaxreg.lab.sweep's command-line hook)

``NAME`` is one of ``weight-decay``, ``dropout``, ``overfit``, ``activity``, ``vgg-norms``,
``mc-dropout``, ``numpy-dropout``. ``jaxreg main`` runs ``weight-decay`` and ``dropout`` on
Fashion-MNIST in both frameworks and prints their side-by-side table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

FRAMEWORK_CHOICES = ("jax", "torch", "both")

# Kept here (not imported from recipes) so that `jaxreg --help` and argument errors cost no
# jax import; tests check it equals jaxreg.lab.recipes.EXPERIMENTS' keys.
EXPERIMENT_NAMES = (
    "weight-decay",
    "dropout",
    "overfit",
    "activity",
    "vgg-norms",
    "mc-dropout",
    "numpy-dropout",
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (expected >= 1)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer (expected >= 1)")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed (>= 0)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {value} is negative (expected an int >= 0)")
    return value


def _add_run_options(parser: argparse.ArgumentParser, *, framework_default: str) -> None:
    parser.add_argument(
        "--framework",
        choices=FRAMEWORK_CHOICES,
        default=framework_default,
        help=f"which side runs the recipe (default: {framework_default})",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="epochs instead of the config's (activity: steps; numpy-dropout: trials; "
        "vgg-norms: ignored)",
    )
    parser.add_argument("--seed", type=_seed, default=0, help="PRNG seed (default: 0)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/NAME/<UTC timestamp>/)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the Fashion-MNIST IDX files (default: $JAXREG_DATA_DIR or "
        "/usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--limit-train",
        type=_positive_int,
        default=None,
        help="use only the first N training examples (quick checks)",
    )
    parser.add_argument(
        "--limit-test",
        type=_positive_int,
        default=None,
        help="use only the first N test examples (quick checks)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars even on a terminal"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxreg`` argument parser (subcommands ``list``, ``run``, ``main``, ``sweep``).

    Returns:
      An ``argparse.ArgumentParser``.

    Example:
      >>> build_parser().parse_args(["run", "dropout", "--epochs", "2"]).epochs
      2
    """
    parser = argparse.ArgumentParser(
        prog="jaxreg",
        description="Regularization experiments from the seed PyTorch tutorials, in JAX and "
        "PyTorch side by side.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the experiments")

    run = sub.add_parser("run", help="run one experiment by name")
    run.add_argument("name", choices=EXPERIMENT_NAMES, metavar="NAME", help=_names_help())
    _add_run_options(run, framework_default="both")
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
    _add_run_options(main_job, framework_default="both")

    sweep = sub.add_parser(
        "sweep",
        help="hyperparameter sweeps (jaxreg.lab.sweep); `jaxreg sweep --help` for its options",
        add_help=False,
    )
    sweep.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _names_help() -> str:
    return "experiment: " + ", ".join(EXPERIMENT_NAMES)


def _check_torch(parser: argparse.ArgumentParser, framework: str) -> None:
    if framework in ("torch", "both") and importlib.util.find_spec("torch") is None:
        parser.error(
            f"--framework {framework} needs PyTorch, which is not installed: "
            "pip install 'jaxreg[torch]' (CPU build: pip install torch==2.13.0), "
            "or use --framework jax"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxreg`` console script.

    Args:
      argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
      The process exit status (0 on success).

    Example:
      >>> main(["list"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "sweep":
        # The sweep hook owns its options (including --help), so hand them over untouched.
        from jaxreg.lab import sweep

        return int(sweep.main(argv[1:]) or 0)
    args = parser.parse_args(argv)

    from jaxreg.lab import recipes

    if args.command == "list":
        print(recipes.describe_experiments())
        return 0
    _check_torch(parser, args.framework)
    options = recipes.RunOptions(
        framework=args.framework,
        epochs=args.epochs,
        seed=args.seed,
        faithful=getattr(args, "faithful", False),
        out=args.out,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        progress=not args.no_progress and sys.stdout.isatty(),
        config_path=getattr(args, "config", None),
        command="jaxreg " + " ".join(argv),
    )
    try:
        if args.command == "main":
            result = recipes.run_main(options)
        else:
            result = recipes.run_experiment(args.name, options)
    except (FileNotFoundError, ValueError) as err:
        print(f"jaxreg: error: {err}", file=sys.stderr)
        return 1
    print(result.table)
    print(f"\nresults in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

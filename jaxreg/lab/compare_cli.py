"""``jaxreg compare SPEC.py``: the comparison of any model, JAX against its torch twin.

``SPEC.py`` is a Python file with a ``get_config()`` returning a :class:`jaxreg.lab.spec.Spec`
(its docstring is the command that runs it, as for the experiment configs). The command runs
:func:`jaxreg.lab.compare.compare`: the one-batch check (outputs, loss, every gradient, dropout
off and on, float32 and float64), matched training with the float64 per-step gate and the float32
attribution, and the multi-seed verdict. It prints the report, writes it to ``--out`` when given
(``report.md`` and ``compare.json``) and exits with status 0 when every check passes, 1 when one
fails (a mismatch, never a crash), 2 on bad arguments or a SPEC.py without ``get_config``.

:mod:`jaxreg.lab.cli` imports this module only when the subcommand runs (``add_parser`` and
``run``), so ``jaxreg --help`` costs no jax or torch import.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from jaxreg.lab import cli_values as values

DTYPE_CHOICES = ("float32", "float64", "both")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``compare`` subcommand to ``subparsers`` (an ``argparse`` subparsers action)."""
    parser = subparsers.add_parser(
        "compare",
        help="compare your own model with its torch twin (one batch, matched training, seeds)",
        description=(
            "Compare a Flax model with its torch twin from a SPEC.py whose get_config() returns "
            "a jaxreg.lab.spec.Spec: one-batch check (outputs, loss, every gradient; dropout off "
            "and on; float32 and float64), matched training (float64 per-step gate, float32 "
            "attribution) and a multi-seed verdict."
        ),
    )
    parser.add_argument("spec", metavar="SPEC.py", help="a Python file defining get_config()")
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="both",
        help="matched training in float32 (attribution), float64 (the gate) or both "
        "(default: both)",
    )
    parser.add_argument(
        "--epochs",
        type=values.positive_int,
        default=None,
        help="epochs of matched training and of each seed (default: the spec's)",
    )
    parser.add_argument(
        "--seeds",
        type=values.nonneg_int,
        default=None,
        help="seeds of the multi-seed comparison, 0 to skip it (default: the spec's)",
    )
    parser.add_argument("--out", default=None, help="folder for report.md and compare.json")
    return parser


def load_spec(path: str | Path) -> Any:
    """Imports ``path`` and returns its ``get_config()``.

    Raises:
        ValueError: the file is missing, is not ``.py``, or has no callable ``get_config``.
    """
    path = Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise ValueError(f"SPEC.py={str(path)!r}: expected an existing .py file")
    module_spec = importlib.util.spec_from_file_location(f"_jaxreg_spec_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    # Registered before it runs, as an import would: dataclasses and pickling look it up.
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"SPEC.py={str(path)!r}: defines no get_config() returning a Spec")
    return get_config()


def run(args: argparse.Namespace) -> int:
    """Runs the comparison of ``args`` (from the parser of :func:`add_parser`); returns the exit
    status: 0 when every check passes, 1 when one fails, 2 when the spec cannot be loaded."""
    from jaxreg.lab import compare

    try:
        spec = load_spec(args.spec)
    except ValueError as err:
        print(f"jaxreg compare: error: {err}", file=sys.stderr)
        return 2
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    report = compare.compare(spec, dtypes=dtypes, epochs=args.epochs, seeds=args.seeds)
    print(report)
    if args.out is not None:
        report.save(args.out, run_id=getattr(args, "run_id", None))
        print(f"written to {args.out}")
    return 0 if report.ok else 1

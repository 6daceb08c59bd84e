"""The value types of ``jaxreg``'s options (:mod:`jaxreg.lab.cli`): one-line reasons on bad input.

Each function turns an option's text into its value or raises ``argparse.ArgumentTypeError``
with a one-line reason naming what is accepted, which the parser reports as the option's error.
"""

from __future__ import annotations

import argparse
import math

from jaxreg.lab.grids import parse_values


def _int(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ({what})") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1, "a positive integer, expected >= 1")


def nonneg_int(text: str) -> int:
    return _int(text, 0, "an integer >= 0")


SEED_MAX = 2**32 - 1
"""The largest seed: JAX keys and torch's ``manual_seed`` here take uint32 seeds."""


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed (>= 0)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {value} is negative (expected an int >= 0)")
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"seed {value} is above {SEED_MAX} (seeds are uint32: 0..{SEED_MAX})"
        )
    return value


def seed_range_error(first: int, count: int) -> str | None:
    """Why ``--seed first --seeds count`` cannot run (its last seed overflows uint32), or None.

    Example:
      >>> seed_range_error(4294967295, 2)[:55]
      '--seed 4294967295 --seeds 2: the last seed, 4294967296,'
      >>> seed_range_error(4294967294, 2) is None
      True
    """
    last = first + count - 1
    if last <= SEED_MAX:
        return None
    return (
        f"--seed {first} --seeds {count}: the last seed, {last}, is above {SEED_MAX} (seeds are "
        f"uint32); use --seed {SEED_MAX - count + 1} or lower"
    )


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (expected > 0)") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def grid_arg(text: str) -> tuple[str, list[float]]:
    from jaxreg.lab.engine import HPARAMS

    name, sep, values = text.partition("=")
    if not sep or name not in HPARAMS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=VALUES with NAME one of {', '.join(HPARAMS)}"
        )
    try:
        return name, parse_values(values)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{name}={err}") from None

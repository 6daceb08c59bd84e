"""What a sweep runs: hyperparameter points, from a grid, a list or the command line's text.

A point is a dict ``{hyperparameter: value}`` (names from :data:`jaxreg.lab.engine.HPARAMS`) with
an optional ``"name"`` that labels it in reports; every point of one sweep names the same
hyperparameters, since they are the traced inputs of one compiled program.

PyTorch equivalent: ``itertools.product`` over the values in a hand-written loop, or
``sklearn.model_selection.ParameterGrid``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any


def grid(**axes: Sequence[float]) -> list[dict[str, float]]:
    """The Cartesian product of hyperparameter axes, first axis slowest.

    Args:
      **axes: hyperparameter name (see :data:`jaxreg.lab.engine.HPARAMS`) -> values.

    Returns:
      A list of points, each a dict ``{name: value}``.

    Raises:
      ValueError: an axis has no values, or repeats one (the run would be trained twice).

    Example:
      >>> grid(weight_decay=[0.0, 1e-3], dropout1=[0.2, 0.5])[1]
      {'weight_decay': 0.0, 'dropout1': 0.5}
    """
    names = list(axes)
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"grid axis {name!r} is empty; give at least one value")
        _check_unique(f"grid axis {name!r}", [float(v) for v in values])
    return [
        dict(zip(names, map(float, combo), strict=True))
        for combo in itertools.product(*axes.values())
    ]


def _check_unique(what: str, values: Sequence[float]) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(
                f"{what}: value {value:g} is given twice (each point would run twice); give each "
                "value once"
            )
        seen.add(value)


def label(point: Mapping[str, Any]) -> str:
    """A point's default label, e.g. ``"dropout1=0.2, lr=0.1"``.

    Example:
      >>> label({"weight_decay": 1e-4, "dropout1": 0.5})
      'weight_decay=0.0001, dropout1=0.5'
    """
    return ", ".join(f"{k}={v:g}" for k, v in point.items()) or "default"


def split_points(points: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, float]]]:
    """Separates optional ``"name"`` labels from the hyperparameters; checks every point agrees.

    Args:
      points: hyperparameter dicts, each with an optional ``"name"``.

    Returns:
      ``(labels, hyperparameter dicts with float values)``.

    Raises:
      ValueError: no points, points naming different hyperparameters, or two points with the
        same hyperparameter values (they would train the same runs twice).

    Example:
      >>> split_points([{"name": "none", "lr": 0.1}, {"lr": 0.5}])
      (['none', 'lr=0.5'], [{'lr': 0.1}, {'lr': 0.5}])
    """
    if len(points) == 0:
        raise ValueError("points: the sweep has no configurations")
    labels, hps = [], []
    keys = None
    seen: dict[tuple, int] = {}
    for i, point in enumerate(points):
        point = dict(point)
        name = point.pop("name", None)
        if keys is None:
            keys = sorted(point)
        elif sorted(point) != keys:
            raise ValueError(
                f"points[{i}] has hyperparameters {sorted(point)}, points[0] has {keys}: every "
                "point of one sweep must name the same hyperparameters (one compiled program)"
            )
        labels.append(label(point) if name is None else str(name))
        hps.append({k: float(v) for k, v in point.items()})
        key = tuple(sorted(hps[-1].items()))
        if key in seen:
            raise ValueError(
                f"points[{i}] repeats points[{seen[key]}] ({label(hps[-1])}): each configuration "
                "once"
            )
        seen[key] = i
    return labels, hps


def parse_values(text: str) -> list[float]:
    """Grid values from the command line: ``0,0.2,0.5``, ``log:1e-5:1e-2:8`` or ``lin:0:0.6:4``.

    Args:
      text: comma-separated numbers, or ``log:LO:HI:N`` / ``lin:LO:HI:N`` (N values, log- or
        evenly spaced, 6 significant digits).

    Returns:
      The values, at least one, all finite, none repeated.

    Raises:
      ValueError: anything else (the message says what is expected, or names the repeated
        value).

    Example:
      >>> parse_values("log:1e-3:1e-1:3")
      [0.001, 0.01, 0.1]
    """
    import numpy as np

    expected = "expected comma-separated numbers, log:LO:HI:N or lin:LO:HI:N"
    try:
        if text.startswith(("log:", "lin:")):
            kind, lo, hi, n = text.split(":")
            lo, hi, n = float(lo), float(hi), int(n)
            if n < 1 or (kind == "log" and (lo <= 0 or hi <= 0)):
                raise ValueError
            fn = np.geomspace if kind == "log" else np.linspace
            values = [float(f"{v:.6g}") for v in fn(lo, hi, n)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: {expected} (log: LO, HI > 0; N >= 1)") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r}: {expected}, finite, at least one")
    _check_unique(repr(text), values)
    return values

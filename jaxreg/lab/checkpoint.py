"""Sweep checkpoints: one atomic file per finished chunk, a fingerprint, resume.

A sweep writes every finished chunk of runs to ``OUT/chunks/chunk_NNNNN.npz`` through
:func:`jaxreg.lab.files.atomic_write_bytes`, so a killed sweep leaves only whole chunk files (and
perhaps a ``.tmp-<pid>`` file, which nothing reads). Each file carries the sweep's
:func:`fingerprint` (config, data, points, seeds, chunk size) and the run indices it holds; the
same command run again reads the chunks back instead of recomputing them.

A chunk file that cannot be read (truncated, not an ``.npz``, fields missing) or that belongs to
another sweep is not silently replaced: :func:`load_chunk` warns with a
:class:`CheckpointWarning` naming the file and the reason, and the sweep recomputes that chunk.

PyTorch equivalent: ``torch.save`` of a results dict per finished configuration, checked by
hand on restart; there is no built-in sweep checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxreg.lab.files import atomic_write_bytes

CHUNK_FMT = "chunk_{:05d}.npz"


class CheckpointWarning(UserWarning):
    """A chunk checkpoint exists but is not used: unreadable, or written by another sweep."""


def chunk_path(folder: str | Path, index: int) -> Path:
    """``folder/chunk_NNNNN.npz``: where chunk ``index`` of a sweep is saved.

    Example:
      >>> chunk_path("out/chunks", 3).name
      'chunk_00003.npz'
    """
    return Path(folder) / CHUNK_FMT.format(index)


def fingerprint(
    config: Any,
    data: Mapping[str, Any],
    labels: Sequence[str],
    points: Sequence[Mapping[str, float]],
    seeds: Sequence[int],
    chunk_size: int,
) -> str:
    """Identifies a sweep: config, data, points, seeds and chunk size (chunks hold fixed runs).

    The data enter by name, shape, dtype and an evenly spaced sample of at most ~4096 values per
    array, so hashing 60000 images stays cheap.

    Args:
      config: the engine's ``TrainConfig`` (its ``repr`` is hashed).
      data: the arrays a ``Train`` holds (``train.data``).
      labels: point labels.
      points: hyperparameter dicts.
      seeds: the seeds.
      chunk_size: runs per chunk.

    Returns:
      A SHA-256 hex digest.

    Example:
      >>> a = fingerprint("cfg", {"x": np.zeros(3)}, ["p"], [{"lr": 0.1}], [0], 4)
      >>> a == fingerprint("cfg", {"x": np.zeros(3)}, ["p"], [{"lr": 0.1}], [1], 4)
      False
    """
    h = hashlib.sha256()
    h.update(repr(config).encode())
    for name in sorted(data):
        arr = np.asarray(data[name])
        h.update(f"{name}{arr.shape}{arr.dtype}".encode())
        flat = arr.reshape(-1)
        step = max(1, flat.size // 4096)
        h.update(np.ascontiguousarray(flat[::step]).tobytes())
    runs = [list(labels), list(points), list(seeds), chunk_size]
    h.update(json.dumps(runs, sort_keys=True).encode())
    return h.hexdigest()


def save_chunk(
    path: str | Path,
    sweep_fingerprint: str,
    runs: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    seconds: float,
) -> Path:
    """Writes one finished chunk atomically.

    Args:
      path: the chunk file (:func:`chunk_path`).
      sweep_fingerprint: :func:`fingerprint` of the sweep.
      runs: the global run indices the chunk holds.
      metrics: name -> array with a leading axis over ``runs``.
      seconds: the chunk's compute time (kept so that the cost survives a resume).

    Returns:
      ``path`` as a ``Path``.
    """
    buf = io.BytesIO()
    np.savez(
        buf,
        __fingerprint__=np.array(sweep_fingerprint),
        __runs__=np.asarray(runs),
        __seconds__=np.array(seconds),
        **metrics,
    )
    return atomic_write_bytes(path, buf.getvalue())


def load_chunk(
    path: str | Path, sweep_fingerprint: str, runs: np.ndarray
) -> tuple[dict[str, np.ndarray], float] | None:
    """Reads a finished chunk back, or None when it must be computed.

    Args:
      path: the chunk file.
      sweep_fingerprint: :func:`fingerprint` of the running sweep.
      runs: the run indices the chunk should hold.

    Returns:
      ``(metrics, compute seconds)`` (seconds NaN for files that did not record them), or None
      when the file is missing, unreadable or from another sweep; the last two warn.

    Example:
      >>> import tempfile, warnings
      >>> p = Path(tempfile.mkdtemp()) / "chunk_00000.npz"
      >>> _ = save_chunk(p, "f", np.arange(2), {"test_acc": np.ones((2, 3))}, 1.5)
      >>> metrics, seconds = load_chunk(p, "f", np.arange(2))
      >>> metrics["test_acc"].shape, seconds
      ((2, 3), 1.5)
      >>> _ = p.write_bytes(b"garbage")
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     load_chunk(p, "f", np.arange(2))
      >>> "unreadable" in str(caught[0].message)
      True
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored, stored_runs = str(z["__fingerprint__"]), z["__runs__"]
            seconds = float(z["__seconds__"]) if "__seconds__" in z.files else float("nan")
            metrics = {k: z[k] for k in z.files if not k.startswith("__")}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        _warn(path, f"unreadable ({type(err).__name__}: {err})")
        return None
    if stored != sweep_fingerprint:
        _warn(
            path,
            "written by another sweep (its fingerprint differs: other config, data, "
            "points, seeds or chunk size)",
        )
        return None
    if not np.array_equal(stored_runs, runs):
        _warn(path, f"for runs {stored_runs.tolist()}, not this chunk's {runs.tolist()}")
        return None
    return metrics, seconds


def _warn(path: Path, why: str) -> None:
    warnings.warn(
        f"sweep checkpoint {path} is {why}; recomputing that chunk and overwriting the file",
        CheckpointWarning,
        stacklevel=3,
    )

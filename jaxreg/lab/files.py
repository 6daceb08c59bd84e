"""Writing files so that a crash or a concurrent reader never sees half of one.

Every file jaxreg's harness writes (run and sweep reports, sweep checkpoints) goes through
:func:`atomic_write_bytes`: the content is written to a temporary file next to the target,
fsynced, then ``os.replace``d over it, which POSIX and Windows make atomic. Appending rewrites
the whole file the same way (the files are small). JSON goes through :func:`to_plain`, which
takes numpy and jax values without importing either.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def to_plain(value: Any) -> Any:
    """``value`` with numpy/jax scalars and arrays as lists/numbers, paths and non-finite floats
    as strings: what ``json.dumps`` accepts.

    Example:
      >>> to_plain({"a": (1, float("nan"))})
      {'a': [1, 'nan']}
    """
    # JSON cannot take numpy/jax scalars or arrays; .tolist() covers both without importing them.
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Writes ``payload`` to ``path`` so that readers see the old file or the new one, never half.

    Writes ``path.tmp-<pid>``, fsyncs it, then ``os.replace``s it over ``path`` (atomic on
    POSIX and Windows); a crash mid-write leaves only the temporary file, which nothing reads.

    Args:
      path: the file to (re)write.
      payload: its whole new content.

    Returns:
      ``path`` as a ``Path``.

    Example:
      >>> import tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
      >>> atomic_write_bytes(p, b"done").read_bytes()
      b'done'
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_append_text(path: str | os.PathLike, text: str) -> Path:
    """Appends ``text`` by rewriting the whole file atomically (the files here are small)."""
    path = Path(path)
    old = path.read_bytes() if path.is_file() else b""
    return atomic_write_bytes(path, old + text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON (numpy/jax values converted), atomically.

    Args:
      path: the file to write.
      obj: JSON-able data; numpy/jax scalars and arrays, paths and non-finite floats allowed.

    Returns:
      ``path`` as a ``Path``.

    Example:
      >>> import json, os, tempfile
      >>> p = write_json(os.path.join(tempfile.mkdtemp(), "c.json"), {"lr": 0.1})
      >>> json.loads(p.read_text())
      {'lr': 0.1}
    """
    return atomic_write_text(path, json.dumps(to_plain(obj), indent=2, sort_keys=True) + "\n")


def csv_text(rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str]) -> str:
    """The CSV text of ``rows`` (a header line, then one line per row)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

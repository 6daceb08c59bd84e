"""The one report writer: every file a run or a sweep leaves, each written atomically.

``jaxreg run NAME`` writes into ``runs/NAME/<timestamp>/`` (or ``--out``):

* ``config.json``: the experiment config and the command-line options;
* ``metrics.jsonl``: one line per (variant, framework, epoch) with the engine's metric names,
  appended as each variant finishes so that a crash loses no finished result;
* ``results.jsonl`` and ``results.csv``: one row per (variant, framework): the final figures;
* PNG plots (:mod:`jaxreg.lab.plots`);
* ``report.md``: the side-by-side table, the notes and the plots (:func:`write_report`).

``jaxreg sweep PRESET`` writes into ``runs/sweep/PRESET-<id>/`` (or ``--out``), through
:func:`write_sweep_report`: ``config.json``, ``metrics.npz`` (every metric ``[points, seeds,
epochs]``), ``results.csv`` (one row per point), plots and ``report.md``; its ``chunks/``
checkpoints are :mod:`jaxreg.lab.checkpoint`'s.

A run folder holds one run (:mod:`jaxreg.lab.run_folder`): :func:`make_run_dir` opens it (a
lock; a folder holding another run is refused; ``manifest.json`` says ``"running"``), every row of
``metrics.jsonl``, ``results.jsonl`` and ``results.csv`` carries the run id and the seed, and
``manifest.json`` is rewritten with ``"complete"`` after ``report.md``, last, so a killed run is
never read as complete.

Every file goes through :mod:`jaxreg.lab.files` (a temporary file, fsynced, then
``os.replace``d over the target), so a reader or a crash sees the old file or the new one, never
half of one. :func:`format_table` is the one markdown
table formatter (runs, sweeps and ``make bench``). This module imports neither jax nor torch.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxreg.lab import run_folder
from jaxreg.lab.files import (
    atomic_append_text,
    atomic_write_bytes,
    atomic_write_text,
    csv_text,
    to_plain,
    write_json,
)
from jaxreg.lab.run_folder import RunFolder, RunFolderError, open_run_folder

__all__ = [
    "FRAMEWORKS",
    "RECORD_COLUMNS",
    "RESULT_COLUMNS",
    "RunFolder",
    "RunFolderError",
    "RunRecorder",
    "claim_default_dir",
    "format_table",
    "format_value",
    "make_run_dir",
    "open_run_folder",
    "timestamp",
    "write_json",
    "write_report",
    "write_sweep_report",
]

FRAMEWORKS = ("jax", "torch")

# One results row; ``train``/``test`` hold the final value of ``metric``.
RESULT_COLUMNS = (
    "experiment",
    "variant",
    "framework",
    "metric",
    "train",
    "test",
    "wall_s",
    "compile_s",
    "seed_figure",
    "detail",
)
# What identifies a row's run, in results.jsonl/csv and metrics.jsonl but not in report.md's
# table: the run id, the (first) seed and the number of seeds the row's figures are over.
ID_COLUMNS = ("run_id", "seed", "seeds")
RECORD_COLUMNS = (*RESULT_COLUMNS, *ID_COLUMNS)
# Shown only when some row fills it.
_OPTIONAL_COLUMNS = ("detail",)
_HEADERS = {
    "experiment": "experiment",
    "variant": "variant",
    "framework": "framework",
    "metric": "metric",
    "train": "final train",
    "test": "final test",
    "wall_s": "wall s",
    "compile_s": "compile s",
    "seed_figure": "seed reports",
    "detail": "detail",
}


def timestamp(now: _dt.datetime | None = None) -> str:
    """UTC time as ``YYYYmmdd-HHMMSS``, the name of a run folder."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S")


def claim_default_dir(name: str, root: str | Path = "runs") -> Path:
    """Creates and returns a new ``root/name/<timestamp>[-n]/`` folder, unique even between
    processes started in the same second (``mkdir`` without ``exist_ok`` claims it).

    Example:
      >>> import tempfile
      >>> claim_default_dir("dropout", tempfile.mkdtemp()).parent.name
      'dropout'
    """
    base = Path(root) / name / timestamp()
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path = base.with_name(f"{base.name}-{n}")
            n += 1


def make_run_dir(
    name: str,
    out: str | Path | None = None,
    *,
    root: str | Path = "runs",
    overwrite: bool = False,
    kind: str = "run",
) -> Path:
    """Creates the folder a run writes into and opens it as one run (:mod:`.run_folder`).

    A folder that a caller already opened with :func:`open_run_folder` (the CLI does, to apply
    ``--overwrite``) is handed over once; a folder inside an open one belongs to that run
    (``jaxreg main``'s per-experiment subfolders) and must be new or empty. Any other folder is
    opened here, and :func:`write_report` completes it when it writes ``report.md``.

    Args:
      name: experiment name (``weight-decay``, ...).
      out: an explicit folder (``--out``); created if missing; refused when it holds a run.
      root: parent of the default ``root/name/<timestamp>/`` folder.
      overwrite: replace a run that ``out`` holds.
      kind: recorded in the manifest (``"run"``, ``"main"``).

    Returns:
      The folder.

    Raises:
      RunFolderError: ``out`` is a file, under a file, unwritable, locked by another process or
        holds another run (the message names the path and what allows it).

    Example:
      >>> import tempfile
      >>> make_run_dir("dropout", root=tempfile.mkdtemp()).parent.name
      'dropout'
    """
    if out is None:
        path = claim_default_dir(name, root)
    else:
        path = Path(out).expanduser()
        enclosing = run_folder.find_open(path)
        if enclosing is not None:
            return _adopt(enclosing, path)
    open_run_folder(path, kind=kind, overwrite=overwrite, auto=True)
    return path


def _adopt(folder: RunFolder, path: Path) -> Path:
    if path.resolve() == folder.path.resolve():
        if folder._adopted:
            raise RunFolderError(
                f"run folder {path} is being written by run {folder.run_id} of this process: "
                "choose another folder"
            )
        folder._adopted = True
        return path
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise RunFolderError(
            f"run folder {path} (inside run {folder.run_id}'s folder {folder.path}) is not empty"
        )
    return path


class RunRecorder:
    """Appends metrics and results of one run to its folder as they arrive.

    Every row gains ``run_id`` (the open run folder's, see :func:`make_run_dir`) and ``seed``
    (the run's first seed; results rows also ``seeds``, how many seeds their figures are over),
    taken from the arguments, else from ``write_config``'s ``options`` (``seed``, ``seeds``).

    Args:
      run_dir: the folder from ``make_run_dir``.
      experiment: the experiment name written in every row.
      run_id: the run id; default the open run folder's, else a new one.
      seed: the run's (first) seed, if known before ``write_config``.
      seeds: how many seeds from ``seed`` the run trains.

    Example:
      >>> import tempfile
      >>> rec = RunRecorder(tempfile.mkdtemp(), "dropout")
      >>> rec.add_history("scratch", "jax", {"test_acc": [0.8, 0.85]})
      >>> row = rec.add_result(variant="scratch", framework="jax", metric="accuracy", test=0.85)
      >>> rec.rows[0]["test"]
      0.85
    """

    def __init__(
        self,
        run_dir: str | Path,
        experiment: str,
        *,
        run_id: str | None = None,
        seed: int | None = None,
        seeds: int = 1,
    ):
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        folder = run_folder.find_open(self.run_dir)
        self.run_id = run_id or (folder.run_id if folder else run_folder.new_run_id())
        self.seed, self.seeds = seed, seeds
        self.rows: list[dict[str, Any]] = []
        self.histories: dict[tuple[str, str], dict[str, list[float]]] = {}

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Writes ``config.json`` (with the run id); takes the seeds from its ``options``."""
        options = config.get("options")
        if isinstance(options, Mapping) and options.get("seed") is not None:
            self.seed = int(options["seed"])
            self.seeds = int(options.get("seeds") or 1)
        return write_json(self.run_dir / "config.json", {**config, "run_id": self.run_id})

    def add_history(self, variant: str, framework: str, history: Mapping[str, Sequence]) -> None:
        """Appends one line per epoch of ``{metric: [per epoch]}`` to metrics.jsonl."""
        history = {k: list(to_plain(v)) for k, v in history.items() if _is_series(v)}
        self.histories[(variant, framework)] = history
        length = max((len(v) for v in history.values()), default=0)
        lines = []
        for epoch in range(length):
            line = {"experiment": self.experiment, "variant": variant, "framework": framework}
            line["epoch"] = epoch + 1
            line["seed"] = self.seed  # a multi-seed history carries its own per-epoch seed
            line.update({k: v[epoch] for k, v in history.items() if epoch < len(v)})
            line["run_id"] = self.run_id
            lines.append(json.dumps(to_plain(line)) + "\n")
        atomic_append_text(self.run_dir / "metrics.jsonl", "".join(lines))

    def add_result(self, **row: Any) -> dict[str, Any]:
        """Records one final-figures row (keys from ``RECORD_COLUMNS``) in results.jsonl/csv."""
        unknown = sorted(set(row) - set(RECORD_COLUMNS))
        if unknown:
            raise ValueError(f"unknown result keys {unknown}; allowed: {list(RESULT_COLUMNS)}")
        full = {key: row.get(key) for key in RECORD_COLUMNS}
        full["experiment"] = full["experiment"] or self.experiment
        defaults = {"run_id": self.run_id, "seed": self.seed, "seeds": self.seeds}
        full.update({k: v for k, v in defaults.items() if full[k] is None})
        full = to_plain(full)
        self.rows.append(full)
        atomic_append_text(self.run_dir / "results.jsonl", json.dumps(full) + "\n")
        atomic_write_text(self.run_dir / "results.csv", csv_text(self.rows, RECORD_COLUMNS))
        return full


def _is_series(value: Any) -> bool:
    return isinstance(value, list | tuple) or getattr(value, "ndim", None) == 1


def format_value(value: Any) -> str:
    """One table cell: floats to 4 decimals (``%.6g`` when tiny or huge), ``|`` escaped.

    Example:
      >>> [format_value(v) for v in (0.81234, 1.38e8, None, "a|b")]
      ['0.8123', '1.38e+08', '', 'a\\\\|b']
    """
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.6g}"
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def format_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Formats rows as a GitHub markdown table, cells by :func:`format_value`.

    The one table formatter of runs, sweeps and ``make bench``.

    Args:
      rows: dicts; a missing key is an empty cell.
      columns: the columns to show, in order; default ``RESULT_COLUMNS`` (``detail`` only when
        a row has one).
      headers: column -> header text; default the results headers (``test`` -> ``final test``),
        else the column name.

    Returns:
      The table, one line per row, ending without a newline.

    Example:
      >>> print(format_table([{"variant": "a", "test": 0.5}], columns=("variant", "test")))
      | variant | final test |
      |---|---|
      | a | 0.5000 |
    """
    rows = list(rows)
    if columns is None:
        columns = [
            c
            for c in RESULT_COLUMNS
            if c not in _OPTIONAL_COLUMNS or any(row.get(c) not in (None, "") for row in rows)
        ]
    names = _HEADERS if headers is None else headers
    lines = [
        "| " + " | ".join(names.get(c, c) for c in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_report(
    run_dir: str | Path,
    title: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    plots: Sequence[str | Path] = (),
    notes: Sequence[str] = (),
    command: str = "",
) -> Path:
    """Writes ``report.md``: the command, the side-by-side table, notes and the plots.

    ``report.md`` is a run's last file: a folder that :func:`make_run_dir` opened is completed
    (``manifest.json`` with ``"complete"``) right after it.

    Args:
      run_dir: the run folder.
      title: a heading (e.g. ``"dropout (seeds 003/004)"``).
      rows: result rows.
      plots: PNG files inside ``run_dir`` to embed.
      notes: paragraphs explaining the recipe and any gap to the seed's figure.
      command: the command line that produced the run.

    Returns:
      The path of report.md.

    Example:
      >>> import tempfile
      >>> write_report(tempfile.mkdtemp(), "demo", [{"variant": "a", "test": 0.5}]).name
      'report.md'
    """
    run_dir = Path(run_dir)
    parts = [f"# {title}", ""]
    if command:
        parts += [f"Command: `{command}`", ""]
    parts += [format_table(rows), ""]
    parts += [note + "\n" for note in notes]
    parts += [line + "\n" for line in _folder_lines(run_dir)]
    for plot in plots:
        name = Path(plot).name
        parts += [f"![{name}]({name})", ""]
    path = atomic_write_text(run_dir / "report.md", "\n".join(parts))
    _complete_auto(run_dir)
    return path


def _folder_lines(run_dir: str | Path) -> list[str]:
    # What opening the folder did (started clean after a killed run, resumed, overwrote), so the
    # report itself says it, not only the terminal.
    folder = run_folder.find_open(run_dir)
    if folder is None or folder.path.resolve() != Path(run_dir).resolve():
        return []
    return [f"Run {folder.run_id}: {notice}." for notice in folder.notices]


def _complete_auto(run_dir: str | Path) -> None:
    # report.md is a run's last file: a folder make_run_dir opened is complete once it is written
    # (a folder the caller opened is completed by the caller).
    folder = run_folder.find_open(run_dir)
    if folder is not None and folder.auto and folder.path.resolve() == Path(run_dir).resolve():
        folder.complete()


def write_sweep_report(
    result: Any,
    out_dir: str | os.PathLike,
    *,
    name: str = "sweep",
    command: str = "",
    config: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    baseline: Mapping[str, Any] | None = None,
    plots: Sequence[tuple[str, Callable[[Any, Path], Path]]] = (),
) -> Path:
    """Writes a sweep's ``config.json``, ``metrics.npz``, ``results.csv``, plots and ``report.md``.

    Args:
      result: a :class:`jaxreg.lab.results.SweepResult` (from :func:`jaxreg.lab.sweep.run_sweep`).
      out_dir: the sweep folder.
      name: the sweep's name (title of the report).
      command: the command line that ran it.
      config: extra JSON-able configuration to record.
      notes: extra report paragraphs (the preset's description and analysis).
      baseline: :func:`jaxreg.lab.sweep.time_single_run`'s timings, to state the cost ratio.
      plots: ``(file name, plot_fn(result, path))`` pairs beyond the learning curves.

    Returns:
      The path of ``report.md`` (written last; it completes a folder ``make_run_dir`` opened,
      and ``results.csv``'s rows carry the run id and the seeds).

    Example:
      >>> import tempfile, numpy as np
      >>> from jaxreg.lab.results import SweepResult
      >>> r = SweepResult(["a"], [{"lr": 0.1}], [0], {"test_acc": np.array([[[0.5]]]),
      ...                 "diverged_step": np.array([[-1]])}, epochs=1,
      ...                 stats={"run_s": 1.0, "compile_s": 2.0, "chunk_size": 1, "num_chunks": 1,
      ...                        "resumed_chunks": 0, "devices": 1, "platform": "cpu",
      ...                        "processes": 1})
      >>> "| a | 0.5000 +- 0.0000 | - |" in write_sweep_report(r, tempfile.mkdtemp()).read_text()
      True
    """
    import numpy as np

    from jaxreg.lab import plots as plot_mod

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = run_folder.find_open(out)
    run_id = folder.run_id if folder is not None else run_folder.new_run_id()
    stats, epochs = result.stats, result.epochs
    n_runs = len(result.points) * len(result.seeds)
    computed = stats.get("timed_runs", n_runs)
    cost = stats["run_s"] / (computed * epochs) if computed else float("nan")
    timing = {**stats, "configuration_epoch_s": cost}
    if baseline:
        timing["single_model_epoch_s"] = baseline["epoch_s"]
        timing["speedup_vs_single"] = baseline["epoch_s"] / cost if cost else float("nan")
    record = {
        "name": name,
        "command": command,
        "labels": result.labels,
        "points": result.points,
        "seeds": result.seeds,
        "epochs": epochs,
        "timing": timing,
        **(dict(config) if config else {}),
        "run_id": run_id,
    }
    payload = json.dumps(record, indent=2, default=str, sort_keys=True) + "\n"
    atomic_write_text(out / "config.json", payload)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, labels=np.array(result.labels), seeds=np.array(result.seeds), **result.metrics
    )
    atomic_write_bytes(out / "metrics.npz", buf.getvalue())
    rows = result.rows()
    # Each row is a mean over these seeds; the run id ties it to this sweep.
    ids = {"run_id": run_id, "seeds": " ".join(str(s) for s in result.seeds)}
    atomic_write_text(out / "results.csv", csv_text([{**r, **ids} for r in rows], [*rows[0], *ids]))

    images = [plot_mod.plot_curves(result, out / "curves.png").name]
    images += [fn(result, out / file_name).name for file_name, fn in plots]

    means = [c for c in rows[0] if c.endswith("_mean")]
    metric_cols = [c for c in means if "acc" in c] or means
    lines = [f"# Sweep: {name}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"{len(result.points)} points x {len(result.seeds)} seeds = {n_runs} runs of "
        f"{epochs} epochs, one vmapped program per chunk of {stats['chunk_size']} runs "
        f"({stats['num_chunks']} chunks, {stats['resumed_chunks']} resumed from checkpoints) on "
        f"{stats['devices']} {stats['platform']} device(s), {stats['processes']} process(es).",
        "",
        f"- compile: {stats['compile_s']:.1f} s (once for the whole grid)",
        f"- run: {stats['run_s']:.1f} s of compute for {computed} runs (chunk times recorded in "
        f"the checkpoints, earlier sessions included) -> **{1e3 * cost:.1f} ms per "
        "configuration-epoch**",
    ]
    if baseline:
        each = ", ".join(f"{1e3 * t:.0f}" for t in baseline.get("epoch_s_each", []))
        lines.append(
            f"- single model, same recipe, un-vmapped: {1e3 * baseline['epoch_s']:.1f} ms per "
            f"epoch (runs: {each} ms) -> the sweep costs **{cost / baseline['epoch_s']:.2f}x** "
            f"a single model's epoch per configuration ({baseline['epoch_s'] / cost:.2f}x "
            "throughput)"
        )
    columns = ["point", *(c.replace("_mean", "") for c in metric_cols), "diverged"]
    cells = [
        {
            "point": row["point"],
            "diverged": row["diverged"] or "-",
            **{
                c.replace("_mean", ""): f"{row[c]:.4f} +- {row[c.replace('_mean', '_std')]:.4f}"
                for c in metric_cols
            },
        }
        for row in rows
    ]
    lines += ["", format_table(cells, columns, headers={})]
    lines += ["", "Mean +- standard deviation over seeds of the last evaluated epoch.", ""]
    lines += [*notes, ""] if notes else []
    lines += [*_folder_lines(out), ""] if _folder_lines(out) else []
    for file_name in images:
        lines += [f"![{file_name}]({file_name})", ""]
    path = atomic_write_text(out / "report.md", "\n".join(lines))
    _complete_auto(out)
    return path

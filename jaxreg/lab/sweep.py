"""Hyperparameter sweeps as ONE vmapped, jit-compiled computation; sharded, multi-host, resumable.

The seeds' exercises (seed 004: "plot accuracy against lambda", "swap the dropout rates", "dropout
vs weight decay: additive?", "train longer", "activation variance per layer") are dozens of
sequential runs in PyTorch. Here a sweep is ``jax.vmap(train.pure)`` over a leading axis that
stacks every (hyperparameter point, seed) pair: hyperparameters are traced, so the whole grid is
compiled once and runs as one XLA program per chunk.

* Chunks: the runs are cut into fixed-size chunks (padded by repeating the last run) so every
  chunk reuses the one compiled executable; the size comes from ``chunk_size`` or a memory budget.
* Devices: each chunk is sharded over a 1-D ``jax.sharding.Mesh`` of all devices (axis
  ``"config"``) with ``NamedSharding``; the data are replicated. Across hosts, the same mesh spans
  every process's devices after ``jax.distributed.initialize`` (CPU: gloo collectives).
* Checkpoints: every finished chunk is written to ``chunks/chunk_NNNNN.npz`` as a temporary file
  then ``os.replace``d (atomic on POSIX), with a fingerprint of the sweep; re-running the same
  command skips finished chunks, and a file that does not load or does not match is recomputed.
* Divergence: a run whose objective becomes NaN/Inf is reported diverged with its step
  (``diverged_step``); vmapped runs are independent, so the others are unaffected.

Command line: ``jaxreg sweep PRESET [options]`` (``main(argv)`` is the hook
``jaxreg.lab.cli`` calls; ``python -m jaxreg.lab.sweep`` works too), e.g. the 64-configuration
Fashion-MNIST sweep (8 lambdas x 4 dropout rates x 2 seeds)::

    jaxreg sweep fmnist-64 --baseline --chunk-size 16

Several hosts (e.g. GPU nodes with ``jax[cuda]``): start the same command on every host, with a
shared ``--out`` so that a re-run resumes; process 0 writes the files::

    # host i of N (i = 0 .. N-1), host 0 reachable at node0:1234
    jaxreg sweep fmnist-64 --coordinator node0:1234 --num-processes N --process-id i \
        --out /shared/runs/fmnist-64
    # under SLURM / Open MPI, jax.distributed finds the cluster by itself:
    srun --ntasks=N --gpus-per-task=1 jaxreg sweep fmnist-64 --distributed --out /shared/runs/x

The configurations are then sharded over every device of every host (the chunk size must be a
multiple of the global device count); results are gathered to every process.

PyTorch equivalent: a Python loop over configurations, or ``torch.func.stack_module_state`` +
``torch.func.vmap`` (see :mod:`jaxreg.torch_ref.sweep`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxreg.lab import engine

AXIS = "config"
_CHUNK_FMT = "chunk_{:05d}.npz"


# ----------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------
def grid(**axes: Sequence[float]) -> list[dict[str, float]]:
    """The Cartesian product of hyperparameter axes, first axis slowest.

    Args:
      **axes: hyperparameter name (see :data:`jaxreg.lab.engine.HPARAMS`) -> values.

    Returns:
      A list of points, each a dict ``{name: value}``.

    Example:
      >>> grid(weight_decay=[0.0, 1e-3], dropout1=[0.2, 0.5])[1]
      {'weight_decay': 0.0, 'dropout1': 0.5}
    """
    names = list(axes)
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"grid axis {name!r} is empty; give at least one value")
    return [
        dict(zip(names, map(float, combo), strict=True))
        for combo in itertools.product(*axes.values())
    ]


def _split_points(points: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, float]]]:
    """Separates optional ``"name"`` labels from the hyperparameters; checks every point agrees."""
    if len(points) == 0:
        raise ValueError("points: the sweep has no configurations")
    labels, hps = [], []
    keys = None
    for i, point in enumerate(points):
        point = dict(point)
        name = point.pop("name", None)
        label = _label(point) if name is None else str(name)
        if keys is None:
            keys = sorted(point)
        elif sorted(point) != keys:
            raise ValueError(
                f"points[{i}] has hyperparameters {sorted(point)}, points[0] has {keys}: every "
                "point of one sweep must name the same hyperparameters (one compiled program)"
            )
        labels.append(label)
        hps.append({k: float(v) for k, v in point.items()})
    return labels, hps


def _label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in point.items()) or "default"


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SweepResult:
    """Metrics of every (point, seed) run of a sweep.

    Attributes:
      labels: one label per point.
      points: the hyperparameters of each point.
      seeds: the seeds.
      metrics: name -> array ``[points, seeds, epochs(, ...)]``; ``diverged_step`` is
        ``[points, seeds]`` (-1 = finite throughout).
      epochs: epochs per run.
      stats: timings and sizes (``compile_s``, ``run_s``, ``chunk_size``, ``num_chunks``,
        ``resumed_chunks``, ``devices``, ``processes``).
    """

    labels: list[str]
    points: list[dict[str, float]]
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    epochs: int
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def final(self, name: str) -> np.ndarray:
        """``[points, seeds]``: the last evaluated value of an epoch metric (NaN if diverged)."""
        values = np.asarray(self.metrics[name], np.float64)
        if values.ndim == 2:
            return values
        out = np.full(values.shape[:2], np.nan)
        for idx in np.ndindex(*values.shape[:2]):
            series = values[idx]
            finite = np.where(~np.isnan(series))[0] if series.ndim == 1 else []
            if len(finite):
                out[idx] = series[finite[-1]]
        out[self.diverged] = np.nan
        return out

    @property
    def diverged(self) -> np.ndarray:
        """``[points, seeds]`` bools: the run hit a NaN/Inf objective."""
        return np.asarray(self.metrics["diverged_step"]) >= 0

    def summary(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over seeds of :meth:`final` (NaN-aware), each ``[points]``."""
        values = self.final(name)
        with np.errstate(invalid="ignore"), _quiet_nan_warnings():
            return np.nanmean(values, axis=1), np.nanstd(values, axis=1)

    def rows(self) -> list[dict[str, Any]]:
        """One row per point: hyperparameters, mean/std of final metrics, diverged runs."""
        names = [
            n
            for n in ("train_acc", "val_acc", "test_acc", "train_loss", "test_loss")
            if n in self.metrics
        ]
        rows = []
        for i, (label, point) in enumerate(zip(self.labels, self.points, strict=True)):
            row: dict[str, Any] = {"point": label, **point}
            for name in names:
                mean, std = self.summary(name)
                row[name + "_mean"], row[name + "_std"] = float(mean[i]), float(std[i])
            steps = np.asarray(self.metrics["diverged_step"])[i]
            row["diverged"] = ";".join(
                f"seed {s} at step {int(t)}"
                for s, t in zip(self.seeds, steps, strict=True)
                if t >= 0
            )
            rows.append(row)
        return rows


@contextlib.contextmanager
def _quiet_nan_warnings():
    # Means over seeds of all-NaN columns (diverged or not-evaluated epochs) are expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ----------------------------------------------------------------------------------------------
# Memory and chunking
# ----------------------------------------------------------------------------------------------
def estimate_run_bytes(train: engine.Train) -> int:
    """A generous estimate of the device memory one vmapped run needs (bytes).

    Parameters, gradients, optimizer state and the snapshot buffer, plus the activations of a
    training batch and an evaluation chunk (forward and backward) for every layer width.
    """
    import jax

    hp = train.normalize_hparams({})
    state = jax.eval_shape(lambda: train._init_pure(jax.random.key(0), hp, None))
    n_params = sum(leaf.size for leaf in jax.tree.leaves(state.params))
    n_opt = sum(getattr(leaf, "size", 0) for leaf in jax.tree.leaves(state.opt_state))
    widths = sum(leaf.shape[-1] for leaf in jax.tree.leaves(state.params) if leaf.ndim >= 2)
    widths = max(widths, 1)
    cfg = train.config
    n_snap = len(train.snapshot_epochs)
    floats = (3 + n_snap) * n_params + n_opt
    floats += 4 * train.batch_size * (widths + train._template_x.size)
    floats += 2 * min(cfg.eval_batch_size, 10**9) * widths
    return 4 * int(floats)


def default_memory_budget() -> int:
    """Bytes a sweep may use per device: half a GPU/TPU's memory, a quarter of RAM on CPU."""
    import jax

    device = jax.local_devices()[0]
    stats = getattr(device, "memory_stats", lambda: None)()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.5)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 * 2**30
    return int(ram * 0.25 / max(jax.local_device_count(), 1))


def choose_chunk_size(
    train: engine.Train, num_runs: int, num_devices: int, memory_budget: int | None = None
) -> int:
    """Runs per chunk: as many as fit ``memory_budget`` per device, a multiple of the devices.

    Example:
      >>> choose_chunk_size(train, 64, 1, memory_budget=10**12)  # doctest: +SKIP
      64
    """
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    per_device = max(1, budget // max(estimate_run_bytes(train), 1))
    size = min(per_device * num_devices, _round_up(num_runs, num_devices))
    return max(num_devices, (size // num_devices) * num_devices)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def _fingerprint(train: engine.Train, labels, points, seeds, chunk_size: int) -> str:
    """Identifies a sweep: config, data, points, seeds, chunk size (chunks hold fixed runs)."""
    h = hashlib.sha256()
    h.update(repr(train.config).encode())
    for name in sorted(train.data):
        arr = np.asarray(train.data[name])
        h.update(f"{name}{arr.shape}{arr.dtype}".encode())
        flat = arr.reshape(-1)
        step = max(1, flat.size // 4096)
        h.update(np.ascontiguousarray(flat[::step]).tobytes())
    h.update(json.dumps([labels, points, list(seeds), chunk_size], sort_keys=True).encode())
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Writes ``payload`` to ``path`` so that readers see the old file or the new one, never half.

    Writes ``path.tmp-<pid>``, fsyncs it, then ``os.replace``s it over ``path``.

    Example:
      >>> import tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
      >>> atomic_write_bytes(p, b"done"); p.read_bytes()
      b'done'
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_chunk(
    path: Path, fingerprint: str, runs: np.ndarray, metrics: dict[str, np.ndarray], seconds: float
):
    buf = io.BytesIO()
    np.savez(
        buf,
        __fingerprint__=np.array(fingerprint),
        __runs__=runs,
        __seconds__=np.array(seconds),
        **metrics,
    )
    atomic_write_bytes(path, buf.getvalue())


def _load_chunk(path: Path, fingerprint: str, runs: np.ndarray):
    """``(metrics, compute seconds)`` of a finished chunk, or None if missing, unreadable or
    from another sweep."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["__fingerprint__"]) != fingerprint or not np.array_equal(z["__runs__"], runs):
                return None
            seconds = float(z["__seconds__"]) if "__seconds__" in z.files else float("nan")
            return {k: z[k] for k in z.files if not k.startswith("__")}, seconds
    except Exception:  # noqa: BLE001 - any unreadable file counts as unfinished
        return None


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------
def make_mesh(devices: Sequence[Any] | None = None):
    """A 1-D mesh (axis ``"config"``) over ``devices`` (default: every device of every process).

    Example:
      >>> make_mesh().axis_names
      ('config',)
    """
    import jax
    from jax.sharding import Mesh

    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (AXIS,))


def _global_array(mesh, spec, host_array: np.ndarray):
    """A global jax.Array with ``spec`` over ``mesh`` built from a full host copy (any process)."""
    import jax
    from jax.sharding import NamedSharding

    sharding = NamedSharding(mesh, spec)
    return jax.make_array_from_callback(host_array.shape, sharding, lambda idx: host_array[idx])


def _to_host(tree):
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree.map(np.asarray, jax.device_get(tree))


# Compiled chunk programs per Train, so several sweeps of one config compile once.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _chunk_function(train: engine.Train, mesh):
    """``jit(vmap(train.pure))`` over a chunk: data replicated, keys/hparams/metrics sharded."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    def _sweep_chunk(data, keys, hp):
        return jax.vmap(lambda k, h: train.pure(data, k, h).metrics)(keys, hp)

    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    return jax.jit(
        _sweep_chunk,
        in_shardings=(replicated, sharded, sharded),
        out_shardings=sharded,
    )


def run_sweep(
    train: engine.Train,
    points: Sequence[Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    devices: Sequence[Any] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    progress: Any = None,
) -> SweepResult:
    """Trains every (point, seed) pair as one vmapped, compiled computation per chunk.

    PyTorch equivalent: ``for point in points: for seed in seeds: train(...)`` (sequential), or
    ``torch.func.vmap`` over ``stack_module_state`` (:mod:`jaxreg.torch_ref.sweep`). Seeds 003/004's
    exercises are the presets of :data:`PRESETS`.

    Args:
      train: from :func:`jaxreg.lab.engine.make_train` (its config and data).
      points: hyperparameter dicts (keys from :data:`jaxreg.lab.engine.HPARAMS`, all points the same
        keys; an optional ``"name"`` labels a point); see :func:`grid`.
      seeds: PRNG seeds; run ``(p, s)`` uses ``jax.random.key(seeds[s])`` for initialization,
        shuffling and dropout, so points are compared on the same initializations.
      chunk_size: runs per compiled call (a multiple of the device count); None: as many as
        ``memory_budget`` allows (:func:`choose_chunk_size`).
      memory_budget: bytes per device for the automatic chunk size.
      out_dir: folder for chunk checkpoints (``chunks/``); None: no checkpoints.
      resume: reuse finished chunks found in ``out_dir`` (same sweep fingerprint only).
      devices: devices to shard over (default ``jax.devices()``: all, across processes).
      on_chunk: ``on_chunk(index, num_chunks)`` after each chunk is finished and saved.
      progress: optional tqdm-like object; ``update(runs)`` per chunk.

    Returns:
      A :class:`SweepResult`.

    Example:
      >>> from jaxreg import data, engine, models
      >>> train = engine.make_train(
      ...     engine.TrainConfig(model=models.DropoutMLP(num_hiddens1=16, num_hiddens2=16),
      ...                        epochs=2, batch_size=64, lr=0.5),
      ...     data.synthetic_classification(256, 64))
      >>> res = run_sweep(train, grid(dropout1=[0.0, 0.5], dropout2=[0.5]), seeds=[0, 1])
      >>> res.final("test_acc").shape
      (2, 2)
    """
    import jax
    from jax.sharding import PartitionSpec as P

    labels, hps = _split_points(points)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    mesh = make_mesh(devices)
    n_dev = mesh.devices.size
    n_points, n_seeds = len(hps), len(seeds)
    n_runs = n_points * n_seeds
    if chunk_size is None:
        chunk_size = choose_chunk_size(train, n_runs, n_dev, memory_budget)
    elif not isinstance(chunk_size, int) or chunk_size < 1 or chunk_size % n_dev:
        raise ValueError(
            f"chunk_size={chunk_size!r}: expected a positive multiple of the {n_dev} devices"
        )
    num_chunks = -(-n_runs // chunk_size)

    # Run r = point r // n_seeds, seed r % n_seeds; every hparam and key gets a leading run axis.
    run_hp = {
        k: np.array([hps[r // n_seeds][k] for r in range(n_runs)], np.float32) for k in hps[0]
    }
    norm = train.normalize_hparams(run_hp)
    run_hp = {k: np.asarray(v, np.float32) for k, v in norm.items()}
    run_keys = np.stack(
        [np.asarray(jax.random.key_data(jax.random.key(seeds[r % n_seeds]))) for r in range(n_runs)]
    )

    fingerprint = _fingerprint(train, labels, hps, seeds, chunk_size)
    chunk_dir = None
    writer = jax.process_index() == 0
    if out_dir is not None:
        chunk_dir = Path(out_dir) / "chunks"
        if writer:
            chunk_dir.mkdir(parents=True, exist_ok=True)

    replicated, sharded = P(), P(AXIS)
    jitted = _chunk_function(train, mesh)
    data = {k: _global_array(mesh, replicated, np.asarray(v)) for k, v in train.data.items()}
    cache = _COMPILED.setdefault(train, {})
    cache_key = (chunk_size, tuple(d.id for d in mesh.devices.flat), tuple(sorted(run_hp)))
    compiled = cache.get(cache_key)
    compile_s = run_s = 0.0
    results: list[dict[str, np.ndarray]] = []
    resumed = computed = 0
    # Compute time of every chunk, also those finished in an earlier (interrupted) session.
    chunk_seconds: list[tuple[int, float]] = []
    for c in range(num_chunks):
        runs = np.arange(c * chunk_size, min((c + 1) * chunk_size, n_runs))
        path = chunk_dir / _CHUNK_FMT.format(c) if chunk_dir is not None else None
        loaded = _load_chunk(path, fingerprint, runs) if (resume and path is not None) else None
        if loaded is not None:
            results.append(loaded[0])
            chunk_seconds.append((len(runs), loaded[1]))
            resumed += 1
        else:
            # The last chunk repeats its final run to the full size: same shapes, same executable.
            idx = np.concatenate([runs, np.full(chunk_size - len(runs), runs[-1])])
            keys = _global_array(mesh, sharded, run_keys[idx])
            hp = {k: _global_array(mesh, sharded, v[idx]) for k, v in run_hp.items()}
            if compiled is None:
                start = time.perf_counter()
                compiled = cache[cache_key] = jitted.lower(data, keys, hp).compile()
                compile_s = time.perf_counter() - start
            start = time.perf_counter()
            out = _to_host(jax.block_until_ready(compiled(data, keys, hp)))
            seconds = time.perf_counter() - start
            run_s += seconds
            chunk_seconds.append((len(runs), seconds))
            chunk_metrics = {k: v[: len(runs)] for k, v in out.items()}
            computed += len(runs)
            if path is not None and writer:
                _save_chunk(path, fingerprint, runs, chunk_metrics, seconds)
            results.append(chunk_metrics)
        if progress is not None:
            progress.update(len(runs))
        if on_chunk is not None:
            on_chunk(c, num_chunks)

    metrics = {
        k: np.concatenate([r[k] for r in results]).reshape(
            n_points, n_seeds, *results[0][k].shape[1:]
        )
        for k in results[0]
    }
    timed = [(n, t) for n, t in chunk_seconds if np.isfinite(t)]
    stats = {
        "compile_s": compile_s,
        "run_s_session": run_s,
        "run_s": sum(t for _, t in timed),
        "timed_runs": sum(n for n, _ in timed),
        "chunk_size": chunk_size,
        "num_chunks": num_chunks,
        "resumed_chunks": resumed,
        "computed_runs": computed,
        "devices": n_dev,
        "processes": jax.process_count(),
        "platform": mesh.devices.flat[0].platform,
        "fingerprint": fingerprint,
    }
    return SweepResult(labels, hps, seeds, metrics, train.config.epochs, stats)


# ----------------------------------------------------------------------------------------------
# Single-model baseline (for the cost-per-configuration-epoch comparison)
# ----------------------------------------------------------------------------------------------
def time_single_run(
    train: engine.Train, point: Mapping[str, Any], seed: int = 0, repeats: int = 2
) -> dict[str, Any]:
    """Times an un-vmapped ``train(key, hparams)`` run after compiling it (the baseline).

    Args:
      train: the sweep's ``Train``.
      point: the hyperparameters of the run.
      seed: its seed.
      repeats: timed runs (on a shared machine single timings are noisy).

    Returns:
      ``{"compile_s", "run_s", "epoch_s", "epoch_s_each"}``: ``run_s`` and ``epoch_s`` are means
      over the repeats.
    """
    import jax

    hp = train.normalize_hparams({k: v for k, v in point.items() if k != "name"})
    key = jax.random.key(seed)
    start = time.perf_counter()
    compiled = jax.jit(train.pure).lower(train.data, key, hp, None).compile()
    compile_s = time.perf_counter() - start
    each = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        jax.block_until_ready(compiled(train.data, key, hp, None))
        each.append(time.perf_counter() - start)
    run_s = float(np.mean(each))
    epochs = train.config.epochs
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "epoch_s": run_s / epochs,
        "epoch_s_each": [t / epochs for t in each],
    }


# ----------------------------------------------------------------------------------------------
# Outputs: config.json, metrics.npz, results.csv, plots, report.md
# ----------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


def _primary_metric(result: SweepResult) -> str:
    acc = np.asarray(result.metrics.get("test_acc", np.nan))
    return "test_acc" if np.isfinite(acc).any() else "test_loss"


def plot_curves(result: SweepResult, path: Path, metric: str | None = None) -> Path:
    """Learning curves: the mean over seeds of ``metric`` per point, with a +-1 std band."""
    figure = _plt()
    metric = metric or _primary_metric(result)
    fig = figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    values = np.asarray(result.metrics[metric], np.float64)
    epochs = np.arange(1, values.shape[2] + 1)
    for i, label in enumerate(result.labels):
        series = values[i]
        keep = ~np.isnan(series).all(axis=0)
        with _quiet_nan_warnings():
            mean, std = np.nanmean(series[:, keep], 0), np.nanstd(series[:, keep], 0)
        (line,) = ax.plot(epochs[keep], mean, lw=1.4, label=label)
        ax.fill_between(epochs[keep], mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    if len(result.labels) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _varying_axes(result: SweepResult) -> list[str]:
    keys = list(result.points[0])
    return [k for k in keys if len({p[k] for p in result.points}) > 1]


def plot_final_vs(result: SweepResult, axis: str, path: Path, *, mark: int | None = None) -> Path:
    """Final train/validation/test metric against one hyperparameter, a line per other setting.

    The x axis is logarithmic when every value is positive and they span a factor >= 20 (the
    seed 004 exercise: accuracy against lambda on a log scale). ``mark`` circles a chosen point.
    """
    figure = _plt()
    fig = figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    metric = _primary_metric(result)
    kind = metric.split("_")[1]
    others = [k for k in _varying_axes(result) if k != axis]
    groups: dict[tuple, list[int]] = {}
    for i, point in enumerate(result.points):
        groups.setdefault(tuple((k, point[k]) for k in others), []).append(i)
    styles = {"train": ":", "val": "--", "test": "-"}
    for g, (group, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda i: result.points[i][axis])
        x = np.array([result.points[i][axis] for i in members])
        color = f"C{g % 10}"
        for split, style in styles.items():
            name = f"{split}_{kind}"
            if name not in result.metrics:
                continue
            mean, std = result.summary(name)
            label = f"{split}" + (" " + ", ".join(f"{k}={v:g}" for k, v in group) if group else "")
            ax.errorbar(
                x,
                mean[members],
                yerr=std[members],
                fmt=style,
                color=color,
                marker="o",
                ms=3,
                lw=1.2,
                capsize=2,
                label=label,
            )
    values = np.array([p[axis] for p in result.points])
    if (values > 0).all() and values.max() / values.min() >= 20:
        ax.set_xscale("log")
    if mark is not None:
        mean, _ = result.summary(metric)
        ax.plot(
            [result.points[mark][axis]],
            [mean[mark]],
            "o",
            ms=12,
            mfc="none",
            mec="k",
            label="chosen",
        )
    ax.set_xlabel(axis)
    ax.set_ylabel(f"final {kind}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_heatmap(result: SweepResult, rows: str, cols: str, path: Path) -> Path:
    """Mean final test metric over a 2-D grid (seed 004: the two dropout rates, swapped)."""
    figure = _plt()
    metric = _primary_metric(result)
    mean, _ = result.summary(metric)
    rv = sorted({p[rows] for p in result.points})
    cv = sorted({p[cols] for p in result.points})
    table = np.full((len(rv), len(cv)), np.nan)
    for i, p in enumerate(result.points):
        table[rv.index(p[rows]), cv.index(p[cols])] = mean[i]
    fig = figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    im = ax.imshow(table, origin="lower", cmap="viridis")
    ax.set_xticks(range(len(cv)), [f"{v:g}" for v in cv])
    ax.set_yticks(range(len(rv)), [f"{v:g}" for v in rv])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    for (i, j), v in np.ndenumerate(table):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label=f"final {metric.replace('_', ' ')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_activation_variance(result: SweepResult, path: Path) -> Path:
    """Per hidden layer, the variance of its activations over training, for every point."""
    figure = _plt()
    fig = figure(figsize=(9, 3.8))
    names = [n for n in ("act_var", "act_var_train") if n in result.metrics]
    for j, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), j + 1)
        values = np.asarray(result.metrics[name], np.float64)  # [points, seeds, epochs, layers]
        epochs = np.arange(1, values.shape[2] + 1)
        for i, label in enumerate(result.labels):
            for layer in range(values.shape[3]):
                with _quiet_nan_warnings():
                    mean = np.nanmean(values[i, :, :, layer], axis=0)
                keep = ~np.isnan(mean)
                ls = "-" if layer == 0 else "--"
                ax.plot(
                    epochs[keep],
                    mean[keep],
                    ls,
                    color=f"C{i % 10}",
                    label=f"{label}, hidden {layer + 1}",
                )
        ax.set_title("eval mode" if name == "act_var" else "train mode (dropout on)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("activation variance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def write_outputs(
    result: SweepResult,
    out_dir: str | os.PathLike,
    *,
    name: str = "sweep",
    command: str = "",
    config: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    baseline: Mapping[str, float] | None = None,
    plots: Sequence[tuple[str, Callable[[SweepResult, Path], Path]]] = (),
) -> Path:
    """Writes a sweep's ``config.json``, ``metrics.npz``, ``results.csv``, plots and ``report.md``.

    Args:
      result: from :func:`run_sweep`.
      out_dir: the run folder.
      name: the sweep's name (title of the report).
      command: the command line that ran it.
      config: extra JSON-able configuration to record.
      notes: extra report paragraphs (the preset's conclusions).
      baseline: :func:`time_single_run`'s timings, to state the cost ratio.
      plots: ``(file name, plot_fn(result, path))`` pairs beyond the default learning curves.

    Returns:
      The path of ``report.md``.
    """
    import csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = result.epochs
    n_runs = len(result.points) * len(result.seeds)
    computed = result.stats.get("timed_runs", n_runs)
    cost = result.stats["run_s"] / (computed * epochs) if computed else float("nan")
    timing = {**result.stats, "configuration_epoch_s": cost}
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
    }
    payload = json.dumps(record, indent=2, default=str, sort_keys=True) + "\n"
    atomic_write_bytes(out / "config.json", payload.encode())
    buf = io.BytesIO()
    np.savez_compressed(
        buf, labels=np.array(result.labels), seeds=np.array(result.seeds), **result.metrics
    )
    atomic_write_bytes(out / "metrics.npz", buf.getvalue())
    rows = result.rows()
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    images = [("curves.png", plot_curves(result, out / "curves.png"))]
    for file_name, fn in plots:
        images.append((file_name, fn(result, out / file_name)))

    metric_cols = [c for c in rows[0] if c.endswith("_mean") and "acc" in c] or [
        c for c in rows[0] if c.endswith("_mean")
    ]
    lines = [f"# Sweep: {name}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"{len(result.points)} points x {len(result.seeds)} seeds = {n_runs} runs of "
        f"{epochs} epochs, "
        f"one vmapped program per chunk of {result.stats['chunk_size']} runs "
        f"({result.stats['num_chunks']} chunks, {result.stats['resumed_chunks']} resumed from "
        f"checkpoints) on {result.stats['devices']} {result.stats['platform']} device(s), "
        f"{result.stats['processes']} process(es).",
        "",
        f"- compile: {result.stats['compile_s']:.1f} s (once for the whole grid)",
        f"- run: {result.stats['run_s']:.1f} s of compute for {computed} runs (chunk times "
        f"recorded in the checkpoints, earlier sessions included) -> "
        f"**{1e3 * cost:.1f} ms per configuration-epoch**",
    ]
    if baseline:
        each = ", ".join(f"{1e3 * t:.0f}" for t in baseline.get("epoch_s_each", []))
        lines.append(
            f"- single model, same recipe, un-vmapped: {1e3 * baseline['epoch_s']:.1f} ms per "
            f"epoch (runs: {each} ms) -> the sweep costs **{cost / baseline['epoch_s']:.2f}x** "
            f"a single model's epoch per configuration ({baseline['epoch_s'] / cost:.2f}x "
            "throughput)"
        )
    lines += [
        "",
        "| point | " + " | ".join(c.replace("_mean", "") for c in metric_cols) + " | diverged |",
    ]
    lines.append("|---" * (len(metric_cols) + 2) + "|")
    for row in rows:
        cells = [f"{row[c]:.4f} +- {row[c.replace('_mean', '_std')]:.4f}" for c in metric_cols]
        lines.append(f"| {row['point']} | " + " | ".join(cells) + f" | {row['diverged'] or '-'} |")
    lines += ["", "Mean +- standard deviation over seeds of the last evaluated epoch.", ""]
    lines += [*notes, ""] if notes else []
    for file_name, _ in images:
        lines += [f"![{file_name}]({file_name})", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


# ----------------------------------------------------------------------------------------------
# Presets: seed 004's exercises
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    """A named sweep: engine config, points, seeds, data split, plots and report notes."""

    name: str
    description: str
    config: engine.TrainConfig
    points: list[dict[str, Any]]
    seeds: tuple[int, ...] = (0,)
    validation: int = 0
    plots: list[tuple[str, Callable[[SweepResult, Path], Path]]] = dataclasses.field(
        default_factory=list
    )
    notes: Callable[[SweepResult], list[str]] | None = None


def _dropout_mlp_config(**overrides) -> engine.TrainConfig:
    from jaxreg.models import DropoutMLP

    kw = {"model": DropoutMLP(style="scratch"), "lr": 0.5, "batch_size": 256, "epochs": 10}
    kw.update(overrides)
    return engine.TrainConfig(**kw)


def _weight_decay_mlp_config(**overrides) -> engine.TrainConfig:
    from jaxreg.models import WeightDecayMLP

    kw = {"model": WeightDecayMLP(), "lr": 0.1, "batch_size": 256, "epochs": 10}
    kw.update(overrides)
    return engine.TrainConfig(**kw)


def _best(result: SweepResult, metric: str) -> int:
    mean, _ = result.summary(metric)
    return int(np.nanargmax(np.where(np.isnan(mean), -np.inf, mean)))


def _lambda_notes(result: SweepResult) -> list[str]:
    chosen = _best(result, "val_acc") if "val_acc" in result.metrics else _best(result, "test_acc")
    best_test = _best(result, "test_acc")
    test, _ = result.summary("test_acc")
    val = result.summary("val_acc")[0] if "val_acc" in result.metrics else test
    return [
        f"lambda chosen on the validation split: **{result.points[chosen]['weight_decay']:g}** "
        f"(validation accuracy {val[chosen]:.4f}, test accuracy {test[chosen]:.4f}). The lambda "
        f"with the best test accuracy is {result.points[best_test]['weight_decay']:g} "
        f"({test[best_test]:.4f}): the difference is what choosing on the test set would "
        "overstate."
    ]


def _lambda_plan() -> Plan:
    lambdas = np.geomspace(1e-4, 1e-1, 8)
    return Plan(
        "lambda-curve",
        "seed 004 exercise 1-2: train/validation/test accuracy against the weight-decay lambda "
        "(log scale), lambda chosen on a 10000-image validation split",
        _weight_decay_mlp_config(),
        grid(weight_decay=list(lambdas)),
        seeds=(0, 1),
        validation=10000,
        plots=[
            (
                "accuracy_vs_lambda.png",
                lambda r, p: plot_final_vs(r, "weight_decay", p, mark=_best(r, "val_acc")),
            )
        ],
        notes=_lambda_notes,
    )


def _swap_notes(result: SweepResult) -> list[str]:
    test, std = result.summary("test_acc")
    index = {(p["dropout1"], p["dropout2"]): i for i, p in enumerate(result.points)}
    lines = []
    a, b = index.get((0.2, 0.5)), index.get((0.5, 0.2))
    if a is not None and b is not None:
        lines.append(
            f"Seed rates (dropout1=0.2, dropout2=0.5): test accuracy {test[a]:.4f} +- "
            f"{std[a]:.4f}; swapped (0.5, 0.2): {test[b]:.4f} +- {std[b]:.4f} (difference "
            f"{test[b] - test[a]:+.4f})."
        )
    best = _best(result, "test_acc")
    lines.append(f"Best pair on test: {result.labels[best]} ({test[best]:.4f}).")
    return lines


def _swap_plan() -> Plan:
    rates = [0.0, 0.2, 0.5, 0.8]
    return Plan(
        "dropout-swap",
        "seed 004 dropout exercise 1: the two dropout rates swapped, and a 4x4 grid over both",
        _dropout_mlp_config(),
        grid(dropout1=rates, dropout2=rates),
        seeds=(0,),
        plots=[
            ("dropout_grid.png", lambda r, p: plot_heatmap(r, "dropout1", "dropout2", p)),
            ("accuracy_vs_dropout1.png", lambda r, p: plot_final_vs(r, "dropout1", p)),
        ],
        notes=_swap_notes,
    )


def _additive_notes(result: SweepResult) -> list[str]:
    test, std = result.summary("test_acc")
    idx = {label: i for i, label in enumerate(result.labels)}
    if not {"none", "dropout", "decay", "both"} <= set(idx):
        return []
    g_d = test[idx["dropout"]] - test[idx["none"]]
    g_w = test[idx["decay"]] - test[idx["none"]]
    g_b = test[idx["both"]] - test[idx["none"]]
    # A difference smaller than the seed-to-seed spread is not evidence either way.
    noise = max(float(np.nanmean(std)), 0.002)
    excess = g_b - (g_d + g_w)
    if abs(excess) < noise:
        verdict = "additive within seed-to-seed noise"
    elif excess > 0:
        verdict = "more than additive"
    else:
        verdict = "less than additive (diminishing returns)"
    return [
        f"Test-accuracy gains over no regularization: dropout {g_d:+.4f}, weight decay {g_w:+.4f}, "
        f"both {g_b:+.4f} vs the sum {g_d + g_w:+.4f}: **{verdict}** (seed-to-seed std about "
        f"{np.nanmean(std):.4f})."
    ]


def _additive_plan() -> Plan:
    wd = 5e-4
    points = [
        {"name": "none", "dropout1": 0.0, "dropout2": 0.0, "weight_decay": 0.0},
        {"name": "dropout", "dropout1": 0.2, "dropout2": 0.5, "weight_decay": 0.0},
        {"name": "decay", "dropout1": 0.0, "dropout2": 0.0, "weight_decay": wd},
        {"name": "both", "dropout1": 0.2, "dropout2": 0.5, "weight_decay": wd},
    ]
    return Plan(
        "dropout-vs-decay",
        "seed 004 dropout exercise 5: dropout vs weight decay (5e-4, weights only) vs both: "
        "are the gains additive?",
        _dropout_mlp_config(),
        points,
        seeds=(0, 1, 2),
        notes=_additive_notes,
    )


def _gap_notes(result: SweepResult) -> list[str]:
    train_acc, _ = result.summary("train_acc")
    test, _ = result.summary("test_acc")
    best = np.nanmax(np.asarray(result.metrics["test_acc"], np.float64).mean(axis=1), axis=-1)
    return [
        f"{label}: final train accuracy {train_acc[i]:.4f}, test {test[i]:.4f} (gap "
        f"{train_acc[i] - test[i]:+.4f}), best test over epochs {best[i]:.4f}."
        for i, label in enumerate(result.labels)
    ]


def _on_off_points() -> list[dict[str, Any]]:
    return [
        {"name": "no dropout", "dropout1": 0.0, "dropout2": 0.0},
        {"name": "dropout 0.2/0.5", "dropout1": 0.2, "dropout2": 0.5},
    ]


def _long_plan() -> Plan:
    return Plan(
        "long-training",
        "seed 004 dropout exercise 2: train longer (50 epochs) with and without dropout",
        _dropout_mlp_config(epochs=50),
        _on_off_points(),
        seeds=(0,),
        plots=[("train_acc_curves.png", lambda r, p: plot_curves(r, p, "train_acc"))],
        notes=_gap_notes,
    )


def _variance_notes(result: SweepResult) -> list[str]:
    values = np.asarray(result.metrics["act_var"], np.float64)
    lines = []
    for i, label in enumerate(result.labels):
        final = np.nanmean(values[i, :, -1, :], axis=0)
        layers = ", ".join(f"hidden {j + 1}: {v:.4f}" for j, v in enumerate(final))
        lines.append(f"{label}: activation variance after the last epoch (eval mode) {layers}.")
    return lines


def _variance_plan() -> Plan:
    return Plan(
        "activation-variance",
        "seed 004 dropout exercise 3: variance of each hidden layer's activations over training, "
        "with and without dropout (probe: 1000 test images)",
        _dropout_mlp_config(epochs=20, track_activation_variance=True),
        _on_off_points(),
        seeds=(0,),
        plots=[("activation_variance.png", plot_activation_variance)],
        notes=_variance_notes,
    )


def _fmnist64_plan() -> Plan:
    lambdas = np.geomspace(1e-5, 1e-2, 8)
    rates = [0.0, 0.2, 0.4, 0.6]
    points = [
        {"weight_decay": float(wd), "dropout1": p, "dropout2": p} for p in rates for wd in lambdas
    ]
    return Plan(
        "fmnist-64",
        "64 configurations: 8 weight-decay lambdas x 4 dropout rates (both layers) x 2 seeds, "
        "dropout MLP (seeds 003/004 recipe: SGD lr 0.5, batch 256, 10 epochs)",
        _dropout_mlp_config(),
        points,
        seeds=(0, 1),
        plots=[("accuracy_vs_lambda.png", lambda r, p: plot_final_vs(r, "weight_decay", p))],
        notes=lambda r: [f"Best configuration on test: {r.labels[_best(r, 'test_acc')]}."],
    )


def _custom_plan() -> Plan:
    return Plan(
        "custom",
        "a grid given with --grid over the dropout MLP (--model weight-decay-mlp for seed 004's)",
        _dropout_mlp_config(),
        [{"dropout1": 0.2, "dropout2": 0.5}],
        seeds=(0,),
    )


PRESETS: dict[str, Callable[[], Plan]] = {
    "lambda-curve": _lambda_plan,
    "dropout-swap": _swap_plan,
    "dropout-vs-decay": _additive_plan,
    "long-training": _long_plan,
    "activation-variance": _variance_plan,
    "fmnist-64": _fmnist64_plan,
    "custom": _custom_plan,
}
"""Sweep presets by name (``jaxreg sweep NAME``); each builds a :class:`Plan`."""


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def parse_values(text: str) -> list[float]:
    """Grid values from the command line: ``0,0.2,0.5``, ``log:1e-5:1e-2:8`` or ``lin:0:0.6:4``.

    Example:
      >>> parse_values("log:1e-3:1e-1:3")
      [0.001, 0.01, 0.1]
    """
    try:
        if text.startswith(("log:", "lin:")):
            kind, lo, hi, n = text.split(":")
            fn = np.geomspace if kind == "log" else np.linspace
            return [float(f"{v:.6g}") for v in fn(float(lo), float(hi), int(n))]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated numbers, log:LO:HI:N or lin:LO:HI:N"
        ) from None


def _grid_arg(text: str) -> tuple[str, list[float]]:
    name, sep, values = text.partition("=")
    if not sep or name not in engine.HPARAMS:
        raise argparse.ArgumentTypeError(
            f"--grid {text!r}: expected NAME=VALUES with NAME in {engine.HPARAMS}"
        )
    parsed = parse_values(values)
    if not parsed:
        raise argparse.ArgumentTypeError(f"--grid {text!r}: no values")
    return name, parsed


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``jaxreg sweep`` options (also usable standalone: ``python -m jaxreg.lab.sweep``)."""
    parser = parser or argparse.ArgumentParser(
        prog="jaxreg sweep",
        description="Train a hyperparameter grid x seeds as one vmapped, compiled JAX program "
        "(sharded over all devices, checkpointed per chunk, resumable).",
    )
    parser.add_argument("preset", choices=sorted(PRESETS), help="which sweep")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the preset's)")
    parser.add_argument(
        "--grid",
        type=_grid_arg,
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="a grid axis, e.g. weight_decay=log:1e-5:1e-2:8 or dropout1=0,0.2,0.5 (repeatable; "
        "replaces the preset's points by the product of the given axes)",
    )
    parser.add_argument(
        "--model", choices=("dropout-mlp", "weight-decay-mlp"), help="model for custom"
    )
    parser.add_argument("--lr", type=float, help="default learning rate (overridden by a grid)")
    parser.add_argument(
        "--hidden", type=int, help="hidden width(s) of the preset's MLP (default: the seeds' 256)"
    )
    parser.add_argument(
        "--chunk-size", type=int, help="runs per compiled call (default: by memory)"
    )
    parser.add_argument("--memory-budget", type=float, help="bytes per device for auto chunks")
    parser.add_argument("--devices", type=int, help="use only the first N devices")
    parser.add_argument(
        "--out",
        help="output folder (default runs/sweep/PRESET-<id>/; re-run the same command to resume)",
    )
    parser.add_argument("--no-resume", action="store_true", help="ignore finished chunks")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--train-size", type=int, help="use the first N training images")
    parser.add_argument("--test-size", type=int, help="use the first N test images")
    parser.add_argument("--validation", type=int, help="validation images held out of training")
    parser.add_argument("--synthetic", type=int, metavar="N", help="synthetic blobs, N train")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time one un-vmapped single-model run for the cost ratio",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize() with cluster auto-detection (SLURM, MPI)",
    )
    parser.add_argument("--coordinator", help="multi-host: coordinator HOST:PORT")
    parser.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    parser.add_argument("--process-id", type=int, help="multi-host: this process's index")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or table")
    return parser


def _init_distributed(args) -> None:
    if not (args.coordinator or args.distributed):
        return
    import jax

    try:
        # CPU processes need gloo for cross-process collectives (the result gather).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):
        pass
    if args.coordinator:
        jax.distributed.initialize(
            args.coordinator, num_processes=args.num_processes, process_id=args.process_id
        )
    else:
        jax.distributed.initialize()


def plan_from_args(args) -> tuple[Plan, Any]:
    """The preset with the command-line overrides applied, and its data set."""
    from jaxreg.lab import data as data_mod

    plan = PRESETS[args.preset]()
    overrides: dict[str, Any] = {}
    if args.model == "weight-decay-mlp":
        plan.config = _weight_decay_mlp_config()
    if args.hidden is not None:
        model = plan.config.model
        widths = ("num_hiddens1", "num_hiddens2", "num_hidden")
        overrides["model"] = model.clone(
            **{w: args.hidden for w in widths if hasattr(model, w)}, parent=None
        )
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.lr is not None:
        overrides["lr"] = args.lr
    if overrides:
        plan.config = dataclasses.replace(plan.config, **overrides)
    if args.grid:
        plan.points = grid(**dict(args.grid))
    if args.seeds:
        plan.seeds = tuple(args.seeds)
    validation = plan.validation if args.validation is None else args.validation
    if args.synthetic:
        dataset = data_mod.synthetic_classification(
            args.synthetic, max(args.synthetic // 4, 1), validation=validation, seed=0
        )
        if args.test_size:
            dataset = dataset._replace(
                x_test=dataset.x_test[: args.test_size], y_test=dataset.y_test[: args.test_size]
            )
    else:
        dataset = data_mod.load_fashion_mnist(
            args.data_dir,
            validation=validation,
            seed=0,
            train_size=args.train_size,
            test_size=args.test_size,
        )
    return plan, dataset


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxreg sweep``: the command-line hook (``jaxreg.lab.cli`` hands it ``argv`` after "sweep").

    Example:
      >>> main(["custom", "--synthetic", "256", "--grid", "dropout1=0,0.5", "--epochs", "1",
      ...       "--out", "/tmp/jaxreg-sweep-doc", "--quiet"])  # doctest: +SKIP
      0
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _init_distributed(args)
    import jax

    plan, dataset = plan_from_args(args)
    train = engine.make_train(plan.config, dataset)
    devices = jax.devices()[: args.devices] if args.devices else None
    command = "jaxreg sweep " + " ".join(sys.argv[1:] if argv is None else argv)
    ident = hashlib.sha256(
        json.dumps(
            [
                plan.name,
                repr(plan.config),
                plan.points,
                plan.seeds,
                sorted(vars(args).items(), key=str),
            ],
            default=str,
        ).encode()
    ).hexdigest()[:8]
    out = Path(args.out) if args.out else Path("runs") / "sweep" / f"{plan.name}-{ident}"
    is_main = jax.process_index() == 0
    n_runs = len(plan.points) * len(plan.seeds)
    progress = None
    if is_main and not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=n_runs, desc=f"sweep {plan.name}", unit="run")
    result = run_sweep(
        train,
        plan.points,
        plan.seeds,
        chunk_size=args.chunk_size,
        memory_budget=int(args.memory_budget) if args.memory_budget else None,
        out_dir=out,
        resume=not args.no_resume,
        devices=devices,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    baseline = None
    if args.baseline:
        baseline = time_single_run(
            train, {k: v for k, v in plan.points[0].items() if k != "name"}, plan.seeds[0]
        )
    if is_main:
        notes = plan.notes(result) if plan.notes else []
        config = {
            "preset": plan.name,
            "description": plan.description,
            "train_config": {
                f.name: repr(getattr(plan.config, f.name)) for f in dataclasses.fields(plan.config)
            },
            "data": {
                "train": len(dataset.x_train),
                "test": len(dataset.x_test) if dataset.x_test is not None else 0,
                "validation": 0 if dataset.x_val is None else len(dataset.x_val),
                "source": f"synthetic({args.synthetic})" if args.synthetic else "fashion-mnist",
            },
            "baseline": baseline,
        }
        report = write_outputs(
            result,
            out,
            name=plan.name,
            command=command,
            config=config,
            notes=[plan.description, "", *notes],
            baseline=baseline,
            plots=plan.plots,
        )
        if not args.quiet:
            print(report.read_text())
        print(f"sweep {plan.name}: {n_runs} runs, report in {report}")
    return 0


cli_main = main
"""Alias of :func:`main` (the hook name given to ``jaxreg.lab.cli``)."""

if __name__ == "__main__":
    raise SystemExit(main())

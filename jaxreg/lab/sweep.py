"""Hyperparameter sweeps as ONE vmapped, jit-compiled computation; sharded, multi-host, resumable.

The seeds' exercises (seed 004: "plot accuracy against lambda", "swap the dropout rates", "dropout
vs weight decay: additive?", "train longer", "activation variance per layer") are dozens of
sequential runs in PyTorch. Here a sweep is ``jax.vmap(train.pure)`` over a leading axis that
stacks every (hyperparameter point, seed) pair: hyperparameters are traced, so the whole grid is
compiled once and runs as one XLA program per chunk.

* Chunks: the runs are cut into fixed-size chunks (padded by repeating the last run) so every
  chunk reuses the one compiled executable; the size comes from ``chunk_size`` or a memory budget
  (:func:`jaxreg.lab.distributed.choose_chunk_size`).
* Devices: each chunk is sharded over a 1-D mesh of all devices of all processes
  (:mod:`jaxreg.lab.distributed`); the data are replicated.
* Checkpoints: every finished chunk is saved atomically with the sweep's fingerprint; the same
  sweep run again reads finished chunks back (:mod:`jaxreg.lab.checkpoint`, which warns about a
  chunk file it cannot use).
* Divergence: a run whose objective becomes NaN/Inf is reported diverged with its step
  (``diverged_step``); vmapped runs are independent, so the others are unaffected.
* Timing: compilation and chunk execution are timed by :mod:`jaxreg.lab.timing`.

The result is a :class:`jaxreg.lab.results.SweepResult`;
:func:`jaxreg.lab.report.write_sweep_report` writes its files. Presets (seed 004's exercises)
are configs in ``experiments/sweeps/``, run by :mod:`jaxreg.lab.presets` and the command line
``jaxreg sweep PRESET`` (:mod:`jaxreg.lab.cli`).

PyTorch equivalent: a Python loop over configurations, or ``torch.func.stack_module_state`` +
``torch.func.vmap`` (see :mod:`jaxreg.torch_ref.sweep`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxreg.lab import checkpoint, distributed
from jaxreg.lab.grids import grid, split_points
from jaxreg.lab.results import SweepResult

__all__ = ["SweepResult", "grid", "run_sweep", "time_single_run"]


# Compiled chunk programs per Train, so several sweeps of one config compile once.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _chunk_function(train: Any, mesh):
    """``jit(vmap(train.pure))`` over a chunk: data replicated, keys/hparams/metrics sharded.

    Traced under ``vmap``, ``train.pure`` is the engine's scan form whatever ``train.loop`` says
    (a vmapped run has no Python loop to step).
    """
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxreg.lab.engine import STEP_METRICS

    def _epoch_metrics(data, k, h):
        # A sweep reports per-epoch metrics; the per-step losses of every run would multiply
        # its files by the steps per epoch (train one run to get them).
        metrics = train.pure(data, k, h).metrics
        return {name: v for name, v in metrics.items() if name not in STEP_METRICS}

    def _sweep_chunk(data, keys, hp):
        return jax.vmap(_epoch_metrics, in_axes=(None, 0, 0))(data, keys, hp)

    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P(distributed.AXIS))
    return jax.jit(
        _sweep_chunk,
        in_shardings=(replicated, sharded, sharded),
        out_shardings=sharded,
    )


def run_sweep(
    train: Any,
    points: Sequence[Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    out_dir: str | Path | None = None,
    resume: bool = True,
    devices: Sequence[Any] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    progress: Any = None,
) -> SweepResult:
    """Trains every (point, seed) pair as one vmapped, compiled computation per chunk.

    PyTorch equivalent: ``for point in points: for seed in seeds: train(...)`` (sequential), or
    ``torch.func.vmap`` over ``stack_module_state`` (:mod:`jaxreg.torch_ref.sweep`). Seed 004's
    exercises are the presets in ``experiments/sweeps/`` (:mod:`jaxreg.lab.presets`).

    Args:
      train: from :func:`jaxreg.lab.engine.make_train` (its config and data).
      points: hyperparameter dicts (keys from :data:`jaxreg.lab.engine.HPARAMS` that the run
        uses, all points the same keys; an optional ``"name"`` labels a point); see :func:`grid`.
      seeds: PRNG seeds; run ``(p, s)`` uses ``jax.random.key(seeds[s])`` for initialization,
        shuffling and dropout, so points are compared on the same initializations.
      chunk_size: runs per compiled call (a multiple of the device count); None: as many as
        ``memory_budget`` allows.
      memory_budget: bytes per device for the automatic chunk size.
      out_dir: folder for chunk checkpoints (``chunks/``); None: no checkpoints.
      resume: reuse finished chunks found in ``out_dir`` (same sweep fingerprint only).
      devices: devices to shard over (default ``jax.devices()``: all, across processes).
      on_chunk: ``on_chunk(index, num_chunks)`` after each chunk is finished and saved.
      progress: optional tqdm-like object; ``update(runs)`` per chunk.

    Returns:
      A :class:`jaxreg.lab.results.SweepResult`.

    Raises:
      ValueError: no points or seeds, points that disagree, a hyperparameter the run does not
        use (named), a value out of range, or a bad ``chunk_size``.

    Example:
      >>> from jaxreg import models
      >>> from jaxreg.lab import data, engine
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

    from jaxreg.lab import timing

    labels, hps = split_points(points)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    mesh = distributed.make_mesh(devices)
    n_dev = mesh.devices.size
    n_points, n_seeds = len(hps), len(seeds)
    n_runs = n_points * n_seeds
    if chunk_size is None:
        chunk_size = distributed.choose_chunk_size(train, n_runs, n_dev, memory_budget)
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

    fingerprint = checkpoint.fingerprint(train.config, train.data, labels, hps, seeds, chunk_size)
    chunk_dir = None
    writer = jax.process_index() == 0
    if out_dir is not None:
        chunk_dir = Path(out_dir) / "chunks"
        if writer:
            chunk_dir.mkdir(parents=True, exist_ok=True)

    replicated, sharded = P(), P(distributed.AXIS)
    jitted = _chunk_function(train, mesh)
    data = {
        k: distributed.global_array(mesh, replicated, np.asarray(v)) for k, v in train.data.items()
    }
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
        path = checkpoint.chunk_path(chunk_dir, c) if chunk_dir is not None else None
        loaded = None
        if resume and path is not None:
            loaded = checkpoint.load_chunk(path, fingerprint, runs)
        if loaded is not None:
            results.append(loaded[0])
            chunk_seconds.append((len(runs), loaded[1]))
            resumed += 1
        else:
            # The last chunk repeats its final run to the full size: same shapes, same executable.
            idx = np.concatenate([runs, np.full(chunk_size - len(runs), runs[-1])])
            keys = distributed.global_array(mesh, sharded, run_keys[idx])
            hp = {k: distributed.global_array(mesh, sharded, v[idx]) for k, v in run_hp.items()}
            if compiled is None:
                compiled, compile_s = timing.compile_and_time(jitted, data, keys, hp)
                cache[cache_key] = compiled
            out, seconds = timing.timed_call(compiled, data, keys, hp)
            out = distributed.to_host(out)
            run_s += seconds
            chunk_seconds.append((len(runs), seconds))
            chunk_metrics = {k: v[: len(runs)] for k, v in out.items()}
            computed += len(runs)
            if path is not None and writer:
                checkpoint.save_chunk(path, fingerprint, runs, chunk_metrics, seconds)
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


def time_single_run(
    train: Any, point: Mapping[str, Any], seed: int = 0, repeats: int = 2
) -> dict[str, Any]:
    """Times an un-vmapped ``train(key, hparams)`` run after compiling it (the baseline).

    Args:
      train: the sweep's ``Train``.
      point: the hyperparameters of the run (a ``"name"`` is ignored).
      seed: its seed.
      repeats: timed runs (on a shared machine single timings are noisy).

    Returns:
      ``{"compile_s", "run_s", "epoch_s", "epoch_s_each"}``: ``run_s`` and ``epoch_s`` are means
      over the repeats.
    """
    import jax

    from jaxreg.lab import timing

    hp = train.normalize_hparams({k: v for k, v in point.items() if k != "name"})
    key = jax.random.key(seed)
    args = (train.data, key, hp, None)
    compiled, compile_s = timing.compile_and_time(jax.jit(train.pure), *args)
    each = timing.time_calls(compiled, *args, repeats=max(1, repeats))
    run_s = float(np.mean(each))
    epochs = train.config.epochs
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "epoch_s": run_s / epochs,
        "epoch_s_each": [t / epochs for t in each],
    }

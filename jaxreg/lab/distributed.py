"""Where a sweep's runs go: the device mesh, sharded arrays, multi-host start-up, chunk sizing.

A sweep's runs are laid out along one mesh axis, :data:`AXIS` (``"config"``), over every device
of every process; the data are replicated. Several hosts join with ``jax.distributed`` (CPU hosts
gather results with gloo collectives). The number of runs per compiled chunk is chosen from an
estimate of one run's memory so that a chunk fits the device.

PyTorch equivalent: ``torch.distributed.init_process_group`` + a ``DeviceMesh``; there is no
vmapped-configuration axis to shard in torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

AXIS = "config"


def check_flags(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    *,
    auto: bool = False,
) -> None:
    """Raises ValueError (one line, naming the flags) when the multi-host options disagree.

    ``--coordinator HOST:PORT``, ``--num-processes N`` and ``--process-id I`` go together
    (``0 <= I < N``); ``--distributed`` detects all three from the cluster and takes none of them.

    Example:
      >>> check_flags("host:1234", None, None)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: --coordinator needs --num-processes and --process-id...
    """
    given = {
        "--coordinator": coordinator is not None,
        "--num-processes": num_processes is not None,
        "--process-id": process_id is not None,
    }
    named = [flag for flag, present in given.items() if present]
    if auto and named:
        raise ValueError(
            f"--distributed detects the cluster (SLURM, Open MPI): drop {', '.join(named)}, or "
            "drop --distributed and give --coordinator, --num-processes and --process-id"
        )
    if named and len(named) < 3:
        missing = [flag for flag, present in given.items() if not present]
        raise ValueError(
            f"{named[0]} needs {' and '.join(missing)}: --coordinator, --num-processes and "
            "--process-id go together (one value per process)"
        )
    if coordinator is not None and (":" not in coordinator or not coordinator.rsplit(":")[-1]):
        raise ValueError(f"--coordinator {coordinator!r}: expected HOST:PORT, e.g. node0:1234")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id {process_id} must be in 0..{num_processes - 1} (--num-processes "
            f"{num_processes})"
        )


def init_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
) -> bool:
    """Joins a multi-host JAX job; call before any other jax work.

    Args:
      coordinator: ``HOST:PORT`` of process 0.
      num_processes: the number of processes (with ``coordinator``).
      process_id: this process's index (with ``coordinator``).
      auto: without a coordinator, let ``jax.distributed`` detect the cluster (SLURM, Open MPI).

    Returns:
      True when ``jax.distributed.initialize`` was called, False for a single-process run.
    """
    if not (coordinator or auto):
        return False
    import jax

    try:
        # CPU processes need gloo for cross-process collectives (the result gather).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):
        pass  # an older jax without the option, or a GPU/TPU build that does not need it
    if coordinator:
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    else:
        jax.distributed.initialize()
    return True


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


def global_array(mesh, spec, host_array: np.ndarray):
    """A global ``jax.Array`` with ``spec`` over ``mesh`` built from a full host copy.

    Every process holds the whole ``host_array`` and hands each of its devices its slice.
    """
    import jax
    from jax.sharding import NamedSharding

    sharding = NamedSharding(mesh, spec)
    return jax.make_array_from_callback(host_array.shape, sharding, lambda idx: host_array[idx])


def to_host(tree):
    """The tree as numpy arrays on this host, gathered from every process when there are several."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree.map(np.asarray, jax.device_get(tree))


def estimate_run_bytes(train: Any) -> int:
    """A generous estimate of the device memory one vmapped run needs (bytes).

    Parameters, gradients, optimizer state and the snapshot buffer, plus the activations of a
    training batch and an evaluation chunk (forward and backward) for every layer width.

    Args:
      train: a ``jaxreg.lab.engine.Train``.

    Returns:
      Bytes, assuming 4-byte floats.
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


def available_bytes() -> int:
    """Memory the next allocation can use: an accelerator's limit, else the host's available RAM.

    Linux's ``MemAvailable`` (free plus reclaimable), else the physical memory.

    Example:
      >>> available_bytes() > 0
      True
    """
    import jax

    device = jax.local_devices()[0]
    stats = getattr(device, "memory_stats", lambda: None)()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


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
        ram = 8 * 2**30  # no sysconf (Windows): assume a small machine
    return int(ram * 0.25 / max(jax.local_device_count(), 1))


def choose_chunk_size(
    train: Any, num_runs: int, num_devices: int, memory_budget: int | None = None
) -> int:
    """Runs per chunk: as many as fit ``memory_budget`` per device, a multiple of the devices.

    Args:
      train: a ``jaxreg.lab.engine.Train``.
      num_runs: runs in the sweep.
      num_devices: devices of the mesh.
      memory_budget: bytes per device; None = :func:`default_memory_budget`.

    Returns:
      The chunk size, at least ``num_devices`` and at most ``num_runs`` rounded up to them.
    """
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    per_device = max(1, budget // max(estimate_run_bytes(train), 1))
    size = min(per_device * num_devices, -(-num_runs // num_devices) * num_devices)
    return max(num_devices, (size // num_devices) * num_devices)

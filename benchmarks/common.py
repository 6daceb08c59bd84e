"""What every benchmark row shares: the workload, the FLOP count, timing statistics, memory.

Both frameworks' rows import this module. The recipe (model sizes, batch, learning rate,
dropout rates) is the experiment config ``experiments/dropout.py``, read through
``jaxreg.lab.configs``, so the benchmark trains exactly what ``jaxreg run dropout`` trains.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from jaxreg.lab import timing
from jaxreg.lab.configs import experiments_dir, load_config_file

_SIZE_NAMES = ("num_inputs", "num_hiddens1", "num_hiddens2", "num_outputs")


def recipe_data(config: Any) -> dict[str, Any]:
    """The seed 003/004 recipe as plain data, from ``experiments/dropout.py``'s ``get_config()``.

    The config is a ``jaxreg.lab.spec.Spec`` (model, optimizer, hparams, variants) or, in older
    trees, a dict with the same facts; both give ``{"model": sizes, "batch_size", "lr",
    "rates", "variants": [{"name", "style", "weight_init"}]}``.
    """
    if isinstance(config, dict):
        return config
    rates = [float(config.hparams[k]) for k in ("dropout1", "dropout2")]
    return {
        "model": {k: getattr(config.model, k) for k in _SIZE_NAMES},
        "batch_size": config.batch_size,
        "lr": config.optimizer.lr,
        "rates": rates,
        "variants": [
            {"name": v.name, "style": v.meta["style"], "weight_init": v.meta["weight_init"]}
            for v in config.variants
        ],
    }


# Seeds 003/004: 784-256-256-10, dropout 0.2 / 0.5 after each hidden ReLU, SGD lr 0.5, batch 256.
RECIPE = recipe_data(load_config_file(experiments_dir() / "dropout.py", name="dropout"))
_SIZES = [RECIPE["model"][k] for k in _SIZE_NAMES[:3]]
LAYERS = tuple(zip(_SIZES, _SIZES[1:] + [RECIPE["model"]["num_outputs"]], strict=True))
BATCH_SIZE: int = RECIPE["batch_size"]
LEARNING_RATE: float = RECIPE["lr"]
DROPOUT: tuple[float, float] = tuple(RECIPE["rates"])
# The scratch variant (d2l's Net, torch's default init) is the one the torch twin mirrors.
VARIANT = next(v for v in RECIPE["variants"] if v["name"] == "scratch")

# Forward (2*B*in*out per Linear) plus backward (dX and dW, 2*B*in*out each): 3 GEMMs per Linear.
# The first layer's dX is counted although nobody needs it, so this is the formula the issue
# states, not the minimum work.
FLOPS_PER_EXAMPLE = 2 * 3 * sum(i * o for i, o in LAYERS)
FLOP_FORMULA = (
    f"2*3*B*({' + '.join(f'{i}*{o}' for i, o in LAYERS)}) per step (matmuls of forward + backward)"
)
# What both frameworks really execute: neither computes the gradient of the input images
# (autograd and jax.grad skip it), so the first layer's dX matmul is not run.
EXECUTED_FLOPS_PER_EXAMPLE = FLOPS_PER_EXAMPLE - 2 * LAYERS[0][0] * LAYERS[0][1]
# What one configuration of a vmapped sweep keeps live per step: parameters, gradients and its
# own minibatch, float32.
PARAMS_PER_MODEL = sum(i * o + o for i, o in LAYERS)
CONFIG_BYTES = 4 * (2 * PARAMS_PER_MODEL + BATCH_SIZE * LAYERS[0][0])

# The sweep rows run the first configurations of this sweep preset (jaxreg.lab.sweep).
SWEEP_PRESET = "fmnist-64"


def model_kwargs(rates: Sequence[float] = DROPOUT) -> dict[str, Any]:
    """Keyword arguments of ``jaxreg.models.DropoutMLP`` (and its torch twin) for the recipe."""
    sizes = {k: v for k, v in RECIPE["model"].items() if k != "name"}
    return {
        **sizes,
        "dropout1": rates[0],
        "dropout2": rates[1],
        "style": VARIANT["style"],
        "weight_init": VARIANT["weight_init"],
    }


def step_gemm_shapes(batch: int = BATCH_SIZE) -> list[tuple[int, int, int]]:
    """(m, k, n) of the matmuls one training step executes: per Linear forward, dW and (but
    for the first layer) dX."""
    shapes = []
    for layer, (n_in, n_out) in enumerate(LAYERS):
        shapes += [(batch, n_in, n_out), (n_in, batch, n_out)]
        if layer > 0:
            shapes.append((batch, n_out, n_in))
    return shapes


@dataclasses.dataclass(frozen=True)
class Workload:
    """The sizes one benchmark run uses; the defaults are the full run.

    Attributes:
      train_size: training examples used (None = all 60000).
      test_size: test examples used for the final accuracy (None = all 10000).
      warmup_epochs: untimed epochs before the timed ones (compile happens in or before these).
      epochs: timed epochs per single-model row (the seeds train 10 = 1 warm-up + 9).
      sweep_configs: configurations in the vmapped sweep.
      sweep_epochs: timed epochs per sweep row (2: the two JAX sweep rows are the run's
        largest cost, ~1 minute per 64-configuration epoch on 2 cores; a third epoch each took
        the whole run past its 15 minutes).
      sweep_chunk: runs per compiled call in the chunked JAX sweep row (8 configurations'
        weights and gradients fit in this machine's caches; 64 do not).
      sweep_warmup_epochs: untimed sweep epochs first. 0 by default: JAX compiles ahead of
        time and torch.func is warmed up by a few gradient calls that change no weights, so
        the sweep's cost (the largest of the run) is not paid twice.
      torch_sequential_configs: configurations the sequential torch sweep really runs; its
        64-configuration epoch is extrapolated from them.
      torch_func_configs: configurations the torch.func sweep vmaps over: on 2 CPU cores five
        64-configuration torch.func epochs alone would exceed the run's 15-minute budget, so
        its 64-configuration epoch is extrapolated from this spread subset.
      peak_size: side of the square float32 matmul that measures the roofline.
      cnn_steps: steps of 64 per CNN epoch; the CNN rows train on the first ``cnn_steps * 64``
        training images (``benchmarks.cnn_rows``; a fixed step count keeps the rows' cost
        fixed: the engine's scan form alone costs several seconds per 100 steps on CPU).
      cnn_warmup_epochs: untimed CNN epochs first (compilation happens in them).
      cnn_epochs: timed CNN epochs per row (2: a JAX CNN epoch is ~5 s on 2 cores; budget).
      cnn_test_size: test images the CNN rows' final accuracy is measured on.
      cnn_scan_steps: steps per epoch where the engine runs the CNN as a whole-epoch
        ``lax.scan`` (its epoch time is then scaled to ``cnn_steps``): XLA on CPU runs
        convolutions in a while loop an order of magnitude slower (the ``cnn_profile`` row).
      cnn_profile_steps: steps per measurement of the CNN profile row (its scan parts:
        ``cnn_scan_steps``).
      compare_epochs: epochs per row of the comparison-cost rows (``benchmarks.compare_rows``).
      data_dir: Fashion-MNIST IDX folder (None = the library default).
    """

    train_size: int | None = None
    test_size: int | None = None
    warmup_epochs: int = 1
    epochs: int = 9
    sweep_configs: int = 64
    sweep_epochs: int = 2
    sweep_warmup_epochs: int = 0
    sweep_chunk: int = 8
    torch_sequential_configs: int = 6
    torch_func_configs: int = 16
    peak_size: int = 4096
    cnn_steps: int = 100
    cnn_warmup_epochs: int = 1
    cnn_epochs: int = 2
    cnn_test_size: int = 2000
    cnn_scan_steps: int = 10
    cnn_profile_steps: int = 20
    compare_epochs: int = 2
    data_dir: str | None = None


FULL = Workload()
QUICK = Workload(
    train_size=8192,
    test_size=2000,
    epochs=2,
    sweep_configs=8,
    sweep_epochs=2,
    torch_sequential_configs=2,
    torch_func_configs=4,
    sweep_chunk=4,
    peak_size=1024,
)


def steps_per_epoch(num_examples: int, batch_size: int = BATCH_SIZE) -> int:
    """Full minibatches per epoch (in-memory rows drop the last partial batch, as a scan must)."""
    return num_examples // batch_size


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median and spread of a list of wall times, in seconds."""
    values = sorted(times)
    return {
        "median_s": statistics.median(values),
        "min_s": values[0],
        "max_s": values[-1],
        "iqr_s": _iqr(values),
        "n": len(values),
    }


def _iqr(values: Sequence[float]) -> float:
    if len(values) < 4:
        return values[-1] - values[0]
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


def throughput(epoch_s: float, samples_per_epoch: int, configs: int = 1) -> dict[str, float]:
    """Samples/s and achieved GFLOP/s (``FLOP_FORMULA``) of one epoch of ``configs`` models."""
    samples = samples_per_epoch * configs
    return {
        "samples_per_s": samples / epoch_s,
        "gflops": samples * FLOPS_PER_EXAMPLE / epoch_s / 1e9,
    }


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class PeakRSS:
    """Samples RSS every ``interval`` seconds in a thread; ``delta`` = peak minus the starting RSS.

    The thread holds the GIL only for one small read per sample; compiled code releases it.
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return self.peak - self.start


def time_epochs(
    run_epoch: Callable[[int], Any], warmup: int, epochs: int
) -> tuple[list[float], list[float]]:
    """Calls ``run_epoch(i)`` ``warmup + epochs`` times; returns (warm-up times, timed times).

    Timed with ``jaxreg.lab.timing.time_calls``. ``run_epoch`` must return only after the
    device finished (block_until_ready or torch.cuda.synchronize inside it): frameworks other
    than JAX return nothing to block on.
    """
    counter = itertools.count()

    def call() -> Any:
        return run_epoch(next(counter))

    warm = timing.time_calls(call, repeats=warmup, block=False) if warmup else []
    return warm, timing.time_calls(call, repeats=epochs, block=False)


def grid_runs(configs: int) -> tuple[list[dict[str, float]], list[int]]:
    """The first ``configs`` (hyperparameters, seed) runs of ``SWEEP_PRESET``, in run order.

    Run ``r`` is point ``r // seeds``, seed ``r % seeds``, as ``jaxreg.lab.sweep.run_sweep``
    orders them.
    """
    plan = sweep_plan()
    runs = [
        ({k: v for k, v in point.items() if k != "name"}, seed)
        for point in plan.points
        for seed in plan.seeds
    ]
    if configs > len(runs):
        raise ValueError(f"sweep_configs={configs}: the {SWEEP_PRESET} preset has {len(runs)} runs")
    runs = runs[:configs]
    return [hp for hp, _ in runs], [seed for _, seed in runs]


def sweep_plan():
    """The ``SWEEP_PRESET`` plan (``experiments/sweeps/``): engine config, points, seeds."""
    from jaxreg.lab.presets import build_plan

    return build_plan(SWEEP_PRESET)


def spread(total: int, k: int) -> list[int]:
    """``k`` run indices spread over the grid, alternating seeds (runs are point-major, seed-minor).

    A prefix of the grid would hold one dropout rate only; these cover every rate and lambda
    band, so a subset costs what the whole grid costs per configuration.
    """
    if k >= total:
        return list(range(total))
    stride = total // k
    return [min(i * stride + (i % 2), total - 1) for i in range(k)]


def machine_info() -> dict[str, Any]:
    """CPU model, core count and OS, read without importing either framework."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    versions = {}
    for package in ("jax", "jaxlib", "flax", "optax", "torch", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model,
        "versions": versions,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator in (None, 0) or math.isnan(denominator):
        return None
    return numerator / denominator


def cpu_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot, from /proc/stat (0 without it)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet_cpu(
    max_wait_s: float = 30.0, busy_below: float = 0.15, window_s: float = 1.0
) -> float:
    """Waits (at most ``max_wait_s``) until the machine is idle for one ``window_s`` window.

    Other processes' work skews every timing, PyTorch's spinning OpenMP threads most of all;
    a row starts once the CPUs were less than ``busy_below`` busy. Returns the seconds waited.
    """
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait_s:
        before = cpu_busy_seconds()
        time.sleep(window_s)
        if (cpu_busy_seconds() - before) / (window_s * cores) < busy_below:
            break
    return time.perf_counter() - start

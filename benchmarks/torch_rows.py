"""The PyTorch rows: eager with a DataLoader (the seeds), eager in memory, torch.compile, GEMMs.

Each row function runs in its own process (see ``benchmarks.run``) and returns a dict of figures.
The model is ``jaxreg.torch_ref.models.DropoutMLP`` (the torch twin of the Flax model), started
from the same weights as the JAX rows (written by the ``init`` row as torch-named arrays).
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks import common
from jaxreg.lab import timing
from jaxreg.torch_ref import engine as torch_engine

# d2l.get_dataloader_workers() returns 4: the seeds' DataLoader uses four worker processes.
SEED_DATALOADER_WORKERS = 4


def setup(device: str = "auto") -> torch.device:
    """Threads, matmul precision and device, identical for every torch row.

    Args:
      device: "auto" (CUDA when available), "cpu" or "cuda".

    Returns:
      The torch device the row runs on.
    """
    torch.set_num_threads(os.cpu_count() or 1)
    # Full float32 GEMMs on every device: TF32 would make CUDA torch faster than JAX's
    # "highest" precision for a reason that is not the framework.
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def settings() -> dict[str, Any]:
    """The torch side's fairness settings, for the results file."""
    return {
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "parallel_info": [
            line.strip()
            for line in torch.__config__.parallel_info().splitlines()
            if "Library" in line or "MKL-DNN" in line or "backend" in line
        ],
        "dropout_rng": (
            "torch.rand on the default generator (mt19937 on CPU, Philox on CUDA), "
            "seeded with torch.manual_seed(0); under torch.compile, Inductor's own Philox "
            "stream seeded from it"
        ),
        "shuffling": "one torch.randperm per epoch from a torch.Generator seeded 0",
    }


def sync(device: torch.device) -> None:
    """Waits for the device: CUDA kernels run asynchronously."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_model(
    init_path: str,
    device: torch.device,
    rates: tuple[float, float] = common.DROPOUT,
    prefix: str = "",
) -> torch.nn.Module:
    """The seed 003 scratch twin, with the shared initial weights, on ``device``.

    Args:
      init_path: the ``.npz`` the ``init`` row wrote (torch parameter names).
      device: where the model lives.
      rates: the two drop probabilities.
      prefix: key prefix in the file (``"seed1/"`` for the sweep's second seed).
    """
    from jaxreg.torch_ref.models import DropoutMLP

    torch.manual_seed(0)
    model = DropoutMLP(**common.model_kwargs(rates))
    with np.load(init_path) as state:
        params = {k[len(prefix) :]: state[k] for k in state.files if k.startswith(prefix)}
        if prefix == "":
            params = {k: v for k, v in params.items() if "/" not in k}
    torch_engine.load_params(model, params)
    return model.to(device)


def train_epoch_in_memory(step, x_train, y_train, generator, device) -> float:
    """One shuffled epoch of ``step`` over device-resident data; returns the mean batch loss.

    Losses are summed on the device and read once, at the end: no per-step host sync.
    """
    n = len(x_train)
    total = torch.zeros((), device=device)
    for index in torch_engine.shuffled_batches(n, common.BATCH_SIZE, generator, drop_last=True):
        index = index.to(device, non_blocking=True)
        total += step(x_train[index], y_train[index])
    sync(device)
    return float(total) / common.steps_per_epoch(n)


def make_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """One SGD step on a batch; returns the loss without synchronizing (no ``.item()``)."""

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _data(workload: common.Workload, device: torch.device):
    from jaxreg.lab.data import load_fashion_mnist

    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    # torch.tensor copies: the loader's arrays are read-only and torch tensors are writable.
    x_train = torch.tensor(ds.x_train, device=device)
    y_train = torch.tensor(ds.y_train, dtype=torch.int64, device=device)
    x_test = torch.tensor(ds.x_test, device=device)
    y_test = torch.tensor(ds.y_test, dtype=torch.int64, device=device)
    return ds, x_train, y_train, x_test, y_test


def _memory(device: torch.device, rss: common.PeakRSS) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "mem_method": "torch.cuda.max_memory_allocated",
        }
    return {
        "peak_mem_mb": rss.delta / 2**20,
        "mem_method": "RSS delta (peak during training minus before; /proc sampled every 10 ms)",
    }


def _in_memory_row(workload, init_path, device, compile_step: bool) -> dict[str, Any]:
    _, x_train, y_train, x_test, y_test = _data(workload, device)
    model = load_model(init_path, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=common.LEARNING_RATE)
    step = make_step(model, optimizer)
    if compile_step:
        step = torch.compile(step)
    generator = torch.Generator().manual_seed(0)
    n = len(x_train)
    losses = []

    def run_epoch(_: int) -> None:
        model.train()
        losses.append(train_epoch_in_memory(step, x_train, y_train, generator, device))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    _, test_acc = torch_engine.evaluate(model, x_test, y_test)
    median = common.summarize(timed)["median_s"]
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        # Eager has nothing to compile; torch.compile compiles lazily inside the first epoch.
        "compile_s": (warm[0] - median) if compile_step else 0.0,
        "samples_per_epoch": common.steps_per_epoch(n) * common.BATCH_SIZE,
        "train_loss_last_epoch": losses[-1],
        "test_acc": test_acc,
        **_memory(device, rss),
    }


def eager_memory(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Eager PyTorch, the data set resident on the device, batches gathered by index."""
    dev = setup(device)
    return {
        **_in_memory_row(workload, init_path, dev, compile_step=False),
        "device": str(dev),
        "settings": settings(),
    }


def compiled(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``torch.compile`` of the whole step (forward, loss, backward, SGD update).

    Dynamo breaks the graph at ``backward()``: the forward+loss graph and its AOTAutograd
    backward are compiled by Inductor, and so is the optimizer step. A failure is recorded,
    not raised, so the rest of the benchmark still runs.
    """
    dev = setup(device)
    try:
        result = _in_memory_row(workload, init_path, dev, compile_step=True)
    except Exception as exc:  # noqa: BLE001 - any compiler failure is a result here
        return {
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": traceback.format_exc()[-4000:],
            "device": str(dev),
        }
    return {**result, "device": str(dev), "compile_mode": "default (Inductor)"}


class _SeedImages(torch.utils.data.Dataset):
    """Fashion-MNIST items as torchvision's ``FashionMNIST(transform=ToTensor())`` yields them.

    torchvision is not importable here, so the per-item work it does (uint8 image -> float
    tensor of shape (1, 28, 28) divided by 255, integer label) is done the same way, per item,
    in the worker processes.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.images[i]).to(torch.float32).div(255).unsqueeze(0)
        return image, int(self.labels[i])


def eager_dataloader(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The seeds' loop: ``DataLoader(shuffle=True, num_workers=4)`` and d2l's ``train_epoch_ch3``.

    Per batch it does what d2l does: ``CrossEntropyLoss(reduction='none')``, ``l.mean().backward()``
    and the metric accumulation ``float(l.sum())``, ``accuracy(y_hat, y)`` (two host syncs per
    step). The last partial batch is kept (the seeds' DataLoader does not drop it).
    """
    dev = setup(device)
    ds, _, _, x_test, y_test = _data(workload, dev)
    # The IDX bytes were k/255 in float32: rounding recovers them exactly.
    images = np.rint(ds.x_train.reshape(-1, 28, 28) * 255).astype(np.uint8)
    labels = ds.y_train.astype(np.int64)
    dataset = _SeedImages(images, labels)
    generator = torch.Generator().manual_seed(0)
    workers = min(SEED_DATALOADER_WORKERS, max(len(dataset) // common.BATCH_SIZE, 0))
    loader = torch.utils.data.DataLoader(
        dataset,
        common.BATCH_SIZE,
        shuffle=True,
        num_workers=workers,
        generator=generator,
    )
    model = load_model(init_path, dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=common.LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    losses = []

    def run_epoch(_: int) -> None:
        model.train()
        loss_sum = correct = seen = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            y_hat = model(xb)
            loss = loss_fn(y_hat, yb)
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
            loss_sum += float(loss.detach().sum())
            correct += float((y_hat.argmax(dim=1) == yb).sum())
            seen += yb.numel()
        sync(dev)
        losses.append(loss_sum / seen)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    _, test_acc = torch_engine.evaluate(model, x_test.reshape(-1, 784), y_test)
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": 0.0,
        "samples_per_epoch": len(dataset),
        "train_loss_last_epoch": losses[-1],
        "test_acc": test_acc,
        "num_workers": workers,
        "device": str(dev),
        **_memory(dev, rss),
        "mem_note": "main process only; the worker processes' memory is not counted",
    }


def gemms(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The matmuls of one training step alone (MKL / cuBLAS), and torch's large-matmul peak.

    Explains the eager rows: an epoch can be no faster than its GEMMs at these small shapes.
    """
    dev = setup(device)
    shapes = common.step_gemm_shapes()
    operands = [
        (torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)) for m, k, n in shapes
    ]
    flops = sum(2 * m * k * n for m, k, n in shapes)

    def one_step() -> None:
        for a, c in operands:
            torch.mm(a, c)

    step_times = _best_of(one_step, dev, repeats=7, inner=20)
    size = workload.peak_size
    a, c = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    peak_time = _best_of(lambda: torch.mm(a, c), dev, repeats=5, inner=1)
    return {
        "step_gemms_s": step_times,
        "step_gemm_gflops": flops / step_times / 1e9,
        "step_gemm_flops": flops,
        "peak_gflops": 2 * size**3 / peak_time / 1e9,
        "peak_size": size,
        "device": str(dev),
    }


def _best_of(fn, device: torch.device, repeats: int, inner: int) -> float:
    """Best seconds per call of ``fn`` over ``repeats`` timings of ``inner`` calls each."""

    def calls() -> None:
        for _ in range(inner):
            fn()
        sync(device)

    return min(timing.time_calls(calls, repeats=repeats, warmup=1, block=False)) / inner

"""PyTorch training loops: the seed recipes with ``torch.optim``, for ``--framework torch``.

These loops are the torch side of every experiment in ``jaxreg.lab.recipes``. They train the torch
twins from ``jaxreg.torch_ref.models`` (one torch code base, shared with the parity suite) and
report per-epoch metrics under the same names as ``jaxreg.lab.engine``, so that
``jaxreg.lab.report``
can put both frameworks on the same axes.

What differs from the seeds, and why:

* Data are in-memory tensors, shuffled each epoch with one ``torch.randperm`` drawn from a
  caller-seeded ``torch.Generator``: the order ``DataLoader(shuffle=True)`` would give, without
  worker processes.
* Evaluation runs in ``model.eval()`` unless ``eval_dropout=True`` (``--faithful``): seed 004's
  ``evaluate_accuracy`` never switched modes, so its dropout accuracies were measured with
  dropout active.
* The reported training loss is the example-weighted mean of the per-batch losses; seed 004
  printed ``sum(batch mean) / n`` (its ``loss 0.0029``), which is that mean divided by the batch
  size.

This module imports torch at the top: ``import jaxreg`` never imports it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jaxreg.lab.config import EPOCH_METRICS
from jaxreg.torch_ref.replay import MaskReplay, replaying

# The per-epoch metric names are jaxreg.lab.config's, so the two frameworks' histories line up.
METRICS = EPOCH_METRICS


THREADS_ENV = "JAXREG_TORCH_THREADS"


def configure_threads(num_threads: int | None = None) -> int:
    """Sets torch's intra-op CPU threads: ``num_threads``, else ``$JAXREG_TORCH_THREADS``, else 1.

    Why 1 by default: on a small shared CPU machine torch's OpenMP pool spin-waits when the cores
    are oversubscribed; on this project's 2-core machine under load, one SGD step of the
    784-256-10 MLP took 20 ms with one thread and 500 ms with two.

    Args:
      num_threads: threads to use, or None for the environment variable or 1.

    Returns:
      The number of threads set.

    Example:
      >>> configure_threads(1)
      1
    """
    if num_threads is None:
        text = os.environ.get(THREADS_ENV, "1")
        try:
            num_threads = int(text)
        except ValueError:
            raise ValueError(f"${THREADS_ENV}={text!r}: expected a positive integer") from None
    if num_threads < 1:
        raise ValueError(f"num_threads={num_threads}: expected a positive integer")
    torch.set_num_threads(num_threads)
    return num_threads


def to_tensor(array: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Converts a NumPy or JAX array to a CPU torch tensor (copying: JAX buffers are read-only).

    Args:
      array: any array-like (numpy, jax.Array, list, tensor).
      dtype: optional torch dtype to cast to.

    Returns:
      A contiguous CPU tensor.

    Example:
      >>> to_tensor(np.zeros((2, 3), np.float32)).shape
      torch.Size([2, 3])
    """
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
    else:
        tensor = torch.from_numpy(np.array(array, copy=True))
    return tensor.to(dtype) if dtype is not None else tensor


def load_params(model: torch.nn.Module, state: dict[str, Any]) -> torch.nn.Module:
    """Loads a ``jaxreg.convert.flax_to_torch`` dict (numpy arrays) into a torch twin, strictly.

    Args:
      model: the torch twin of the Flax model the parameters came from.
      state: mapping from torch parameter names to arrays.

    Returns:
      ``model``, with its parameters replaced (so JAX and torch start from the same weights).

    Example:
      >>> net = torch.nn.Linear(2, 1)
      >>> _ = load_params(net, {"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1)})
    """
    reference = model.state_dict()
    tensors = {
        name: to_tensor(value, dtype=reference[name].dtype) if name in reference else value
        for name, value in state.items()
    }
    model.load_state_dict(tensors, strict=True)
    return model


def shuffled_batches(
    num_examples: int, batch_size: int, generator: torch.Generator, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Yields the index batches of one shuffled epoch, as ``DataLoader(shuffle=True)`` orders them.

    Args:
      num_examples: size of the data set.
      batch_size: examples per batch.
      generator: a seeded ``torch.Generator``; one ``randperm`` is drawn per call.
      drop_last: drop the final partial batch (as a fixed-shape ``lax.scan`` must).

    Yields:
      1-D ``int64`` index tensors.

    Example:
      >>> g = torch.Generator().manual_seed(0)
      >>> [len(b) for b in shuffled_batches(5, 2, g)]
      [2, 2, 1]
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = torch.randperm(num_examples, generator=generator)
    stop = num_examples - num_examples % batch_size if drop_last else num_examples
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def param_norm(model: torch.nn.Module, weights_only: bool = False) -> float:
    """Global Euclidean norm over all parameters (``jaxreg.lab.engine``'s ``param_norm``).

    With ``weights_only=True``, over the matrices and kernels only (ndim >= 2, no biases):
    ``jaxreg.masks.weights_only``'s selection, the engine's ``weight_norm``.
    """
    with torch.no_grad():
        squares = [
            float((p.double() ** 2).sum())
            for p in model.parameters()
            if not weights_only or p.ndim >= 2
        ]
    return math.sqrt(sum(squares))


def zero_fraction(model: torch.nn.Module) -> float:
    """Fraction of parameter entries that are exactly zero (L1's sparsity)."""
    with torch.no_grad():
        total = sum(p.numel() for p in model.parameters())
        zeros = sum(int((p == 0).sum()) for p in model.parameters())
    return zeros / max(total, 1)


def _logits(output: Any) -> torch.Tensor:
    # ActivityMLP returns (out, layer1_out, layer2_out); every other model returns the logits.
    return output[0] if isinstance(output, tuple) else output


def evaluate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    dropout_active: bool = False,
    batch_size: int = 10_000,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier on ``(x, y)``.

    Args:
      model: a torch classifier returning logits or log-probabilities.
      x: inputs.
      y: integer labels.
      dropout_active: keep ``model.train()`` while evaluating (seed 004's defect, ``--faithful``).
      batch_size: evaluation chunk size (memory only; the result does not depend on it).

    Returns:
      ``(loss, accuracy)`` as Python floats.

    Example:
      >>> net = torch.nn.Linear(3, 2)
      >>> loss, acc = evaluate(net, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    """
    was_training = model.training
    model.train(dropout_active)
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = _logits(model(x[start : start + batch_size]))
            target = y[start : start + batch_size]
            loss_sum += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(dim=1) == target).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return loss_sum / n, correct / n


def train_classifier(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[Any, Any],
    test: tuple[Any, Any],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    penalty: Callable[[torch.nn.Module], torch.Tensor] | None = None,
    eval_dropout: bool = False,
    drop_last: bool = False,
    progress: Any = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    matched: Any = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, list[float]]:
    """Minibatch training of a classifier: d2l's ``train_ch3`` with the seeds' settings.

    The torch counterpart of ``jaxreg.lab.engine.make_train``: cross-entropy (mean over the batch),
    an optional loss penalty (seed 004's ``l2_penalty(W1) + l2_penalty(W2)``), one optimizer
    step per batch.

    Args:
      model: a torch twin from ``jaxreg.torch_ref.models``.
      optimizer: a ``torch.optim`` optimizer over ``model``'s parameters (weight decay, if any,
        is the optimizer's, as in seed 004's param groups).
      train: ``(x, y)`` arrays or tensors.
      test: ``(x, y)`` arrays or tensors.
      epochs: number of passes over ``train``.
      batch_size: minibatch size (256 in seeds 003/004).
      seed: seeds the shuffling generator and torch's global RNG (dropout masks).
      penalty: ``penalty(model) -> scalar tensor`` added to the loss, or None.
      eval_dropout: evaluate with dropout active (``--faithful``).
      drop_last: drop each epoch's final partial batch.
      progress: an optional tqdm-like object; ``progress.update(1)`` is called per epoch.
      on_epoch: ``on_epoch(epoch, metrics)`` called after each epoch.
      matched: a ``jaxreg.lab.matched.MatchedStreams`` (anything with ``order(epoch)`` and
        ``step_masks(epoch)``): the batches follow the JAX run's order and every dropout call
        replays the JAX run's mask (``jaxreg.torch_ref.replay``), so the two runs differ only
        by rounding. Needs deterministic evaluation (``eval_dropout=False``).
      dtype: the data's dtype (``torch.float64`` for double-precision runs; the caller converts
        the model with ``model.double()``).

    Returns:
      ``{metric: [value per epoch]}`` for every name in ``METRICS`` plus ``epoch_time``.

    Example:
      >>> net = torch.nn.Linear(4, 2)
      >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
      >>> data = (np.zeros((8, 4), np.float32), np.zeros(8, np.int64))
      >>> hist = train_classifier(net, opt, data, data, epochs=1, batch_size=4, seed=0)
      >>> hist["test_acc"]
      [1.0]
    """
    if matched is not None and eval_dropout:
        raise ValueError(
            "matched=...: evaluation with dropout active (eval_dropout=True) would draw masks "
            "that are not shared; matched runs evaluate deterministically"
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = to_tensor(train[0], dtype), to_tensor(train[1], torch.long)
    x_test, y_test = to_tensor(test[0], dtype), to_tensor(test[1], torch.long)
    history: dict[str, list[float]] = {name: [] for name in (*METRICS, "epoch_time")}
    replay = MaskReplay()
    for epoch in range(epochs):
        start_time = time.perf_counter()
        model.train()
        loss_sum = objective_sum = 0.0
        correct = seen = 0
        if matched is None:
            batches = shuffled_batches(len(x_train), batch_size, generator, drop_last)
            step_masks = None
        else:
            order = torch.from_numpy(np.array(matched.order(epoch), np.int64))
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            step_masks = matched.step_masks(epoch)
        for index in batches:
            xb, yb = x_train[index], y_train[index]
            if step_masks is None:
                out = _logits(model(xb))
            else:
                replay.set_step(next(step_masks))
                with replaying(replay):
                    out = _logits(model(xb))
                replay.finish_step()
            loss = F.cross_entropy(out, yb)
            objective = loss + penalty(model) if penalty is not None else loss
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
            objective_sum += objective.item() * len(index)
            correct += int((out.argmax(dim=1) == yb).sum())
            seen += len(index)
        test_loss, test_acc = evaluate(model, x_test, y_test, dropout_active=eval_dropout)
        metrics = {
            "train_loss": loss_sum / seen,
            "train_objective": objective_sum / seen,
            "train_acc": correct / seen,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "param_norm": param_norm(model),
            "weight_norm": param_norm(model, weights_only=True),
            "zero_fraction": zero_fraction(model),
            "epoch_time": time.perf_counter() - start_time,
        }
        for name, value in metrics.items():
            history[name].append(value)
        if progress is not None:
            progress.update(1)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return history


def train_regression(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[Any, Any],
    test: tuple[Any, Any],
    *,
    epochs: int,
    eval_every: int,
    seed: int,
    progress: Any = None,
    matched: Any = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Seed 002's over-fitting loop: full-batch MSE, eval-mode test fits every ``eval_every``.

    Args:
      model: ``RegressionNet`` twin (with or without dropout).
      optimizer: ``torch.optim.Adam`` (lr 0.001 for net_overfitting, 0.01 for net_dropped).
      train: ``(x, y)``, shapes (N, 1).
      test: ``(x, y)``, shapes (N, 1).
      epochs: full-batch steps (500 in the seed).
      eval_every: evaluate in eval mode after the step of every epoch with
        ``epoch % eval_every == 0`` (50 in the seed), as the seed does, and after the last
        epoch (as ``jaxreg.lab.engine`` does).
      seed: seeds torch's global RNG (dropout masks).
      progress: optional tqdm-like object, updated per epoch.
      matched: as for :func:`train_classifier`: the one full batch of every epoch replays the
        JAX run's dropout masks (the engine's order of a full batch changes nothing).
      dtype: the data's dtype (the caller converts the model).

    Returns:
      ``{"train_loss": [per epoch], "eval_epochs": [...], "test_loss": [...],
      "test_pred": [array per eval]}``.

    Example:
      >>> net = torch.nn.Linear(1, 1)
      >>> opt = torch.optim.Adam(net.parameters(), lr=0.01)
      >>> xy = (np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32))
      >>> train_regression(net, opt, xy, xy, epochs=3, eval_every=2, seed=0)["eval_epochs"]
      [0, 2]
    """
    torch.manual_seed(seed)
    x, y = to_tensor(train[0], dtype), to_tensor(train[1], dtype)
    tx, ty = to_tensor(test[0], dtype), to_tensor(test[1], dtype)
    keys = ("train_loss", "eval_epochs", "test_loss", "test_pred")
    history: dict[str, Any] = {k: [] for k in keys}
    replay = MaskReplay()
    for epoch in range(epochs):
        model.train()
        if matched is None:
            xb, yb = x, y
            out = model(xb)
        else:
            # Full batch: the order is irrelevant to the mean, but the masks are per row.
            order = torch.from_numpy(np.array(matched.order(epoch), np.int64))
            xb, yb = x[order], y[order]
            replay.set_step(next(matched.step_masks(epoch)))
            with replaying(replay):
                out = model(xb)
            replay.finish_step()
        loss = F.mse_loss(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["train_loss"].append(loss.item())
        if epoch % eval_every == 0 or epoch == epochs - 1:
            model.eval()
            with torch.no_grad():
                pred = model(tx)
            history["eval_epochs"].append(epoch)
            history["test_loss"].append(float(F.mse_loss(pred, ty)))
            history["test_pred"].append(pred.numpy().reshape(-1).copy())
        if progress is not None:
            progress.update(1)
    return history


def train_activity(
    make_model: Callable[[], torch.nn.Module],
    inputs: Any,
    *,
    lr: float,
    lambda1: float,
    lambda2: float,
    faithful: bool = False,
    penalties: tuple[Callable, Callable] | None = None,
    progress: Any = None,
) -> list[float]:
    """Seed 001's activity-penalty loop: CE + lambda1 * L1(layer1_out) + lambda2 * L2(layer2_out).

    Args:
      make_model: builds an ``ActivityMLP`` twin (called once, or every step when faithful).
      inputs: ``(steps, batch, 128)`` inputs, one batch per step (the seed draws
        ``torch.rand(4, 128)`` each step; passing them in lets JAX see the same batches).
      lr: SGD learning rate (1e-4).
      lambda1: weight of the L1 penalty on ``layer1_out`` (0.5).
      lambda2: weight of the L2-norm penalty on ``layer2_out`` (0.01).
      faithful: re-create the model and optimizer every step, as the seed does (nothing is
        learned across steps).
      penalties: ``(l1_penalty, l2_penalty)`` activation penalties; default: the seed's formulas
        from ``jaxreg.torch_ref.penalties``.
      progress: optional tqdm-like object, updated per step.

    Returns:
      The loss printed at each step (before that step's update).

    Example:
      >>> from jaxreg.torch_ref.models import ActivityMLP
      >>> losses = train_activity(ActivityMLP, np.random.rand(2, 4, 128), lr=1e-4,
      ...                         lambda1=0.5, lambda2=0.01)
      >>> len(losses)
      2
    """
    if penalties is None:
        from jaxreg.torch_ref import penalties as seed_penalties

        penalties = (seed_penalties.seed001_l1_penalty, seed_penalties.seed001_l2_penalty)
    l1_fn, l2_fn = penalties
    batches = to_tensor(inputs, torch.float32)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(len(batches)):
        if faithful and step > 0:
            model = make_model()
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        xb = batches[step]
        targets = torch.ones(len(xb), dtype=torch.long)
        out, layer1_out, layer2_out = model(xb)
        loss = (
            F.cross_entropy(out, targets)
            + lambda1 * l1_fn(layer1_out)
            + lambda2 * l2_fn(layer2_out)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress.update(1)
    return losses


def mc_dropout_predict(
    model: torch.nn.Module, x: Any, *, num_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo dropout in torch: mean and variance of softmax over ``num_samples`` passes.

    The torch counterpart of ``jaxreg.mc_dropout_predict`` (seed 001's "repeat M times and
    average").

    Args:
      model: a classifier with dropout layers; it is run in ``train()`` mode.
      x: inputs.
      num_samples: the number M of stochastic passes.
      seed: seeds torch's global RNG.

    Returns:
      ``(mean_probs, var_probs)`` as numpy arrays of shape (N, classes).

    Example:
      >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
      >>> mean, var = mc_dropout_predict(net, np.ones((4, 3), np.float32), num_samples=8, seed=0)
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    torch.manual_seed(seed)
    xs = to_tensor(x, torch.float32)
    was_training = model.training
    model.train()
    with torch.no_grad():
        probs = torch.stack([F.softmax(_logits(model(xs)), dim=1) for _ in range(num_samples)])
    model.train(was_training)
    return probs.mean(0).numpy(), probs.var(0, unbiased=False).numpy()


def param_groups(
    model: torch.nn.Module, weight_decay: float, decay: Sequence[str]
) -> list[dict[str, Any]]:
    """Seed 004's param groups: ``weight_decay`` on the named parameters only.

    Args:
      model: the torch model.
      weight_decay: decay for the ``decay`` group.
      decay: parameter names that decay (e.g. ``("W1", "W2")``); all others get none.

    Returns:
      A list of two param-group dicts for ``torch.optim.SGD``.

    Example:
      >>> groups = param_groups(torch.nn.Linear(2, 2), 0.01, ("weight",))
      >>> [g["weight_decay"] for g in groups]
      [0.01, 0.0]
    """
    named = dict(model.named_parameters())
    unknown = sorted(set(decay) - set(named))
    if unknown:
        raise ValueError(f"decay names {unknown} are not parameters; allowed: {sorted(named)}")
    return [
        {"params": [named[n] for n in named if n in decay], "weight_decay": weight_decay},
        {"params": [named[n] for n in named if n not in decay], "weight_decay": 0.0},
    ]

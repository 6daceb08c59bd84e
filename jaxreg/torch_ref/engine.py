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

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jaxreg.torch_ref import replay as _replay
from jaxreg.torch_ref.seed_loops import (  # noqa: F401 (re-exported: the torch side's loops)
    mc_dropout_predict,
    param_groups,
    train_activity,
    train_regression,
)
from jaxreg.torch_ref.tensors import (  # noqa: F401 (re-exported)
    THREADS_ENV,
    configure_threads,
    load_params,
    param_norm,
    to_tensor,
    zero_fraction,
)
from jaxreg.torch_ref.tensors import logits as _logits

METRICS = (
    "train_loss",
    "train_objective",
    "train_acc",
    "test_loss",
    "test_acc",
    "param_norm",
    "weight_norm",
    "zero_fraction",
)
"""The per-epoch metrics of every torch run: the names of ``jaxreg.lab.config.EPOCH_METRICS``
(the harness checks the two agree; torch_ref never imports the harness)."""

LOSSES = ("cross_entropy", "nll", "mse", "bce")
"""The batch losses :func:`train_classifier` trains with (means over the batch)."""


def batch_loss(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean loss of a batch: ``F.cross_entropy`` / ``F.nll_loss`` / ``F.mse_loss`` /
    ``F.binary_cross_entropy`` (the engine's ``loss`` kinds of the same names).

    Example:
      >>> float(batch_loss("mse", torch.ones(2, 1), torch.zeros(2, 1)))
      1.0
    """
    if kind == "cross_entropy":
        return F.cross_entropy(out, target)
    if kind == "nll":
        return F.nll_loss(out, target)
    if kind == "mse":
        return F.mse_loss(out, target.reshape(out.shape).to(out.dtype))
    if kind == "bce":
        return F.binary_cross_entropy(out, target.reshape(out.shape).to(out.dtype))
    raise ValueError(f"loss={kind!r}: allowed values are {LOSSES}")


def _correct(kind: str, out: torch.Tensor, target: torch.Tensor) -> int | float:
    """How many of the batch's examples are right (a sum of per-example accuracies)."""
    if kind in ("cross_entropy", "nll"):
        return int((out.argmax(dim=1) == target).sum())
    if kind == "bce":
        hits = ((out > 0.5) == (target.reshape(out.shape) > 0.5)).to(torch.float64)
        return float(hits.reshape(len(out), -1).mean(dim=1).sum())
    return float("nan")


def _label_dtype(kind: str, dtype: torch.dtype) -> torch.dtype:
    return torch.long if kind in ("cross_entropy", "nll") else dtype


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


def evaluate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    dropout_active: bool = False,
    batch_size: int = 10_000,
    loss: str = "cross_entropy",
) -> tuple[float, float]:
    """Mean loss (cross-entropy by default) and accuracy of a model on ``(x, y)``.

    Args:
      model: a torch classifier returning logits or log-probabilities.
      x: inputs.
      y: integer labels.
      dropout_active: keep ``model.train()`` while evaluating (seed 004's defect, ``--faithful``).
      batch_size: evaluation chunk size (memory only; the result does not depend on it).
      loss: one of :data:`LOSSES` (the accuracy of ``mse`` is NaN).

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
            if loss == "cross_entropy":
                loss_sum += float(F.cross_entropy(out, target, reduction="sum"))
            else:
                loss_sum += float(batch_loss(loss, out, target)) * len(target)
            correct += _correct(loss, out, target)
    model.train(was_training)
    n = max(len(x), 1)
    return loss_sum / n, correct / n


def train_classifier(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[Any, Any],
    test: tuple[Any, Any] | None,
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
    loss: str = "cross_entropy",
    weight_names: Collection[str] | None = None,
    activity: Callable[[tuple[torch.Tensor, ...]], Sequence[torch.Tensor]] | None = None,
    shuffle: bool = True,
    eval_every: int = 1,
) -> dict[str, list[Any]]:
    """Minibatch training: d2l's ``train_ch3`` with the seeds' settings, the one torch loop.

    The torch counterpart of ``jaxreg.lab.engine.make_train``: a batch loss (cross-entropy by
    default, a mean over the batch), an optional loss penalty (seed 004's ``l2_penalty(W1) +
    l2_penalty(W2)``), one optimizer step per batch. ``jaxreg.lab.runner`` builds every argument
    from a spec; the loop itself knows nothing of the harness.

    Args:
      model: a torch twin (e.g. from ``jaxreg.torch_ref.models``).
      optimizer: a ``torch.optim`` optimizer over ``model``'s parameters (weight decay, if any,
        is the optimizer's, as in seed 004's param groups).
      train: ``(x, y)`` arrays or tensors.
      test: ``(x, y)`` arrays or tensors, or None (``test_*`` are then NaN).
      epochs: number of passes over ``train``.
      batch_size: minibatch size (256 in seeds 003/004).
      seed: seeds the shuffling generator and torch's global RNG (dropout masks).
      penalty: ``penalty(model) -> scalar tensor`` added to the loss, or None.
      eval_dropout: evaluate with dropout active (``--faithful``).
      drop_last: drop each epoch's final partial batch.
      progress: an optional tqdm-like object; ``progress.update(1)`` is called per epoch.
      on_epoch: ``on_epoch(epoch, metrics)`` called after each epoch.
      matched: the shared streams of a matched run (``jaxreg.lab.matched.MatchedStreams`` or
        anything with ``order(epoch)`` and ``step_draws(epoch)``, or the older
        ``step_masks(epoch)``): the batches follow the JAX run's order and every random draw
        of the forward pass replays the JAX run's (``jaxreg.torch_ref.replay``), so the two
        runs differ only by rounding. Needs deterministic evaluation (``eval_dropout=False``).
      dtype: the data's dtype (``torch.float64`` for double-precision runs; the caller converts
        the model with ``model.double()``).
      loss: the batch loss, one of :data:`LOSSES`.
      weight_names: the parameters ``weight_norm`` covers (the optimizer's decay mask); None:
        every parameter with ``ndim >= 2``.
      activity: ``activity(outputs) -> [scalar tensor, ...]``: the activation penalties on the
        model's extra outputs (a model returning ``(out, act_1, ...)``), added to the objective
        one after another (seed 001's ``CE + l1 + l2``).
      shuffle: reshuffle every epoch (False: the data's order, seed 002's full batch).
      eval_every: evaluate after epoch ``e`` when ``e % eval_every == 0`` and after the last
        (``test_*`` are NaN on the others), as the engine does.

    Returns:
      ``{metric: [value per epoch]}`` for every name in ``METRICS`` plus ``epoch_time``, and
      ``step_loss`` / ``step_objective``: per epoch, the list of each step's data loss and
      objective measured before its update (``loss.item()``, the engine's
      ``metrics["step_loss"]`` / ``["step_objective"]``).

    Example:
      >>> net = torch.nn.Linear(4, 2)
      >>> _ = torch.nn.init.zeros_(net.bias)  # zero inputs: the bias alone decides
      >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
      >>> data = (np.zeros((8, 4), np.float32), np.zeros(8, np.int64))
      >>> hist = train_classifier(net, opt, data, data, epochs=1, batch_size=4, seed=0)
      >>> hist["test_acc"], len(hist["step_loss"][0])
      ([1.0], 2)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}: allowed values are {LOSSES}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every={eval_every!r}: expected a positive int")
    if matched is not None and eval_dropout:
        raise ValueError(
            "matched=...: evaluation with dropout active (eval_dropout=True) would draw masks "
            "that are not shared; matched runs evaluate deterministically"
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    label_dtype = _label_dtype(loss, dtype)
    x_train, y_train = to_tensor(train[0], dtype), to_tensor(train[1], label_dtype)
    if test is not None:
        x_test, y_test = to_tensor(test[0], dtype), to_tensor(test[1], label_dtype)
    steps = ("step_loss", "step_objective")
    history: dict[str, list[Any]] = {name: [] for name in (*METRICS, "epoch_time", *steps)}
    replay = _Replayer(matched)
    for epoch in range(epochs):
        start_time = time.perf_counter()
        model.train()
        loss_sum = objective_sum = 0.0
        correct = seen = 0
        step_losses: list[float] = []
        step_objectives: list[float] = []
        if matched is None and shuffle:
            batches = shuffled_batches(len(x_train), batch_size, generator, drop_last)
        elif matched is None:
            stop = len(x_train) - len(x_train) % batch_size if drop_last else len(x_train)
            order = torch.arange(len(x_train))
            batches = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
        else:
            order = torch.from_numpy(np.array(matched.order(epoch), np.int64))
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        replay.start_epoch(epoch)
        for index in batches:
            xb, yb = x_train[index], y_train[index]
            outputs = replay.forward(model, xb)
            out = _logits(outputs)
            data_loss = batch_loss(loss, out, yb)
            objective = data_loss + penalty(model) if penalty is not None else data_loss
            if activity is not None:
                for term in activity(outputs):
                    objective = objective + term
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
            value, total = data_loss.item(), objective.item()
            step_losses.append(value)
            step_objectives.append(total)
            loss_sum += value * len(index)
            objective_sum += total * len(index)
            correct += _correct(loss, out, yb)
            seen += len(index)
        if test is not None and (epoch % eval_every == 0 or epoch == epochs - 1):
            test_loss, test_acc = evaluate(
                model, x_test, y_test, dropout_active=eval_dropout, loss=loss
            )
        else:
            test_loss = test_acc = float("nan")
        names = None
        if weight_names is not None:
            names = set(weight_names)
        metrics = {
            "train_loss": loss_sum / seen,
            "train_objective": objective_sum / seen,
            "train_acc": correct / seen,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "param_norm": param_norm(model),
            "weight_norm": param_norm(model, weights_only=True, names=names),
            "zero_fraction": zero_fraction(model),
            "epoch_time": time.perf_counter() - start_time,
        }
        for name, value in metrics.items():
            history[name].append(value)
        history["step_loss"].append(step_losses)
        history["step_objective"].append(step_objectives)
        if progress is not None:
            progress.update(1)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return history


class _Replayer:
    """Runs the forward passes of a matched run with the JAX run's draws (or plainly)."""

    def __init__(self, matched: Any):
        self.matched = matched
        self._steps: Iterator[Any] | None = None
        self.replay = None if matched is None else _replay.DrawReplay()

    def start_epoch(self, epoch: int) -> None:
        if self.matched is not None:
            self._steps = _replay.epoch_steps(self.matched, epoch)

    def forward(self, model: torch.nn.Module, xb: torch.Tensor) -> Any:
        if self.replay is None:
            return model(xb)
        self.replay.set_step(next(self._steps))
        with _replay.replaying(self.replay):
            out = model(xb)
        self.replay.finish_step()
        return out

"""The seed-specific torch loops: seed 002's full-batch regression, seed 001's activity penalties
and Monte-Carlo dropout, and seed 004's param groups.

Companions of :mod:`jaxreg.torch_ref.engine` (the minibatch classifier loop), split out so each
module holds one idea; ``jaxreg.torch_ref.engine`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jaxreg.torch_ref.replay import DrawReplay, epoch_steps, replaying
from jaxreg.torch_ref.tensors import logits as _logits
from jaxreg.torch_ref.tensors import to_tensor


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
    replay = DrawReplay()
    for epoch in range(epochs):
        model.train()
        if matched is None:
            xb, yb = x, y
            out = model(xb)
        else:
            # Full batch: the order is irrelevant to the mean, but the masks are per row.
            order = torch.from_numpy(np.array(matched.order(epoch), np.int64))
            xb, yb = x[order], y[order]
            replay.set_step(next(epoch_steps(matched, epoch)))
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

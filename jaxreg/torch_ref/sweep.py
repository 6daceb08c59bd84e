"""The same hyperparameter grid in PyTorch: sequential runs, and ``torch.func`` where it applies.

The PyTorch side of :mod:`jaxreg.lab.sweep`, so the two frameworks can be compared on a sweep of the
seeds 003/004 dropout MLP (SGD, batch 256, weight decay on the weights only, cross-entropy):

* :func:`sequential_sweep`: the usual PyTorch way, one ``torch.optim.SGD`` run per (point, seed)
  through :func:`jaxreg.torch_ref.engine.train_classifier`.
* :func:`func_sweep`: ``torch.func.stack_module_state`` + ``torch.func.vmap`` over
  ``functional_call`` of the same torch model, with a hand-written SGD step that takes per-run
  ``lr`` and ``weight_decay`` tensors (the coupled update ``p -= lr * (g + wd * p)`` of
  ``torch.optim.SGD``'s param groups). Where it does NOT apply: a dropout rate is a Python float
  inside the torch module, so runs are vmapped only within groups that share their two rates
  (one vmapped program per group); JAX traces the rates and needs one program for the grid.
  Dropout masks under ``vmap(randomness="different")`` come from a different stream than the
  sequential runs, so only dropout-free runs match the sequential ones number for number.

Both shuffle with one ``torch.randperm`` per epoch from a generator seeded with the run's seed and
keep the last partial batch (``DataLoader(shuffle=True)``). :func:`compare_sweeps` times the
three ways on one grid, e.g. ``print(compare_sweeps(load_fashion_mnist(train_size=6000)))``.
This module imports torch at the top; ``import jaxreg`` never imports it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from jaxreg.torch_ref import engine as torch_engine
from jaxreg.torch_ref.models import DropoutMLP

HPARAMS = ("lr", "weight_decay", "dropout1", "dropout2")


def _point(point: Mapping[str, Any], lr: float) -> dict[str, float]:
    unknown = sorted(set(point) - set(HPARAMS) - {"name"})
    if unknown:
        raise ValueError(f"point {dict(point)}: unknown keys {unknown}; allowed: {HPARAMS}")
    return {
        "lr": float(point.get("lr", lr)),
        "weight_decay": float(point.get("weight_decay", 0.0)),
        "dropout1": float(point.get("dropout1", 0.2)),
        "dropout2": float(point.get("dropout2", 0.5)),
    }


def _model(hp: Mapping[str, float], seed: int, model_kwargs: Mapping[str, Any]) -> DropoutMLP:
    torch.manual_seed(seed)
    return DropoutMLP(dropout1=hp["dropout1"], dropout2=hp["dropout2"], **model_kwargs)


def _tensors(data: Any):
    return (
        torch_engine.to_tensor(data.x_train, torch.float32),
        torch_engine.to_tensor(data.y_train, torch.long),
        torch_engine.to_tensor(data.x_test, torch.float32),
        torch_engine.to_tensor(data.y_test, torch.long),
    )


def sequential_sweep(
    data: Any,
    points: Sequence[Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.5,
    model_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``torch.optim.SGD`` training per (point, seed), one after the other.

    Args:
      data: arrays with ``x_train, y_train, x_test, y_test`` (e.g. ``jaxreg.lab.data`` tuples).
      points: dicts over ``lr``, ``weight_decay``, ``dropout1``, ``dropout2``.
      seeds: seeds of the initialization (``torch.manual_seed``) and of the shuffling.
      epochs: epochs per run.
      batch_size: minibatch size.
      lr: learning rate of points without one.
      model_kwargs: extra ``DropoutMLP`` arguments (widths).

    Returns:
      ``{"test_acc": [points, seeds, epochs] array, "train_loss": ..., "seconds": float}``.

    Example:
      >>> from jaxreg.lab.data import synthetic_classification
      >>> ds = synthetic_classification(64, 16, num_features=8)
      >>> out = sequential_sweep(ds, [{"weight_decay": 0.0}], epochs=1, batch_size=32,
      ...                        model_kwargs={"num_inputs": 8, "num_hiddens1": 4,
      ...                                      "num_hiddens2": 4})
      >>> out["test_acc"].shape
      (1, 1, 1)
    """
    model_kwargs = dict(model_kwargs or {})
    start = time.perf_counter()
    acc = np.zeros((len(points), len(seeds), epochs))
    loss = np.zeros_like(acc)
    for p, point in enumerate(points):
        hp = _point(point, lr)
        for s, seed in enumerate(seeds):
            net = _model(hp, seed, model_kwargs)
            groups = torch_engine.param_groups(
                net,
                hp["weight_decay"],
                [n for n, _ in net.named_parameters() if n.endswith("weight")],
            )
            opt = torch.optim.SGD(groups, lr=hp["lr"])
            hist = torch_engine.train_classifier(
                net,
                opt,
                (data.x_train, data.y_train),
                (data.x_test, data.y_test),
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
            acc[p, s], loss[p, s] = hist["test_acc"], hist["train_loss"]
    return {"test_acc": acc, "train_loss": loss, "seconds": time.perf_counter() - start}


def func_sweep(
    data: Any,
    points: Sequence[Mapping[str, Any]],
    seeds: Sequence[int] = (0,),
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.5,
    model_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The grid with ``torch.func``: stacked models, ``vmap`` over runs sharing dropout rates.

    Same arguments and return value as :func:`sequential_sweep`, plus ``"groups"``: the number
    of vmapped programs (distinct dropout-rate pairs).
    """
    model_kwargs = dict(model_kwargs or {})
    x_train, y_train, x_test, y_test = _tensors(data)
    n = len(x_train)
    hps = [_point(point, lr) for point in points]
    runs = [(p, s) for p in range(len(points)) for s in range(len(seeds))]
    groups: dict[tuple[float, float], list[tuple[int, int]]] = {}
    for p, s in runs:
        groups.setdefault((hps[p]["dropout1"], hps[p]["dropout2"]), []).append((p, s))
    acc = np.zeros((len(points), len(seeds), epochs))
    loss_out = np.zeros_like(acc)
    start = time.perf_counter()
    for members in groups.values():
        nets = [_model(hps[p], seeds[s], model_kwargs) for p, s in members]
        params, buffers = stack_module_state(nets)
        params = {k: v.detach() for k, v in params.items()}
        base = copy.deepcopy(nets[0]).to("meta")
        lrs = torch.tensor([hps[p]["lr"] for p, _ in members])
        wds = torch.tensor([hps[p]["weight_decay"] for p, _ in members])
        gens = [torch.Generator().manual_seed(seeds[s]) for _, s in members]

        def batch_loss(prm, buf, xb, yb, base=base):
            out = functional_call(base, (prm, buf), (xb,))
            return F.cross_entropy(out, yb), out

        grad_fn = vmap(grad(batch_loss, has_aux=True), randomness="different")

        def predict(prm, buf, xb, base=base):
            return functional_call(base, (prm, buf), (xb,))

        eval_fn = vmap(predict, in_dims=(0, 0, None))
        for epoch in range(epochs):
            base.train()
            orders = torch.stack([torch.randperm(n, generator=g) for g in gens])
            loss_sum = torch.zeros(len(members))
            for begin in range(0, n, batch_size):
                idx = orders[:, begin : begin + batch_size]
                grads, out = grad_fn(params, buffers, x_train[idx], y_train[idx])
                loss_sum += (
                    F.cross_entropy(
                        out.reshape(-1, out.shape[-1]), y_train[idx].reshape(-1), reduction="none"
                    )
                    .reshape(len(members), -1)
                    .sum(1)
                )
                for k in params:
                    g = grads[k]
                    if k.endswith("weight"):
                        g = g + wds.view(-1, *[1] * (g.ndim - 1)) * params[k]
                    params[k] = params[k] - lrs.view(-1, *[1] * (g.ndim - 1)) * g
            base.eval()
            with torch.no_grad():
                correct = (eval_fn(params, buffers, x_test).argmax(-1) == y_test).float().mean(1)
            for i, (p, s) in enumerate(members):
                acc[p, s, epoch] = float(correct[i])
                loss_out[p, s, epoch] = float(loss_sum[i]) / n
    return {
        "test_acc": acc,
        "train_loss": loss_out,
        "seconds": time.perf_counter() - start,
        "groups": len(groups),
    }


DEMO_POINTS = tuple(
    {"weight_decay": wd, "dropout1": r, "dropout2": r} for r in (0.0, 0.5) for wd in (0.0, 1e-3)
)
"""The 4-point grid :func:`compare_sweeps` times by default: dropout 0 / 0.5 x decay 0 / 1e-3."""


def compare_sweeps(
    data: Any,
    points: Sequence[Mapping[str, Any]] = DEMO_POINTS,
    seeds: Sequence[int] = (0, 1),
    *,
    epochs: int = 2,
    hidden: int = 256,
    jax_sweep: Callable[..., Mapping[str, Any]] | None = None,
) -> str:
    """Times one grid sequentially, with ``torch.func`` and (``jax_sweep``) with jaxreg's sweep.

    Args:
      data: arrays with ``x_train, y_train, x_test, y_test`` (``jaxreg.lab.data`` tuples).
      points: the grid (dicts over ``lr``, ``weight_decay``, ``dropout1``, ``dropout2``).
      seeds: the seeds.
      epochs: epochs per run.
      hidden: width of both hidden layers.
      jax_sweep: also run the grid through this function, ``jax_sweep(data, points, seeds,
        epochs=, hidden=) -> {"test_acc": [points, seeds, epochs], "seconds", "compile"}``
        (:func:`jaxreg.lab.presets.jax_demo_sweep`, jaxreg's vmapped sweep). The harness passes
        it in: this module never imports ``jaxreg.lab``.

    Returns:
      A few lines: milliseconds per configuration-epoch of each way and the final test
      accuracy per point (mean over seeds).

    Example:
      >>> from jaxreg.lab.data import synthetic_classification
      >>> text = compare_sweeps(synthetic_classification(64, 16), epochs=1, hidden=8,
      ...                       seeds=[0])  # doctest: +SKIP
    """
    kw = {"num_inputs": int(np.prod(np.shape(data.x_train)[1:]))}
    kw.update(num_hiddens1=hidden, num_hiddens2=hidden)
    common = {"epochs": epochs, "model_kwargs": kw}
    n_cfg_epochs = len(points) * len(seeds) * epochs
    results = {
        "torch sequential": sequential_sweep(data, points, seeds, **common),
        "torch.func vmap": func_sweep(data, points, seeds, **common),
    }
    if jax_sweep is not None:
        results["jax vmap (jaxreg.lab.sweep)"] = dict(
            jax_sweep(data, points, seeds, epochs=epochs, hidden=hidden)
        )
    lines = [f"{len(points)} points x {len(seeds)} seeds, {epochs} epochs, n={len(data.x_train)}"]
    for name, out in results.items():
        final = np.asarray(out["test_acc"])[..., -1].mean(axis=1)
        extra = f" (+{out['compile']:.1f} s compile)" if "compile" in out else ""
        lines.append(
            f"{name:26s} {1e3 * out['seconds'] / n_cfg_epochs:8.1f} ms per configuration-epoch"
            f"{extra}; final test acc per point {np.round(final, 4).tolist()}"
        )
    return "\n".join(lines)

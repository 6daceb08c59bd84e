"""What a sweep preset concludes: report paragraphs computed from the sweep's own results.

Each analysis takes a :class:`jaxreg.lab.results.SweepResult` and returns markdown paragraphs
for ``report.md``. Every figure in them is one the sweep measured (means and standard deviations
over its seeds of the last evaluated epoch); where the sweep cannot support a conclusion (one
seed, so no seed-to-seed spread; no validation split) the text says so instead of assuming a
number. A preset config names its analysis by a key of :data:`ANALYSES`.

PyTorch equivalent: none; seed 004 leaves these exercises to the reader.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxreg.lab.results import SweepResult, quiet_nan_warnings


def lambda_choice(result: SweepResult) -> list[str]:
    """Seed 004 exercise 2: the weight-decay lambda chosen on validation, against test.

    Example:
      >>> r = SweepResult(["a", "b"], [{"weight_decay": 0.1}, {"weight_decay": 1.0}], [0],
      ...                 {"test_acc": np.array([[[0.8]], [[0.7]]]),
      ...                  "diverged_step": np.array([[-1], [-1]])}, epochs=1)
      >>> print(lambda_choice(r)[0])  # doctest: +ELLIPSIS
      No validation split in this sweep (--validation 0): ... is 0.1 (test accuracy 0.8000)...
    """
    test, _ = result.summary("test_acc")
    best_test = result.best("test_acc")
    wd = [p["weight_decay"] for p in result.points]
    if "val_acc" not in result.metrics:
        return [
            "No validation split in this sweep (--validation 0): lambda cannot be chosen "
            f"without the test set. The lambda with the best test accuracy is {wd[best_test]:g} "
            f"(test accuracy {test[best_test]:.4f}), a figure that overstates what a lambda "
            "chosen on held-out data would reach."
        ]
    val, _ = result.summary("val_acc")
    chosen = result.best("val_acc")
    text = (
        f"lambda chosen on the validation split: **{wd[chosen]:g}** (validation accuracy "
        f"{val[chosen]:.4f}, test accuracy {test[chosen]:.4f}). "
    )
    if chosen == best_test:
        text += "It is also the lambda with the best test accuracy in this sweep."
    else:
        text += (
            f"The lambda with the best test accuracy is {wd[best_test]:g} "
            f"({test[best_test]:.4f}): the difference, {test[best_test] - test[chosen]:+.4f}, is "
            "what choosing on the test set would overstate."
        )
    return [text]


def dropout_swap(result: SweepResult) -> list[str]:
    """Seed 004 dropout exercise 1: the seed's rates (0.2, 0.5) against the swapped (0.5, 0.2)."""
    test, std = result.summary("test_acc")
    index = {(p.get("dropout1"), p.get("dropout2")): i for i, p in enumerate(result.points)}
    lines = []
    a, b = index.get((0.2, 0.5)), index.get((0.5, 0.2))
    if a is not None and b is not None:
        lines.append(
            f"Seed rates (dropout1=0.2, dropout2=0.5): test accuracy {test[a]:.4f} +- "
            f"{std[a]:.4f}; swapped (0.5, 0.2): {test[b]:.4f} +- {std[b]:.4f} (difference "
            f"{test[b] - test[a]:+.4f})."
        )
    best = result.best("test_acc")
    lines.append(f"Best pair on test: {result.labels[best]} ({test[best]:.4f}).")
    return lines


def additivity(result: SweepResult) -> list[str]:
    """Seed 004 dropout exercise 5: are the gains of dropout and weight decay additive?

    Needs points labelled ``none``, ``dropout``, ``decay`` and ``both``. The verdict compares the
    excess ``gain(both) - gain(dropout) - gain(decay)`` with the mean seed-to-seed standard
    deviation measured here; with a single seed there is none, and no verdict is given.
    """
    test, std = result.summary("test_acc")
    idx = {name: i for i, name in enumerate(result.labels)}
    if not {"none", "dropout", "decay", "both"} <= set(idx):
        return []
    g_d = test[idx["dropout"]] - test[idx["none"]]
    g_w = test[idx["decay"]] - test[idx["none"]]
    g_b = test[idx["both"]] - test[idx["none"]]
    gains = (
        f"Test-accuracy gains over no regularization: dropout {g_d:+.4f}, weight decay "
        f"{g_w:+.4f}, both {g_b:+.4f} vs the sum {g_d + g_w:+.4f}"
    )
    if len(result.seeds) < 2:
        return [gains + ". One seed: no seed-to-seed spread was measured, so no verdict."]
    with quiet_nan_warnings():
        noise = float(np.nanmean(std))
    excess = g_b - (g_d + g_w)
    # A difference smaller than the seed-to-seed spread is not evidence either way.
    if abs(excess) < noise:
        verdict = "additive within seed-to-seed noise"
    elif excess > 0:
        verdict = "more than additive"
    else:
        verdict = "less than additive (diminishing returns)"
    return [
        f"{gains}: **{verdict}** (excess {excess:+.4f}; mean seed-to-seed std {noise:.4f} over "
        f"{len(result.seeds)} seeds)."
    ]


def generalization_gap(result: SweepResult) -> list[str]:
    """Seed 004 dropout exercise 2: final train and test accuracy, their gap, the best epoch."""
    train_acc, _ = result.summary("train_acc")
    test, _ = result.summary("test_acc")
    with quiet_nan_warnings():
        per_epoch = np.nanmean(np.asarray(result.metrics["test_acc"], np.float64), axis=1)
        best = np.nanmax(per_epoch, axis=-1)
    return [
        f"{label}: final train accuracy {train_acc[i]:.4f}, test {test[i]:.4f} (gap "
        f"{train_acc[i] - test[i]:+.4f}), best test over epochs {best[i]:.4f}."
        for i, label in enumerate(result.labels)
    ]


def activation_variance(result: SweepResult) -> list[str]:
    """Seed 004 dropout exercise 3: each hidden layer's activation variance after training."""
    values = np.asarray(result.metrics["act_var"], np.float64)
    lines = []
    for i, label in enumerate(result.labels):
        with quiet_nan_warnings():
            final = np.nanmean(values[i, :, -1, :], axis=0)
        layers = ", ".join(f"hidden {j + 1}: {v:.4f}" for j, v in enumerate(final))
        lines.append(f"{label}: activation variance after the last epoch (eval mode) {layers}.")
    return lines


def best_point(result: SweepResult) -> list[str]:
    """The configuration with the best mean final test accuracy."""
    best = result.best("test_acc")
    test, std = result.summary("test_acc")
    return [
        f"Best configuration on test: {result.labels[best]} (test accuracy {test[best]:.4f} +- "
        f"{std[best]:.4f})."
    ]


ANALYSES: dict[str, Callable[[SweepResult], list[str]]] = {
    "lambda_choice": lambda_choice,
    "dropout_swap": dropout_swap,
    "additivity": additivity,
    "generalization_gap": generalization_gap,
    "activation_variance": activation_variance,
    "best_point": best_point,
}
"""Analyses by the name a preset config gives in ``"analysis"``."""

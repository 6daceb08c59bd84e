"""Trajectory bounds measured from the recipe's own reordering noise (used by
``test_parity_trajectories.py``).

A training recipe that amplifies rounding (large learning rates on N(0, 1) weights, Adam on
noise-dominated gradients) turns each step's ~1-ulp differences into a drift that grows with the
step count. Two correct implementations differ by exactly such reorderings, so the bound is
measured, per case and per dtype, from the reference framework itself:

* the torch recipe is run once as written (the reference) and ``SAMPLES`` more times on
  **relabeled** copies of the network (:class:`Relabeled`: inputs and hidden units permuted by a
  seeded random permutation, every batch's rows reordered). Each copy computes the same function,
  but every dot product and batch sum is rounded in another order;
* per step, the drift of a copy is the per-step relative difference of its sequence from the
  reference's (``|copy_k - ref_k| / |ref_k|``); the bound at step ``k`` is
  ``max(floor, MULTIPLE x the largest drift of any copy at any step <= k)``;
* the final parameters are held to ``max(floor, MULTIPLE x the largest final drift)`` (per-tensor
  infinity-norm relative error, as everywhere in the suite).

The bound is therefore several samples of the same dtype's own noise (not float32 against
float64, which underestimates float32's self-noise and made the suite fail on an AVX-512 Intel
CPU while it passed where MKL takes its AVX2 path), tight early (1e-7 noise at step 0) and,
because each case compares a horizon over which the recipe's noise stays small, still
discriminating at the last step: ``test_trajectory_bound_rejects`` feeds runs from
another initialization and from all-zero parameters to the same check. The JAX side can itself
be relabeled (``PARITY_PERTURB_JAX=<seed>``) to see the margins under another rounding order,
as another CPU's kernels would give.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from _parity import Recorder, Tol, errors

SAMPLES = 3
MULTIPLE = 10.0
# Relabeling seeds: torch's noise samples and the JAX perturbation never share a permutation.
PROBE_SEEDS = tuple(range(101, 101 + SAMPLES))
PERTURB_ENV = "PARITY_PERTURB_JAX"


def jax_perturbation() -> int | None:
    """The relabeling seed for the JAX side from ``$PARITY_PERTURB_JAX`` (unset: none)."""
    value = os.environ.get(PERTURB_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{PERTURB_ENV}={value!r}: allowed values are a non-negative integer")
    return int(value)


def reordered(batch: np.ndarray, seed: int) -> np.ndarray:
    """The rows of a batch in another fixed order: the same math, other rounding."""
    return batch[np.random.default_rng(seed).permutation(len(batch))]


class Relabeled:
    """The same MLP with its inputs and hidden units relabeled by seeded random permutations.

    ``chain``: ``(weight_key, bias_key, raw)`` per layer of a torch state dict; ``raw`` weights
    are ``(in, out)`` (seed 004's ``x @ W1``), the others torch's ``(out, in)``. The output units
    keep their order, so losses and predictions are unchanged up to rounding.
    """

    def __init__(self, state: dict, chain: list[tuple[str, str, bool]], seed: int):
        rng = np.random.default_rng(seed)
        dims = [tuple(state[w].shape)[:: 1 if raw else -1] for w, _, raw in chain]
        self.chain, self.seed = chain, seed
        self.perms = [rng.permutation(dims[0][0])]
        self.perms += [rng.permutation(d[1]) for d in dims[:-1]] + [np.arange(dims[-1][1])]

    def _map(self, state: dict, inverse: bool) -> dict:
        out = dict(state)
        for i, (w, b, raw) in enumerate(self.chain):
            p_in, p_out = self.perms[i], self.perms[i + 1]
            if inverse:
                p_in, p_out = np.argsort(p_in), np.argsort(p_out)
            if isinstance(state[w], torch.Tensor):
                p_in, p_out = torch.from_numpy(p_in), torch.from_numpy(p_out)
            weight = state[w]
            out[w] = weight[p_in][:, p_out] if raw else weight[p_out][:, p_in]
            out[b] = state[b][p_out]
        return out

    def state(self, state: dict) -> dict:
        return self._map(state, inverse=False)

    def unstate(self, state: dict) -> dict:
        return self._map(state, inverse=True)

    def batch(self, x: np.ndarray) -> np.ndarray:
        """One batch (rows = examples) with its rows reordered and its features relabeled."""
        return reordered(np.asarray(x), self.seed)[..., self.perms[0]]

    def rows(self, y: np.ndarray) -> np.ndarray:
        """Per-example targets in the order :meth:`batch` gives the examples."""
        return reordered(np.asarray(y), self.seed)


def step_drift(seq: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-step relative difference ``|seq_k - ref_k| / |ref_k|`` (NaN anywhere: infinite)."""
    seq, ref = np.asarray(seq, np.float64), np.asarray(ref, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(seq - ref) / np.abs(ref)
    d = np.where(ref == seq, 0.0, d)
    return np.where(np.isnan(d), np.inf, d)


def final_drift(state: dict, ref: dict) -> float:
    """Largest per-tensor relative error of a final state against the reference's."""
    return max(errors(_np(state[k]), _np(v))[1] for k, v in ref.items())


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


@dataclass
class Bound:
    """The per-step and final bounds of one case, with the noise samples they come from."""

    tol: Tol
    floor: float
    allowed: dict[str, np.ndarray] = field(default_factory=dict)
    final: float = math.nan
    noise_final: list[float] = field(default_factory=list)
    noise_last: dict[str, list[float]] = field(default_factory=dict)

    def note(self) -> str:
        losses = ", ".join(f"{v:.1e}" for v in self.noise_last["losses"])
        finals = ", ".join(f"{v:.1e}" for v in self.noise_final)
        return (
            f"{len(self.noise_final)} relabeled torch runs: last-step loss drift {losses}; "
            f"final params {finals}; bound = max({self.floor:g}, {MULTIPLE:g} x largest)"
        )


def measure(
    torch_run: Callable[..., dict], state0: dict, chain: list, dtype: str, steps: int,
    floor: float, tol: Tol, sequences: tuple[str, ...],
) -> tuple[dict, Bound]:  # fmt: skip
    """The torch reference run and the bound measured from ``SAMPLES`` relabeled runs of it.

    ``torch_run(state, relabel, dtype, steps)`` returns the per-step ``sequences`` (NumPy) and
    the final ``"state"`` in the reference's labels.
    """
    ref = torch_run(state0, None, dtype, steps)
    bound = Bound(tol=tol, floor=floor)
    drifts: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
    for seed in PROBE_SEEDS:
        probe = torch_run(state0, Relabeled(state0, chain, seed), dtype, steps)
        for name in sequences:
            drifts[name].append(step_drift(probe[name], ref[name]))
        bound.noise_final.append(final_drift(probe["state"], ref["state"]))
    for name, samples in drifts.items():
        envelope = np.maximum.accumulate(np.max(samples, axis=0))
        bound.allowed[name] = np.maximum(floor, MULTIPLE * envelope)
        bound.noise_last[name] = [float(s[-1]) for s in samples]
    bound.final = max(floor, MULTIPLE * max(bound.noise_final))
    return ref, bound


def check(parity: Recorder, bound: Bound, ours: dict, ref: dict) -> None:
    """Every sequence per step, then every final tensor, against the measured bound."""
    for name, allowed in bound.allowed.items():
        label = "loss per step" if name == "losses" else name
        parity.check_envelope(label, ours[name], ref[name], allowed, bound.tol, scale="step")
    final_tol = Tol(bound.tol.label, bound.final, bound.tol.reason)
    parity.check_tree("final/", ours["state"], ref["state"], final_tol)


class RelabeledStreams:
    """Matched streams for a :class:`Relabeled` network: the same steps, other inner products.

    Each batch's rows go in another fixed order (with their masks), and every dropout mask's
    feature axis (the last) is relabeled like the hidden units it multiplies: mask ``j`` of a
    step (in call order) belongs to hidden layer ``j`` (``relabel.perms[j + 1]``), as in every
    model of ``test_parity_engine.py``. With the inputs relabeled too (``relabel.perms[0]`` on
    the data's last axis), the relabeled torch run computes the same function as the plain one,
    every forward inner product and batch sum rounded in another order.

    Args:
      streams: a :class:`jaxreg.lab.matched.MatchedStreams` (``order``, ``step_masks``,
        ``train.batch_size``).
      relabel: the :class:`Relabeled` network.
    """

    def __init__(self, streams: Any, relabel: Relabeled):
        self.streams, self.relabel = streams, relabel
        batch = streams.train.batch_size
        self.batch_size = batch if batch else len(streams.order(0))

    def _perms(self, epoch: int, n: int) -> list[np.ndarray]:
        rng = np.random.default_rng((self.relabel.seed, epoch))
        sizes = [min(self.batch_size, n - i) for i in range(0, n, self.batch_size)]
        return [rng.permutation(k) for k in sizes]

    def order(self, epoch: int) -> np.ndarray:
        order = np.asarray(self.streams.order(epoch))
        perms = self._perms(epoch, len(order))
        chunks = [order[i * self.batch_size :][: len(p)][p] for i, p in enumerate(perms)]
        return np.concatenate(chunks)

    def step_masks(self, epoch: int):
        n = len(self.streams.order(epoch))
        hidden = self.relabel.perms[1:]
        for masks, rows in zip(self.streams.step_masks(epoch), self._perms(epoch, n), strict=True):
            yield [np.asarray(m)[: len(rows)][rows][..., hidden[j]] for j, m in enumerate(masks)]

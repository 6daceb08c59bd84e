"""The dropout masks the ENGINE draws, over many steps: statistics against torch and theory.

Replay parity (``test_parity_engine.py``, ``test_parity_grads.py``) copies whatever masks JAX
drew into torch, so it cannot see a wrong keep probability, a key reused across layers or steps,
or a draw that is not shared along ``broadcast_dims``. This file looks at the masks themselves:
for each model, ``jaxreg.lab.matched.MatchedStreams`` recomputes the keep-masks of every step of
a ``make_train`` run (the engine's own keys: ``Train.dropout_key(key, step)``, Flax's rng
streams, the model's module paths), and torch draws its own stream for the same layers and shapes
(``nn.Dropout(p)`` on ones, step after step; ``nn.Dropout1d`` for the shared draw;
``nn.Dropout2d`` for spatial dropout's ``(N, C)`` draw, ``nn.AlphaDropout`` for alpha dropout and
torchvision's per-row ``bernoulli_`` for drop path). Per random site, with ``q`` the expected
value:

* kept fraction: ``q = 1 - p`` (``keep_prob`` for vanilla dropout);
* agreement of the site's masks between consecutive steps (pairs of steps (0, 1), (2, 3), ...:
  disjoint, so the indicators are independent): ``q = (1-p)^2 + p^2``;
* agreement between neighbouring rows of one step (rows (0, 1), (2, 3), ...): the same ``q``
  (a mask shared over the batch would give 1);
* agreement between the two sites of one step (DropoutMLP, both 256 wide):
  ``q = p1 p2 + (1-p1)(1-p2)``;
* constancy along the broadcast axis (``broadcast_dims=(1,)``): every (step, example, feature)
  group all-kept or all-dropped, exactly.

Each statistic is checked three ways: the engine's stream against theory, torch's stream against
theory (the statistic and its bound are right), and the engine against torch. A statistic that is
a fraction of ``n`` independent Bernoulli(q) indicators has standard deviation
``sd = sqrt(q (1 - q) / n)`` (``n`` counts independent draws: one per broadcast group); the
difference of two independent streams ``sqrt(2) sd``. The tolerance is 5 of those, relative to
``q`` (Recorder.check's relative error): a correct stream fails one check with probability
~6e-7.
"""

import math

import flax.linen as fnn
import jax
import numpy as np
import pytest
import torch
from _parity import Tol

import jaxreg.nn as jnn
from jaxreg import models as M
from jaxreg.init import Dense
from jaxreg.lab import engine, matched

FAMILY = "stream"
STEPS, BATCH = 40, 64
SIGMAS = 5.0
SHARED = Tol(
    "shared-draw",
    0.0,
    "one draw per broadcast group: every group is all kept or all dropped (the fraction of "
    "constant groups is exactly 1; 6 unshared draws of keep 0.6 agree with probability "
    "0.6^6 + 0.4^6, about 5%)",
)


class VanillaMLP(fnn.Module):
    """784-128-10 with cs231n's vanilla dropout (keep probability 0.7) after the hidden ReLU."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        x = fnn.relu(Dense(128, name="fc1")(x))
        x = jnn.VanillaDropout(keep_prob=0.7)(x, deterministic)
        return Dense(10, name="fc2")(x)


class BroadcastMLP(fnn.Module):
    """(N, 6, 16) sequences: Dense, ReLU, dropout 0.4 shared over time (axis 1), mean, Dense."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = fnn.relu(Dense(32, name="fc1")(x))
        h = jnn.Dropout(rate=0.4, broadcast_dims=(1,))(h, deterministic)
        return Dense(10, name="fc2")(h.mean(axis=1))


class SpatialCNN(fnn.Module):
    """(N, 4, 4, 1) images: Conv, ReLU, Dropout2d 0.3 (one draw per example and channel), Dense."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = fnn.relu(fnn.Conv(16, (3, 3), name="conv")(x))
        h = jnn.Dropout2d(rate=0.3)(h, deterministic)
        return Dense(10, name="fc")(h.reshape(h.shape[0], -1))


class ResidualDropPath(fnn.Module):
    """784-32 then a residual Dense branch with drop path 0.25 (one draw per example), Dense."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = fnn.relu(Dense(32, name="fc1")(x))
        h = h + jnn.DropPath(rate=0.25)(fnn.relu(Dense(32, name="branch")(h)), deterministic)
        return Dense(10, name="fc2")(h)


class AlphaMLP(fnn.Module):
    """784-64 SELU, alpha dropout 0.2 (dropped units at SELU's saturation), Dense."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = fnn.selu(Dense(64, name="fc1")(x))
        h = jnn.AlphaDropout(rate=0.2)(h, deterministic)
        return Dense(10, name="fc2")(h)


# case -> (Flax model, config extras, hparams, input shape, per-site drop probabilities,
#          broadcast axis of the masks, or the torch layer kind: "spatial", "path", "alpha")
CASES = {
    "seed003_dropout_mlp": (M.DropoutMLP, {}, {"dropout1": 0.2, "dropout2": 0.5}, (784,),
                            (0.2, 0.5), None),
    "seed003_dropout_mlp_bits16": (M.DropoutMLP, {"dropout_generator": "bits16"},
                                   {"dropout1": 0.2, "dropout2": 0.5}, (784,), (0.2, 0.5), None),
    "seed001_two_layer_net": (M.TwoLayerNet, {"loss": "nll"}, {}, (784,), (0.5,), None),
    "vanilla_dropout": (VanillaMLP, {}, {}, (784,), (0.3,), None),
    "broadcast_dims": (BroadcastMLP, {}, {}, (6, 16), (0.4,), 1),
    "spatial_dropout2d": (SpatialCNN, {}, {}, (4, 4, 1), (0.3,), "spatial"),
    "drop_path": (ResidualDropPath, {}, {}, (784,), (0.25,), "path"),
    "alpha_dropout": (AlphaMLP, {}, {}, (784,), (0.2,), "alpha"),
}  # fmt: skip


def _engine_stream(case, dtype) -> list[np.ndarray]:
    """Per site, the engine's keep-masks of STEPS steps stacked: ``(STEPS, BATCH, ...)``."""
    model, extra, hp, shape, _, _ = CASES[case]
    n = STEPS * BATCH
    x = np.zeros((n, *shape), np.float32)
    y = np.zeros(n, np.int64)
    config = engine.TrainConfig(model=model(), batch_size=BATCH, epochs=1, dtype=dtype, **extra)
    train = engine.make_train(config, (x, y, x[:BATCH], y[:BATCH]))
    streams = matched.MatchedStreams(train, jax.random.key(0), hp)
    assert streams.steps_per_epoch == STEPS
    steps = list(streams.step_draws(0))
    kinds = {"spatial": "spatial_dropout", "path": "drop_path", "alpha": "alpha_dropout"}
    axis = CASES[case][5]
    want = kinds.get(axis, "vanilla_dropout" if case == "vanilla_dropout" else "dropout")
    assert {d.kind for s in steps for d in s} == {want}
    return [np.stack([np.asarray(s[i].value, bool) for s in steps]) for i in range(len(steps[0]))]


def _torch_stream(engine_masks, rates, axis) -> list[np.ndarray]:
    """torch's own masks for the same sites and shapes, drawn step after step, in call order."""
    torch.manual_seed(0)
    kinds = {
        None: torch.nn.Dropout, "spatial": torch.nn.Dropout2d, "alpha": torch.nn.AlphaDropout,
        "path": None,
    }  # fmt: skip
    layers = [kinds.get(axis, torch.nn.Dropout1d)(p) if kinds.get(axis, 1) else p for p in rates]
    out = [[] for _ in rates]
    for _ in range(STEPS):
        for i, (layer, m) in enumerate(zip(layers, engine_masks, strict=True)):
            shape = m.shape[1:]
            if axis is None:
                keep = layer(torch.ones(shape)) != 0
            elif axis == "spatial":
                # nn.Dropout2d on (N, C, H, W): one draw per example and channel.
                keep = layer(torch.ones(*shape, 2, 2))[:, :, 0, 0] != 0
            elif axis == "alpha":
                # Kept units of ones come out at a (1 + alpha p) > 0, dropped ones below 0.
                keep = layer(torch.ones(shape)) > 0
            elif axis == "path":
                # torchvision's stochastic_depth(mode="row"): empty(N).bernoulli_(1 - p).
                keep = torch.empty(shape).bernoulli_(1.0 - layer) != 0
            else:
                # nn.Dropout1d drops whole channels of (N, C, L): C = feature, L = the shared axis.
                keep = (layer(torch.ones(shape[0], shape[2], shape[1])) != 0).transpose(1, 2)
            out[i].append(keep.numpy())
    return [np.stack(s) for s in out]


def _draws(mask, axis):
    """The independent draws of a site's stacked masks: one per broadcast group."""
    return mask if not isinstance(axis, int) else np.take(mask, 0, axis=axis + 1)


def _pairs(a, axis_of_pairs):
    """Agreement indicators of disjoint pairs (0, 1), (2, 3), ... along ``axis_of_pairs``."""
    even = np.take(a, np.arange(0, a.shape[axis_of_pairs] - 1, 2), axis=axis_of_pairs)
    odd = np.take(a, np.arange(1, a.shape[axis_of_pairs], 2), axis=axis_of_pairs)
    return even == odd


def _statistics(masks, rates, axis) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (indicators, expected fraction q)."""
    stats = {}
    for i, (m, p) in enumerate(zip(masks, rates, strict=True)):
        d, k = _draws(m, axis), 1.0 - p
        agree = k * k + (1 - k) * (1 - k)
        stats[f"site {i + 1}: kept fraction"] = (d, k)
        stats[f"site {i + 1}: agreement of consecutive steps"] = (_pairs(d, 0), agree)
        stats[f"site {i + 1}: agreement of neighbouring rows"] = (_pairs(d, 1), agree)
    if len(masks) == 2 and masks[0].shape == masks[1].shape:
        k1, k2 = 1.0 - rates[0], 1.0 - rates[1]
        both = k1 * k2 + (1 - k1) * (1 - k2)
        stats["sites 1 and 2: agreement in one step"] = (masks[0] == masks[1], both)
    return stats


def _tol(q: float, n: int, streams: int) -> Tol:
    sd = math.sqrt(streams * q * (1 - q) / n)
    why = (
        f"{SIGMAS:g} standard deviations of the statistic relative to its expected value q: a "
        "fraction of n independent Bernoulli(q) indicators has sd = sqrt(q (1 - q) / n), the "
        "difference of two independent streams sqrt(2) times that"
    )
    return Tol("stat-5sd", SIGMAS * sd / q, why)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dropout_streams(case, dtype, device, parity):
    if device != "cpu":
        pytest.skip("the engine's masks are drawn on the CPU here (statistics, not arithmetic)")
    _, _, _, _, rates, axis = CASES[case]
    ours_masks = _engine_stream(case, dtype)
    assert len(ours_masks) == len(rates), f"{len(ours_masks)} dropout sites, expected {rates}"
    theirs_masks = _torch_stream(ours_masks, rates, axis)
    ours, theirs = _statistics(ours_masks, rates, axis), _statistics(theirs_masks, rates, axis)
    for name, (ind, q) in ours.items():
        t_ind = theirs[name][0]
        a, b, n = float(ind.mean()), float(t_ind.mean()), ind.size
        parity.check(f"engine: {name}", np.float64(a), np.float64(q), _tol(q, n, 1))
        parity.check(f"torch: {name}", np.float64(b), np.float64(q), _tol(q, n, 1))
        parity.check(f"engine vs torch: {name}", np.float64(a), np.float64(b), _tol(q, n, 2))
    if isinstance(axis, int):
        for side, masks in (("engine", ours_masks), ("torch", theirs_masks)):
            m = masks[0]
            constant = np.all(m == np.take(m, [0], axis=axis + 1), axis=axis + 1)
            parity.check(
                f"{side}: site 1 constant along axis {axis}", np.float64(constant.mean()),
                np.float64(1.0), SHARED,
            )  # fmt: skip

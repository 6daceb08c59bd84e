"""Dropout: jaxreg.dropout / dropout_with_mask / nn.Dropout / vanilla_dropout vs torch and NumPy.

* Replays: torch draws a mask (``nn.Dropout``, ``F.dropout``, d2l's ``dropout_layer``,
  ``nn.Dropout2d``) on an input with no zeros, so the mask is recovered exactly as ``y != 0``;
  ``jaxreg.dropout_with_mask`` replays it and must give bit-identical outputs and input gradients
  (the same arithmetic: ``x * (1 / keep)`` for torch, ``x / keep`` for d2l).
* Statistics: with their own random streams, jaxreg and torch keep the same fraction of units
  (within 5 binomial standard deviations) and scale the kept ones by the same value.
* Edge cases: p = 0 and p = 1 in training, and evaluation mode, agree exactly.
* Seed 000's NumPy ``Dropout`` (keep probability) forward and backward, and seed 002's cs231n
  3-layer net (inverted training with replayed masks; vanilla prediction scaled by ``p``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _parity import EXACT, Tol, base_tol, to_jax, to_torch

import jaxreg
from jaxreg.numpy_ref import NumpyDropout
from jaxreg.torch_ref.dropout import cs231n_predict, cs231n_train_forward, dropout_layer

FAMILY = "dropout"

SHAPE = (64, 128)


def _input(dtype, shape=SHAPE):
    # Strictly positive: a kept element is never 0, so y != 0 recovers torch's mask exactly.
    return np.random.default_rng(0).uniform(0.5, 1.5, shape).astype(dtype)


def _replay(parity, dtype, device, torch_fn, rate, formula="torch", channels=False):
    x = _input(dtype, (8, 6, 5, 5) if channels else SHAPE)
    xt = to_torch(x, dtype, device, requires_grad=True)
    torch.manual_seed(0)
    y = torch_fn(xt)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    y.backward(to_torch(g, dtype, device))
    keep = (y != 0).detach().cpu().numpy()
    assert 0 < keep.mean() < 1, "the replayed mask must keep some and drop some units"
    if channels:
        # nn.Dropout2d drops whole NCHW channels; jaxreg shares one draw over H, W (NHWC).
        keep = keep[:, :, :1, :1].transpose(0, 2, 3, 1)
        to_nhwc, from_nhwc = (0, 2, 3, 1), (0, 3, 1, 2)
        x, g = x.transpose(to_nhwc), g.transpose(to_nhwc)

    def fn(a):
        return jaxreg.dropout_with_mask(a, jnp.asarray(keep), rate, formula=formula)

    ours, vjp = jax.vjp(fn, to_jax(x, dtype))
    (ours_grad,) = vjp(to_jax(g, dtype))
    if channels:
        ours, ours_grad = jnp.transpose(ours, from_nhwc), jnp.transpose(ours_grad, from_nhwc)
    parity.check("output", ours, y.detach(), EXACT)
    parity.check("grad wrt input", ours_grad, xt.grad, EXACT)


def case_replay_nn_dropout_p02(parity, dtype, device):
    _replay(parity, dtype, device, torch.nn.Dropout(0.2).train(), 0.2)


def case_replay_nn_dropout_p05(parity, dtype, device):
    _replay(parity, dtype, device, torch.nn.Dropout(0.5).train(), 0.5)


def case_replay_nn_dropout_p09(parity, dtype, device):
    _replay(parity, dtype, device, torch.nn.Dropout(0.9).train(), 0.9)


def case_replay_functional_dropout_seed000_001(parity, dtype, device):
    # Seeds 000/001 call F.dropout(x, p=0.5) with its default training=True.
    _replay(parity, dtype, device, lambda x: F.dropout(x, p=0.5), 0.5)


def case_replay_d2l_dropout_layer(parity, dtype, device):
    _replay(parity, dtype, device, lambda x: dropout_layer(x, 0.3), 0.3, formula="d2l")


def case_replay_dropout2d_channels(parity, dtype, device):
    _replay(parity, dtype, device, torch.nn.Dropout2d(0.4).train(), 0.4, channels=True)


def _stats(parity, dtype, device, rate):
    n = 200_000
    x = np.ones(n, dtype)
    torch.manual_seed(0)
    theirs = torch.nn.Dropout(rate).train()(to_torch(x, dtype, device)).cpu().numpy()
    ours = np.asarray(jaxreg.dropout(to_jax(x, dtype), rate, key=jax.random.key(0)))
    keep = 1 - rate
    # Two independent Binomial(n, keep) fractions: the difference has sd sqrt(2 keep rate / n).
    sd = math.sqrt(2 * keep * rate / n)
    tol = Tol("binomial-5sd", 5 * sd / keep, "kept fractions of two independent streams, "
              f"n = {n}: 5 standard deviations of their difference, relative to 1 - p")  # fmt: skip
    parity.check("kept fraction", np.mean(ours != 0), np.mean(theirs != 0), tol)
    parity.check("kept value (1 / (1 - p))", np.unique(ours[ours != 0]),
                 np.unique(theirs[theirs != 0]), EXACT)  # fmt: skip
    parity.check("mean (unbiased: 1)", np.mean(ours), np.mean(theirs),
                 Tol(tol.label, 5 * math.sqrt(2 * rate / (keep * n)), tol.reason))  # fmt: skip


def case_statistics_p02(parity, dtype, device):
    _stats(parity, dtype, device, 0.2)


def case_statistics_p05(parity, dtype, device):
    _stats(parity, dtype, device, 0.5)


def _layer_case(parity, dtype, device, rate, train):
    x = _input(dtype)
    xt = to_torch(x, dtype, device, requires_grad=True)
    layer = torch.nn.Dropout(rate).train(train)
    y = layer(xt)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    y.backward(to_torch(g, dtype, device))
    module = jaxreg.nn.Dropout(rate)

    def fn(a):
        return module.apply({}, a, deterministic=not train, rngs={"dropout": jax.random.key(0)})

    ours, vjp = jax.vjp(fn, to_jax(x, dtype))
    (ours_grad,) = vjp(to_jax(g, dtype))
    parity.check("output", ours, y.detach(), EXACT)
    parity.check("grad wrt input", ours_grad, xt.grad, EXACT)


def case_p0_training(parity, dtype, device):
    _layer_case(parity, dtype, device, 0.0, train=True)


def case_p1_training(parity, dtype, device):
    _layer_case(parity, dtype, device, 1.0, train=True)


def case_eval_mode(parity, dtype, device):
    _layer_case(parity, dtype, device, 0.5, train=False)


def case_seed000_numpy_dropout(parity, dtype, device):
    keep_prob = 0.7
    x = _input(dtype)
    layer = NumpyDropout(keep_prob)
    theirs = layer.forward(x, np.random.default_rng(0))
    dout = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    theirs_dx, _ = layer.backward(dout)
    keep = jnp.asarray(layer.mask != 0)

    def fn(a):
        return jaxreg.dropout_with_mask(a, keep, 1 - keep_prob)

    ours, vjp = jax.vjp(fn, to_jax(x, dtype))
    (ours_dx,) = vjp(to_jax(dout, dtype))
    # NumPy computes in float64 (its mask is binomial / prob in float64) whatever x's dtype is.
    parity.check("forward", ours, theirs, base_tol(dtype, device))
    parity.check("backward", ours_dx, theirs_dx, base_tol(dtype, device))


def _cs231n_params(dtype, device):
    rng = np.random.default_rng(3)
    shapes = {"W1": (8, 4), "b1": (8, 1), "W2": (8, 8), "b2": (8, 1), "W3": (3, 8), "b3": (3, 1)}
    arrays = {k: 0.5 * rng.standard_normal(s) for k, s in shapes.items()}
    torch_params = {k: to_torch(v, dtype, device, requires_grad=True) for k, v in arrays.items()}
    return arrays, torch_params, rng.standard_normal((4, 16))


def case_seed002_cs231n_inverted_training(parity, dtype, device):
    keep_prob = 0.7
    arrays, tp, X = _cs231n_params(dtype, device)
    gen = torch.Generator(device=tp["W1"].device).manual_seed(0)
    out, (U1, U2) = cs231n_train_forward(tp, to_torch(X, dtype, device), keep_prob, gen)
    out.sum().backward()
    u1, u2 = jnp.asarray(U1.cpu().numpy()), jnp.asarray(U2.cpu().numpy())

    def forward(p):
        H1 = jax.nn.relu(p["W1"] @ to_jax(X, dtype) + p["b1"])
        H1 = jaxreg.dropout_with_mask(H1, u1, 1 - keep_prob)
        H2 = jax.nn.relu(p["W2"] @ H1 + p["b2"])
        H2 = jaxreg.dropout_with_mask(H2, u2, 1 - keep_prob)
        return p["W3"] @ H2 + p["b3"]

    params = {k: to_jax(v, dtype) for k, v in arrays.items()}
    ours, grads = forward(params), jax.grad(lambda p: forward(p).sum())(params)
    tol = base_tol(dtype, device)
    parity.check("scores", ours, out.detach(), tol)
    parity.check_tree("grad/", {k: np.asarray(v) for k, v in grads.items()},
                      {k: v.grad for k, v in tp.items()}, tol)  # fmt: skip


def case_seed002_cs231n_vanilla_predict(parity, dtype, device):
    keep_prob = 0.7
    arrays, tp, X = _cs231n_params(dtype, device)
    with torch.no_grad():
        theirs = cs231n_predict(tp, to_torch(X, dtype, device), keep_prob, variant="vanilla")
    p = {k: to_jax(v, dtype) for k, v in arrays.items()}
    H1 = jax.nn.relu(p["W1"] @ to_jax(X, dtype) + p["b1"])
    H1 = jaxreg.vanilla_dropout(H1, keep_prob, deterministic=True)
    H2 = jax.nn.relu(p["W2"] @ H1 + p["b2"])
    H2 = jaxreg.vanilla_dropout(H2, keep_prob, deterministic=True)
    parity.check("scores", p["W3"] @ H2 + p["b3"], theirs, base_tol(dtype, device))


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dropout(case, dtype, device, parity):
    CASES[case](parity, dtype, device)

"""Noise injection: alpha dropout, spatial dropout, drop path, DropConnect, Gaussian noise, label
smoothing, each against PyTorch.

* Alpha dropout (``F.alpha_dropout``, ``F.feature_alpha_dropout``): torch's Bernoulli mask is
  re-drawn with the same seed (ATen draws ``empty_like(x).bernoulli_(1 - p)``, or the
  ``(N, C, 1, ...)`` feature noise) and checked against the output (every dropped element holds
  the one saturation value); ``jaxreg.alpha_dropout_with_mask`` replays it. Called eagerly the
  replay is bit-exact; under ``jax.jit`` XLA fuses ``x * a + b`` into one FMA (one rounding where
  ATen rounds twice), checked against the ``fma`` tolerance.
* ``nn.Dropout1d/2d/3d`` and ``FeatureAlphaDropout``: torch is channels-first, jaxreg channels-
  last; the ``(N, C)`` mask is recovered from an input without zeros, replayed on the
  channels-last transpose and the result transposed back: bit-exact output and gradient.
* Drop path: torchvision does not import on this CPU-only machine, so the reference is
  ``torchvision.ops.stochastic_depth``'s own 10-line formula (mode "row"), written out below.
* Gaussian dropout and noise have no torch op: the noise ``jaxreg`` draws from its key
  (``jax.random.normal(key, x.shape, float32)`` cast to ``x.dtype``, the
  documented contract) is fed to the Keras
  formulas written in torch.
* DropConnect: ``F.linear(x, F.dropout(W, p), b)`` with torch's weight mask replayed on the Flax
  kernel (``W.T``).
* Label smoothing: jaxreg adds no function; ``optax.smooth_labels`` + ``softmax_cross_entropy``
  equals ``nn.CrossEntropyLoss(label_smoothing=eps)``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from _parity import EXACT, Tol, base_tol, to_jax, to_torch

import jaxreg

FAMILY = "noise"


def _fma_tol(dtype: str) -> Tol:
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return Tol(
        f"fma-{dtype}",
        4 * eps,
        "under jax.jit XLA contracts x * a + b into one fused multiply-add (one rounding); ATen "
        "rounds the product and the sum separately: a few ulp of the largest element",
    )


def _vjp(fn, x, g, dtype):
    out, vjp = jax.vjp(fn, to_jax(x, dtype))
    return out, vjp(to_jax(g, dtype))[0]


def _positive(shape, dtype, seed=0):
    # No zeros and no value near the alpha-dropout saturation: masks are readable from outputs.
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(dtype)


def _alpha(parity, dtype, device, p, feature):
    shape = (8, 6, 5, 5) if feature else (64, 128)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    xt = to_torch(x, dtype, device, requires_grad=True)
    op = F.feature_alpha_dropout if feature else F.alpha_dropout
    torch.manual_seed(0)
    y = op(xt, p, training=True)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y.backward(to_torch(g, dtype, device))
    torch.manual_seed(0)
    noise_shape = shape[:2] + (1,) * (len(shape) - 2) if feature else shape
    keep = torch.empty(noise_shape, dtype=xt.dtype, device=xt.device).bernoulli_(1 - p)
    keep = keep.bool().expand(shape).cpu().numpy()
    dropped = y.detach().cpu().numpy()[~keep]
    assert 0 < keep.mean() < 1 and np.all(dropped == dropped[0]), "re-drawn mask != torch's"
    if feature:
        # (N, C, H, W) -> (N, H, W, C): jaxreg's channels-last layout, one draw per (n, c).
        keep = keep[:, :, :1, :1].transpose(0, 2, 3, 1)
        x = x.transpose(0, 2, 3, 1)  # the cotangent g stays NCHW, like fn's output

    def fn(a):
        out = jaxreg.alpha_dropout_with_mask(a, jnp.asarray(keep), p)
        return jnp.transpose(out, (0, 3, 1, 2)) if feature else out

    ours, ours_grad = _vjp(fn, x, g, dtype)
    ours_grad = jnp.transpose(ours_grad, (0, 3, 1, 2)) if feature else ours_grad
    parity.check("output (eager)", ours, y.detach(), EXACT)
    parity.check("grad wrt input", ours_grad, xt.grad, EXACT)
    parity.check("output (jit)", jax.jit(fn)(to_jax(x, dtype)), y.detach(), _fma_tol(dtype))


def case_alpha_dropout_p02(parity, dtype, device):
    _alpha(parity, dtype, device, 0.2, feature=False)


def case_alpha_dropout_p05(parity, dtype, device):
    _alpha(parity, dtype, device, 0.5, feature=False)


def case_feature_alpha_dropout_p03(parity, dtype, device):
    _alpha(parity, dtype, device, 0.3, feature=True)


def _spatial(parity, dtype, device, layer, shape, p):
    x = _positive(shape, dtype)
    xt = to_torch(x, dtype, device, requires_grad=True)
    torch.manual_seed(0)
    y = layer(p).train()(xt)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y.backward(to_torch(g, dtype, device))
    keep = (y != 0).detach().cpu().numpy()
    assert 0 < keep.mean() < 1, "the replayed mask must keep some and drop some channels"
    keep_nc = keep.reshape(shape[0], shape[1], -1)[:, :, 0]
    to_last = (0, *range(2, len(shape)), 1)
    to_first = (0, len(shape) - 1, *range(1, len(shape) - 1))

    def fn(a):
        out = jaxreg.spatial_dropout_with_mask(a, jnp.asarray(keep_nc), p)
        return jnp.transpose(out, to_first)

    ours, ours_grad = _vjp(fn, x.transpose(to_last), g, dtype)
    parity.check("output", ours, y.detach(), EXACT)
    parity.check("grad wrt input", jnp.transpose(ours_grad, to_first), xt.grad, EXACT)


def case_dropout1d(parity, dtype, device):
    _spatial(parity, dtype, device, torch.nn.Dropout1d, (8, 6, 20), 0.3)


def case_dropout2d(parity, dtype, device):
    _spatial(parity, dtype, device, torch.nn.Dropout2d, (8, 6, 5, 5), 0.5)


def case_dropout3d(parity, dtype, device):
    _spatial(parity, dtype, device, torch.nn.Dropout3d, (4, 6, 3, 3, 3), 0.4)


def _torchvision_stochastic_depth_row(input, p, training=True):
    # torchvision.ops.stochastic_depth (v0.2x), mode="row", verbatim but for the mode switch.
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1)
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


def _drop_path(parity, dtype, device, p):
    shape = (32, 8, 4)
    x = _positive(shape, dtype)
    xt = to_torch(x, dtype, device, requires_grad=True)
    torch.manual_seed(0)
    y = _torchvision_stochastic_depth_row(xt, p)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y.backward(to_torch(g, dtype, device))
    keep = (y != 0).detach().cpu().numpy()[:, 0, 0]
    assert 0 < keep.mean() < 1, "the replayed mask must keep some and drop some examples"

    def fn(a):
        return jaxreg.drop_path_with_mask(a, jnp.asarray(keep), p)

    ours, ours_grad = _vjp(fn, x, g, dtype)
    parity.check("output", ours, y.detach(), EXACT)
    parity.check("grad wrt input", ours_grad, xt.grad, EXACT)


def case_drop_path_p02(parity, dtype, device):
    _drop_path(parity, dtype, device, 0.2)


def case_drop_path_p05(parity, dtype, device):
    _drop_path(parity, dtype, device, 0.5)


def _gaussian(parity, dtype, device, kind, value):
    shape = (64, 32)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    key = jax.random.key(5)
    # The noise jaxreg draws from `key` (its documented contract), handed to torch.
    # Drawn in float32 whatever the run's dtype, then cast: a float64 run draws the float32 noise.
    eps = to_torch(
        jax.random.normal(key, shape, jnp.float32).astype(jnp.dtype(dtype)), dtype, device
    )
    xt = to_torch(x, dtype, device, requires_grad=True)
    if kind == "dropout":
        y = xt * (1 + math.sqrt(value / (1 - value)) * eps)  # Keras GaussianDropout
        fn = jaxreg.gaussian_dropout
    else:
        y = xt + value * eps  # Keras GaussianNoise
        fn = jaxreg.gaussian_noise
    y.backward(to_torch(g, dtype, device))
    ours, ours_grad = _vjp(lambda a: fn(a, value, key=key), x, g, dtype)
    parity.check("output", ours, y.detach(), EXACT)
    parity.check("grad wrt input", ours_grad, xt.grad, EXACT)


def case_gaussian_dropout_rate03(parity, dtype, device):
    _gaussian(parity, dtype, device, "dropout", 0.3)


def case_gaussian_noise_std02(parity, dtype, device):
    _gaussian(parity, dtype, device, "noise", 0.2)


def case_drop_connect_linear(parity, dtype, device):
    p = 0.4
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((16, 12), (7, 12), (7,)))
    xt, wt, bt = (to_torch(a, dtype, device, requires_grad=True) for a in (x, w, b))
    torch.manual_seed(0)
    w_dropped = F.dropout(wt, p, training=True)
    y = F.linear(xt, w_dropped, bt)
    y.sum().backward()
    keep = (w_dropped != 0).detach().cpu().numpy()
    assert 0 < keep.mean() < 1

    def forward(xj, kernel, bias):
        # DropConnectDense's forward with torch's weight mask (transposed to Flax's kernel).
        masked = jaxreg.dropout_with_mask(kernel, jnp.asarray(keep.T), p)
        return xj @ masked + bias, masked

    args = (to_jax(x, dtype), to_jax(w.T, dtype), to_jax(b, dtype))
    (ours, masked) = forward(*args)
    grads = jax.grad(lambda *a: forward(*a)[0].sum(), argnums=(0, 1, 2))(*args)
    tol = base_tol(dtype, device)
    parity.check("masked weight", masked.T, w_dropped.detach(), EXACT)
    parity.check("output", ours, y.detach(), tol)
    parity.check("grad wrt input", grads[0], xt.grad, tol)
    parity.check("grad wrt weight", grads[1].T, wt.grad, tol)
    parity.check("grad wrt bias", grads[2], bt.grad, tol)


def _label_smoothing(parity, dtype, device, eps):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((32, 10))).astype(dtype)
    labels = rng.integers(0, 10, 32)
    lt = to_torch(logits, dtype, device, requires_grad=True)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=eps)(
        lt, torch.from_numpy(labels).to(lt.device)
    )
    loss.backward()

    def ours_loss(z):
        targets = optax.smooth_labels(jax.nn.one_hot(labels, 10, dtype=z.dtype), eps)
        return optax.softmax_cross_entropy(z, targets).mean()

    value, grad = jax.value_and_grad(ours_loss)(to_jax(logits, dtype))
    tol = base_tol(dtype, device)
    parity.check("loss", value, loss.detach(), tol)
    parity.check("grad wrt logits", grad, lt.grad, tol)


def case_label_smoothing_01(parity, dtype, device):
    _label_smoothing(parity, dtype, device, 0.1)


def case_label_smoothing_03(parity, dtype, device):
    _label_smoothing(parity, dtype, device, 0.3)


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_noise(case, dtype, device, parity):
    CASES[case](parity, dtype, device)

"""Gradients through every seed model: jaxreg.models vs jaxreg.torch_ref.models, dropout ON.

Each case builds the torch twin (torch's init, or the seed's recipe), converts its state_dict with
``jaxreg.convert.torch_to_flax``, and runs one forward and backward pass of the seed's loss on
both sides. Where the model has dropout it is in training mode: the keep-masks are drawn by the
Flax forward pass with an explicit key, captured with ``jaxreg.lab.matched.capture_dropout_masks``
and replayed in the torch forward (``jaxreg.torch_ref.replay``: ``F.dropout``, ``nn.Dropout`` and
d2l's ``dropout_layer`` take them in call order), so the torch side scales each replayed mask by
its OWN ``1 / (1 - p)``: a rate attached to the wrong layer shows in the gradients. A case whose
masks keep everything (or nothing) would compare nothing of dropout and fails.

Compared: the loss, the output(s), EVERY parameter gradient and the input gradient, with the
suite's ``base_tol`` (float32 1e-5, float64 1e-10, relative to the largest torch value).

Cases and what each one exercises:

* ``seed000_model``: sigmoid + binary cross-entropy (torch clamps each log at -100, mirrored), two
  dropout sites of rate 0.5;
* ``seed000_vgg16``: conv, ReLU and 2x2 max-pool backward through the 13 convs, the adaptive
  average pool and the classifier (deterministic: seed 000 only uses VGG16 for its penalties),
  input (2, 3, 32, 32), cross-entropy; torch runs the cached skeleton of ``_parity.torch_vgg16``
  with the case's tensors (``torch.func.functional_call``) and the case names that reference;
* ``seed001_activity_mlp``: CE + 0.5 * L1(layer1_out) + 0.01 * L2 norm(layer2_out) (seed 001's
  activity penalties, through the activations);
* ``seed001_two_layer_net``: ``log_softmax`` + NLL, dropout 0.5;
* ``seed002_net_overfitting`` / ``seed002_net_dropped``: MSE; the dropped net's two dropouts
  before the ReLUs;
* ``seed003_scratch_net`` / ``seed003_concise_net``: CE through dropout 0.2 then 0.5 (d2l's
  ``dropout_layer`` / ``nn.Dropout``), the rates passed at call time as the engine passes them
  (``rates=(r1, r2)``);
* ``seed004_weight_decay_mlp``: CE + seed 004's ``l2_penalty(W1) + l2_penalty(W2)`` (a mean),
  jaxreg's ``l2_penalty(params, mask=weights_only, reduction="mean")``; the biases are drawn
  nonzero so a penalty that also reaches them changes their gradients.
"""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from _parity import base_tol, to_jax, to_torch, torch_dtype, torch_vgg16, vgg16_state

import jaxreg
from jaxreg import masks
from jaxreg import models as M
from jaxreg.convert import flax_to_torch, torch_to_flax
from jaxreg.lab.matched import capture_dropout_masks
from jaxreg.torch_ref import models as T
from jaxreg.torch_ref import penalties as P
from jaxreg.torch_ref.replay import MaskReplay, replaying

FAMILY = "grad"
LAMBDA1, LAMBDA2 = 0.5, 0.01  # seed 001's activity-penalty strengths


@dataclass(frozen=True)
class Case:
    flax: Any
    torch: Any
    shape: tuple[int, ...]
    loss: str
    dropout: bool = False
    sampler: str = "uniform"
    rates: tuple[float, float] | None = None  # DropoutMLP's call-time rates, as the engine passes


CASES = {
    "seed000_model": Case(M.Seed000Net(), T.Seed000Net, (16, 8), "bce", True, "normal"),
    "seed000_vgg16": Case(M.VGG16(), None, (2, 3, 32, 32), "ce", False, "normal"),
    "seed001_activity_mlp": Case(M.ActivityMLP(), T.ActivityMLP, (4, 128), "activity"),
    "seed001_two_layer_net": Case(M.TwoLayerNet(), T.TwoLayerNet, (8, 1, 28, 28), "nll", True),
    "seed002_net_overfitting": Case(M.RegressionNet(), T.RegressionNet, (20, 1), "mse"),
    "seed002_net_dropped": Case(
        M.RegressionNet(dropout_rate=0.5),
        lambda: T.RegressionNet(dropout_rate=0.5),
        (20, 1),
        "mse",
        True,
    ),
    "seed003_scratch_net": Case(
        M.DropoutMLP(), T.DropoutMLP, (8, 784), "ce", True, rates=(0.2, 0.5)
    ),
    "seed003_concise_net": Case(
        M.DropoutMLP(style="concise", weight_init="normal"),
        lambda: T.DropoutMLP(style="concise", weight_init="normal"),
        (8, 784),
        "ce",
        True,
        rates=(0.2, 0.5),
    ),
    "seed004_weight_decay_mlp": Case(
        M.WeightDecayMLP(weight_std=0.1),
        lambda: T.WeightDecayMLP(weight_std=0.1),
        (8, 784),
        "ce+l2_mean",
    ),
}


def _data(case: Case, dtype: str):
    rng = np.random.default_rng(0)
    n = case.shape[0]
    if case.loss == "mse":
        x = np.linspace(-1, 1, n).reshape(case.shape)
        y = x + 0.3 * rng.standard_normal(x.shape)  # seed 002's y = x + 0.3 N(0, 1)
        return x.astype(dtype), y.astype(dtype)
    x = rng.standard_normal(case.shape) if case.sampler == "normal" else rng.random(case.shape)
    if case.loss == "bce":
        y = rng.integers(0, 2, (n, 1)).astype(dtype)
    elif case.loss == "activity":
        y = np.ones(n, np.int64)  # seed 001's targets: all 1
    else:
        y = rng.integers(0, 1000 if case.torch is None else 10, n).astype(np.int64)
    return x.astype(dtype), y


def _jax_loss(kind: str, out, y):
    if kind == "bce":
        # torch's binary_cross_entropy clamps each log at -100.
        log_p, log_q = jnp.maximum(jnp.log(out), -100), jnp.maximum(jnp.log1p(-out), -100)
        return -jnp.mean(y * log_p + (1 - y) * log_q)
    if kind == "mse":
        return jnp.mean((out - y) ** 2)
    if kind == "nll":
        return -jnp.mean(jnp.take_along_axis(out, y[:, None], axis=1))
    if kind == "activity":
        out, h1, h2 = out
        ce = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
        return ce + LAMBDA1 * jaxreg.l1_penalty(h1) + LAMBDA2 * jaxreg.l2_norm_penalty(h2)
    return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()


def _torch_loss(kind: str, out, y, net):
    if kind == "bce":
        return F.binary_cross_entropy(out, y)
    if kind == "mse":
        return F.mse_loss(out, y)
    if kind == "nll":
        return F.nll_loss(out, y)
    if kind == "activity":
        out, h1, h2 = out
        return (F.cross_entropy(out, y) + LAMBDA1 * P.seed001_l1_penalty(h1)
                + LAMBDA2 * P.seed001_l2_penalty(h2))  # fmt: skip
    loss = F.cross_entropy(out, y)
    if kind == "ce+l2_mean":
        loss = loss + P.seed004_l2_penalty(net.W1) + P.seed004_l2_penalty(net.W2)
    return loss


def _jax_objective(case: Case, key):
    kwargs = {"deterministic": False, "rngs": {"dropout": key}} if case.dropout else {}
    if case.rates is not None:
        kwargs["rates"] = tuple(jnp.asarray(r) for r in case.rates)

    def objective(params, x, y):
        out = case.flax.apply({"params": params}, x, **kwargs)
        loss = _jax_loss(case.loss, out, y)
        if case.loss == "ce+l2_mean":
            mask = masks.weights_only(params)
            loss = loss + jaxreg.l2_penalty(params, mask=mask, reduction="mean")
        return loss, out

    return objective, kwargs


def _outputs(out) -> dict[str, Any]:
    if isinstance(out, tuple):
        return dict(zip(("out", "layer1_out", "layer2_out"), out, strict=True))
    return {"output": out}


def _check_all(parity, tol, ours, theirs) -> None:
    """``ours``/``theirs``: (loss, outputs dict, param grads in torch names, input grad)."""
    parity.check("loss", ours[0], theirs[0], tol)
    for name in theirs[1]:
        parity.check(name, ours[1][name], theirs[1][name], tol)
    parity.check_tree("grad/", ours[2], theirs[2], tol)
    parity.check("grad/input", ours[3], theirs[3], tol)


def _small_model_case(name: str, case: Case, parity, dtype: str, device: str) -> None:
    x, y = _data(case, dtype)
    torch.manual_seed(0)
    net = case.torch().to(torch_dtype(dtype))
    if case.loss == "ce+l2_mean":
        with torch.no_grad():  # nonzero biases: a penalty reaching them must show
            net.b1.normal_(0, 0.1)
            net.b2.normal_(0, 0.1)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    xj, yj = to_jax(x, dtype), jnp.asarray(y)
    template = jax.eval_shape(case.flax.init, jax.random.key(0), xj)
    params = jax.tree.map(lambda a: to_jax(a, dtype), torch_to_flax(state, template)["params"])
    key = jax.random.key(7)
    objective, kwargs = _jax_objective(case, key)
    (loss, out), (g_params, g_x) = jax.jit(
        jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)
    )(params, xj, yj)

    replay = MaskReplay()
    if case.dropout:
        drawn = capture_dropout_masks(case.flax.apply, {"params": params}, xj, **kwargs)
        drawn = [np.asarray(m) for m in drawn]
        for i, m in enumerate(drawn):
            assert 0 < m.mean() < 1, f"{name}: dropout site {i} kept {m.mean():.0%} of its units"
        replay.set_step(drawn)
        net.train()
    else:
        net.eval()
    xt = to_torch(x, dtype, device, requires_grad=True)
    yt = torch.from_numpy(y)
    with replaying(replay):
        t_out = net(xt)
    replay.finish_step()
    if case.dropout:
        assert replay.calls == len(drawn), f"{name}: torch made {replay.calls} dropout calls"
    t_loss = _torch_loss(case.loss, t_out, yt, net)
    t_loss.backward()
    theirs = (
        t_loss.detach(),
        {k: v.detach() for k, v in _outputs(t_out).items()},
        {k: p.grad for k, p in net.named_parameters()},
        xt.grad,
    )
    ours = (loss, _outputs(out), flax_to_torch(g_params, template=state), g_x)
    _check_all(parity, base_tol(dtype, device), ours, theirs)


def _vgg16_case(parity, dtype: str, device: str) -> None:
    case = CASES["seed000_vgg16"]
    x, y = _data(case, dtype)
    parity.uses(f"VGG16: {torch_vgg16().reference}")
    state = vgg16_state(dtype)
    # JAX first, its gradients kept only in torch layout: in float64 each copy of the 138M
    # parameters is 1.1 GB, and at most five exist at once.
    xj = to_jax(x.transpose(0, 2, 3, 1), dtype)  # NCHW -> NHWC
    template = jax.eval_shape(case.flax.init, jax.random.key(0), xj)
    params = jax.tree.map(lambda a: to_jax(a, dtype), torch_to_flax(state, template)["params"])
    objective, _ = _jax_objective(case, None)
    (loss, out), (g_params, g_x) = jax.jit(
        jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)
    )(params, xj, jnp.asarray(y))
    del params
    g_params = flax_to_torch(g_params, template=state)
    ours = (loss, {"output": out}, g_params, jnp.transpose(g_x, (0, 3, 1, 2)))

    state = {k: v.requires_grad_(True) for k, v in state.items()}
    xt = to_torch(x, dtype, device, requires_grad=True)
    t_out = torch.func.functional_call(torch_vgg16(), state, (xt,))
    t_loss = F.cross_entropy(t_out, torch.from_numpy(y))
    t_grads = torch.autograd.grad(t_loss, [*state.values(), xt])
    theirs = (
        t_loss.detach(),
        {"output": t_out.detach()},
        dict(zip(state, t_grads[:-1], strict=True)),
        t_grads[-1],
    )
    del state, t_grads
    _check_all(parity, base_tol(dtype, device), ours, theirs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_grads(case, dtype, device, parity):
    if device != "cpu":
        pytest.skip("the gradient cases compare CPU runs (the GPU report covers forward/dropout)")
    if case == "seed000_vgg16":
        _vgg16_case(parity, dtype, device)
    else:
        _small_model_case(case, CASES[case], parity, dtype, device)

"""Penalty values and gradients: jaxreg.penalties vs the seeds' torch formulas, verbatim.

The torch side is jaxreg.torch_ref.penalties (seed 000's ``Regularization``, seed 001's
``l1_penalty``/``l2_penalty`` on activations, seed 002's manual L1, seed 004's ``mean / 2``)
differentiated by autograd; the JAX side is jaxreg's ``l1_penalty``, ``l2_penalty``,
``l2_norm_penalty`` and ``activity_penalty`` differentiated by ``jax.grad``. Gradients are compared
in torch's layout and names (through jaxreg.convert). The ``zeros_*`` cases put exact zeros where
the subgradient convention matters: ``|x|`` at 0 (torch: 0) and a norm of an all-zero tensor
(``torch.norm``: 0; seed 001's verbatim ``sqrt(sum(x**2))``: NaN, recorded as a note).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from _parity import (
    Tol,
    base_tol,
    flax_grads_as_torch,
    to_jax,
    to_torch,
    torch_device,
    torch_dtype,
    torch_grads,
    torch_vgg16,
    tree_to_jax,
    vgg16_state,
)

import jaxreg
from jaxreg import models as M
from jaxreg.convert import torch_to_flax
from jaxreg.lab.data import regression_data
from jaxreg.torch_ref import models as T
from jaxreg.torch_ref import penalties as P

FAMILY = "penalty"

TORCH_F32_NORM = Tol(
    "torch-f32-norm",
    5e-3,
    "torch's float32 torch.norm of VGG16's 102.8M-element classifier.0.weight accumulates in "
    "float32 and is itself 2.7e-3 away from the float64 value; jaxreg's float32 value is checked "
    "against float64-accumulated torch at the f32 tolerance in the same case",
)

LAMBDA1, LAMBDA2 = 0.5, 0.01  # seed 001


def _model_pair(flax_model, factory, x, dtype, device, seed=0):
    torch.manual_seed(seed)
    net = factory().to(torch_dtype(dtype)).to(torch_device(device)).eval()
    xj = to_jax(x, dtype)
    template = jax.eval_shape(flax_model.init, jax.random.key(0), xj)
    params = tree_to_jax(torch_to_flax(net.state_dict(), template=template)["params"], dtype)
    return net, params, xj


def _compare_model_loss(parity, net, params, torch_loss, jax_loss, tol):
    """Loss value and parameter gradients of a model-level loss on both sides."""
    net.zero_grad()
    value = torch_loss(net)
    value.backward()
    ours_value, ours_grads = jax.jit(jax.value_and_grad(jax_loss))(params)
    parity.check("value", ours_value, value.detach(), tol)
    # A parameter outside the loss graph keeps grad None in torch; its gradient is zero.
    theirs = {
        k: torch.zeros_like(p) if g is None else g
        for (k, p), g in zip(net.named_parameters(), torch_grads(net).values(), strict=True)
    }
    parity.check_tree("grad/", flax_grads_as_torch(ours_grads), theirs, tol)


def case_seed000_vgg16_regularization(parity, dtype, device):
    state = vgg16_state(dtype)
    parity.uses(f"VGG16: {torch_vgg16().reference}")
    with torch.no_grad():
        l1, l2 = P.seed000_regularization(v.to(torch_device(device)) for v in state.values())
        l2_f64 = sum(torch.norm(v.double(), 2) for v in state.values())
    # Sums over all leaves do not depend on layout: the torch-named tensors are the pytree.
    params = {k: v.numpy() for k, v in state.items()}
    ours_l1, ours_l2 = jax.jit(lambda p: (jaxreg.l1_penalty(p), jaxreg.l2_norm_penalty(p)))(params)
    tol = base_tol(dtype, device)
    parity.check("L1 = sum |p|", ours_l1, l1, tol)
    parity.check(
        "L2 = sum of per-tensor norms", ours_l2, l2, TORCH_F32_NORM if dtype == "float32" else tol
    )
    parity.check("L2 vs float64-accumulated torch.norm", ours_l2, l2_f64, tol)


def _seed000_net(dtype, device):
    x = np.random.default_rng(0).standard_normal((4, 8))
    return _model_pair(M.Seed000Net(), T.Seed000Net, x, dtype, device)


def case_seed000_model_l1(parity, dtype, device):
    net, params, _ = _seed000_net(dtype, device)
    _compare_model_loss(
        parity, net, params, lambda n: P.seed000_regularization(n)[0], jaxreg.l1_penalty,
        base_tol(dtype, device),
    )  # fmt: skip


def case_seed000_model_l2_norms(parity, dtype, device):
    net, params, _ = _seed000_net(dtype, device)
    _compare_model_loss(
        parity, net, params, lambda n: P.seed000_regularization(n)[1], jaxreg.l2_norm_penalty,
        base_tol(dtype, device),
    )  # fmt: skip


def _activity(dtype, device, dead_layer2=False):
    x = np.random.default_rng(1).random((4, 128))
    net, params, xj = _model_pair(M.ActivityMLP(), T.ActivityMLP, x, dtype, device)
    if dead_layer2:
        # Every layer-2 unit dead: layer2_out is exactly zero, where the norm's gradient is 0/0.
        with torch.no_grad():
            net.linear2.bias.fill_(-1e3)
        dead = jnp.full_like(params["linear2"]["bias"], -1e3)
        params = {**params, "linear2": {**params["linear2"], "bias": dead}}
    xt = to_torch(x, dtype, device)
    targets = np.ones(4, np.int64)  # seed 001: torch.ones(batchsize).long()
    return net, params, xj, xt, targets


def case_seed001_l1_layer1_out(parity, dtype, device):
    net, params, xj, xt, _ = _activity(dtype, device)
    model = M.ActivityMLP()
    _compare_model_loss(
        parity, net, params,
        lambda n: LAMBDA1 * P.seed001_l1_penalty(n(xt)[1]),
        lambda p: LAMBDA1 * jaxreg.l1_penalty(model.apply({"params": p}, xj)[1]),
        base_tol(dtype, device),
    )  # fmt: skip


def case_seed001_l2_layer2_out(parity, dtype, device):
    net, params, xj, xt, _ = _activity(dtype, device)
    model = M.ActivityMLP()
    _compare_model_loss(
        parity, net, params,
        lambda n: LAMBDA2 * P.seed001_l2_penalty(n(xt)[2]),
        lambda p: LAMBDA2 * jaxreg.l2_norm_penalty(model.apply({"params": p}, xj)[2]),
        base_tol(dtype, device),
    )  # fmt: skip


def _seed001_torch_loss(xt, targets, l2_fn):
    def loss(n):
        outputs, layer1_out, layer2_out = n(xt)
        ce = F.cross_entropy(outputs, torch.from_numpy(targets).to(xt.device))
        return ce + LAMBDA1 * P.seed001_l1_penalty(layer1_out) + LAMBDA2 * l2_fn(layer2_out)

    return loss


def _seed001_jax_loss(xj, targets):
    model = M.ActivityMLP()

    def loss(p):
        (out, _, _), state = model.apply({"params": p}, xj, mutable=["intermediates"])
        ce = optax.softmax_cross_entropy_with_integer_labels(out, jnp.asarray(targets)).mean()
        l1 = jaxreg.activity_penalty(state, jaxreg.l1_penalty, names="layer1_out")
        l2 = jaxreg.activity_penalty(state, jaxreg.l2_norm_penalty, names="layer2_out")
        return ce + LAMBDA1 * l1 + LAMBDA2 * l2

    return loss


def case_seed001_total_loss(parity, dtype, device):
    net, params, xj, xt, targets = _activity(dtype, device)
    _compare_model_loss(
        parity, net, params, _seed001_torch_loss(xt, targets, P.seed001_l2_penalty),
        _seed001_jax_loss(xj, targets), base_tol(dtype, device),
    )  # fmt: skip


def case_zeros_seed001_dead_layer2(parity, dtype, device):
    net, params, xj, xt, targets = _activity(dtype, device, dead_layer2=True)
    layer2_out = net(xt)[2].detach().requires_grad_(True)
    (verbatim,) = torch.autograd.grad(P.seed001_l2_penalty(layer2_out), layer2_out)
    assert not layer2_out.any() and torch.isnan(verbatim).all()
    parity.note(
        "seed 001's verbatim sqrt(sum(x**2)) has a NaN gradient at layer2_out = 0 (ReLU's backward "
        "masks it out of the parameter gradients); reference: torch.norm, gradient 0"
    )
    (theirs,) = torch.autograd.grad(LAMBDA2 * torch.norm(layer2_out, 2), layer2_out)
    h2 = M.ActivityMLP().apply({"params": params}, xj)[2]
    ours = jax.grad(lambda h: LAMBDA2 * jaxreg.l2_norm_penalty(h))(h2)
    parity.check("grad wrt layer2_out (all zero)", ours, theirs, base_tol(dtype, device))
    _compare_model_loss(
        parity, net, params, _seed001_torch_loss(xt, targets, lambda v: torch.norm(v, 2)),
        _seed001_jax_loss(xj, targets), base_tol(dtype, device),
    )  # fmt: skip


def _regression(dtype, device):
    d = regression_data()
    net, params, xj = _model_pair(M.RegressionNet(), T.RegressionNet, d.x_train, dtype, device)
    return net, params, xj, to_torch(d.x_train, dtype, device), d.y_train


def case_seed002_manual_l1(parity, dtype, device):
    net, params, xj, xt, y = _regression(dtype, device)
    lam, model = 1e-3, M.RegressionNet()
    yt, yj = to_torch(y, dtype, device), to_jax(y, dtype)
    _compare_model_loss(
        parity, net, params,
        lambda n: F.mse_loss(n(xt), yt) + lam * P.seed002_l1_regularization(n),
        lambda p: jnp.mean((model.apply({"params": p}, xj) - yj) ** 2)
        + lam * jaxreg.l1_penalty(p),
        base_tol(dtype, device),
    )  # fmt: skip


def case_seed002_l2_loss_term(parity, dtype, device):
    net, params, xj, xt, y = _regression(dtype, device)
    lam, model = 1e-3, M.RegressionNet()
    yt, yj = to_torch(y, dtype, device), to_jax(y, dtype)
    _compare_model_loss(
        parity, net, params,
        lambda n: F.mse_loss(n(xt), yt) + lam / 2 * sum((p**2).sum() for p in n.parameters()),
        lambda p: jnp.mean((model.apply({"params": p}, xj) - yj) ** 2)
        + lam * jaxreg.l2_penalty(p),
        base_tol(dtype, device),
    )  # fmt: skip


def case_seed004_l2_penalty(parity, dtype, device):
    rng = np.random.default_rng(2)
    x, y = rng.random((16, 784)), rng.integers(0, 10, 16)
    net, params, xj = _model_pair(M.WeightDecayMLP(), T.WeightDecayMLP, x, dtype, device)
    xt, model = to_torch(x, dtype, device), M.WeightDecayMLP()
    mask = jaxreg.weights_only(params)
    assert mask == {"W1": True, "W2": True, "b1": False, "b2": False}
    _compare_model_loss(
        parity, net, params,
        lambda n: F.cross_entropy(n(xt), torch.from_numpy(y).to(xt.device)).sum()
        + P.seed004_l2_penalty(n.W1) + P.seed004_l2_penalty(n.W2),
        lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": p}, xj), jnp.asarray(y)).mean()
        + jaxreg.l2_penalty(p, mask=mask, reduction="mean"),
        base_tol(dtype, device),
    )  # fmt: skip


def _zero_tree():
    return {
        "a": np.array([[0.0, 0.0, 1.5], [-2.0, 0.0, 3.0]]),
        "b": np.zeros((3, 2)),
        "c": np.array([0.0]),
    }


def _tree_case(parity, dtype, device, torch_fn, jax_fn):
    tree = _zero_tree()
    leaves = {k: to_torch(v, dtype, device, requires_grad=True) for k, v in tree.items()}
    value = torch_fn(leaves[k] for k in sorted(leaves))
    value.backward()
    ours_value, ours_grads = jax.value_and_grad(jax_fn)(tree_to_jax(tree, dtype))
    parity.check("value", ours_value, value.detach(), base_tol(dtype, device))
    parity.check_tree(
        "grad/", {k: np.asarray(v) for k, v in ours_grads.items()},
        {k: t.grad for k, t in leaves.items()}, base_tol(dtype, device),
    )  # fmt: skip


def case_zeros_l1(parity, dtype, device):
    _tree_case(parity, dtype, device, lambda ps: P.seed000_regularization(ps)[0], jaxreg.l1_penalty)


def case_zeros_l2_norms(parity, dtype, device):
    _tree_case(
        parity, dtype, device, lambda ps: P.seed000_regularization(ps)[1], jaxreg.l2_norm_penalty
    )


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_penalty(case, dtype, device, parity):
    CASES[case](parity, dtype, device)

"""Constraint and proximal transforms: jaxreg.max_norm, group_lasso_prox, elastic_net_prox, and
group_lasso_penalty vs torch.

``max_norm`` is compared with ``torch.renorm`` (torch's own op; ``Linear.weight`` is ``(out, in)``
so units are rows, ``renorm(w, 2, 0, c)``; a Conv weight ``(out, in, h, w)`` likewise). torch has
no proximal operator: the torch side of the prox cases is the same formula written in torch ops
and applied after ``opt.step()`` under ``no_grad``, which is how a torch user writes proximal SGD.
The training cases run a linear regression (``nn.Linear(10, 6)`` and its Flax ``Dense`` twin from
the same weights) for 25 SGD-with-momentum steps on per-step batches, the transform on the weight
only (the bias is masked out, as torch applies it to ``weight`` alone), and compare the per-step
losses, the final parameters, and which units are exactly zero.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _parity import EXACT, base_tol, to_jax, to_torch, torch_device, torch_dtype

import jaxreg

FAMILY = "prox-constraint"

IN, OUT, BATCH, STEPS = 10, 6, 32, 25
LR, MOMENTUM = 0.05, 0.9


def _data(dtype):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS, BATCH, IN)).astype(dtype)
    # targets from a weight matrix whose units have very different norms, so that some units
    # hit the bound / are switched off and the others are not
    true = rng.standard_normal((IN, OUT)) * np.array([0.05, 0.1, 0.5, 1.0, 2.0, 3.0])
    ys = (xs @ true).astype(dtype)
    kernel = (rng.standard_normal((IN, OUT)) * 0.3).astype(dtype)
    bias = (rng.standard_normal(OUT) * 0.1).astype(dtype)
    return xs, ys, kernel, bias


def _torch_run(project, dtype, device):
    """torch: SGD step, then ``project(weight)`` under no_grad, as a torch user writes it."""
    xs, ys, kernel, bias = _data(dtype)
    net = torch.nn.Linear(IN, OUT).to(torch_dtype(dtype)).to(torch_device(device))
    with torch.no_grad():
        net.weight.copy_(to_torch(kernel.T, dtype, device))
        net.bias.copy_(to_torch(bias, dtype, device))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    for x, y in zip(xs, ys, strict=True):
        loss = torch.mean((net(to_torch(x, dtype, device)) - to_torch(y, dtype, device)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            net.weight.copy_(project(net.weight))
        losses.append(loss.item())
    return np.array(losses), net.weight.detach().T, net.bias.detach()


def _jax_run(transform, dtype):
    xs, ys, kernel, bias = _data(dtype)
    params = {"kernel": to_jax(kernel, dtype), "bias": to_jax(bias, dtype)}
    tx = optax.chain(optax.sgd(LR, momentum=MOMENTUM), transform)

    def loss_fn(p, x, y):
        return jnp.mean((x @ p["kernel"] + p["bias"] - y) ** 2)

    def step(carry, batch):
        p, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, *batch)
        updates, state = tx.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    run = jax.jit(lambda p, b: jax.lax.scan(step, (p, tx.init(p)), b))
    (final, _), losses = run(params, (to_jax(xs, dtype), to_jax(ys, dtype)))
    return losses, final["kernel"], final["bias"]


def _compare_training(parity, dtype, device, torch_project, transform, expect_zero_units):
    theirs = _torch_run(torch_project, dtype, device)
    ours = _jax_run(transform, dtype)
    tol = base_tol(dtype, device, STEPS)
    parity.check("loss per step", ours[0], theirs[0], tol)
    parity.check("kernel (in, out) = weight.T", ours[1], theirs[1], tol)
    parity.check("bias (not constrained)", ours[2], theirs[2], tol)
    zero_units = [np.all(np.asarray(k) == 0, axis=0).astype(float) for k in (ours[1], theirs[1])]
    if expect_zero_units:
        assert zero_units[1].any() and not zero_units[1].all(), "the case must switch units off"
    parity.check("units that are exactly zero", zero_units[0], torch.tensor(zero_units[1]), EXACT)


MASK = {"kernel": True, "bias": False}
MAX_NORM, GROUP, L1, L2 = 1.0, 0.5, 0.05, 0.5


def case_max_norm_sgd_momentum(parity, dtype, device):
    theirs = _torch_run(lambda w: torch.renorm(w, 2, 0, MAX_NORM), dtype, device)
    unconstrained = _torch_run(lambda w: w, dtype, device)
    norms = torch.linalg.vector_norm(unconstrained[1], dim=0)
    assert (norms > MAX_NORM).any() and (norms < MAX_NORM).any(), "the bound must bind for some"
    ours = _jax_run(jaxreg.max_norm(MAX_NORM, mask=MASK), dtype)
    tol = base_tol(dtype, device, STEPS)
    parity.check("loss per step", ours[0], theirs[0], tol)
    parity.check("kernel (in, out) = weight.T", ours[1], theirs[1], tol)
    parity.check("bias (not constrained)", ours[2], theirs[2], tol)


def case_max_norm_conv_kernel(parity, dtype, device):
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 3, 2, 8)) * np.linspace(0.05, 0.6, 8)  # Flax (h, w, in, out)
    norms = np.sqrt((kernel**2).sum(axis=(0, 1, 2)))
    assert (norms > 1.0).any() and (norms < 1.0).any()
    zeros = jnp.zeros(kernel.shape, jnp.dtype(dtype))
    tx = jaxreg.max_norm(1.0, axis=(0, 1, 2))
    ours = optax.apply_updates(
        to_jax(kernel, dtype), tx.update(zeros, tx.init(zeros), to_jax(kernel, dtype))[0]
    )
    weight = to_torch(kernel.transpose(3, 2, 0, 1), dtype, device)  # torch (out, in, h, w)
    theirs = torch.renorm(weight, 2, 0, 1.0).permute(2, 3, 1, 0)
    parity.check("kernel (h, w, in, out)", ours, theirs, base_tol(dtype, device))


def _torch_group_lasso(w):
    # block soft-thresholding of each row (unit) of Linear.weight; t / 0 = inf clamps to 0
    t = LR * GROUP
    return w * torch.clamp(1 - t / torch.linalg.vector_norm(w, dim=1, keepdim=True), min=0)


def case_group_lasso_prox_sgd_momentum(parity, dtype, device):
    _compare_training(
        parity, dtype, device, _torch_group_lasso,
        jaxreg.group_lasso_prox(GROUP, LR, mask=MASK), expect_zero_units=True,
    )  # fmt: skip


def _torch_elastic_net(w):
    return torch.sign(w) * torch.clamp(w.abs() - LR * L1, min=0) / (1 + LR * L2)


def case_elastic_net_prox_sgd_momentum(parity, dtype, device):
    theirs = _torch_run(_torch_elastic_net, dtype, device)
    ours = _jax_run(jaxreg.elastic_net_prox(L1, L2, LR, mask=MASK), dtype)
    tol = base_tol(dtype, device, STEPS)
    parity.check("loss per step", ours[0], theirs[0], tol)
    parity.check("kernel (in, out) = weight.T", ours[1], theirs[1], tol)
    parity.check("bias (not thresholded)", ours[2], theirs[2], tol)
    zeros = [np.asarray(k) == 0 for k in (ours[1], theirs[1].cpu().numpy())]
    assert zeros[1].any() and not zeros[1].all(), "the case must produce exact zeros"
    parity.check("weights that are exactly zero", zeros[0].astype(float),
                 torch.tensor(zeros[1].astype(float)), EXACT)  # fmt: skip


def case_group_lasso_penalty_value_and_grad(parity, dtype, device):
    rng = np.random.default_rng(2)
    kernel = rng.standard_normal((IN, OUT))
    kernel[:, 2] = 0.0  # a switched-off unit: the gradient there is 0 on both sides
    weight = to_torch(kernel.T, dtype, device, requires_grad=True)
    value = torch.linalg.vector_norm(weight, dim=1).sum()
    value.backward()
    ours_value, ours_grad = jax.value_and_grad(jaxreg.group_lasso_penalty)(to_jax(kernel, dtype))
    tol = base_tol(dtype, device)
    parity.check("value", ours_value, value.detach(), tol)
    parity.check("grad (in, out) = weight.grad.T", ours_grad, weight.grad.T, tol)


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_prox_constraint(case, dtype, device, parity):
    CASES[case](parity, dtype, device)

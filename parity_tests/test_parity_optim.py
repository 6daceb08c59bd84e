"""Optimizer updates: jaxreg.torch_sgd / torch_adam / torch_adamw vs torch.optim, step for step.

A small seed-style MLP (``DropoutMLP`` in eval mode, 20-16-12-5) starts from the same weights on
both sides and takes 1 and 25 full-batch steps of cross-entropy on per-step batches; the
per-step losses and the final parameters are compared. Every torch.optim configuration the seeds
use or a user of them would try is covered: SGD momentum / dampening / nesterov / weight_decay,
param groups (seed 004: decay on weights only = ``mask``), learning-rate schedules (StepLR =
an optax schedule), a traced learning rate, Adam with coupled weight decay, and AdamW; and every
other keyword of torch 2.13 that changes the math: ``maximize`` (SGD, Adam, AdamW), ``amsgrad``
(Adam, AdamW) and Adam's ``decoupled_weight_decay``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from _parity import base_tol, flax_grads_as_torch, to_jax, to_torch, torch_device, torch_dtype

import jaxreg
from jaxreg import models as M
from jaxreg.convert import torch_to_flax
from jaxreg.optim import torch_adam, torch_adamw, torch_sgd
from jaxreg.torch_ref import models as T

FAMILY = "optimizer"

SIZES = {"num_inputs": 20, "num_hiddens1": 16, "num_hiddens2": 12, "num_outputs": 5}
BATCH = 32

# name -> (torch.optim class name, shared kwargs, weight decay of the weights-only group or None,
#          StepLR (step_size, gamma) or None, traced lr)
CONFIGS = {
    "sgd": ("SGD", {"lr": 0.1}, None, None, False),
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}, None, None, False),
    "sgd_dampening": ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}, None, None, False),
    "sgd_nesterov": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, None, None, False),
    "sgd_weight_decay": ("SGD", {"lr": 0.1, "weight_decay": 0.01}, None, None, False),
    "sgd_nesterov_weight_decay": (
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3},
        None,
        None,
        False,
    ),
    "sgd_param_groups_seed004": ("SGD", {"lr": 0.1}, 0.01, None, False),
    "sgd_momentum_param_groups": ("SGD", {"lr": 0.05, "momentum": 0.9}, 0.05, None, False),
    "sgd_momentum_steplr": ("SGD", {"lr": 0.1, "momentum": 0.9}, None, (5, 0.5), False),
    "sgd_traced_lr": ("SGD", {"lr": 0.1, "momentum": 0.5}, None, None, True),
    "adam": ("Adam", {"lr": 1e-2}, None, None, False),
    "adam_weight_decay": ("Adam", {"lr": 1e-2, "weight_decay": 0.01}, None, None, False),
    "adam_betas_eps": ("Adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6}, None, None, False),
    "adam_param_groups": ("Adam", {"lr": 1e-2}, 0.05, None, False),
    "adam_steplr": ("Adam", {"lr": 1e-2}, None, (10, 0.1), False),
    "adamw": ("AdamW", {"lr": 1e-2}, None, None, False),
    "adamw_weight_decay": ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}, None, None, False),
    "adamw_param_groups": ("AdamW", {"lr": 1e-2}, 0.1, None, False),
    # torch 2.13's remaining math-changing keywords
    "sgd_maximize_weight_decay": (
        "SGD", {"lr": 0.02, "momentum": 0.9, "weight_decay": 1e-2, "maximize": True},
        None, None, False,
    ),
    "sgd_nesterov_maximize_param_groups": (
        "SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "maximize": True},
        0.05, None, False,
    ),
    "adam_amsgrad": ("Adam", {"lr": 1e-2, "betas": (0.9, 0.9), "amsgrad": True}, None, None, False),
    "adam_amsgrad_maximize_weight_decay": (
        "Adam", {"lr": 1e-2, "weight_decay": 0.01, "amsgrad": True, "maximize": True},
        None, None, False,
    ),
    "adam_decoupled_weight_decay_param_groups": (
        "Adam", {"lr": 1e-2, "decoupled_weight_decay": True}, 0.1, None, False,
    ),
    "adamw_amsgrad_param_groups": (
        "AdamW", {"lr": 1e-2, "betas": (0.9, 0.9), "amsgrad": True}, 0.1, None, False,
    ),
    "adamw_maximize_steplr": ("AdamW", {"lr": 1e-2, "maximize": True}, None, (10, 0.1), False),
    "adam_amsgrad_traced_lr": ("Adam", {"lr": 1e-2, "amsgrad": True}, None, None, True),
}  # fmt: skip
STEPS = (1, 25)
CASES = [f"{name}-{steps}step" for name in CONFIGS for steps in STEPS]
CASES.append("seed002_coupled_wd_vs_loss_term-25step")


def _batches(steps, dtype):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((steps, BATCH, SIZES["num_inputs"])).astype(dtype)
    ys = rng.integers(0, SIZES["num_outputs"], (steps, BATCH))
    return xs, ys


def _torch_optimizer(kind, kwargs, groups_wd, net):
    cls = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[kind]
    if groups_wd is None:
        return cls(net.parameters(), **kwargs)
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if not n.endswith("weight")]
    groups = [{"params": weights, "weight_decay": groups_wd}, {"params": biases}]
    groups[1]["weight_decay"] = 0.0  # AdamW's default 1e-2 would otherwise decay the biases
    return cls(groups, **kwargs)


def _jax_optimizer(kind, kwargs, groups_wd, params, schedule, lr):
    fn = {"SGD": torch_sgd, "Adam": torch_adam, "AdamW": torch_adamw}[kind]
    kwargs = dict(kwargs)
    if groups_wd is not None:
        kwargs.update(weight_decay=groups_wd, mask=jaxreg.weights_only(params))
    if schedule is not None:
        lr0, (size, gamma) = kwargs["lr"], schedule
        kwargs["lr"] = lambda count: lr0 * gamma ** (count // size)
    elif lr is not None:
        kwargs["lr"] = lr
    return fn(**kwargs)


def _run_torch(net, opt, xs, ys, dtype, device, scheduler=None):
    losses = []
    for x, y in zip(xs, ys, strict=True):
        loss = F.cross_entropy(
            net(to_torch(x, dtype, device)), torch.from_numpy(y).to(torch_device(device))
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return np.array(losses), {k: v.detach() for k, v in net.state_dict().items()}


def _run_jax(params, make_tx, xs, ys, dtype, extra_loss=None, lr=None):
    model = M.DropoutMLP(**SIZES)

    def objective(p, x, y):
        logits = model.apply({"params": p}, x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        # As in torch, the reported loss is the data loss; extra terms only enter the gradient.
        return (loss if extra_loss is None else loss + extra_loss(p)), loss

    @jax.jit
    def train(params, lr):
        tx = make_tx(lr)

        def step(carry, batch):
            p, state = carry
            (_, loss), g = jax.value_and_grad(objective, has_aux=True)(p, *batch)
            updates, state = tx.update(g, state, p)
            return (optax.apply_updates(p, updates), state), loss

        (p, _), losses = jax.lax.scan(step, (params, tx.init(params)), batches)
        return p, losses

    batches = (to_jax(xs, dtype), jnp.asarray(ys))
    return train(params, lr)


@pytest.mark.parametrize("case", CASES)
def test_optimizer(case, dtype, device, parity):
    name, steps = case.rsplit("-", 1)
    steps = int(steps.removesuffix("step"))
    xs, ys = _batches(steps, dtype)
    torch.manual_seed(0)
    net = T.DropoutMLP(**SIZES).to(torch_dtype(dtype)).to(torch_device(device)).eval()
    params = jax.tree.map(lambda a: to_jax(a, dtype), torch_to_flax(net.state_dict()))
    if name == "seed002_coupled_wd_vs_loss_term":
        # Seed 002: "L2 can only be done in the optimizer". torch's SGD(weight_decay=wd) and an
        # explicit wd/2 * sum(w**2) loss term (jaxreg.l2_penalty) give the same gradient wd * w.
        opt = torch.optim.SGD(net.parameters(), lr=0.01, weight_decay=1e-3)
        theirs_losses, theirs_state = _run_torch(net, opt, xs, ys, dtype, device)
        ours, ours_losses = _run_jax(
            params, lambda lr: torch_sgd(0.01), xs, ys, dtype,
            extra_loss=lambda p: 1e-3 * jaxreg.l2_penalty(p),
        )  # fmt: skip
    else:
        kind, kwargs, groups_wd, schedule, traced = CONFIGS[name]
        opt = _torch_optimizer(kind, kwargs, groups_wd, net)
        scheduler = None if schedule is None else torch.optim.lr_scheduler.StepLR(opt, *schedule)
        theirs_losses, theirs_state = _run_torch(net, opt, xs, ys, dtype, device, scheduler)
        lr = jnp.asarray(kwargs["lr"], dtype) if traced else None
        ours, ours_losses = _run_jax(
            params,
            lambda lr_: _jax_optimizer(kind, kwargs, groups_wd, params, schedule, lr_),
            xs, ys, dtype, lr=lr,
        )  # fmt: skip
    tol = base_tol(dtype, device, steps)
    parity.check("loss per step", ours_losses, theirs_losses, tol)
    parity.check_tree("param/", flax_grads_as_torch(ours), theirs_state, tol)

"""Flax NNX: seed 003's dropout MLP (``jaxreg.nnx.DropoutMLP``) against its torch twin.

The NNX model (784-256-256-10, dropout 0.2 / 0.5) starts from the torch twin's weights
(``jaxreg.torch_ref.models.DropoutMLP``, scratch style, converted with ``torch_to_flax``). Where
dropout is on, the NNX model draws its own masks from its ``nnx.Rngs`` streams; they are read off
a clone of the model before each step (the clone's layers, called on ones, draw the same keys)
and replayed in torch's forward pass (``jaxreg.torch_ref.replay``, d2l's ``dropout_layer``).

* ``seed003_eval_forward``: logits in evaluation mode (``model.eval()`` vs ``net.eval()``);
* ``seed003_train_forward_grads``: logits, loss and every parameter gradient in training;
* ``seed003_sgd_weight_decay_weights_only``: 5 SGD steps (lr 0.5, the seed's) with weight decay
  0.01 on the weights only, ``nnx.Optimizer(model, torch_sgd(mask=weights_only))`` vs
  ``torch.optim.SGD`` with param groups (seed 004's pattern): losses per step, final parameters;
* ``seed003_sgd_l2_penalty_weights_only``: the same steps with no decay and
  ``0.01 * l2_penalty(nnx.state(model, nnx.Param), mask=weights_only)`` added to the loss vs
  torch's ``0.01 * sum(w.pow(2).sum() / 2)`` over the weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from _parity import base_tol, flax_grads_as_torch, to_torch, torch_device, torch_dtype, torch_grads
from flax import nnx

import jaxreg
from jaxreg.convert import torch_to_flax
from jaxreg.nnx import DropoutMLP
from jaxreg.torch_ref import models as T
from jaxreg.torch_ref.replay import MaskReplay, replaying

FAMILY = "nnx"
CASES = [
    "seed003_eval_forward",
    "seed003_train_forward_grads",
    "seed003_sgd_weight_decay_weights_only",
    "seed003_sgd_l2_penalty_weights_only",
]
BATCH, STEPS, LR, STRENGTH = 64, 5, 0.5, 0.01
WEIGHTS = ("lin1.weight", "lin2.weight", "lin3.weight")


def _data(step: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(100 + step)
    return rng.random((BATCH, 784)).astype(dtype), rng.integers(0, 10, BATCH)


def _twins(dtype: str, device: str) -> tuple[DropoutMLP, torch.nn.Module]:
    torch.manual_seed(0)
    net = T.DropoutMLP().to(torch_dtype(dtype)).to(torch_device(device))
    model = DropoutMLP(param_dtype=jnp.dtype(dtype), rngs=nnx.Rngs(params=0, dropout=1))
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    nnx.update(
        model, jax.tree.map(lambda a: jnp.asarray(a, jnp.dtype(dtype)), torch_to_flax(state))
    )
    return model, net


def _masks(model: DropoutMLP, dtype: str) -> list[np.ndarray]:
    """The keep-masks the model's next training forward pass will draw, in call order."""
    clone = nnx.clone(model)
    masks = []
    for layer, width in ((clone.drop1, 256), (clone.drop2, 256)):
        keep = np.array(layer(jnp.ones((BATCH, width), jnp.dtype(dtype))) != 0)
        assert 0 < keep.mean() < 1, "a replayed mask must keep some units and drop some"
        masks.append(keep)
    return masks


def _torch_loss(net, x, y, dtype, device, masks, penalty):
    replay = MaskReplay()
    replay.set_step(masks)
    with replaying(replay):
        logits = net(to_torch(x, dtype, device))
    replay.finish_step()
    loss = F.cross_entropy(logits, torch.from_numpy(y).to(logits.device))
    if penalty:
        params = dict(net.named_parameters())
        loss = loss + STRENGTH * sum(params[w].pow(2).sum() / 2 for w in WEIGHTS)
    return logits, loss


def _jax_loss(model, x, y, penalty):
    logits = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    if penalty:
        params = nnx.state(model, nnx.Param)
        loss = loss + STRENGTH * jaxreg.l2_penalty(params, mask=jaxreg.weights_only)
    return loss, logits


def _params_as_torch(model) -> dict:
    return flax_grads_as_torch(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def _eval_forward(parity, dtype, device):
    model, net = _twins(dtype, device)
    x, _ = _data(0, dtype)
    model.eval()
    net.eval()
    ours = model(jnp.asarray(x))
    parity.check(
        "logits (eval)", ours, net(to_torch(x, dtype, device)).detach(), base_tol(dtype, device)
    )


def _train_forward_grads(parity, dtype, device):
    model, net = _twins(dtype, device)
    x, y = _data(0, dtype)
    masks = _masks(model, dtype)
    logits_t, loss_t = _torch_loss(net, x, y, dtype, device, masks, penalty=False)
    loss_t.backward()
    (loss, logits), grads = nnx.value_and_grad(_jax_loss, has_aux=True)(
        model, jnp.asarray(x), jnp.asarray(y), False
    )
    tol = base_tol(dtype, device)
    parity.check("logits (train, replayed masks)", logits, logits_t.detach(), tol)
    parity.check("loss", loss, loss_t.detach(), tol)
    parity.check_tree("grad/", flax_grads_as_torch(nnx.to_pure_dict(grads)), torch_grads(net), tol)


def _sgd(parity, dtype, device, penalty):
    model, net = _twins(dtype, device)
    decay = 0.0 if penalty else STRENGTH
    params = dict(net.named_parameters())
    groups = [
        {"params": [params[w] for w in WEIGHTS], "weight_decay": decay},
        {"params": [p for k, p in params.items() if k not in WEIGHTS]},
    ]
    opt = torch.optim.SGD(groups, lr=LR)
    tx = jaxreg.torch_sgd(LR, weight_decay=decay, mask=jaxreg.weights_only)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        (loss, _), grads = nnx.value_and_grad(_jax_loss, has_aux=True)(model, x, y, penalty)
        optimizer.update(model, grads)
        return loss

    ours, theirs = [], []
    for i in range(STEPS):
        x, y = _data(i, dtype)
        masks = _masks(model, dtype)
        _, loss_t = _torch_loss(net, x, y, dtype, device, masks, penalty)
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        theirs.append(loss_t.item())
        ours.append(float(step(model, optimizer, jnp.asarray(x), jnp.asarray(y))))
    tol = base_tol(dtype, device, steps=STEPS)
    parity.check(f"loss per step ({STEPS} steps)", np.array(ours), np.array(theirs), tol)
    final = {k: v.detach() for k, v in net.state_dict().items()}
    parity.check_tree("final/", _params_as_torch(model), final, tol)


@pytest.mark.parametrize("case", CASES)
def test_nnx(case, dtype, device, parity):
    if case == "seed003_eval_forward":
        _eval_forward(parity, dtype, device)
    elif case == "seed003_train_forward_grads":
        _train_forward_grads(parity, dtype, device)
    else:
        _sgd(parity, dtype, device, penalty=case.endswith("l2_penalty_weights_only"))

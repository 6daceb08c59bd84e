"""Forward outputs of every seed model: jaxreg.models vs jaxreg.torch_ref.models, eval mode.

The torch twin is built (torch's default init, or the seed's own init recipe), its state_dict is
converted with jaxreg.convert.torch_to_flax (checked against the Flax model's own parameter
template), and both evaluate the same input. Dropout is off (torch ``.eval()``, Flax
``deterministic=True``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _parity import (
    base_tol,
    to_jax,
    to_torch,
    torch_device,
    torch_dtype,
    torch_vgg16,
    vgg16_state,
)

from jaxreg import models as M
from jaxreg.convert import torch_to_flax
from jaxreg.torch_ref import models as T

FAMILY = "forward"

# case -> (Flax model, torch twin factory, input shape, input sampler)
CASES = {
    "seed000_model": (M.Seed000Net(), T.Seed000Net, (16, 8), "normal"),
    "seed000_vgg16": (M.VGG16(), None, (2, 3, 32, 32), "normal"),
    # VGG16's adaptive average pool on feature maps that 7 does not divide (overlapping windows).
    "seed000_vgg16_avgpool_3x5": (None, None, (2, 8, 3, 5), "normal"),
    "seed000_vgg16_avgpool_10x13": (None, None, (2, 8, 10, 13), "normal"),
    "seed001_mlp": (M.ActivityMLP(), T.ActivityMLP, (4, 128), "uniform"),
    "seed001_two_layer_net": (M.TwoLayerNet(), T.TwoLayerNet, (8, 1, 28, 28), "uniform"),
    "seed002_net_overfitting": (M.RegressionNet(), T.RegressionNet, (20, 1), "linspace"),
    "seed002_net_dropped": (
        M.RegressionNet(dropout_rate=0.5),
        lambda: T.RegressionNet(dropout_rate=0.5),
        (20, 1),
        "linspace",
    ),
    "seed003_scratch_net": (M.DropoutMLP(), T.DropoutMLP, (8, 1, 28, 28), "uniform"),
    "seed003_concise_net": (
        M.DropoutMLP(style="concise", weight_init="normal"),
        lambda: T.DropoutMLP(style="concise", weight_init="normal"),
        (8, 1, 28, 28),
        "uniform",
    ),
    "seed004_weight_decay_mlp": (M.WeightDecayMLP(), T.WeightDecayMLP, (8, 784), "uniform"),
}


def _input(shape, sampler, dtype):
    rng = np.random.default_rng(0)
    if sampler == "normal":
        return rng.standard_normal(shape).astype(dtype)
    if sampler == "linspace":
        return np.linspace(-1, 1, shape[0]).reshape(shape).astype(dtype)
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward(case, dtype, device, parity):
    flax_model, factory, shape, sampler = CASES[case]
    x = _input(shape, sampler, dtype)
    if flax_model is None:
        with torch.no_grad():
            theirs = torch.nn.AdaptiveAvgPool2d((7, 7))(to_torch(x, dtype, device))
        ours = M.adaptive_avg_pool2d(to_jax(x.transpose(0, 2, 3, 1), dtype), (7, 7))
        parity.check("output", jnp.transpose(ours, (0, 3, 1, 2)), theirs, base_tol(dtype, device))
        return
    if case == "seed000_vgg16":
        # functional_call runs the cached float32 skeleton with the case's tensors (float64 and/or
        # on the GPU); the 138M parameters exist at most three times at once.
        state = {k: v.to(torch_device(device)) for k, v in vgg16_state(dtype).items()}
        with torch.no_grad():
            theirs = torch.func.functional_call(torch_vgg16(), state, (to_torch(x, dtype, device),))
        parity.uses(f"VGG16: {torch_vgg16().reference}")
        xj = to_jax(x.transpose(0, 2, 3, 1), dtype)  # NCHW -> NHWC
    else:
        torch.manual_seed(0)
        model = factory().to(torch_dtype(dtype)).to(torch_device(device)).eval()
        state = model.state_dict()
        with torch.no_grad():
            theirs = model(to_torch(x, dtype, device))
        xj = to_jax(x, dtype)
    template = jax.eval_shape(flax_model.init, jax.random.key(0), xj)
    params = torch_to_flax(state, template=template)
    del state
    ours = jax.jit(flax_model.apply)(params, xj)
    if isinstance(ours, tuple):
        for name, a, b in zip(("out", "layer1_out", "layer2_out"), ours, theirs, strict=True):
            parity.check(name, a, b, base_tol(dtype, device))
    else:
        parity.check("output", ours, theirs, base_tol(dtype, device))

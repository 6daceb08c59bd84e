"""Three small architectures and their torch twins for the compare tests, each with mutations.

* :class:`CNN`: conv, spatial dropout, max-pool, conv, max-pool, torch-order flatten, dense,
  dropout, dense (channels-last in Flax); mutations: the NHWC flatten, an unshared random op,
  a torch conv padding its borders otherwise.
* :class:`ResNet`: dense residual blocks with drop path on the branch; mutation: a wrong rate.
* :class:`NNXNet`: an NNX MLP with dropout; mutation: the torch twin without its dropout.

Inputs are tiny (8x8 images, 12 features) so that every check runs in a second or two.
"""

from __future__ import annotations

import flax.linen as nn
import torch
import torch.nn.functional as F
from flax import nnx

import jaxreg.nn as jnn
import jaxreg.nnx as jnnx
from jaxreg.lab.compare import TorchFlatten

# ---- CNN with spatial dropout ----------------------------------------------------------------


class CNN(nn.Module):
    rate2d: float = 0.25
    rate: float = 0.5
    flatten: str = "torch"  # "nhwc" is the mutation: Flax's own flatten order

    @nn.compact
    def __call__(self, x, *, deterministic: bool):
        x = nn.relu(nn.Conv(4, (3, 3), padding=1, name="conv1")(x))
        x = jnn.Dropout2d(self.rate2d)(x, deterministic=deterministic)
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(6, (3, 3), padding=1, name="conv2")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = TorchFlatten()(x) if self.flatten == "torch" else x.reshape(len(x), -1)
        x = nn.relu(nn.Dense(16, name="fc1")(x))
        x = jnn.Dropout(self.rate)(x, deterministic=deterministic)
        return nn.Dense(10, name="fc2")(x)


class TorchCNN(torch.nn.Module):
    def __init__(self, rate2d=0.25, rate=0.5, random_op=None, padding_mode="zeros"):
        super().__init__()
        self.rate2d, self.rate, self.random_op = rate2d, rate, random_op
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        # padding_mode="reflect" is a mutation: same shapes, other values at the borders.
        self.conv2 = torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode=padding_mode)
        self.fc1 = torch.nn.Linear(24, 16)
        self.fc2 = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        if self.random_op == "bernoulli" and self.training:
            # The mutation: a hand-written channel mask the comparison cannot share.
            keep = torch.bernoulli(torch.full(x.shape[:2], 1 - self.rate2d, dtype=x.dtype))
            x = x * keep[:, :, None, None] / (1 - self.rate2d)
        else:
            x = F.dropout2d(x, self.rate2d, self.training)
        x = F.max_pool2d(x, 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, self.rate, self.training))


def nchw(x):
    return x.transpose(0, 3, 1, 2)


# ---- residual net with drop path -------------------------------------------------------------


class Block(nn.Module):
    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        h = nn.relu(nn.Dense(16, name="fc1")(x))
        h = nn.Dense(16, name="fc2")(h)
        return x + jnn.DropPath(self.rate)(h, deterministic=deterministic)


class ResNet(nn.Module):
    rate: float = 0.3

    @nn.compact
    def __call__(self, x, deterministic: bool):
        x = nn.relu(nn.Dense(16, name="inp")(x))
        for i in range(2):
            x = Block(self.rate, name=f"blocks_{i}")(x, deterministic)
        return nn.Dense(3, name="out")(x)


class TorchBlock(torch.nn.Module):
    def __init__(self, rate):
        super().__init__()
        self.rate = rate
        self.fc1 = torch.nn.Linear(16, 16)
        self.fc2 = torch.nn.Linear(16, 16)

    def forward(self, x):
        from jaxreg.torch_ref.noise import drop_path

        h = self.fc2(torch.relu(self.fc1(x)))
        return x + drop_path(h, self.rate, self.training)


class TorchResNet(torch.nn.Module):
    def __init__(self, rate=0.3):
        super().__init__()
        self.inp = torch.nn.Linear(12, 16)
        self.blocks = torch.nn.ModuleList([TorchBlock(rate) for _ in range(2)])
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.inp(x))
        for block in self.blocks:
            x = block(x)
        return self.out(x)


# ---- NNX MLP with dropout --------------------------------------------------------------------


class NNXNet(nnx.Module):
    def __init__(self, rate=0.4, *, rngs: nnx.Rngs):
        self.lin1 = nnx.Linear(12, 16, rngs=rngs)
        self.drop = jnnx.Dropout(rate, rngs=rngs)
        self.lin2 = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.lin2(self.drop(nnx.relu(self.lin1(x))))


class TorchNNXNet(torch.nn.Module):
    def __init__(self, rate=0.4, dropout=True):
        super().__init__()
        self.lin1 = torch.nn.Linear(12, 16)
        self.drop = torch.nn.Dropout(rate) if dropout else torch.nn.Identity()
        self.lin2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.lin2(self.drop(torch.relu(self.lin1(x))))


def images(n=6, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), np.float32), rng.integers(0, 10, n)


def features(n=6, classes=3, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12)).astype(np.float32), rng.integers(0, classes, n)


# ---- a tiny spec for matched training ----------------------------------------------------------


class MLP(nn.Module):
    rate: float = 0.3

    @nn.compact
    def __call__(self, x, *, deterministic: bool):
        x = nn.relu(nn.Dense(16, name="fc1")(x))
        x = jnn.Dropout(self.rate)(x, deterministic=deterministic)
        return nn.Dense(3, name="fc2")(x)


class TorchMLP(torch.nn.Module):
    def __init__(self, rate=0.3):
        super().__init__()
        self.rate = rate
        self.fc1 = torch.nn.Linear(12, 16)
        self.fc2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.dropout(torch.relu(self.fc1(x)), self.rate, self.training))


def tiny_data():
    x, y = features(72, seed=1)
    return {"x_train": x[:48], "y_train": y[:48], "x_test": x[48:], "y_test": y[48:]}


def tiny_spec(torch_model=TorchMLP, **changes):
    from jaxreg.lab.spec import Optimizer, Penalty, Spec, paths

    fields = dict(
        name="tiny",
        model=MLP(),
        torch_model=torch_model,
        optimizer=Optimizer("adamw", lr=1e-2, weight_decay=1e-2),
        penalties=(Penalty("l1", 1e-3, paths("^fc1/kernel$")),),
        data=tiny_data,
        seeds=(0, 1),
        epochs=1,
        batch_size=16,
    )
    fields.update(changes)
    return Spec(**fields)

"""A CNN of your own and its torch twin, compared: ``jaxreg compare docs/compare_example.py``."""

import flax.linen as nn
import torch
import torch.nn.functional as F

import jaxreg.nn as jnn
from jaxreg.lab.compare import TorchFlatten
from jaxreg.lab.spec import Data, Optimizer, Penalty, Spec, paths


class CNN(nn.Module):  # channels-last (NHWC), as Flax convolutions are
    @nn.compact
    def __call__(self, x, *, deterministic: bool):
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), padding=1, name="conv1")(x)), (2, 2), (2, 2))
        x = jnn.Dropout2d(0.1)(x, deterministic=deterministic)  # drops whole channels
        x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3), padding=1, name="conv2")(x)), (2, 2), (2, 2))
        x = TorchFlatten()(x)  # torch's NCHW order: fc1 takes the twin's weights as they are
        x = jnn.Dropout(0.3)(nn.relu(nn.Dense(64, name="fc1")(x)), deterministic=deterministic)
        return nn.Dense(10, name="fc2")(x)


class TorchCNN(torch.nn.Module):  # channels-first (NCHW)
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = torch.nn.Linear(16 * 7 * 7, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = F.dropout2d(F.max_pool2d(torch.relu(self.conv1(x)), 2), 0.1, self.training)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = F.dropout(torch.relu(self.fc1(x.flatten(1))), 0.3, self.training)
        return self.fc2(x)


def get_config():
    """jaxreg compare docs/compare_example.py"""
    return Spec(
        name="my-cnn",
        model=CNN(),
        torch_model=TorchCNN,
        # AdamW; its decay mask defaults to the weights only (kernels), so biases do not decay.
        optimizer=Optimizer("adamw", lr=1e-3, weight_decay=1e-2),
        penalties=(Penalty("l1", 1e-4, paths("^conv1/kernel$")),),  # L1 on one conv kernel
        data=Data(layout="nhwc", torch_layout="nchw", train_size=512, test_size=256),
        seeds=(0, 1, 2),
        epochs=1,
        batch_size=64,
    )

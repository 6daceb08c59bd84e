"""PyTorch twins of :mod:`jaxreg.models`: the seed models, with the same class names.

The layers and forward passes are the seeds' (000-004). The differences from the seed code are
only in how they are parametrized, each documented on its class: the seeds' always-on
``F.dropout`` is a flag (``always_dropout``), d2l's module-global dropout rates are attributes,
and the ``state_dict`` keys are fixed so that :func:`jaxreg.convert.torch_to_flax` maps them 1:1
onto the Flax parameter trees (``fc1.weight`` -> ``fc1/kernel``, ``0.weight`` ->
``layers_0/kernel``, ``features.0.weight`` -> ``features_0/kernel``). Seed 000's ``VGG16``
lives in :mod:`jaxreg.torch_ref.vgg` (torchvision's model or a plain-torch copy, and which one
was used: :func:`vgg16_reference`) and is re-exported here.

Used by the parity suite (``parity_tests/``) and by ``jaxreg.torch_ref.engine``
(``jaxreg run --framework torch``).

Example:
    >>> import torch
    >>> from jaxreg.convert import torch_to_flax
    >>> net = TwoLayerNet()
    >>> sorted(torch_to_flax(net.state_dict()))
    ['fc1', 'fc2']
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jaxreg.torch_ref.dropout import dropout_layer
from jaxreg.torch_ref.vgg import (
    VGG16,
    VGG16_CFG,
    VGG16Reference,
    torchvision_init_,
    vgg16_reference,
)

__all__ = [
    "VGG16",
    "VGG16_CFG",
    "VGG16Reference",
    "ActivityMLP",
    "DropoutMLP",
    "RegressionNet",
    "Seed000Net",
    "TwoLayerNet",
    "WeightDecayMLP",
    "torchvision_init_",
    "vgg16_reference",
]


class Seed000Net(nn.Module):
    """Seed 000's ``Model``: Linear(8,6) ReLU dropout Linear(6,4) ReLU dropout Linear(4,1) sigmoid.

    The seed writes ``F.dropout(x, p=0.5)``, whose default ``training=True`` keeps dropout on
    after ``model.eval()``. Here dropout follows ``self.training`` unless ``always_dropout=True``
    reproduces the seed exactly. Flax twin: ``jaxreg.models.Seed000Net``.

    Args:
        dropout_rate: drop probability of both dropout calls.
        always_dropout: reproduce the seed's always-on ``F.dropout``.

    Example:
        >>> Seed000Net().eval()(torch.ones(3, 8)).shape
        torch.Size([3, 1])
    """

    def __init__(self, dropout_rate: float = 0.5, always_dropout: bool = False):
        super().__init__()
        self.dropout_rate = dropout_rate
        self.always_dropout = always_dropout
        self.fc1 = torch.nn.Linear(8, 6)
        self.fc2 = torch.nn.Linear(6, 4)
        self.fc3 = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = self.training or self.always_dropout
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=self.dropout_rate, training=training)
        x = F.relu(self.fc2(x))
        x = F.dropout(x, p=self.dropout_rate, training=training)
        return torch.sigmoid(self.fc3(x))


class ActivityMLP(nn.Module):
    """Seed 001's ``MLP`` (verbatim): returns ``(out, layer1_out, layer2_out)``.

    Seed 001 penalizes the activations: ``lambda1 * l1_penalty(layer1_out) + lambda2 *
    l2_penalty(layer2_out)`` (see :mod:`jaxreg.torch_ref.penalties`). Flax twin:
    ``jaxreg.models.ActivityMLP``.

    Example:
        >>> [t.shape[1] for t in ActivityMLP()(torch.rand(4, 128))]
        [2, 32, 16]
    """

    def __init__(self):
        super().__init__()
        self.linear1 = torch.nn.Linear(128, 32)
        self.linear2 = torch.nn.Linear(32, 16)
        self.linear3 = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layer1_out = F.relu(self.linear1(x))
        layer2_out = F.relu(self.linear2(layer1_out))
        out = self.linear3(layer2_out)
        return out, layer1_out, layer2_out


class TwoLayerNet(nn.Module):
    """Seed 001's ``TwoLayerNet``: flatten, Linear ReLU dropout Linear, ``log_softmax``.

    As in seed 000, the seed's ``F.dropout`` stays on in evaluation; ``always_dropout=True``
    reproduces that, the default follows ``self.training``. Flax twin:
    ``jaxreg.models.TwoLayerNet``.

    Args:
        dim_in: flattened input size.
        dim_hid: hidden units.
        dim_out: classes.
        dropout_rate: drop probability.
        always_dropout: reproduce the seed's always-on ``F.dropout``.

    Example:
        >>> TwoLayerNet().eval()(torch.ones(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        dim_in: int = 784,
        dim_hid: int = 128,
        dim_out: int = 10,
        dropout_rate: float = 0.5,
        always_dropout: bool = False,
    ):
        super().__init__()
        self.dropout_rate = dropout_rate
        self.always_dropout = always_dropout
        self.fc1 = torch.nn.Linear(dim_in, dim_hid, bias=True)
        self.fc2 = torch.nn.Linear(dim_hid, dim_out, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.size(0), -1)
        x = self.fc1(x)
        x = F.relu(x)
        x = F.dropout(x, p=self.dropout_rate, training=self.training or self.always_dropout)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class RegressionNet(nn.Sequential):
    """Seed 002's ``net_overfitting`` (``dropout_rate=None``) and ``net_dropped`` (a rate).

    An ``nn.Sequential`` exactly as the seed builds it, so the keys are ``0.weight`` etc.:
    ``net_overfitting`` = Linear(1,h) ReLU Linear(h,h) ReLU Linear(h,1); ``net_dropped`` =
    Linear(1,h) Dropout ReLU Linear(h,h) Dropout ReLU Linear(h,1) (dropout before the ReLU).
    Flax twin: ``jaxreg.models.RegressionNet``.

    Args:
        hidden: hidden width (the seed's ``N_HIDDEN = 300``).
        dropout_rate: ``None`` or the drop probability of both dropout layers.

    Example:
        >>> [k for k in RegressionNet(dropout_rate=0.5).state_dict() if k.endswith("weight")]
        ['0.weight', '3.weight', '6.weight']
    """

    def __init__(self, hidden: int = 300, dropout_rate: float | None = None):
        if dropout_rate is None:
            layers = [
                torch.nn.Linear(1, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 1),
            ]
        else:
            layers = [
                torch.nn.Linear(1, hidden),
                torch.nn.Dropout(dropout_rate),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.Dropout(dropout_rate),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 1),
            ]
        super().__init__(*layers)
        self.hidden = hidden
        self.dropout_rate = dropout_rate


class DropoutMLP(nn.Module):
    """Seeds 003/004's dropout MLP, d2l's scratch ``Net`` or its concise ``nn.Sequential``.

    ``style="scratch"``: ``lin1 lin2 lin3`` and d2l's ``dropout_layer`` after each hidden ReLU,
    applied while ``self.training`` (d2l's ``is_training`` flag; seed 004 never cleared it, so
    its test accuracies had dropout on: call ``.train()`` to reproduce that). ``style="concise"``:
    children ``0..7`` = Flatten, Linear, ReLU, Dropout(dropout1), Linear, ReLU, Dropout(dropout2),
    Linear, the keys of d2l's ``nn.Sequential``. ``weight_init="normal"`` applies d2l's
    ``init_weights`` (``normal_(m.weight, std=0.01)``, biases left at torch's default). The rates
    are the module-global ``dropout1, dropout2`` of the seed, here attributes. Flax twin:
    ``jaxreg.models.DropoutMLP``.

    Args:
        num_inputs: flattened input size.
        num_hiddens1: first hidden width.
        num_hiddens2: second hidden width.
        num_outputs: classes.
        dropout1: drop probability after the first hidden layer.
        dropout2: drop probability after the second hidden layer.
        style: ``"scratch"`` or ``"concise"``.
        weight_init: ``"torch"`` or ``"normal"``.

    Example:
        >>> net = DropoutMLP(style="concise", weight_init="normal")
        >>> [k for k in net.state_dict() if k.endswith("weight")]
        ['1.weight', '4.weight', '7.weight']
    """

    def __init__(
        self,
        num_inputs: int = 784,
        num_hiddens1: int = 256,
        num_hiddens2: int = 256,
        num_outputs: int = 10,
        dropout1: float = 0.2,
        dropout2: float = 0.5,
        style: str = "scratch",
        weight_init: str = "torch",
    ):
        super().__init__()
        if style not in ("scratch", "concise"):
            raise ValueError(f"style={style!r}: allowed values are ('scratch', 'concise')")
        if weight_init not in ("torch", "normal"):
            raise ValueError(f"weight_init={weight_init!r}: allowed values are ('torch', 'normal')")
        self.num_inputs = num_inputs
        self.dropout1 = dropout1
        self.dropout2 = dropout2
        self.style = style
        if style == "scratch":
            self.lin1 = nn.Linear(num_inputs, num_hiddens1)
            self.lin2 = nn.Linear(num_hiddens1, num_hiddens2)
            self.lin3 = nn.Linear(num_hiddens2, num_outputs)
            self.relu = nn.ReLU()
        else:
            layers = [
                nn.Flatten(),
                nn.Linear(num_inputs, num_hiddens1),
                nn.ReLU(),
                nn.Dropout(dropout1),
                nn.Linear(num_hiddens1, num_hiddens2),
                nn.ReLU(),
                nn.Dropout(dropout2),
                nn.Linear(num_hiddens2, num_outputs),
            ]
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)
        if weight_init == "normal":

            def init_weights(m: nn.Module) -> None:
                if type(m) is nn.Linear:
                    nn.init.normal_(m.weight, std=0.01)

            self.apply(init_weights)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.style == "concise":
            # The concise net's Dropout modules read the rates at construction; keep them in
            # sync with the attributes so a sweep can set net.dropout1 on either style.
            self._modules["3"].p = self.dropout1
            self._modules["6"].p = self.dropout2
            for layer in self._modules.values():
                X = layer(X)
            return X
        H1 = self.relu(self.lin1(X.reshape((-1, self.num_inputs))))
        if self.training:
            H1 = dropout_layer(H1, self.dropout1)
        H2 = self.relu(self.lin2(H1))
        if self.training:
            H2 = dropout_layer(H2, self.dropout2)
        return self.lin3(H2)


class WeightDecayMLP(nn.Module):
    """Seed 004's from-scratch MLP on raw tensors: ``relu(x @ W1 + b1) @ W2 + b2``.

    The seed's ``init_params`` as a module: ``W1 = normal(0, std, (in, hidden))``, ``b1 = 0``,
    ``W2 = normal(0, std, (hidden, out))``, ``b2 = 0`` (drawn in that order from torch's global
    generator, as the seed does), registered as parameters ``W1 b1 W2 b2``. Flax twin:
    ``jaxreg.models.WeightDecayMLP`` (same names, same layout: no transpose).

    Args:
        num_inputs: flattened input size.
        num_hidden: hidden width.
        num_outputs: classes.
        weight_std: standard deviation of the weights (the seed uses 1).

    Example:
        >>> list(WeightDecayMLP().state_dict())
        ['W1', 'b1', 'W2', 'b2']
    """

    def __init__(
        self,
        num_inputs: int = 784,
        num_hidden: int = 256,
        num_outputs: int = 10,
        weight_std: float = 1.0,
    ):
        super().__init__()
        self.num_inputs = num_inputs
        self.W1 = nn.Parameter(torch.normal(0, weight_std, (num_inputs, num_hidden)))
        self.b1 = nn.Parameter(torch.zeros(num_hidden))
        self.W2 = nn.Parameter(torch.normal(0, weight_std, (num_hidden, num_outputs)))
        self.b2 = nn.Parameter(torch.zeros(num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, self.num_inputs)
        H = torch.relu(torch.mm(x, self.W1) + self.b1)
        return torch.mm(H, self.W2) + self.b2

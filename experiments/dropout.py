"""Dropout on Fashion-MNIST (seeds 003/004): the scratch and the concise MLP, rates 0.2 / 0.5.

784-256-256-10 with dropout 0.2 after the first hidden layer and 0.5 after the second, SGD lr 0.5,
batch 256, 10 epochs, cross-entropy. The scratch net uses torch's default init, the concise one
``normal(std=0.01)`` weights (d2l's ``init_weights``). Evaluation is deterministic (dropout off);
``--faithful`` evaluates with dropout active, as seed 004's ``evaluate_accuracy`` did.

The two dropout rates are the traced hyperparameters the model declares (``DropoutMLP``'s
attributes ``dropout1``, ``dropout2``); the torch twin is ``jaxreg.torch_ref.models.DropoutMLP``
with the same fields.
"""

import functools

from jaxreg.lab.spec import Optimizer, Spec, Variant
from jaxreg.models import DropoutMLP

SIZES = {"num_inputs": 784, "num_hiddens1": 256, "num_hiddens2": 256, "num_outputs": 10}
RATES = {"dropout1": 0.2, "dropout2": 0.5}


def torch_dropout_mlp(**kwargs):
    """The torch twin (torch is imported only when a torch side runs)."""
    from jaxreg.torch_ref.models import DropoutMLP as TorchDropoutMLP

    return TorchDropoutMLP(**kwargs)


def variant(name: str, style: str, weight_init: str, seed_figure: float) -> Variant:
    """One of the seed's two nets: d2l's scratch ``Net`` or its concise ``nn.Sequential``."""
    fields = {**SIZES, **RATES, "style": style, "weight_init": weight_init}
    return Variant(
        name,
        model=DropoutMLP(**fields),
        torch_model=functools.partial(torch_dropout_mlp, **fields),
        meta={"seed_figure": seed_figure, "style": style, "weight_init": weight_init},
    )


def get_config():
    """jaxreg run dropout --framework both"""
    return Spec(
        name="dropout",
        model=DropoutMLP(**SIZES, **RATES),
        torch_model=functools.partial(torch_dropout_mlp, **SIZES, **RATES),
        loss="cross_entropy",
        optimizer=Optimizer("sgd", lr=0.5),
        hparams=RATES,
        variants=(
            variant("scratch", "scratch", "torch", 0.841),
            variant("concise", "concise", "normal", 0.849),
        ),
        epochs=10,
        batch_size=256,
        plots=("train_loss", "train_acc", "test_acc"),
        meta={"seeds": "003/004"},
    )

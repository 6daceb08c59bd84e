"""Weight decay on Fashion-MNIST (seed 004): no penalty, l2_penalty in the loss, optimizer decay.

Seed 004 trains ``relu(x @ W1 + b1) @ W2 + b2`` (784-256-10, W ~ N(0, 1), b = 0) with SGD lr 0.1,
batch 256, 10 epochs, three times: without a penalty; with ``(w**2).mean() / 2`` of W1 and W2
added to the loss (lambda = 1); with ``SGD([{W1, W2, weight_decay: 0.01}, {b1, b2}])``.
jaxreg starts each variant from the SAME fresh initialization; ``--faithful`` trains one network
on through the three runs, as the seed did (so its 0.810 and 0.822 start from trained weights).

The three variants differ only in traced hyperparameters (``l2``, ``weight_decay``): one
compiled program serves them all. The penalty and the decay apply to W1 and W2 (seed 004's
param group); the torch side's param groups are derived from the same mask.
"""

import functools

from jaxreg.lab.spec import Optimizer, Penalty, Spec, Variant, names
from jaxreg.models import WeightDecayMLP

MODEL = {"num_inputs": 784, "num_hidden": 256, "num_outputs": 10, "weight_std": 1.0}
# The parameters the penalty and the decay apply to (seed 004's param group).
PENALIZED = names("W1", "W2")


def torch_weight_decay_mlp(**kwargs):
    """The torch twin (torch is imported only when a torch side runs)."""
    from jaxreg.torch_ref.models import WeightDecayMLP as TorchWeightDecayMLP

    return TorchWeightDecayMLP(**kwargs)


def get_config():
    """jaxreg run weight-decay --framework both"""
    return Spec(
        name="weight-decay",
        model=WeightDecayMLP(**MODEL),
        torch_model=functools.partial(torch_weight_decay_mlp, **MODEL),
        loss="cross_entropy",
        optimizer=Optimizer("sgd", lr=0.1, weight_decay=0.0, decay_mask=PENALIZED),
        penalties=(Penalty("l2_mean", 0.0, PENALIZED),),
        variants=(
            Variant("no-penalty", {"l2": 0.0, "weight_decay": 0.0}, meta={"seed_figure": 0.772}),
            Variant("l2-penalty", {"l2": 1.0, "weight_decay": 0.0}, meta={"seed_figure": 0.810}),
            Variant("weight-decay", {"l2": 0.0, "weight_decay": 0.01}, meta={"seed_figure": 0.822}),
        ),
        epochs=10,
        batch_size=256,
        plots=("train_objective", "test_acc", "weight_norm"),
        meta={"seeds": "004"},
    )

"""Activity regularization (seed 001): L1 on layer1_out and an L2 norm on layer2_out.

The 128-32-16-2 MLP returns ``(out, layer1_out, layer2_out)``; the loss is
``CE(out, 1) + 0.5 * sum|layer1_out| + 0.01 * ||layer2_out||_2`` on a fresh ``rand(4, 128)``
batch each step, SGD lr 1e-4, 1000 steps. jaxreg trains ONE model through the 1000 steps;
``--faithful`` re-creates the model and optimizer every step as the seed does (nothing is
learned). ``--epochs`` sets the number of steps.

As a spec: one pass (``epochs=1``) over the 1000 batches drawn up front, unshuffled, batch 4:
step ``i`` sees batch ``i``. The recipe draws the batches from the run's seed.
"""

from jaxreg.lab.spec import Activity, Optimizer, Spec, Variant
from jaxreg.models import ActivityMLP

SEED_FIGURE = "loss printed per step (no figure quoted)"


def torch_activity_mlp():
    """The torch twin (torch is imported only when a torch side runs)."""
    from jaxreg.torch_ref.models import ActivityMLP as TorchActivityMLP

    return TorchActivityMLP()


def get_config():
    """jaxreg run activity --framework both"""
    return Spec(
        name="activity",
        model=ActivityMLP(),
        torch_model=torch_activity_mlp,
        loss="cross_entropy",
        optimizer=Optimizer("sgd", lr=1e-4),
        # Index into the model's outputs: L1 on layer1_out, L2 norm on layer2_out.
        activity=(Activity("l1", 1, 0.5), Activity("l2_norm", 2, 0.01)),
        variants=(Variant("one model", meta={"seed_figure": SEED_FIGURE}),),
        epochs=1,
        batch_size=4,
        options={"shuffle": False},
        meta={"seeds": "001", "steps": 1000},
    )

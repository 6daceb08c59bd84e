"""Activity regularization (seed 001): L1 on layer1_out and an L2 norm on layer2_out.

The 128-32-16-2 MLP returns ``(out, layer1_out, layer2_out)``; the loss is
``CE(out, 1) + 0.5 * sum|layer1_out| + 0.01 * ||layer2_out||_2`` on a fresh ``rand(4, 128)``
batch each step, SGD lr 1e-4, 1000 steps. jaxreg trains ONE model through the 1000 steps;
``--faithful`` re-creates the model and optimizer every step as the seed does (nothing is
learned). ``--epochs`` sets the number of steps.
"""


def get_config():
    """jaxreg run activity --framework both"""
    return {
        "name": "activity",
        "seeds": "001",
        "model": {"name": "ActivityMLP"},
        "steps": 1000,
        "batch_size": 4,
        "lr": 1e-4,
        "lambda1": 0.5,
        "lambda2": 0.01,
        # (kind, index into the model's outputs): L1 on layer1_out, L2 norm on layer2_out.
        "activity": [["l1", 1], ["l2_norm", 2]],
        "seed_figure": "loss printed per step (no figure quoted)",
    }

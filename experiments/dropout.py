"""Dropout on Fashion-MNIST (seeds 003/004): the scratch and the concise MLP, rates 0.2 / 0.5.

784-256-256-10 with dropout 0.2 after the first hidden layer and 0.5 after the second, SGD lr 0.5,
batch 256, 10 epochs, cross-entropy. The scratch net uses torch's default init, the concise one
``normal(std=0.01)`` weights (d2l's ``init_weights``). Evaluation is deterministic (dropout off);
``--faithful`` evaluates with dropout active, as seed 004's ``evaluate_accuracy`` did.
"""


def get_config():
    """jaxreg run dropout --framework both"""
    return {
        "name": "dropout",
        "seeds": "003/004",
        "data": "fashion_mnist",
        "model": {
            "name": "DropoutMLP",
            "num_inputs": 784,
            "num_hiddens1": 256,
            "num_hiddens2": 256,
            "num_outputs": 10,
        },
        "epochs": 10,
        "batch_size": 256,
        "lr": 0.5,
        "rates": [0.2, 0.5],
        "variants": [
            {"name": "scratch", "style": "scratch", "weight_init": "torch", "seed_figure": 0.841},
            {"name": "concise", "style": "concise", "weight_init": "normal", "seed_figure": 0.849},
        ],
    }

"""Weight decay on Fashion-MNIST (seed 004): no penalty, l2_penalty in the loss, optimizer decay.

Seed 004 trains ``relu(x @ W1 + b1) @ W2 + b2`` (784-256-10, W ~ N(0, 1), b = 0) with SGD lr 0.1,
batch 256, 10 epochs, three times: without a penalty; with ``(w**2).mean() / 2`` of W1 and W2
added to the loss (lambda = 1); with ``SGD([{W1, W2, weight_decay: 0.01}, {b1, b2}])``.
jaxreg starts each variant from the SAME fresh initialization; ``--faithful`` trains one network
on through the three runs, as the seed did (so its 0.810 and 0.822 start from trained weights).
"""


def get_config():
    """jaxreg run weight-decay --framework both"""
    return {
        "name": "weight-decay",
        "seeds": "004",
        "data": "fashion_mnist",
        "model": {
            "name": "WeightDecayMLP",
            "num_inputs": 784,
            "num_hidden": 256,
            "num_outputs": 10,
            "weight_std": 1.0,
        },
        "epochs": 10,
        "batch_size": 256,
        "lr": 0.1,
        # The parameters the penalty and the decay apply to (seed 004's param group).
        "penalized": ["W1", "W2"],
        "variants": [
            {"name": "no-penalty", "l2_mean": 0.0, "weight_decay": 0.0, "seed_figure": 0.772},
            {"name": "l2-penalty", "l2_mean": 1.0, "weight_decay": 0.0, "seed_figure": 0.810},
            {"name": "weight-decay", "l2_mean": 0.0, "weight_decay": 0.01, "seed_figure": 0.822},
        ],
    }

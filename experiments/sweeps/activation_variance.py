"""Seed 004 dropout exercise 3: each hidden layer's activation variance over training.

The dropout MLP of ``experiments/dropout.py`` for 20 epochs, with and without dropout; the
variance is measured on a probe of 1000 test images in eval mode and in train mode.
"""


def get_config():
    """jaxreg sweep activation-variance"""
    return {
        "name": "activation-variance",
        "description": "seed 004 dropout exercise 3: variance of each hidden layer's activations "
        "over training, with and without dropout (probe: 1000 test images)",
        "base": "dropout",
        "variant": "scratch",
        "overrides": {"epochs": 20, "track_activation_variance": True},
        "points": [
            {"name": "no dropout", "dropout1": 0.0, "dropout2": 0.0},
            {"name": "dropout 0.2/0.5", "dropout1": 0.2, "dropout2": 0.5},
        ],
        "seeds": [0],
        "plots": [{"file": "activation_variance.png", "kind": "activation_variance"}],
        "analysis": "activation_variance",
    }

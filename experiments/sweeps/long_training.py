"""Seed 004 dropout exercise 2: train longer (50 epochs) with and without dropout.

The dropout MLP of ``experiments/dropout.py`` with 50 epochs instead of 10.
"""


def get_config():
    """jaxreg sweep long-training"""
    return {
        "name": "long-training",
        "description": "seed 004 dropout exercise 2: train longer (50 epochs) with and without "
        "dropout",
        "base": "dropout",
        "variant": "scratch",
        "overrides": {"epochs": 50},
        "points": [
            {"name": "no dropout", "dropout1": 0.0, "dropout2": 0.0},
            {"name": "dropout 0.2/0.5", "dropout1": 0.2, "dropout2": 0.5},
        ],
        "seeds": [0],
        "plots": [{"file": "train_acc_curves.png", "kind": "curves", "metric": "train_acc"}],
        "analysis": "generalization_gap",
    }

"""Seed 004 dropout exercise 5: dropout vs weight decay vs both; are the gains additive?

The dropout MLP of ``experiments/dropout.py``; weight decay 5e-4 on the weights only; 3 seeds.
"""


def get_config():
    """jaxreg sweep dropout-vs-decay"""
    wd = 5e-4
    return {
        "name": "dropout-vs-decay",
        "description": "seed 004 dropout exercise 5: dropout vs weight decay (5e-4, weights "
        "only) vs both: are the gains additive?",
        "base": "dropout",
        "variant": "scratch",
        "points": [
            {"name": "none", "dropout1": 0.0, "dropout2": 0.0, "weight_decay": 0.0},
            {"name": "dropout", "dropout1": 0.2, "dropout2": 0.5, "weight_decay": 0.0},
            {"name": "decay", "dropout1": 0.0, "dropout2": 0.0, "weight_decay": wd},
            {"name": "both", "dropout1": 0.2, "dropout2": 0.5, "weight_decay": wd},
        ],
        "seeds": [0, 1, 2],
        "analysis": "additivity",
    }

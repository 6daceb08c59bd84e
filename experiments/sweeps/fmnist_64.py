"""64 configurations: 8 weight-decay lambdas x 4 dropout rates (both layers) x 2 seeds.

The dropout MLP of ``experiments/dropout.py`` (seeds 003/004 recipe: SGD lr 0.5, batch 256,
10 epochs); lambdas log-spaced from 1e-5 to 1e-2, the same rate in both dropout layers. The
benchmarks (``make bench``) time this grid.
"""

import numpy as np


def get_config():
    """jaxreg sweep fmnist-64 --baseline --chunk-size 16"""
    lambdas = np.geomspace(1e-5, 1e-2, 8).tolist()
    rates = [0.0, 0.2, 0.4, 0.6]
    return {
        "name": "fmnist-64",
        "description": "64 configurations: 8 weight-decay lambdas x 4 dropout rates (both "
        "layers) x 2 seeds, dropout MLP (seeds 003/004 recipe: SGD lr 0.5, batch 256, 10 epochs)",
        "base": "dropout",
        "variant": "scratch",
        "points": [
            {"weight_decay": wd, "dropout1": p, "dropout2": p} for p in rates for wd in lambdas
        ],
        "seeds": [0, 1],
        "plots": [{"file": "accuracy_vs_lambda.png", "kind": "final_vs", "axis": "weight_decay"}],
        "analysis": "best_point",
    }

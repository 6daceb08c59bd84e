"""Seed 004 dropout exercise 1: swap the two dropout rates, and a 4x4 grid over both.

The dropout MLP of ``experiments/dropout.py`` (784-256-256-10, scratch, SGD lr 0.5, batch 256,
10 epochs) with ``dropout1`` and ``dropout2`` each in {0, 0.2, 0.5, 0.8}.
"""


def get_config():
    """jaxreg sweep dropout-swap"""
    rates = [0.0, 0.2, 0.5, 0.8]
    return {
        "name": "dropout-swap",
        "description": "seed 004 dropout exercise 1: the two dropout rates swapped, and a 4x4 "
        "grid over both",
        "base": "dropout",
        "variant": "scratch",
        "grid": {"dropout1": rates, "dropout2": rates},
        "seeds": [0],
        "plots": [
            {"file": "dropout_grid.png", "kind": "heatmap", "rows": "dropout1", "cols": "dropout2"},
            {"file": "accuracy_vs_dropout1.png", "kind": "final_vs", "axis": "dropout1"},
        ],
        "analysis": "dropout_swap",
    }

"""A grid of your own over the dropout MLP (``--model weight-decay-mlp`` for seed 004's).

Without ``--grid`` it runs the seeds' rates once; each ``--grid NAME=VALUES`` adds an axis, and
the points are their product.
"""


def get_config():
    """jaxreg sweep custom --grid dropout1=0,0.2,0.5 --grid weight_decay=log:1e-5:1e-2:4"""
    return {
        "name": "custom",
        "description": "a grid given with --grid over the dropout MLP (--model weight-decay-mlp "
        "for seed 004's)",
        "base": "dropout",
        "variant": "scratch",
        "points": [{"dropout1": 0.2, "dropout2": 0.5}],
        "seeds": [0],
    }

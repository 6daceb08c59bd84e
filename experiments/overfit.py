"""Over-fitting demo (seed 002): 20 noisy points, a 300-300 MLP with and without dropout.

``x = linspace(-1, 1, 20)``, ``y = x + 0.3 * N(0, 1)``, a test set drawn the same way; full-batch
MSE for 500 epochs; Adam lr 0.001 for net_overfitting and 0.01 for net_dropped (dropout 0.5
before each ReLU). Every 50 epochs both nets are evaluated in eval mode: fit curves and test
losses. The seed reports only plots, in which the dropout net's test loss is the lower one.
"""


def get_config():
    """jaxreg run overfit --framework both"""
    return {
        "name": "overfit",
        "seeds": "002",
        "data": {"n_samples": 20, "noise": 0.3, "seed": 1},
        "model": {"name": "RegressionNet", "hidden": 300},
        "epochs": 500,
        "eval_every": 50,
        "variants": [
            {
                "name": "overfitting",
                "dropout_rate": None,
                "lr": 0.001,
                "seed_figure": "higher test loss (plots only)",
            },
            {
                "name": "dropout",
                "dropout_rate": 0.5,
                "lr": 0.01,
                "seed_figure": "lower test loss (plots only)",
            },
        ],
    }

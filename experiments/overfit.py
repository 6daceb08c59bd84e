"""Over-fitting demo (seed 002): 20 noisy points, a 300-300 MLP with and without dropout.

``x = linspace(-1, 1, 20)``, ``y = x + 0.3 * N(0, 1)``, a test set drawn the same way; full-batch
MSE for 500 epochs; Adam lr 0.001 for net_overfitting and 0.01 for net_dropped (dropout 0.5
before each ReLU). Every 50 epochs both nets are evaluated in eval mode: fit curves and test
losses. The seed reports only plots, in which the dropout net's test loss is the lower one.
"""

import functools

from jaxreg.lab.spec import Optimizer, Spec, Variant
from jaxreg.models import RegressionNet

DATA = {"n_samples": 20, "noise": 0.3, "seed": 1}
HIDDEN = 300


def points(seed: int, n_samples: int, noise: float):
    """The seed's noisy points (``jaxreg.lab.data.regression_data``), train and test."""
    from jaxreg.lab.data import regression_data

    return regression_data(seed, n_samples=n_samples, noise=noise)


def torch_regression_net(**kwargs):
    """The torch twin (torch is imported only when a torch side runs)."""
    from jaxreg.torch_ref.models import RegressionNet as TorchRegressionNet

    return TorchRegressionNet(**kwargs)


def variant(name: str, dropout_rate, lr: float, seed_figure: str) -> Variant:
    """net_overfitting (no dropout) or net_dropped (dropout before each ReLU)."""
    fields = {"hidden": HIDDEN, "dropout_rate": dropout_rate}
    return Variant(
        name,
        {"lr": lr},
        model=RegressionNet(**fields),
        torch_model=functools.partial(torch_regression_net, **fields),
        meta={"seed_figure": seed_figure, "dropout_rate": dropout_rate},
    )


def get_config():
    """jaxreg run overfit --framework both"""
    return Spec(
        name="overfit",
        model=RegressionNet(hidden=HIDDEN),
        torch_model=functools.partial(torch_regression_net, hidden=HIDDEN),
        loss="mse",
        optimizer=Optimizer("adam", lr=0.001),
        data=functools.partial(points, **DATA),
        variants=(
            variant("overfitting", None, 0.001, "higher test loss (plots only)"),
            variant("dropout", 0.5, 0.01, "lower test loss (plots only)"),
        ),
        epochs=500,
        batch_size=None,
        eval_every=50,
        options={"shuffle": False},
        plots=("train_loss", "test_loss"),
        meta={"seeds": "002", "data": DATA},
    )

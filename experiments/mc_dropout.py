"""Monte-Carlo dropout vs weight scaling at test time (seed 001's TwoLayerNet).

Seed 001 describes two test-time options for a dropout net: average M stochastic passes, or drop
dropout and rescale (the approximation inverted dropout builds in). jaxreg trains the seed's
``TwoLayerNet`` (784-128-10, dropout 0.5, log_softmax) on Fashion-MNIST (SGD, batch 256) and
compares test accuracy and the mean predictive variance of ``jaxreg.mc_dropout_predict`` for
each M against the deterministic pass. ``--faithful`` trains the seed's model whose ``F.dropout``
never turns off, so its plain evaluation is one stochastic pass.
"""


def get_config():
    """jaxreg run mc-dropout --framework both"""
    return {
        "name": "mc-dropout",
        "seeds": "001",
        "data": "fashion_mnist",
        "model": {"name": "TwoLayerNet", "dim_in": 784, "dim_hid": 128, "dim_out": 10},
        "dropout_rate": 0.5,
        "epochs": 10,
        "batch_size": 256,
        "lr": 0.5,
        "mc_samples": [1, 10, 50],
        "seed_figure": "none quoted (method described only)",
    }

"""Monte-Carlo dropout vs weight scaling at test time (seed 001's TwoLayerNet).

Seed 001 describes two test-time options for a dropout net: average M stochastic passes, or drop
dropout and rescale (the approximation inverted dropout builds in). jaxreg trains the seed's
``TwoLayerNet`` (784-128-10, dropout 0.5, log_softmax) on Fashion-MNIST (SGD, batch 256) and
compares test accuracy and the mean predictive variance of ``jaxreg.mc_dropout_predict`` for
each M against the deterministic pass. ``--faithful`` trains the seed's model whose ``F.dropout``
never turns off, so its plain evaluation is one stochastic pass.
"""

import functools

from jaxreg.lab.spec import Optimizer, Spec, Variant
from jaxreg.models import TwoLayerNet

MODEL = {"dim_in": 784, "dim_hid": 128, "dim_out": 10, "dropout_rate": 0.5}
SEED_FIGURE = "none quoted (method described only)"


def torch_two_layer_net(**kwargs):
    """The torch twin (torch is imported only when a torch side runs)."""
    from jaxreg.torch_ref.models import TwoLayerNet as TorchTwoLayerNet

    return TorchTwoLayerNet(**kwargs)


def get_config():
    """jaxreg run mc-dropout --framework both"""
    return Spec(
        name="mc-dropout",
        model=TwoLayerNet(**MODEL),
        torch_model=functools.partial(torch_two_layer_net, **MODEL),
        # log_softmax outputs: the negative log-likelihood (torch: F.nll_loss).
        loss="nll",
        optimizer=Optimizer("sgd", lr=0.5),
        variants=(Variant("training", meta={"seed_figure": SEED_FIGURE}),),
        epochs=10,
        batch_size=256,
        plots=("train_loss", "test_acc"),
        meta={"seeds": "001", "mc_samples": (1, 10, 50)},
    )

"""Flax Linen versions of every seed model, named so that torch state_dicts convert 1:1.

Each class has a twin with the same name in :mod:`jaxreg.torch_ref.models`. Submodule names follow
the torch module paths (see :mod:`jaxreg.convert`): attribute names are kept, a numeric
``nn.Sequential`` index ``N`` becomes ``layers_N``, and dotted paths join with ``_``
(``features.0`` -> ``features_0``). Linear kernels are the torch weights transposed.

Every Linear/Conv starts from torch's default initialization (:mod:`jaxreg.init`) unless a model
documents another recipe (d2l's ``normal(0.01)``, seed 004's raw ``normal(0, 1)``, torchvision's
VGG init). Dropout draws from the ``"dropout"`` rng collection and is off when
``deterministic=True`` (the default), except where a model reproduces a seed's always-on
``F.dropout`` with ``always_dropout=True``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> model = TwoLayerNet()
    >>> params = model.init(jax.random.key(0), jnp.ones((2, 784)))
    >>> model.apply(params, jnp.ones((2, 784))).shape
    (2, 10)
"""

from jaxreg._src.models import (
    NOISE_TECHNIQUES,
    VGG16,
    VGG16_CFG,
    ActivityMLP,
    DropoutMLP,
    NoiseMLP,
    RegressionNet,
    Seed000Net,
    TwoLayerNet,
    WeightDecayMLP,
    adaptive_avg_pool2d,
)

__all__ = [
    "VGG16",
    "VGG16_CFG",
    "ActivityMLP",
    "DropoutMLP",
    "NOISE_TECHNIQUES",
    "NoiseMLP",
    "RegressionNet",
    "Seed000Net",
    "TwoLayerNet",
    "WeightDecayMLP",
    "adaptive_avg_pool2d",
]

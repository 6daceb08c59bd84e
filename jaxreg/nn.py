"""Flax Linen dropout layers on the functional core of :mod:`jaxreg.dropout`, and torch's flatten.

``TorchFlatten`` / ``flatten_nchw`` flatten a channels-last (NHWC) batch in torch's NCHW order,
so a Flax CNN and its torch twin share the first Dense / Linear weights (``torch.flatten(x, 1)``).
``max_pool2d`` is ``nn.MaxPool2d(k)`` for channels-last activations, with torch's gradient and an
elementwise backward pass (XLA's ``reduce_window`` gradient is slow on CPU).

The modules hold no state and no key: the key comes from the ``rng_collection`` ("dropout")
passed to ``apply``, and the mode from ``deterministic``, given either as a module attribute or
at call time (Flax's ``merge_param`` convention: exactly one of the two). There is no default
mode, so PyTorch's ``F.dropout`` trap (seeds 000, 001: ``training=True`` by default, dropout left
on after ``model.eval()``) cannot happen by omission.

The layers work anywhere in a model; seed 002's ``net_dropped`` puts dropout BEFORE the ReLU::

    x = nn.Dense(300)(x)
    x = jaxreg.nn.Dropout(0.5)(x, deterministic=not train)
    x = nn.relu(x)
"""

from jaxreg._src.layout import TorchFlatten, flatten_nchw
from jaxreg._src.nn import (
    AlphaDropout,
    DropConnectDense,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    DropPath,
    FeatureAlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout,
    VanillaDropout,
)
from jaxreg._src.pooling import max_pool2d

__all__ = [
    "AlphaDropout",
    "DropConnectDense",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout",
    "TorchFlatten",
    "VanillaDropout",
    "flatten_nchw",
    "max_pool2d",
]

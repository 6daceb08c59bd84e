"""PyTorch ``state_dict`` <-> Flax parameter trees, exact in both directions.

The naming rule (shared by :mod:`jaxreg.models` and :mod:`jaxreg.torch_ref.models`): a torch key
``<module path>.<name>`` becomes the Flax path ``<module>/<leaf>`` where

* the module path's dots become ``_`` (``features.0`` -> ``features_0``) and a path that starts
  with a number (a top-level ``nn.Sequential`` index ``N``) gets the prefix ``layers_``
  (``0`` -> ``layers_0``), Flax's name for the N-th layer of a Sequential;
* ``weight`` of a Linear (2-D) becomes ``kernel`` transposed (torch computes ``x @ W.T``, Flax
  ``x @ kernel``); ``weight`` of a Conv2d (4-D, OIHW) becomes ``kernel`` in HWIO; a 1-D
  ``weight`` (a norm layer's) becomes ``scale``; ``bias`` stays ``bias``;
* a parameter registered directly on the root module (seed 004's ``W1``, ``b1``, ...) keeps its
  name and layout: it is copied as is.

Values are copied to NumPy arrays with their dtype (JAX converts them on first use), so a
float64 ``state_dict`` gives float64 parameters and the round trip is bit-exact. Torch tensors are
duck-typed (``.detach().cpu().numpy()``): this module never imports torch.

Example:
    >>> import numpy as np
    >>> sd = {"fc1.weight": np.ones((6, 8), np.float32), "fc1.bias": np.zeros(6, np.float32)}
    >>> params = torch_to_flax(sd)
    >>> params["fc1"]["kernel"].shape
    (8, 6)
    >>> sorted(flax_to_torch(params))
    ['fc1.bias', 'fc1.weight']
"""

from jaxreg._src.convert import (
    flax_key,
    flax_to_torch,
    torch_key,
    torch_to_flax,
)

__all__ = [
    "flax_key",
    "flax_to_torch",
    "torch_key",
    "torch_to_flax",
]

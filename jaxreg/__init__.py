"""jaxreg: neural-network regularization in JAX, Flax and optax.

Every technique of the seed PyTorch tutorials, with explicit keys and traced
hyperparameters. ``import jaxreg`` never imports torch; the PyTorch side lives in
``jaxreg.torch_ref`` and is imported only on demand.
"""

__version__ = "0.1.0"

# --- penalties, masks, transforms, optimizers ---

# --- dropout ---
from jaxreg import nn, numpy_ref
from jaxreg.dropout import (
    dropout,
    dropout_mask,
    dropout_with_mask,
    mc_dropout_predict,
    vanilla_dropout,
)

# --- conversion and initialization ---

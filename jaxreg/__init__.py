"""jaxreg: neural-network regularization in JAX, Flax and optax.

Every technique of the seed PyTorch tutorials, with explicit keys and traced
hyperparameters. ``import jaxreg`` never imports torch; the PyTorch side lives in
``jaxreg.torch_ref`` and is imported only on demand.
"""

__version__ = "0.1.0"

# --- penalties, masks, transforms, optimizers ---
from jaxreg.masks import path_mask, path_to_str, resolve_mask, weights_only
from jaxreg.penalties import (
    activity_penalty,
    l1_penalty,
    l2_norm_penalty,
    l2_penalty,
    select_activations,
)
from jaxreg.transforms import (
    add_l1,
    coupled_weight_decay,
    decoupled_weight_decay,
    l1_prox,
)
from jaxreg.optim import torch_adam, torch_adamw, torch_sgd

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
from jaxreg import convert, init, models
from jaxreg.convert import flax_to_torch, torch_to_flax

"""jaxreg: neural-network regularization in JAX, Flax and optax.

Every technique of the seed PyTorch tutorials, with explicit keys and traced
hyperparameters. ``import jaxreg`` never imports torch; the PyTorch side lives in
``jaxreg.torch_ref`` and is imported only on demand.
"""

from jaxreg import convert, dropout, init, models, nn, nnx, numpy_ref
from jaxreg.alpha import alpha_dropout, alpha_dropout_with_mask, feature_alpha_dropout
from jaxreg.constraints import max_norm
from jaxreg.convert import flax_to_torch, torch_to_flax

# ``dropout`` is the module jaxreg.dropout, callable as its dropout function.
from jaxreg.dropout import (
    dropout_mask,
    dropout_with_mask,
    mc_dropout_predict,
    vanilla_dropout,
)
from jaxreg.masks import path_mask, path_to_str, resolve_mask, weights_only
from jaxreg.noise import (
    drop_connect,
    drop_path,
    drop_path_with_mask,
    gaussian_dropout,
    gaussian_noise,
)
from jaxreg.optim import torch_adam, torch_adamw, torch_sgd
from jaxreg.penalties import (
    activity_penalty,
    group_lasso_penalty,
    l1_penalty,
    l2_norm_penalty,
    l2_penalty,
    select_activations,
)
from jaxreg.prox import elastic_net_prox, group_lasso_prox
from jaxreg.spatial import (
    dropout1d,
    dropout2d,
    dropout3d,
    spatial_dropout,
    spatial_dropout_with_mask,
)
from jaxreg.transforms import (
    add_l1,
    coupled_weight_decay,
    decoupled_weight_decay,
    l1_prox,
)

__version__ = "0.1.0"

__all__ = [
    # penalties (seeds 000, 001, 002, 004)
    "l1_penalty",
    "l2_penalty",
    "l2_norm_penalty",
    "activity_penalty",
    "select_activations",
    "group_lasso_penalty",
    # masks (seed 004's param groups)
    "weights_only",
    "path_mask",
    "resolve_mask",
    "path_to_str",
    # optax transforms and torch-equivalent optimizers
    "add_l1",
    "l1_prox",
    "coupled_weight_decay",
    "decoupled_weight_decay",
    "group_lasso_prox",
    "elastic_net_prox",
    "max_norm",
    "torch_sgd",
    "torch_adam",
    "torch_adamw",
    # dropout (seeds 000-004)
    "dropout",
    "dropout_mask",
    "dropout_with_mask",
    "vanilla_dropout",
    "mc_dropout_predict",
    # noise injection beyond dropout
    "drop_connect",
    "gaussian_dropout",
    "gaussian_noise",
    "alpha_dropout",
    "alpha_dropout_with_mask",
    "feature_alpha_dropout",
    "drop_path",
    "drop_path_with_mask",
    "spatial_dropout",
    "spatial_dropout_with_mask",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    # torch <-> Flax
    "torch_to_flax",
    "flax_to_torch",
    # submodules
    "convert",
    "init",
    "models",
    "nn",
    "nnx",
    "numpy_ref",
]

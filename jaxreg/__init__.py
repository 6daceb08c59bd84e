"""jaxreg: neural-network regularization in JAX, Flax and optax.

Every technique of the seed PyTorch tutorials, with explicit keys and traced
hyperparameters. ``import jaxreg`` never imports torch; the PyTorch side lives in
``jaxreg.torch_ref`` and is imported only on demand.
"""

__version__ = "0.1.0"

# --- penalties, masks, transforms, optimizers ---

# --- dropout ---

# --- conversion and initialization ---

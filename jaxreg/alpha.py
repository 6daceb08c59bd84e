"""Alpha dropout for self-normalizing (SELU) networks: torch's AlphaDropout, FeatureAlphaDropout.

The conventions are those of :mod:`jaxreg.dropout`: a keyword-only key required in training,
traced rates (``jax.vmap`` over them, no recompilation), ``ValueError`` for a concrete bad rate
and NaN for a traced one. Channels are LAST, as in Flax (torch's feature variant is
channels-first).
"""

from jaxreg._src.alpha import (
    alpha_dropout,
    alpha_dropout_with_mask,
    feature_alpha_dropout,
)

__all__ = [
    "alpha_dropout",
    "alpha_dropout_with_mask",
    "feature_alpha_dropout",
]

"""The record of one random draw, shared by the JAX capture and the torch replay.

Kept apart from :mod:`jaxreg.lab.draws` (which imports Flax) so that ``jaxreg.torch_ref``
can replay draws without importing ``jaxreg.lab``. Public names: ``jaxreg.lab.draws``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["BATCH_KINDS", "KINDS", "MASK_KINDS", "Draw", "UnsharedDrawError"]

KINDS = (
    "dropout",
    "vanilla_dropout",
    "spatial_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "drop_path",
    "drop_connect",
    "gaussian_dropout",
    "gaussian_noise",
)
# Kinds whose value is a boolean keep mask (the others are float values).
MASK_KINDS = frozenset(KINDS) - {"gaussian_dropout", "gaussian_noise"}
# Kinds whose value's leading axis is the batch (DropConnect's is the kernel's input axis).
BATCH_KINDS = frozenset(KINDS) - {"drop_connect"}


class Draw(NamedTuple):
    """One random draw of a forward pass, as JAX made it.

    Attributes:
        site: the drawing module's path, ``"/"``-joined (``"block1/Dropout2d_0"``); a model
            that is itself the layer is named by its class.
        kind: one of :data:`KINDS`.
        shape: the value's shape.
        value: a ``bool`` keep mask (True keeps) for the mask kinds, the float values for
            ``gaussian_dropout`` (the factor) and ``gaussian_noise`` (the noise added).
        call: how many times this site had drawn before in the same forward pass (0 first).
    """

    site: str
    kind: str
    shape: tuple[int, ...]
    value: Any
    call: int


class UnsharedDrawError(RuntimeError):
    """A random draw that the two sides of a matched comparison cannot share.

    Raised by the JAX capture for a random module it does not know (naming its module path)
    and by the torch replay for a random op it cannot replay (naming the op) or a draw that
    does not match the next JAX draw by kind and shape, or is left unconsumed (naming the
    site).
    """


# Their public home (tracebacks, reprs and pickles name it).
Draw.__module__ = UnsharedDrawError.__module__ = "jaxreg.lab.draws"

"""Torch's flatten order for channels-last Flax models: :func:`flatten_nchw` and ``TorchFlatten``.

Flax convolutions are channels-last (``N, H, W, C``), torch's channels-first (``N, C, H, W``).
Up to the flatten before the first dense layer the two compute the same numbers in another
layout, and :func:`jaxreg.convert.torch_to_flax` converts the convolution kernels accordingly.
The flatten is where they part: ``x.reshape(n, -1)`` on NHWC lists the features pixel by pixel
(``h, w, c``), torch's ``x.flatten(1)`` on NCHW channel by channel (``c, h, w``). The shapes
agree, so a converted dense kernel loads without complaint and multiplies every weight with
another feature (measured on a small Fashion-MNIST CNN: logits 0.80 relative off). Flattening in
torch's order keeps the dense kernel exactly torch's ``weight.T``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["TorchFlatten", "flatten_nchw"]


def flatten_nchw(x: jax.Array) -> jax.Array:
    """Flattens a channels-last batch in torch's (channels-first) order.

    PyTorch equivalent: ``torch.flatten(x_nchw, 1)`` (``nn.Flatten()``) of the same activations
    held as ``N, C, *spatial``.

    Args:
        x: ``(N, *spatial, C)`` with at least one spatial axis (``N, H, W, C`` for a 2-D conv).

    Returns:
        ``(N, C * prod(spatial))``, feature ``c * prod(spatial) + flat spatial index``, as torch.

    Raises:
        ValueError: ``x`` has fewer than 3 axes (nothing channels-last to reorder).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)  # N, H, W, C
        >>> flatten_nchw(x).tolist()  # channel 0's four pixels, then channel 1's
        [[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]]
    """
    if jnp.ndim(x) < 3:
        raise ValueError(
            f"flatten_nchw: x has shape {jnp.shape(x)}; expected (N, *spatial, C) with at least "
            "one spatial axis (a 2-D input is already flat: use it as is)"
        )
    return jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1)


class TorchFlatten(nn.Module):
    """Flattens channels-last activations in torch's NCHW order (:func:`flatten_nchw`).

    PyTorch equivalent: ``nn.Flatten()`` after a channels-first convolution stack. Put it where
    the torch twin flattens, so that the dense layer after it takes torch's converted weights
    unchanged (:func:`jaxreg.convert.torch_to_flax`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> TorchFlatten().apply({}, jnp.zeros((4, 7, 7, 16))).shape
        (4, 784)
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return flatten_nchw(x)

"""Spatial (channel-wise) dropout: PyTorch's ``Dropout1d/2d/3d`` in Flax's channels-last layout.

One Bernoulli draw per example and channel, shared over every spatial position, so a whole
feature map is kept (scaled by ``1 / (1 - rate)``) or zeroed. Neighbouring pixels of a
convolutional feature map are strongly correlated, and element-wise dropout barely regularizes
them; dropping whole channels does (Tompson et al. 2015).

Layout: PyTorch is channels-first, ``(N, C, L)``, ``(N, C, H, W)``, ``(N, C, D, H, W)``; Flax
convolutions are channels-last, so jaxreg takes ``(N, L, C)``, ``(N, H, W, C)``,
``(N, D, H, W, C)``: the batch is the FIRST axis and the channel the LAST. A torch mask of
shape ``(N, C)`` (e.g. recovered from ``y[:, :, 0, 0] != 0``) is replayed on the NHWC tensor
by :func:`spatial_dropout_with_mask`; transposing the result back to NCHW gives torch's output
bit for bit (``parity_tests/test_parity_noise.py``).
"""

from jaxreg._src.spatial import (
    dropout1d,
    dropout2d,
    dropout3d,
    spatial_dropout,
    spatial_dropout_with_mask,
)

__all__ = [
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "spatial_dropout",
    "spatial_dropout_with_mask",
]

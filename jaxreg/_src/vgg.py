"""The implementation of :mod:`jaxreg.vgg` (documented there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxreg._src._toolkit import check_mode
from jaxreg._src.init import Conv, Dense, kaiming_normal, normal
from jaxreg._src.nn import Dropout
from jaxreg._src.pooling import max_pool2d

__all__ = ["VGG16", "VGG16_CFG", "adaptive_avg_pool2d"]


VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
"""torchvision's configuration "D"; ints are conv output channels, "M" a 2x2 max-pool."""


def _adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    # torch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out)); they overlap
    # or repeat when size does not divide evenly (e.g. a 1x1 map becomes 7x7 copies).
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x: jax.Array, output_size: Sequence[int] = (7, 7)) -> jax.Array:
    """torch's ``F.adaptive_avg_pool2d`` for NHWC input, exact window formula for any size.

    Args:
        x: ``(N, H, W, C)``.
        output_size: ``(out_h, out_w)``.

    Returns:
        ``(N, out_h, out_w, C)``.

    Example:
        >>> adaptive_avg_pool2d(jnp.ones((1, 1, 1, 3))).shape
        (1, 7, 7, 3)
    """
    out_h, out_w = (int(s) for s in output_size)
    h, w = x.shape[1], x.shape[2]
    if h == out_h and w == out_w:
        return x
    rows = [
        jnp.stack(
            [x[:, h0:h1, w0:w1, :].mean(axis=(1, 2)) for (w0, w1) in _adaptive_bounds(w, out_w)],
            axis=1,
        )
        for (h0, h1) in _adaptive_bounds(h, out_h)
    ]
    return jnp.stack(rows, axis=1)


class VGG16(nn.Module):
    """VGG16 (torchvision's ``vgg16()``, seed 000) in Flax, NHWC input.

    Submodules are named after torchvision's keys: convs ``features_0 ... features_28``, linears
    ``classifier_0, classifier_3, classifier_6``. After the convs the feature map is adaptively
    average-pooled to 7x7 with torch's window formula and flattened in torch's NCHW order, so
    weights converted from a torch VGG16 give the same outputs for any input size >= 32.

    ``weight_init="torchvision"`` (default, what ``torchvision.models.vgg16()`` does): conv kernels
    ``kaiming_normal(fan_out, relu)``, linear weights ``N(0, 0.01)``, zero biases.
    ``weight_init="torch"``: torch's per-layer defaults. PyTorch equivalent:
    ``jaxreg.torch_ref.models.VGG16``.

    Attributes:
        num_classes: outputs of the last linear layer.
        dropout_rate: drop probability in the classifier.
        weight_init: ``"torchvision"`` or ``"torch"``.
        hidden: classifier width (torchvision: 4096; smaller values only for cheap tests).
        param_dtype: parameter dtype at initialization.

    Example:
        >>> m = VGG16(num_classes=10)
        >>> shapes = jax.eval_shape(m.init, jax.random.key(0), jnp.ones((1, 32, 32, 3)))
        >>> shapes["params"]["classifier_0"]["kernel"].shape
        (25088, 4096)
    """

    num_classes: int = 1000
    dropout_rate: float = 0.5
    weight_init: str = "torchvision"
    hidden: int = 4096
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_mode(deterministic, "deterministic", "VGG16")
        if self.weight_init not in ("torchvision", "torch"):
            raise ValueError(
                f"weight_init={self.weight_init!r}: allowed values are ('torchvision', 'torch')"
            )
        if self.weight_init == "torchvision":
            conv_kw = {
                "kernel_init": kaiming_normal("fan_out", "relu"),
                "bias_init": nn.initializers.zeros,
            }
            lin_kw = {"kernel_init": normal(0.01), "bias_init": nn.initializers.zeros}
        else:
            conv_kw, lin_kw = {}, {}
        idx = 0
        for v in VGG16_CFG:
            if v == "M":
                x = max_pool2d(x, 2)  # torch's MaxPool2d(2, 2): its tie rule, a fast gradient
                idx += 1
            else:
                conv = Conv(
                    v,
                    (3, 3),
                    padding=1,
                    param_dtype=self.param_dtype,
                    name=f"features_{idx}",
                    **conv_kw,
                )
                x = nn.relu(conv(x))
                idx += 2
        x = adaptive_avg_pool2d(x, (7, 7))
        # torch flattens (N, C, 7, 7); matching that order lets classifier_0 take torch weights.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape((x.shape[0], -1))
        pd = self.param_dtype
        x = nn.relu(Dense(self.hidden, param_dtype=pd, name="classifier_0", **lin_kw)(x))
        x = Dropout(rate=self.dropout_rate, name="classifier_2")(x, deterministic=deterministic)
        x = nn.relu(Dense(self.hidden, param_dtype=pd, name="classifier_3", **lin_kw)(x))
        x = Dropout(rate=self.dropout_rate, name="classifier_5")(x, deterministic=deterministic)
        return Dense(self.num_classes, param_dtype=pd, name="classifier_6", **lin_kw)(x)

"""Seed 000's VGG16 in Flax Linen (torchvision's configuration "D", 138M parameters).

Named so that torchvision's ``vgg16()`` state_dict converts 1:1 (``features_N``,
``classifier_N``); re-exported by :mod:`jaxreg.models`. PyTorch equivalent:
``torchvision.models.vgg16()`` / ``jaxreg.torch_ref.vgg.VGG16``.
"""

from jaxreg._src.vgg import (
    VGG16,
    VGG16_CFG,
    adaptive_avg_pool2d,
)

__all__ = [
    "VGG16",
    "VGG16_CFG",
    "adaptive_avg_pool2d",
]

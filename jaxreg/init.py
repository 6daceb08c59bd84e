"""PyTorch-compatible initializers and the Linear/Conv layers that use them.

PyTorch's ``nn.Linear`` and ``nn.Conv2d`` start from ``kaiming_uniform_(w, a=sqrt(5))`` for the
weight and ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the bias. The weight bound works out to
``gain * sqrt(3 / fan_in)`` with ``gain = sqrt(2 / (1 + a**2)) = sqrt(1/3)``, i.e. exactly
``1/sqrt(fan_in)`` too. Flax initializers get only ``(key, shape, dtype)``, which is enough for a
kernel (its shape holds fan_in) but not for a bias (shape ``(features,)``), so this module also
provides :class:`Dense` and :class:`Conv`: small Linen layers that read fan_in from the input and
keep Flax's parameter names ``kernel`` and ``bias``.

Kernels use Flax layouts: Dense ``(in, out)`` (torch weight transposed), Conv ``HWIO`` (torch
``OIHW``); fan_in is computed the way torch computes it (``in * prod(kernel_size)``).
"""

from jaxreg._src.init import (
    Conv,
    Dense,
    Initializer,
    fan_in_fan_out,
    kaiming_normal,
    kaiming_uniform,
    normal,
    torch_bias_init,
    torch_kernel_init,
    uniform_bound,
)

__all__ = [
    "Conv",
    "Dense",
    "Initializer",
    "fan_in_fan_out",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "torch_bias_init",
    "torch_kernel_init",
    "uniform_bound",
]

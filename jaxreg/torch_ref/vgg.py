"""Seed 000's ``torchvision.models.vgg16()`` on the torch side, and which VGG16 was used.

Seed 000 builds torchvision's VGG16. torchvision is an optional dependency (it does not import
on every CPU machine), so the torch twin is built from torchvision's own modules wherever
torchvision imports, and otherwise from a plain-torch copy with the same layers, the same
initialization and the same ``state_dict`` keys. The choice is explicit, never silent:
:func:`vgg16_reference` says which one a given configuration gets and why, every
:class:`VGG16` carries it as ``.reference``, the parity report records it per case and
``jaxreg run vgg-norms`` prints it.

Example:
    >>> str(vgg16_reference(prefer="plain"))
    "plain-torch copy (prefer='plain')"
    >>> vgg16_reference(hidden=16).name  # torchvision's classifier is 4096 wide
    'plain-torch copy'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

__all__ = [
    "PLAIN",
    "TORCHVISION",
    "VGG16",
    "VGG16_CFG",
    "VGG16Reference",
    "torchvision_init_",
    "vgg16_reference",
]

TORCHVISION = "torchvision"
PLAIN = "plain-torch copy"
_CHOICES = ("auto", TORCHVISION, "plain")

VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
"""torchvision's configuration "D"; ints are conv output channels, "M" a 2x2 max-pool."""


@dataclass(frozen=True)
class VGG16Reference:
    """Which torch VGG16 was built: ``name`` (``TORCHVISION`` or ``PLAIN``) and why."""

    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})"


@functools.lru_cache(maxsize=1)
def _torchvision() -> tuple[ModuleType | None, str]:
    """torchvision, or None and the reason it does not import (any failure, with its message)."""
    try:
        import torchvision
    except Exception as err:  # noqa: BLE001 (a broken install counts as absent; its reason is kept)
        return None, f"torchvision does not import: {type(err).__name__}: {err}"
    return torchvision, f"torchvision {torchvision.__version__}, torchvision.models.vgg16"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def vgg16_reference(
    hidden: int = 4096, dropout_rate: float = 0.5, prefer: str = "auto"
) -> VGG16Reference:
    """Which VGG16 :class:`VGG16` builds for these arguments, and why.

    torchvision's model is used wherever torchvision imports and can express the configuration
    (its classifier is 4096 wide; torchvision < 0.13 has no ``dropout`` argument); otherwise the
    plain-torch copy, with the reason in ``detail``.

    Args:
        hidden: classifier width.
        dropout_rate: the classifier's drop probability.
        prefer: ``"auto"`` (torchvision where possible), ``"torchvision"`` (an error where it
            cannot be used) or ``"plain"`` (always the plain-torch copy).

    Returns:
        A :class:`VGG16Reference`; ``str()`` of it reads e.g. ``"torchvision (torchvision 0.28.0,
        torchvision.models.vgg16)"``.

    Raises:
        ValueError: ``prefer`` is not one of its allowed values.
        RuntimeError: ``prefer="torchvision"`` where torchvision cannot be used.

    Example:
        >>> vgg16_reference(prefer="plain").name
        'plain-torch copy'
    """
    if prefer not in _CHOICES:
        raise ValueError(f"prefer={prefer!r}: allowed values are {_CHOICES}")
    if prefer == "plain":
        return VGG16Reference(PLAIN, "prefer='plain'")
    tv, why = _torchvision()
    if tv is not None and hidden != 4096:
        why = f"hidden={hidden}: torchvision's classifier is 4096 wide"
    elif tv is not None and _version(tv.__version__) < (0, 13) and dropout_rate != 0.5:
        why = f"torchvision {tv.__version__} < 0.13 has no dropout argument (rate {dropout_rate})"
    elif tv is not None:
        return VGG16Reference(TORCHVISION, why)
    if prefer == TORCHVISION:
        raise RuntimeError(f"VGG16 with prefer='torchvision' is not possible here: {why}")
    return VGG16Reference(PLAIN, why)


def torchvision_init_(module: nn.Module) -> nn.Module:
    """torchvision's VGG ``_initialize_weights``, in place (seed 000's ``vgg16()``).

    Conv weights ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, Linear weights
    ``normal_(0, 0.01)``, all biases 0.

    Args:
        module: any module; its Conv2d and Linear submodules are re-initialized.

    Returns:
        ``module``.

    Example:
        >>> float(torchvision_init_(nn.Linear(3, 2)).bias.detach().abs().sum())
        0.0
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return module


def _torchvision_modules(num_classes: int, dropout_rate: float) -> nn.Module:
    tv, _ = _torchvision()
    if _version(tv.__version__) < (0, 13):
        return tv.models.vgg16(pretrained=False, num_classes=num_classes)
    return tv.models.vgg16(weights=None, num_classes=num_classes, dropout=dropout_rate)


class VGG16(nn.Module):
    """Seed 000's ``torchvision.models.vgg16()``, NCHW input.

    Built from torchvision's own modules where :func:`vgg16_reference` says so (torchvision
    imports and ``hidden == 4096``); otherwise from the same layers in plain torch, in the same
    order (so the same global seed gives the same weights) and with the same ``state_dict``
    keys: ``features.{0..28}``, ``classifier.{0,3,6}``. ``.reference`` records which.
    ``weight_init="torchvision"`` (default) is torchvision's init, ``"torch"`` resets every layer
    to torch's per-layer default. Flax twin: ``jaxreg.models.VGG16``.

    Args:
        num_classes: outputs of the last linear layer.
        dropout_rate: drop probability in the classifier.
        weight_init: ``"torchvision"`` or ``"torch"``.
        hidden: classifier width (torchvision: 4096; smaller values only for cheap tests).
        prefer: which implementation, see :func:`vgg16_reference`.

    Example:
        >>> net = VGG16(num_classes=10, hidden=16).eval()
        >>> net(torch.zeros(1, 3, 32, 32)).shape, net.reference.name
        (torch.Size([1, 10]), 'plain-torch copy')
    """

    def __init__(
        self,
        num_classes: int = 1000,
        dropout_rate: float = 0.5,
        weight_init: str = "torchvision",
        hidden: int = 4096,
        prefer: str = "auto",
    ):
        super().__init__()
        if weight_init not in ("torchvision", "torch"):
            raise ValueError(
                f"weight_init={weight_init!r}: allowed values are ('torchvision', 'torch')"
            )
        self.reference = vgg16_reference(hidden, dropout_rate, prefer)
        if self.reference.name == TORCHVISION:
            tv = _torchvision_modules(num_classes, dropout_rate)
            self.features, self.avgpool, self.classifier = tv.features, tv.avgpool, tv.classifier
        else:
            layers: list[nn.Module] = []
            in_channels = 3
            for v in VGG16_CFG:
                if v == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(True)]
                    in_channels = v
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, hidden),
                nn.ReLU(True),
                nn.Dropout(p=dropout_rate),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(p=dropout_rate),
                nn.Linear(hidden, num_classes),
            )
            torchvision_init_(self)
        if weight_init == "torch":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.reset_parameters()

    @property
    def uses_torchvision(self) -> bool:
        """Whether torchvision's modules were used (see ``.reference`` for the reason)."""
        return self.reference.name == TORCHVISION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)

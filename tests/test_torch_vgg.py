"""jaxreg.torch_ref.vgg: which torch VGG16 is built is an explicit, reported choice."""

import types

import pytest
import torch
from torch import nn

from jaxreg.torch_ref import vgg


def _fake_torchvision(version: str, calls: list) -> types.ModuleType:
    def vgg16(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(
            features=nn.Conv2d(3, 512, 3, padding=1),
            avgpool=nn.AdaptiveAvgPool2d((7, 7)),
            classifier=nn.Linear(512 * 7 * 7, kwargs["num_classes"]),
        )

    tv = types.ModuleType("torchvision")
    tv.__version__ = version
    tv.models = types.SimpleNamespace(vgg16=vgg16)
    return tv


@pytest.fixture
def with_torchvision(monkeypatch):
    """Pretends a torchvision of the given version imports; returns the calls it receives."""
    calls: list = []

    def install(version: str = "0.20.1+cpu") -> list:
        tv = _fake_torchvision(version, calls)
        monkeypatch.setattr(vgg, "_torchvision", lambda: (tv, f"torchvision {version}"))
        return calls

    return install


def test_torchvision_is_used_wherever_it_imports(with_torchvision):
    calls = with_torchvision()
    ref = vgg.vgg16_reference()
    assert ref.name == vgg.TORCHVISION and "0.20.1" in str(ref)
    net = vgg.VGG16(num_classes=7, dropout_rate=0.3)
    assert net.uses_torchvision and net.reference == ref
    assert calls == [{"weights": None, "num_classes": 7, "dropout": 0.3}]
    assert isinstance(net.features, nn.Conv2d)  # torchvision's modules, not the plain copy's
    assert net(torch.zeros(1, 3, 8, 8)).shape == (1, 7)


def test_plain_copy_names_its_reason(with_torchvision, monkeypatch):
    with_torchvision("0.20.1")
    small = vgg.vgg16_reference(hidden=16)
    assert small.name == vgg.PLAIN and small.detail.startswith("hidden=16")
    with_torchvision("0.12.0")
    assert vgg.vgg16_reference(dropout_rate=0.5).name == vgg.TORCHVISION
    old = vgg.vgg16_reference(dropout_rate=0.3)
    assert old.name == vgg.PLAIN and "< 0.13" in old.detail
    monkeypatch.setattr(vgg, "_torchvision", lambda: (None, "torchvision does not import: X"))
    missing = vgg.vgg16_reference()
    assert str(missing) == "plain-torch copy (torchvision does not import: X)"
    net = vgg.VGG16(num_classes=3, hidden=16)
    assert not net.uses_torchvision and net.reference.name == vgg.PLAIN
    assert [k for k in net.state_dict() if k.startswith("classifier")] == [
        "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
        "classifier.6.weight", "classifier.6.bias",
    ]  # fmt: skip


def test_prefer_is_validated_and_strict(with_torchvision, monkeypatch):
    with_torchvision()
    assert vgg.vgg16_reference(prefer="plain").name == vgg.PLAIN
    assert vgg.vgg16_reference(prefer="torchvision").name == vgg.TORCHVISION
    with pytest.raises(ValueError, match="prefer='tv'.*allowed values"):
        vgg.vgg16_reference(prefer="tv")
    with pytest.raises(RuntimeError, match="hidden=16"):
        vgg.VGG16(hidden=16, prefer="torchvision")
    monkeypatch.setattr(vgg, "_torchvision", lambda: (None, "torchvision does not import: X"))
    with pytest.raises(RuntimeError, match="does not import"):
        vgg.vgg16_reference(prefer="torchvision")


def test_the_real_environment_is_reported():
    ref = vgg.vgg16_reference()
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 (any import failure means the plain copy)
        assert ref.name == vgg.PLAIN and "does not import" in ref.detail
    else:
        assert ref.name == vgg.TORCHVISION

"""jaxreg.convert: naming rule, exact round trips, and errors that name the key and shapes."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import models
from jaxreg.convert import flax_key, flax_to_torch, torch_key, torch_to_flax


def _state_dict(rng, shapes, dtype=np.float32):
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


SHAPES = {
    "fc1.weight": (6, 8),
    "fc1.bias": (6,),
    "0.weight": (300, 1),
    "features.28.weight": (512, 256, 3, 3),
    "features.28.bias": (512,),
    "classifier.6.weight": (10, 64),
    "bn.weight": (7,),
    "W1": (784, 256),
    "b1": (256,),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact_and_keeps_dtype(dtype):
    sd = _state_dict(np.random.default_rng(0), SHAPES, dtype)
    params = torch_to_flax(sd)
    assert params["fc1"]["kernel"].shape == (8, 6)
    assert params["layers_0"]["kernel"].shape == (1, 300)
    assert params["features_28"]["kernel"].shape == (3, 3, 256, 512)
    assert params["bn"]["scale"].shape == (7,)
    np.testing.assert_array_equal(params["W1"], sd["W1"])  # raw parameters: copied as is
    back = flax_to_torch(params)
    assert set(back) == set(sd)
    for k in sd:
        assert back[k].dtype == dtype
        np.testing.assert_array_equal(back[k], sd[k])


def test_layouts_linear_transpose_and_conv_oihw_to_hwio():
    w = np.arange(24.0).reshape(2, 3, 2, 2)  # O=2, I=3, H=2, W=2
    k = torch_to_flax({"c.weight": w})["c"]["kernel"]
    assert k.shape == (2, 2, 3, 2)
    for o, i, h, ww in np.ndindex(w.shape):
        assert k[h, ww, i, o] == w[o, i, h, ww]
    lin = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(torch_to_flax({"l.weight": lin})["l"]["kernel"], lin.T)


def test_naming_rule():
    assert flax_key("features.0.weight", 4) == ("features_0", "kernel")
    assert flax_key("4.bias", 1) == ("layers_4", "bias")
    assert flax_key("W2", 2) == ("W2",)
    assert torch_key(("classifier_3", "kernel")) == "classifier.3.weight"
    assert torch_key("layers_7/bias") == "7.bias"
    assert torch_key(("lin1", "kernel")) == "lin1.weight"


def test_result_is_a_copy():
    w = np.ones((2, 3))
    params = torch_to_flax({"a.weight": w, "b": w})
    params["a"]["kernel"][0, 0] = 5.0
    params["b"][0, 0] = 7.0
    assert w[0, 0] == 1.0


class _FakeTensor:
    """Duck-typed like a torch tensor on some device: convert must not import torch."""

    def __init__(self, array):
        self._array = array
        self.shape = array.shape

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._array


def test_duck_typed_tensors():
    sd = {"fc.weight": _FakeTensor(np.ones((2, 3), np.float32))}
    assert torch_to_flax(sd)["fc"]["kernel"].shape == (3, 2)


def test_import_does_not_import_torch():
    code = "import sys, jaxreg.convert, jaxreg.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _template():
    return jax.eval_shape(models.Seed000Net().init, jax.random.key(0), jnp.ones((1, 8)))


def _seed000_sd():
    rng = np.random.default_rng(1)
    shapes = {"fc1.weight": (6, 8), "fc1.bias": (6,), "fc2.weight": (4, 6), "fc2.bias": (4,)}
    shapes.update({"fc3.weight": (1, 4), "fc3.bias": (1,)})
    return _state_dict(rng, shapes)


def test_template_wraps_and_checks():
    params = torch_to_flax(_seed000_sd(), template=_template())
    assert set(params) == {"params"}
    y = models.Seed000Net().apply(params, jnp.ones((2, 8)))
    assert y.shape == (2, 1)


def test_missing_key_names_it():
    sd = _seed000_sd()
    del sd["fc2.bias"]
    with pytest.raises(ValueError, match=r"missing key.*fc2/bias.*\(4,\).*'fc2\.bias'"):
        torch_to_flax(sd, template=_template())


def test_unexpected_key_names_it():
    sd = _seed000_sd()
    sd["fc4.weight"] = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match=r"unexpected key.*fc4\.weight"):
        torch_to_flax(sd, template=_template())


def test_wrong_shape_names_key_and_both_shapes():
    sd = _seed000_sd()
    sd["fc2.weight"] = np.zeros((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"'fc2\.weight'.*\(5, 6\).*\(6, 5\).*\(6, 4\)"):
        torch_to_flax(sd, template=_template())


def test_flax_to_torch_with_template_checks_and_resolves_underscores():
    sd = {"my_fc.weight": np.ones((2, 3)), "my_fc.bias": np.zeros(2)}
    params = torch_to_flax(sd)
    assert set(params) == {"my_fc"}
    back = flax_to_torch(params, template=sd)
    assert set(back) == set(sd)
    with pytest.raises(ValueError, match=r"shape mismatch.*'my_fc\.weight'.*\(2, 3\).*\(3, 2\)"):
        flax_to_torch(params, template={**sd, "my_fc.weight": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"missing key.*'other\.bias'"):
        flax_to_torch(params, template={**sd, "other.bias": np.ones(2)})
    with pytest.raises(ValueError, match=r"unexpected Flax parameter.*my_fc/bias"):
        flax_to_torch(params, template={"my_fc.weight": np.ones((2, 3))})


def test_unconvertible_weights_raise():
    with pytest.raises(ValueError, match=r"state_dict\['x\.weight'\].*\(2, 2, 2\)"):
        torch_to_flax({"x.weight": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match="kernel with shape"):
        flax_to_torch({"x": {"kernel": np.zeros((2, 2, 2))}})


def test_every_torch_twin_round_trips_through_its_flax_model():
    torch = pytest.importorskip("torch")
    from jaxreg.torch_ref import models as tm

    torch.manual_seed(0)
    pairs = [
        (models.Seed000Net(), tm.Seed000Net(), (1, 8)),
        (models.ActivityMLP(), tm.ActivityMLP(), (1, 128)),
        (models.TwoLayerNet(), tm.TwoLayerNet(), (1, 784)),
        (models.RegressionNet(), tm.RegressionNet(), (1, 1)),
        (models.RegressionNet(dropout_rate=0.5), tm.RegressionNet(dropout_rate=0.5), (1, 1)),
        (models.DropoutMLP(), tm.DropoutMLP(), (1, 784)),
        (models.DropoutMLP(style="concise"), tm.DropoutMLP(style="concise"), (1, 784)),
        (models.WeightDecayMLP(), tm.WeightDecayMLP(), (1, 784)),
        (
            models.VGG16(num_classes=10, hidden=8),
            tm.VGG16(num_classes=10, hidden=8),
            (1, 32, 32, 3),
        ),
    ]
    for flax_model, torch_model, shape in pairs:
        sd = torch_model.state_dict()
        template = jax.eval_shape(flax_model.init, jax.random.key(0), jnp.ones(shape))
        params = torch_to_flax(sd, template=template)
        back = flax_to_torch(params)
        assert set(back) == set(sd), type(flax_model).__name__
        for k, v in sd.items():
            np.testing.assert_array_equal(back[k], v.numpy())
        torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})


def test_nested_flax_modules_match_torch_dotted_paths_through_the_templates():
    # A residual block list: torch's blocks.0.fc1 is Flax's blocks_0/fc1 (a nested module).
    sd = {
        "inp.weight": np.arange(6.0).reshape(3, 2),
        "blocks.0.fc1.weight": np.arange(9.0).reshape(3, 3),
        "blocks.0.fc1.bias": np.ones(3),
    }
    template = {
        "params": {
            "inp": {"kernel": np.zeros((2, 3))},
            "blocks_0": {"fc1": {"kernel": np.zeros((3, 3)), "bias": np.zeros(3)}},
        }
    }
    params = torch_to_flax(sd, template=template)
    np.testing.assert_array_equal(
        params["params"]["blocks_0"]["fc1"]["kernel"], sd["blocks.0.fc1.weight"].T
    )
    back = flax_to_torch(params, template=sd)
    assert set(back) == set(sd)
    for key in sd:
        np.testing.assert_array_equal(back[key], sd[key])
    with pytest.raises(ValueError, match="missing key: Flax parameter 'blocks_0_fc1/bias'"):
        torch_to_flax({k: v for k, v in sd.items() if k != "blocks.0.fc1.bias"}, template)

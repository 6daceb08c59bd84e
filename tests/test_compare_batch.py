"""check_batch and check_conversion on three architectures, each with a mutation that must fail."""

import jax
import numpy as np
import pytest
import torch
from _compare_models import (
    CNN,
    NNXNet,
    ResNet,
    TorchCNN,
    TorchNNXNet,
    TorchResNet,
    features,
    images,
    nchw,
)
from flax import nnx

from jaxreg.lab.compare import (
    ConversionError,
    MismatchError,
    check_batch,
    check_conversion,
)


def _cnn(flatten="torch"):
    x, y = images()
    model = CNN(flatten=flatten)
    variables = model.init(jax.random.key(0), x, deterministic=True)
    torch.manual_seed(0)
    return model, variables, TorchCNN(), x, y


@pytest.mark.slow
def test_cnn_agrees_without_dropout_in_both_dtypes():
    model, variables, twin, x, y = _cnn()
    report = check_batch(model, variables, twin, x, y, dropout=(False,), to_torch=nchw)
    assert report.ok, report
    # float64 is the same computation: 1e-10 leaves orders of magnitude above ~1e-15.
    assert report.max_rel("float64", "gradients") < 1e-12
    assert report.max_rel("float32", "outputs") < 1e-5
    assert {r.tensor for r in report.rows} >= {
        "outputs", "loss", "input", "grad conv1/kernel", "grad fc2/bias"
    }  # fmt: skip
    assert "tolerance float64 outputs 1e-10" in str(report)
    report.raise_for_mismatch()


def test_cnn_nhwc_flatten_is_named_at_its_first_dense_layer():
    model, variables, twin, x, y = _cnn(flatten="nhwc")
    report = check_batch(
        model, variables, twin, x, y, dtypes=("float64",), dropout=(False,), to_torch=nchw
    )
    assert not report.ok
    diff = report.first_differences[("float64", False)]
    assert (diff.flax_path, diff.torch_path, diff.previous) == ("fc1", "fc1", "conv2")
    assert "another order" in diff.cause and "TorchFlatten" in diff.cause
    with pytest.raises(MismatchError, match="first differing layer: Flax 'fc1'"):
        report.raise_for_mismatch()


def test_conversion_probe_catches_the_flatten_order():
    x, _ = images()
    torch.manual_seed(0)
    twin = TorchCNN()
    params = check_conversion(CNN(), twin, x, to_torch=nchw)
    np.testing.assert_array_equal(
        params["params"]["fc1"]["kernel"], twin.fc1.weight.detach().numpy().T
    )
    with pytest.raises(ConversionError, match="'fc1'.*another order") as err:
        check_conversion(CNN(flatten="nhwc"), twin, x, to_torch=nchw)
    assert err.value.difference.previous == "conv2"


def test_nnx_model_agrees_without_dropout():
    x, y = features()
    model = NNXNet(rngs=nnx.Rngs(0, dropout=1))
    report = check_batch(model, None, TorchNNXNet(), x, y, dropout=(False,))
    assert report.ok, report
    assert report.max_rel("float64", "grad lin1/kernel") < 1e-12


def test_a_layer_that_computes_otherwise_is_named_with_its_input_agreeing():
    model, variables, _, x, y = _cnn()
    twin = TorchCNN(padding_mode="reflect")
    report = check_batch(
        model, variables, twin, x, y, dtypes=("float64",), dropout=(False,), to_torch=nchw
    )
    diff = report.first_differences[("float64", False)]
    assert diff.flax_path == "conv2" and diff.previous == "conv1"
    assert "Its input agrees" in diff.cause


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dtypes": ("float16",)}, "dtypes=.*allowed values"),
        ({"dropout": ("on",)}, "dropout=.*allowed values"),
        ({"loss": "hinge"}, "loss='hinge': allowed values"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, match):
    model, variables, twin, x, y = _cnn()
    with pytest.raises(ValueError, match=match):
        check_batch(model, variables, twin, x, y, **kwargs)


@pytest.mark.slow
def test_cnn_agrees_with_its_draws_shared():
    model, variables, twin, x, y = _cnn()
    report = check_batch(model, variables, twin, x, y, dropout=(True,), to_torch=nchw)
    assert report.ok, report
    # Two sites per forward: the spatial dropout's (N, C) and the dense dropout's.
    assert report.draws == {("float32", True): 2, ("float64", True): 2}
    assert report.max_rel("float64", "gradients", dropout=True) < 1e-12


def test_an_unshared_torch_random_op_fails_with_its_name():
    from jaxreg.lab.draws import UnsharedDrawError

    model, variables, _, x, y = _cnn()
    twin = TorchCNN(random_op="bernoulli")
    with pytest.raises(UnsharedDrawError, match="bernoulli"):
        check_batch(model, variables, twin, x, y, dtypes=("float64",), to_torch=nchw)


def _resnet(rate=0.3, torch_rate=0.3):
    x, y = features()
    model = ResNet(rate)
    variables = model.init(jax.random.key(0), x, deterministic=True)
    return model, variables, TorchResNet(torch_rate), x, y


def test_resnet_drop_path_is_shared():
    model, variables, twin, x, y = _resnet()
    report = check_batch(model, variables, twin, x, y, dropout=(False, True))
    assert report.ok, report
    assert report.draws[("float64", True)] == 2


def test_resnet_wrong_drop_path_rate_is_named_at_its_block():
    model, variables, twin, x, y = _resnet(torch_rate=0.2)
    report = check_batch(model, variables, twin, x, y, dtypes=("float64",))
    # Evaluation mode ignores the rate; training mode scales survivors by 1/0.8, not 1/0.7.
    assert [r.ok for r in report.rows if r.tensor == "outputs"] == [True, False]
    diff = report.first_differences[("float64", True)]
    assert diff.flax_path == "blocks_0" and diff.previous == "blocks_0/fc2"


def test_nnx_dropout_is_shared_and_a_missing_torch_site_fails():
    x, y = features()
    model = NNXNet(rngs=nnx.Rngs(0, dropout=1))
    report = check_batch(model, None, TorchNNXNet(), x, y, dropout=(True,))
    assert report.ok, report
    with pytest.raises(Exception, match="drop"):
        check_batch(model, None, TorchNNXNet(dropout=False), x, y, dropout=(True,))


def test_nnx_wrong_dropout_rate_is_named_at_its_layer():
    x, y = features()
    model = NNXNet(rngs=nnx.Rngs(0, dropout=1))
    report = check_batch(
        model, None, TorchNNXNet(rate=0.5), x, y, dtypes=("float64",), dropout=(True,)
    )
    diff = report.first_differences[("float64", True)]
    assert (diff.flax_path, diff.torch_path, diff.previous) == ("drop", "drop", "lin1")
    assert "Its input agrees" in diff.cause

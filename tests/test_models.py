"""jaxreg.models: shapes, parameter names (the torch naming rule), dropout modes, traced rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import models
from jaxreg.convert import torch_key


def _param_shapes(model, x):
    params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(k.key for k in path): tuple(v.shape) for path, v in flat}


CASES = {
    "seed000": (
        models.Seed000Net(),
        (5, 8),
        (5, 1),
        {"fc1/kernel": (8, 6), "fc1/bias": (6,), "fc2/kernel": (6, 4), "fc2/bias": (4,)}
        | {"fc3/kernel": (4, 1), "fc3/bias": (1,)},
    ),
    "two_layer": (
        models.TwoLayerNet(),
        (3, 1, 28, 28),
        (3, 10),
        {"fc1/kernel": (784, 128), "fc1/bias": (128,), "fc2/kernel": (128, 10), "fc2/bias": (10,)},
    ),
    "net_overfitting": (
        models.RegressionNet(),
        (20, 1),
        (20, 1),
        {"layers_0/kernel": (1, 300), "layers_0/bias": (300,), "layers_2/kernel": (300, 300)}
        | {"layers_2/bias": (300,), "layers_4/kernel": (300, 1), "layers_4/bias": (1,)},
    ),
    "net_dropped": (
        models.RegressionNet(hidden=30, dropout_rate=0.5),
        (20, 1),
        (20, 1),
        {"layers_0/kernel": (1, 30), "layers_0/bias": (30,), "layers_3/kernel": (30, 30)}
        | {"layers_3/bias": (30,), "layers_6/kernel": (30, 1), "layers_6/bias": (1,)},
    ),
    "scratch": (
        models.DropoutMLP(),
        (4, 1, 28, 28),
        (4, 10),
        {"lin1/kernel": (784, 256), "lin1/bias": (256,), "lin2/kernel": (256, 256)}
        | {"lin2/bias": (256,), "lin3/kernel": (256, 10), "lin3/bias": (10,)},
    ),
    "concise": (
        models.DropoutMLP(style="concise", weight_init="normal"),
        (4, 784),
        (4, 10),
        {"layers_1/kernel": (784, 256), "layers_1/bias": (256,), "layers_4/kernel": (256, 256)}
        | {"layers_4/bias": (256,), "layers_7/kernel": (256, 10), "layers_7/bias": (10,)},
    ),
    "weight_decay": (
        models.WeightDecayMLP(),
        (4, 784),
        (4, 10),
        {"W1": (784, 256), "b1": (256,), "W2": (256, 10), "b2": (10,)},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_and_parameter_names(name):
    model, in_shape, out_shape, expected = CASES[name]
    x = jnp.ones(in_shape)
    assert _param_shapes(model, x) == expected
    params = model.init(jax.random.key(0), x)
    assert model.apply(params, x).shape == out_shape


def test_activity_mlp_returns_and_sows_activations():
    model = models.ActivityMLP()
    x = jax.random.uniform(jax.random.key(1), (4, 128))
    params = model.init(jax.random.key(0), x)
    (out, h1, h2), state = model.apply(params, x, mutable=["intermediates"])
    assert (out.shape, h1.shape, h2.shape) == ((4, 2), (4, 32), (4, 16))
    assert bool(jnp.all(h1 >= 0)) and bool(jnp.all(h2 >= 0))
    np.testing.assert_array_equal(state["intermediates"]["layer1_out"][0], h1)
    np.testing.assert_array_equal(state["intermediates"]["layer2_out"][0], h2)


def test_vgg16_matches_torchvision_layout():
    model = models.VGG16()
    shapes = _param_shapes(model, jnp.ones((1, 224, 224, 3)))
    assert sum(int(np.prod(s)) for s in shapes.values()) == 138_357_544  # torchvision's count
    convs = sorted(int(k.split("/")[0].split("_")[1]) for k in shapes if k.startswith("features"))
    assert sorted(set(convs)) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert shapes["classifier_0/kernel"] == (25088, 4096)
    assert shapes["features_0/kernel"] == (3, 3, 3, 64)
    assert torch_key(("features_28", "kernel")) == "features.28.weight"


def test_vgg16_torchvision_init_and_small_inputs():
    model = models.VGG16(num_classes=7, hidden=16)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    # unsafe_rbg: drawing VGG's 15M conv weights with threefry takes seconds on a small CPU.
    params = jax.jit(model.init)(jax.random.key(1, impl="unsafe_rbg"), x)
    p = params["params"]
    k = np.asarray(p["features_28"]["kernel"])  # 3x3x512x512: kaiming_normal, fan_out = 4608
    assert np.std(k) == pytest.approx(np.sqrt(2 / 4608), rel=0.01)
    assert np.std(np.asarray(p["classifier_0"]["kernel"])) == pytest.approx(0.01, rel=0.01)
    assert not any(np.any(np.asarray(v["bias"])) for v in p.values())
    apply = jax.jit(model.apply)
    for size in (32, 45):
        y = apply(params, jax.random.normal(jax.random.key(size), (2, size, size, 3)))
        assert y.shape == (2, 7) and bool(jnp.all(jnp.isfinite(y)))


def _manual_adaptive_pool(x, out):
    n, h, w, c = x.shape
    res = np.zeros((n, out, out, c))
    for i in range(out):
        h0, h1 = (i * h) // out, -(-((i + 1) * h) // out)
        for j in range(out):
            w0, w1 = (j * w) // out, -(-((j + 1) * w) // out)
            res[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return res


@pytest.mark.parametrize("size", [1, 3, 7, 10, 14, 15])
def test_adaptive_avg_pool_window_formula(size):
    x = np.random.default_rng(size).standard_normal((2, size, size + 1, 3)).astype(np.float32)
    ours = models.adaptive_avg_pool2d(jnp.asarray(x), (7, 7))
    if size == 7:
        x = x[:, :, :7]
        ours = models.adaptive_avg_pool2d(jnp.asarray(x), (7, 7))
    np.testing.assert_allclose(ours, _manual_adaptive_pool(x, 7), rtol=1e-6, atol=1e-6)


def test_adaptive_avg_pool_matches_torch():
    torch = pytest.importorskip("torch")
    for h, w in [(1, 1), (3, 5), (8, 7), (10, 13), (14, 14)]:
        x = np.random.default_rng(h * w).standard_normal((2, 3, h, w)).astype(np.float32)
        theirs = torch.nn.AdaptiveAvgPool2d((7, 7))(torch.from_numpy(x)).numpy()
        ours = models.adaptive_avg_pool2d(jnp.asarray(x.transpose(0, 2, 3, 1)), (7, 7))
        np.testing.assert_allclose(np.transpose(ours, (0, 3, 1, 2)), theirs, rtol=1e-6, atol=1e-6)


def test_dropout_off_by_default_and_on_in_training():
    model = models.TwoLayerNet()
    x = jax.random.normal(jax.random.key(0), (8, 784))
    params = model.init(jax.random.key(1), x)
    a = model.apply(params, x)
    np.testing.assert_array_equal(a, model.apply(params, x, deterministic=True))
    k1, k2 = jax.random.split(jax.random.key(2))
    b = model.apply(params, x, deterministic=False, rngs={"dropout": k1})
    c = model.apply(params, x, deterministic=False, rngs={"dropout": k2})
    assert not np.allclose(a, b) and not np.allclose(b, c)
    np.testing.assert_array_equal(
        b, model.apply(params, x, deterministic=False, rngs={"dropout": k1})
    )


@pytest.mark.parametrize("cls", [models.Seed000Net, models.TwoLayerNet])
def test_always_dropout_reproduces_the_seed_defect(cls):
    model = cls(always_dropout=True)
    x = jnp.ones((16, 8 if cls is models.Seed000Net else 784))
    params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    y1 = model.apply(params, x, deterministic=True, rngs={"dropout": jax.random.key(2)})
    y2 = model.apply(params, x, deterministic=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(y1, y2)
    with pytest.raises(ValueError, match="dropout"):
        model.apply(params, x, deterministic=True)


def test_regression_net_dropped_is_identity_in_eval():
    model = models.RegressionNet(hidden=32, dropout_rate=0.5)
    x = jnp.linspace(-1, 1, 20)[:, None]
    params = model.init(jax.random.key(0), x)
    p = params["params"]
    h = jax.nn.relu(x @ p["layers_0"]["kernel"] + p["layers_0"]["bias"])
    h = jax.nn.relu(h @ p["layers_3"]["kernel"] + p["layers_3"]["bias"])
    expected = h @ p["layers_6"]["kernel"] + p["layers_6"]["bias"]
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-6)


def test_dropout_mlp_traced_rates_one_compilation():
    model = models.DropoutMLP(num_hiddens1=64, num_hiddens2=32)
    x = jax.random.normal(jax.random.key(0), (16, 784))
    params = model.init(jax.random.key(1), x)
    traces = []

    @jax.jit
    def run(r1, r2, key):
        traces.append(None)
        return model.apply(params, x, deterministic=False, rates=(r1, r2), rngs={"dropout": key})

    key = jax.random.key(2)
    outs = [run(jnp.float32(r1), jnp.float32(r2), key) for r1, r2 in [(0.0, 0.0), (0.3, 0.6)]]
    assert len(traces) == 1
    np.testing.assert_allclose(outs[0], model.apply(params, x), rtol=1e-6, atol=1e-6)
    assert not np.allclose(outs[1], outs[0])
    # rates = 1 drop everything: the output is the last bias, finite (no 0 * inf).
    ones = run(jnp.float32(1.0), jnp.float32(1.0), key)
    bias = params["params"]["lin3"]["bias"]
    np.testing.assert_allclose(ones, jnp.broadcast_to(bias, ones.shape), rtol=1e-6)


def test_dropout_mlp_vmapped_rates():
    model = models.DropoutMLP(num_hiddens1=32, num_hiddens2=32)
    x = jax.random.normal(jax.random.key(0), (64, 784))
    params = model.init(jax.random.key(1), x)

    def zero_fraction(r):
        out, state = model.apply(
            params,
            x,
            deterministic=False,
            rates=(r, jnp.float32(0.0)),
            rngs={"dropout": jax.random.key(3)},
            capture_intermediates=True,
            mutable=["intermediates"],
        )
        h = state["intermediates"]["Dropout_0"]["__call__"][0]
        return jnp.mean(h == 0)

    fracs = jax.vmap(zero_fraction)(jnp.array([0.0, 0.5, 0.9], jnp.float32))
    assert fracs[0] < fracs[1] < fracs[2]


def test_bad_model_options_raise():
    x = jnp.ones((1, 784))
    with pytest.raises(ValueError, match="style"):
        models.DropoutMLP(style="fancy").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="weight_init"):
        models.DropoutMLP(weight_init="xavier").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="rates"):
        models.DropoutMLP().init(jax.random.key(0), x, rates=(0.1,))
    with pytest.raises(ValueError, match="weight_init"):
        models.VGG16(weight_init="he").init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))


def test_weight_decay_mlp_init_recipe():
    params = models.WeightDecayMLP().init(jax.random.key(0), jnp.ones((1, 784)))["params"]
    assert float(jnp.std(params["W1"])) == pytest.approx(1.0, rel=0.02)
    assert not np.any(np.asarray(params["b1"])) and not np.any(np.asarray(params["b2"]))


def test_float64_parameters():
    with jax.enable_x64(True):
        model = models.DropoutMLP(param_dtype=jnp.float64)
        x = jnp.ones((2, 784), jnp.float64)
        params = model.init(jax.random.key(0), x)
        assert params["params"]["lin1"]["kernel"].dtype == jnp.float64
        assert model.apply(params, x).dtype == jnp.float64

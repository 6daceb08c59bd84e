"""Tests for jaxreg.nnx (Flax NNX dropout modules, seed 003's MLP) and for jaxreg's masks,
penalties and torch-equivalent optimizers on NNX state and through nnx.Optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxreg
from jaxreg import models
from jaxreg.nnx import Dropout, DropoutMLP, Hyperparameter, VanillaDropout

SHAPE = (64, 128)


def _x(shape=SHAPE):
    # strictly positive: an output element is 0 exactly when it was dropped
    return jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, shape), jnp.float32)


# --- Dropout ---


def test_dropout_invariant_and_keep_fraction():
    layer = Dropout(0.3, rngs=nnx.Rngs(dropout=0))
    x = _x()
    y = layer(x)
    assert bool(jnp.all((y == 0) | (y == x * (1 / jnp.float32(0.7)))))
    frac = float(jnp.mean(y != 0))
    sd = np.sqrt(0.3 * 0.7 / x.size)
    assert abs(frac - 0.7) < 5 * sd


def test_dropout_equals_the_functional_core_with_the_same_key():
    key = jax.random.key(3)
    layer = Dropout(0.4)
    np.testing.assert_array_equal(layer(_x(), rngs=key), jaxreg.dropout(_x(), 0.4, key=key))
    # the stream's key is the one the functional core would get from the same stream
    stream_layer = Dropout(0.4, rngs=nnx.Rngs(dropout=5))
    stream = nnx.Rngs(dropout=5)["dropout"].fork()
    np.testing.assert_array_equal(stream_layer(_x()), jaxreg.dropout(_x(), 0.4, key=stream()))


def test_dropout_streams_advance_and_layers_are_independent():
    rngs = nnx.Rngs(dropout=0)
    a, b = Dropout(0.5, rngs=rngs), Dropout(0.5, rngs=rngs)
    x = _x()
    ya1, ya2, yb = a(x), a(x), b(x)
    assert not bool(jnp.all((ya1 == 0) == (ya2 == 0)))
    assert not bool(jnp.all((ya1 == 0) == (yb == 0)))
    # reproducible from the seed
    again = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
    np.testing.assert_array_equal(again(x), ya1)


def test_dropout_modes_eval_train_view_and_call_time():
    class Net(nnx.Module):
        def __init__(self):
            self.drop = Dropout(0.5, rngs=nnx.Rngs(dropout=0))

        def __call__(self, x):
            return self.drop(x)

    net, x = Net(), _x()
    assert bool(jnp.any(net(x) != x))
    net.eval()
    np.testing.assert_array_equal(net(x), x)
    assert bool(jnp.any(net.drop(x, deterministic=False) != x))
    net.train()
    assert bool(jnp.any(net(x) != x))
    np.testing.assert_array_equal(nnx.view(net, deterministic=True)(x), x)
    with pytest.raises(ValueError, match="deterministic is None"):
        Dropout(0.5, deterministic=None)(x)


def test_dropout_edge_rates():
    x = _x()
    # rate 0 needs no key and returns the input itself; rate 1 gives zeros
    np.testing.assert_array_equal(Dropout(0.0)(x), x)
    y = Dropout(1.0, rngs=nnx.Rngs(dropout=0))(x)
    np.testing.assert_array_equal(y, jnp.zeros_like(x))


def test_dropout_errors():
    x = _x()
    with pytest.raises(ValueError, match=r"needs a PRNG key: pass rngs=nnx.Rngs\(dropout=seed\)"):
        Dropout(0.5)(x)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got 1.5"):
        Dropout(1.5)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got nan"):
        Dropout(float("nan"))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\], got -0.1"):
        Dropout(0.5, rngs=nnx.Rngs(dropout=0))(x, rate=-0.1)
    with pytest.raises(ValueError, match="rngs has no 'dropout' stream"):
        Dropout(0.5, rngs=nnx.Rngs(params=0))
    with pytest.raises(TypeError, match="rngs must be an nnx.Rngs"):
        Dropout(0.5, rngs=0)
    with pytest.raises(TypeError, match="rngs must be an nnx.Rngs, an nnx.RngStream or a key"):
        Dropout(0.5)(x, rngs=3)


def test_dropout_rate_is_traced_state_no_recompile():
    traces = []

    @nnx.jit
    def apply(layer, x):
        traces.append(1)
        return layer(x)

    layer, x = Dropout(0.1, rngs=nnx.Rngs(dropout=0)), _x()
    fractions = []
    for rate in (0.1, 0.5, 0.9):
        layer.rate[...] = rate
        fractions.append(float(jnp.mean(apply(layer, x) != 0)))
    assert len(traces) == 1
    assert fractions[0] > fractions[1] > fractions[2]
    assert isinstance(layer.rate, Hyperparameter)
    assert not jax.tree.leaves(nnx.state(layer, nnx.Param))


def test_dropout_vmap_over_call_time_rates():
    traces = []
    layer, x, key = Dropout(0.5), _x((20_000,)), jax.random.key(1)

    @jax.jit
    def sweep(rates):
        traces.append(1)
        return jax.vmap(lambda r: layer(x, rate=r, rngs=key))(rates)

    rates = jnp.array([0.0, 0.2, 0.5, 0.8])
    ys = sweep(rates)
    sweep(rates[::-1])
    assert len(traces) == 1
    for y, r in zip(ys, rates, strict=True):
        np.testing.assert_array_equal(y, jaxreg.dropout(x, r, key=key))


# --- VanillaDropout ---


def test_vanilla_dropout_training_and_prediction():
    layer, x = VanillaDropout(0.25, rngs=nnx.Rngs(dropout=0)), _x()
    y = layer(x)
    assert bool(jnp.all((y == 0) | (y == x)))
    assert abs(float(jnp.mean(y != 0)) - 0.25) < 0.02
    layer.eval()
    np.testing.assert_array_equal(layer(x), x * 0.25)
    with pytest.raises(ValueError, match=r"keep_prob must be in \[0, 1\]"):
        VanillaDropout(2.0)


# --- masks and penalties on nnx.State ---


class _Block(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(4, 3, rngs=rngs)
        self.norm = nnx.LayerNorm(3, rngs=rngs)
        self.conv = nnx.Conv(2, 2, (3,), rngs=rngs)
        self.drop = Dropout(0.5, rngs=rngs)


def _block():
    return _Block(nnx.Rngs(0))


def test_weights_only_finds_nnx_kernels():
    state = nnx.state(_block(), nnx.Param)
    expected = {
        "lin": {"kernel": True, "bias": False},
        "norm": {"scale": False, "bias": False},
        "conv": {"kernel": True, "bias": False},
    }
    for tree in (state, nnx.as_pure(state), nnx.to_pure_dict(state)):
        flags = jaxreg.resolve_mask(jaxreg.weights_only, tree)
        assert (nnx.to_pure_dict(flags) if isinstance(flags, nnx.State) else flags) == expected
    # the flags keep the state's structure, Variable nodes included
    assert jax.tree.structure(jaxreg.weights_only(state)) == jax.tree.structure(state)


def test_path_mask_on_nnx_paths_without_value():
    state = nnx.state(_block(), nnx.Param)
    flags = nnx.to_pure_dict(jaxreg.path_mask(r"^lin/")(state))
    assert flags["lin"] == {"kernel": True, "bias": True}
    assert flags["conv"] == {"kernel": False, "bias": False}
    assert nnx.to_pure_dict(jaxreg.path_mask(r"/kernel$")(state))["conv"]["kernel"] is True


def test_penalties_on_nnx_state_values_and_grads():
    model = _block()
    state = nnx.state(model, nnx.Param)
    kernels = [model.lin.kernel[...], model.conv.kernel[...]]
    expected = 0.5 * sum(float(jnp.sum(k**2)) for k in kernels)
    for tree in (state, nnx.as_pure(state)):
        got = jaxreg.l2_penalty(tree, mask=jaxreg.weights_only)
        np.testing.assert_allclose(float(got), expected, rtol=1e-6)

    def loss(m):
        return jaxreg.l2_penalty(nnx.state(m, nnx.Param), mask=jaxreg.weights_only)

    grads = nnx.grad(loss)(model)
    np.testing.assert_allclose(grads["lin"]["kernel"][...], model.lin.kernel[...], rtol=1e-6)
    np.testing.assert_array_equal(grads["lin"]["bias"][...], jnp.zeros(3))
    np.testing.assert_array_equal(grads["norm"]["scale"][...], jnp.zeros(3))
    with pytest.raises(TypeError, match="mask"):
        jaxreg.l1_penalty(state, mask=lambda path: path.endswith("kernel"))


# --- torch_sgd / torch_adam through nnx.Optimizer ---


def _loss(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: jaxreg.torch_sgd(0.1, momentum=0.9, weight_decay=0.05, mask=jaxreg.weights_only),
        lambda: jaxreg.torch_adam(0.01, weight_decay=0.05, mask=jaxreg.weights_only),
        lambda: jaxreg.torch_adamw(0.01, weight_decay=0.05, mask=jaxreg.path_mask(r"kernel$")),
    ],
    ids=["torch_sgd", "torch_adam", "torch_adamw"],
)
def test_torch_optimizers_through_nnx_optimizer_match_plain_optax(make_tx):
    model = DropoutMLP(6, 8, 8, 3, rngs=nnx.Rngs(0))
    model.eval()
    x = jax.random.uniform(jax.random.key(1), (16, 6))
    y = jnp.arange(16) % 3
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    pure = initial = nnx.as_pure(params)

    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)
    for _ in range(3):
        grads = nnx.grad(_loss)(model, x, y)
        optimizer.update(model, grads)

    tx = make_tx()
    opt_state = tx.init(pure)

    def plain_loss(p):
        return _loss(nnx.merge(graphdef, p, rest), x, y)

    for _ in range(3):
        g = jax.grad(plain_loss)(pure)
        updates, opt_state = tx.update(g, opt_state, pure)
        pure = optax.apply_updates(pure, updates)

    ours = nnx.as_pure(nnx.state(model, nnx.Param))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, pure)
    assert not np.allclose(ours["lin1"]["kernel"], initial["lin1"]["kernel"])


def test_weight_decay_through_nnx_optimizer_skips_biases():
    model = DropoutMLP(6, 8, 8, 3, rngs=nnx.Rngs(0))
    before = nnx.as_pure(nnx.state(model, nnx.Param))
    lr, wd = 0.1, 0.5
    optimizer = nnx.Optimizer(
        model, jaxreg.torch_sgd(lr, weight_decay=wd, mask=jaxreg.weights_only), wrt=nnx.Param
    )
    zero_grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    optimizer.update(model, zero_grads)
    after = nnx.as_pure(nnx.state(model, nnx.Param))
    for name in ("lin1", "lin2", "lin3"):
        np.testing.assert_allclose(
            after[name]["kernel"], before[name]["kernel"] * (1 - lr * wd), rtol=1e-6
        )
        np.testing.assert_array_equal(after[name]["bias"], before[name]["bias"])


# --- DropoutMLP ---


def test_dropout_mlp_modes_init_and_linen_twin():
    model = DropoutMLP(rngs=nnx.Rngs(params=0, dropout=1))
    x = jax.random.uniform(jax.random.key(2), (4, 1, 28, 28))
    assert model(x).shape == (4, 10)
    assert not bool(jnp.all(model(x) == model(x)))  # training: a new mask per call
    # torch's nn.Linear init: |w|, |b| <= 1 / sqrt(fan_in)
    assert float(jnp.abs(model.lin1.kernel[...]).max()) <= 1 / np.sqrt(784)
    assert float(jnp.abs(model.lin2.bias[...]).max()) <= 1 / np.sqrt(256)
    assert (float(model.drop1.rate[...]), float(model.drop2.rate[...])) == (
        pytest.approx(0.2),
        0.5,
    )
    model.eval()
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    linen = models.DropoutMLP().apply({"params": params}, x, deterministic=True)
    np.testing.assert_allclose(model(x), linen, rtol=1e-6, atol=1e-6)


# --- the noise family ---

NOISE = [
    (jaxreg.nnx.GaussianDropout, jaxreg.gaussian_dropout, 0.3, (8, 6)),
    (jaxreg.nnx.AlphaDropout, jaxreg.alpha_dropout, 0.3, (8, 6)),
    (jaxreg.nnx.FeatureAlphaDropout, jaxreg.feature_alpha_dropout, 0.3, (4, 5, 6)),
    (jaxreg.nnx.DropPath, jaxreg.drop_path, 0.3, (8, 6)),
    (jaxreg.nnx.SpatialDropout, jaxreg.spatial_dropout, 0.3, (4, 5, 6)),
    (jaxreg.nnx.Dropout1d, jaxreg.dropout1d, 0.3, (4, 5, 6)),
    (jaxreg.nnx.Dropout2d, jaxreg.dropout2d, 0.3, (2, 3, 4, 6)),
    (jaxreg.nnx.Dropout3d, jaxreg.dropout3d, 0.3, (2, 3, 3, 4, 6)),
    (jaxreg.nnx.GaussianNoise, jaxreg.gaussian_noise, 0.2, (8, 6)),
]


@pytest.mark.parametrize("cls, fn, value, shape", NOISE, ids=[c[0].__name__ for c in NOISE])
def test_noise_layers_match_the_functional_core(cls, fn, value, shape):
    x = _x(shape)
    layer = cls(value, rngs=nnx.Rngs(dropout=7))
    stream = nnx.Rngs(dropout=7)["dropout"].fork()
    name = "stddev" if cls is jaxreg.nnx.GaussianNoise else "rate"
    # the layer computes with its stored value (float32 here), as a traced strength would
    stored = getattr(layer, name)[...]
    np.testing.assert_allclose(float(stored), value, rtol=1e-7)
    y = layer(x)
    np.testing.assert_array_equal(y, fn(x, stored, key=stream()))
    assert not bool(jnp.all(y == x))
    np.testing.assert_array_equal(layer(x), fn(x, stored, key=stream()))  # the stream advanced
    key = jax.random.key(3)
    np.testing.assert_array_equal(layer(x, rngs=key, **{name: 0.1}), fn(x, 0.1, key=key))
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        cls(value)(x)
    with pytest.raises(ValueError, match=name):
        cls(-1.0)


def test_noise_strength_is_traced_state_no_recompile():
    traces = []

    @nnx.jit
    def apply(layer, x):
        traces.append(1)
        return layer(x)

    layer, x = jaxreg.nnx.GaussianNoise(0.1, rngs=nnx.Rngs(dropout=0)), jnp.zeros((20_000,))
    stds = []
    for stddev in (0.1, 0.5, 2.0):
        layer.stddev[...] = stddev
        stds.append(float(apply(layer, x).std()))
    assert len(traces) == 1
    np.testing.assert_allclose(stds, [0.1, 0.5, 2.0], rtol=0.05)

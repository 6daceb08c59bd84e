"""The whole random family held to docs/api.md: key argument, strength name, mode default.

One table per family (functions, Linen layers, Linen models, NNX layers); each row is checked by
signature inspection and by behaviour: training without a key raises naming the culprit,
evaluation needs no key, and the strength's keyword overrides the stored value.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxreg
from jaxreg import models

P = inspect.Parameter
X = jnp.full((2, 3, 4), 1.5)
KEY = jax.random.key(0)

# name -> strength parameter (docs/api.md: `rate` unless the table says otherwise).
FUNCTIONS = {
    "dropout": "rate",
    "vanilla_dropout": "keep_prob",
    "drop_connect": "rate",
    "gaussian_dropout": "rate",
    "gaussian_noise": "stddev",
    "drop_path": "rate",
    "alpha_dropout": "rate",
    "feature_alpha_dropout": "rate",
    "spatial_dropout": "rate",
    "dropout1d": "rate",
    "dropout2d": "rate",
    "dropout3d": "rate",
}
LAYERS = {
    "Dropout": "rate",
    "VanillaDropout": "keep_prob",
    "DropConnectDense": "rate",
    "GaussianDropout": "rate",
    "GaussianNoise": "stddev",
    "AlphaDropout": "rate",
    "FeatureAlphaDropout": "rate",
    "DropPath": "rate",
    "SpatialDropout": "rate",
    "Dropout1d": "rate",
    "Dropout2d": "rate",
    "Dropout3d": "rate",
}


def _input(name):
    return {"dropout2d": X[None], "dropout3d": X[None, None]}.get(name, X)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_convention(name):
    fn, strength = getattr(jaxreg, name), FUNCTIONS[name]
    params = inspect.signature(fn).parameters
    names = list(params)
    assert names[1] == strength and params[strength].kind is P.POSITIONAL_OR_KEYWORD
    assert params["key"].kind is P.KEYWORD_ONLY and params["key"].default is None
    assert params["deterministic"].kind is P.KEYWORD_ONLY
    assert params["deterministic"].default is False  # training unless told
    x = _input(name)
    with pytest.raises(ValueError, match=f"{name}: key is None in training mode"):
        fn(x, 0.5)
    y_eval = fn(x, 0.5, deterministic=True)
    assert y_eval.shape == x.shape and y_eval.dtype == x.dtype
    y_train = fn(x, 0.5, key=KEY)
    assert y_train.shape == x.shape and not np.array_equal(y_train, y_eval)
    # Same key, same draw.
    np.testing.assert_array_equal(fn(x, 0.5, key=KEY), y_train)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_linen_layer_convention(name):
    cls, strength = getattr(jaxreg.nn, name), LAYERS[name]
    fields = {f.name: f for f in cls.__dataclass_fields__.values()}
    assert fields["deterministic"].default is None  # given exactly once: no default mode
    assert fields["rng_collection"].default == "dropout"
    assert strength in fields
    call = inspect.signature(cls.__call__).parameters
    assert list(call)[1:4] == ["inputs", "deterministic", "rng"]  # flax.linen.Dropout's order
    assert call[strength].kind is P.KEYWORD_ONLY and call[strength].default is None
    layer = cls(3, 0.5) if name == "DropConnectDense" else cls(0.5)
    x = _input(name.lower())
    variables = layer.init(KEY, x, deterministic=True)
    with pytest.raises(ValueError, match="deterministic"):
        layer.apply(variables, x)  # neither attribute nor call gives the mode
    with pytest.raises(ValueError, match=f"{name} in training mode.*'dropout' collection"):
        layer.apply(variables, x, deterministic=False)
    y_eval = layer.apply(variables, x, deterministic=True)
    y_train = layer.apply(variables, x, False, rngs={"dropout": KEY})
    assert y_train.shape == y_eval.shape and not np.array_equal(y_train, y_eval)
    # rng= at call time: a key of its own, the same draw for the same key.
    y_rng = layer.apply(variables, x, False, KEY)
    np.testing.assert_array_equal(layer.apply(variables, x, False, KEY), y_rng)
    assert not np.array_equal(y_rng, y_eval)
    # The call's keyword overrides the attribute: a zero strength is the evaluation output.
    zero = layer.apply(variables, x, False, rngs={"dropout": KEY}, **{strength: 0.0})
    if strength == "keep_prob":
        zero = layer.apply(variables, x, False, rngs={"dropout": KEY}, keep_prob=1.0)
    np.testing.assert_array_equal(zero, y_eval if strength != "keep_prob" else x)


MODELS = {
    "DropoutMLP": (lambda: models.DropoutMLP(4, 3, 3, 2), (2, 4)),
    "NoiseMLP": (lambda: models.NoiseMLP("dropout", 0.5, 4, 3, 3, 2), (2, 4)),
    "Seed000Net": (lambda: models.Seed000Net(), (2, 4)),
    "TwoLayerNet": (lambda: models.TwoLayerNet(dim_in=4, dim_hid=3, dim_out=2), (2, 4)),
    "RegressionNet": (lambda: models.RegressionNet(dropout_rate=0.5), (2, 1)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_linen_model_convention(name):
    make, shape = MODELS[name]
    model, x = make(), jnp.ones(shape)
    param = inspect.signature(type(model).__call__).parameters["deterministic"]
    assert param.kind is P.KEYWORD_ONLY and param.default is True  # evaluation unless told
    variables = model.init(KEY, x)
    np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x))
    with pytest.raises(ValueError, match="training mode.*'dropout' collection"):
        model.apply(variables, x, deterministic=False)
    model.apply(variables, x, deterministic=False, rngs={"dropout": KEY})


def _nnx_layer(name, rate, **kw):
    cls = getattr(jaxreg.nnx, name)
    if name == "DropConnectDense":
        # Its Rngs also initializes the kernel; an Rngs without the stream is refused by name.
        with pytest.raises(ValueError, match="DropConnectDense: rngs has no 'dropout' stream"):
            cls(4, 3, rate, rngs=nnx.Rngs(params=0))
        if "rngs" in kw:
            return cls(4, 3, rate, **kw)
        layer = cls(4, 3, rate, rngs=nnx.Rngs(params=0, dropout=1))
        layer.rngs = None  # as a layer built with rngs=None: keys only at call time
        return layer
    return cls(rate, **kw)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_nnx_layer_convention(name):
    cls, strength = getattr(jaxreg.nnx, name), LAYERS[name]
    init = inspect.signature(cls.__init__).parameters
    assert strength in init
    assert init["deterministic"].kind is P.KEYWORD_ONLY and init["deterministic"].default is False
    assert init["rng_collection"].default == "dropout" and "rngs" in init
    call = inspect.signature(cls.__call__).parameters
    for keyword in ("deterministic", strength, "rngs"):
        assert call[keyword].kind is P.KEYWORD_ONLY and call[keyword].default is None
    # No dropout stream: training has no key to draw (DropConnectDense's Rngs has params only).
    layer = _nnx_layer(name, 0.5)
    X = _input(name.lower())
    with pytest.raises(ValueError, match=f"{name}"):
        layer(X)
    y_eval = layer(X, deterministic=True)
    layer.eval()
    np.testing.assert_array_equal(layer(X), y_eval)
    layer.train()
    y_train = layer(X, rngs=KEY)
    assert not np.array_equal(y_train, y_eval)
    np.testing.assert_array_equal(layer(X, rngs=KEY), y_train)
    zero = 1.0 if strength == "keep_prob" else 0.0
    expected = X if strength == "keep_prob" else y_eval
    np.testing.assert_array_equal(layer(X, rngs=KEY, **{strength: zero}), expected)
    # A dropout stream at construction is used without a call-time key.
    rngs = nnx.Rngs(params=0, dropout=1)
    assert _nnx_layer(name, 0.5, rngs=rngs)(X).shape == y_train.shape


def test_nnx_model_trains_until_eval():
    model = jaxreg.nnx.DropoutMLP(4, 3, 3, 2, rngs=nnx.Rngs(params=0, dropout=1))
    x = jnp.ones((8, 4))
    assert not np.array_equal(model(x), model(x))  # training: a fresh mask per call
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


@pytest.mark.parametrize("module", [jaxreg.nn, jaxreg.nnx])
def test_every_layer_is_in_the_table(module):
    # A new random layer must be added to docs/api.md and to LAYERS (flatten, pool: not random).
    others = ("Hyperparameter", "DropoutMLP", "TorchFlatten", "flatten_nchw", "max_pool2d")
    layers = {n for n in module.__all__ if n not in others}
    assert layers == set(LAYERS)


def test_every_random_function_is_in_the_table():
    public = {
        n
        for n in jaxreg.__all__
        if callable(getattr(jaxreg, n))
        and "deterministic" in getattr(inspect.signature(getattr(jaxreg, n)), "parameters", {})
    }
    assert public == set(FUNCTIONS)

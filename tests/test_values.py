"""Values checked as they are meant: mode flags, strengths, NaN through penalties, keyword masks."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxreg
from jaxreg import models

X = jnp.ones((2, 3, 4))
KEY = jax.random.key(0)

# Every function with a mode flag: a call taking the flag as keyword `deterministic`.
FUNCTIONS = {
    "dropout": lambda d: jaxreg.dropout(X, 0.5, key=KEY, deterministic=d),
    "vanilla_dropout": lambda d: jaxreg.vanilla_dropout(X, 0.5, key=KEY, deterministic=d),
    "drop_connect": lambda d: jaxreg.drop_connect(X, 0.5, key=KEY, deterministic=d),
    "gaussian_dropout": lambda d: jaxreg.gaussian_dropout(X, 0.5, key=KEY, deterministic=d),
    "gaussian_noise": lambda d: jaxreg.gaussian_noise(X, 0.5, key=KEY, deterministic=d),
    "drop_path": lambda d: jaxreg.drop_path(X, 0.5, key=KEY, deterministic=d),
    "alpha_dropout": lambda d: jaxreg.alpha_dropout(X, 0.5, key=KEY, deterministic=d),
    "feature_alpha_dropout": lambda d: jaxreg.feature_alpha_dropout(
        X, 0.5, key=KEY, deterministic=d
    ),
    "spatial_dropout": lambda d: jaxreg.spatial_dropout(X, 0.5, key=KEY, deterministic=d),
    "dropout1d": lambda d: jaxreg.dropout1d(X, 0.5, key=KEY, deterministic=d),
    "dropout2d": lambda d: jaxreg.dropout2d(X[None], 0.5, key=KEY, deterministic=d),
    "dropout3d": lambda d: jaxreg.dropout3d(X[None, None], 0.5, key=KEY, deterministic=d),
}

LINEN_LAYERS = {
    "Dropout": jaxreg.nn.Dropout(0.5),
    "VanillaDropout": jaxreg.nn.VanillaDropout(0.5),
    "GaussianDropout": jaxreg.nn.GaussianDropout(0.5),
    "GaussianNoise": jaxreg.nn.GaussianNoise(0.5),
    "DropPath": jaxreg.nn.DropPath(0.5),
    "AlphaDropout": jaxreg.nn.AlphaDropout(0.5),
    "SpatialDropout": jaxreg.nn.SpatialDropout(0.5),
}

NNX_LAYERS = {
    "Dropout": jaxreg.nnx.Dropout,
    "VanillaDropout": jaxreg.nnx.VanillaDropout,
    "GaussianDropout": jaxreg.nnx.GaussianDropout,
    "GaussianNoise": jaxreg.nnx.GaussianNoise,
    "DropPath": jaxreg.nnx.DropPath,
    "AlphaDropout": jaxreg.nnx.AlphaDropout,
    "SpatialDropout": jaxreg.nnx.SpatialDropout,
    "DropConnectDense": lambda *a, **k: jaxreg.nnx.DropConnectDense(4, 2, *a, **k),
}

# A truthy string, a number, an array and (for functions) None, which has no documented
# meaning there: each would have picked a mode silently.
BAD_FLAGS = ["False", "True", 0, 1.0, np.array(False), jnp.array(True)]


@pytest.mark.parametrize("bad", BAD_FLAGS + [None], ids=repr)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_mode_flag_must_be_a_bool(name, bad):
    with pytest.raises(ValueError, match=f"{name.split('_')[0]}.*deterministic must be a bool"):
        FUNCTIONS[name](bad)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_mode_flag_accepts_python_and_numpy_bools_and_refuses_a_traced_one(name):
    np.testing.assert_array_equal(FUNCTIONS[name](True), FUNCTIONS[name](np.bool_(True)))
    FUNCTIONS[name](np.bool_(False))
    with pytest.raises(ValueError, match="deterministic is traced.*static_argnames"):
        jax.jit(FUNCTIONS[name])(True)


@pytest.mark.parametrize("bad", BAD_FLAGS, ids=repr)
@pytest.mark.parametrize("name", sorted(LINEN_LAYERS))
def test_linen_mode_flag_must_be_a_bool(name, bad):
    layer = LINEN_LAYERS[name]
    rngs = {"dropout": KEY}
    with pytest.raises(ValueError, match=f"{name}: deterministic must be a bool"):
        layer.apply({}, X, deterministic=bad, rngs=rngs)
    with pytest.raises(ValueError, match=f"{name}: deterministic must be a bool"):
        layer.clone(deterministic=bad).apply({}, X, rngs=rngs)


@pytest.mark.parametrize("bad", BAD_FLAGS, ids=repr)
@pytest.mark.parametrize("name", sorted(NNX_LAYERS))
def test_nnx_mode_flag_must_be_a_bool_or_none(name, bad):
    make = NNX_LAYERS[name]
    with pytest.raises(ValueError, match="deterministic must be a bool"):
        make(0.5, deterministic=bad, rngs=nnx.Rngs(0))
    layer = make(0.5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="deterministic must be a bool"):
        layer(X, deterministic=bad)
    # None at call time: the module's own mode (here training), documented.
    assert layer(X, deterministic=None).shape[:-1] == X.shape[:-1]


MODELS = {
    "Seed000Net": (models.Seed000Net(), jnp.ones((2, 4))),
    "TwoLayerNet": (models.TwoLayerNet(dim_in=4, dim_hid=3, dim_out=2), jnp.ones((2, 4))),
    "RegressionNet": (models.RegressionNet(dropout_rate=0.5), jnp.ones((2, 1))),
    "DropoutMLP": (models.DropoutMLP(4, 3, 3, 2), jnp.ones((2, 4))),
    "NoiseMLP": (models.NoiseMLP("none", 0.0, 4, 3, 3, 2), jnp.ones((2, 4))),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_mode_flag_must_be_a_bool(name):
    model, x = MODELS[name]
    params = model.init(KEY, x)
    with pytest.raises(ValueError, match=f"{name}: deterministic must be a bool"):
        model.apply(params, x, deterministic="False", rngs={"dropout": KEY})


# Every strength: (owner, build) where build(value) constructs with that strength.
STRENGTHS = {
    "add_l1.l1": lambda v: jaxreg.add_l1(v),
    "l1_prox.l1": lambda v: jaxreg.l1_prox(v, 0.1),
    "l1_prox.learning_rate": lambda v: jaxreg.l1_prox(0.1, v),
    "coupled_weight_decay.weight_decay": lambda v: jaxreg.coupled_weight_decay(v),
    "decoupled_weight_decay.weight_decay": lambda v: jaxreg.decoupled_weight_decay(v, 0.1),
    "decoupled_weight_decay.learning_rate": lambda v: jaxreg.decoupled_weight_decay(0.1, v),
    "max_norm.max_value": lambda v: jaxreg.max_norm(v),
    "elastic_net_prox.l1": lambda v: jaxreg.elastic_net_prox(v, 0.1, 0.1),
    "elastic_net_prox.l2": lambda v: jaxreg.elastic_net_prox(0.1, v, 0.1),
    "group_lasso_prox.strength": lambda v: jaxreg.group_lasso_prox(v, 0.1),
    "torch_sgd.lr": lambda v: jaxreg.torch_sgd(v),
    "torch_sgd.momentum": lambda v: jaxreg.torch_sgd(0.1, momentum=v),
    "torch_sgd.dampening": lambda v: jaxreg.torch_sgd(0.1, momentum=0.9, dampening=v),
    "torch_sgd.weight_decay": lambda v: jaxreg.torch_sgd(0.1, weight_decay=v),
    "torch_adam.lr": lambda v: jaxreg.torch_adam(v),
    "torch_adam.eps": lambda v: jaxreg.torch_adam(1e-3, eps=v),
    "torch_adam.betas[0]": lambda v: jaxreg.torch_adam(1e-3, betas=(v, 0.999)),
    "torch_adamw.weight_decay": lambda v: jaxreg.torch_adamw(1e-3, weight_decay=v),
    "dropout.rate": lambda v: jaxreg.dropout(X, v, deterministic=True),
    "gaussian_noise.stddev": lambda v: jaxreg.gaussian_noise(X, v, deterministic=True),
    "nn.Dropout.rate": lambda v: jaxreg.nn.Dropout(v).apply({}, X, True),
    "nnx.Dropout.rate": lambda v: jaxreg.nnx.Dropout(v),
}


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), "0.1", b"0.1"], ids=repr)
@pytest.mark.parametrize("name", sorted(STRENGTHS))
def test_strength_refuses_bools_and_strings_naming_the_parameter(name, bad):
    param = name.rsplit(".", 1)[1].replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(ValueError, match=f"{param} must be"):
        STRENGTHS[name](bad)


@pytest.mark.parametrize("name", sorted(STRENGTHS))
def test_strength_accepts_numbers(name):
    STRENGTHS[name](0.25)
    STRENGTHS[name](np.float32(0.25))


NAN_PENALTIES = {
    "l1_penalty": jaxreg.l1_penalty,
    "l2_penalty": jaxreg.l2_penalty,
    "l2_norm_penalty": jaxreg.l2_norm_penalty,
    "group_lasso_penalty": jaxreg.group_lasso_penalty,
    "group_lasso_penalty axis 1": lambda t: jaxreg.group_lasso_penalty(t, axis=1),
}


@pytest.mark.parametrize("name", sorted(NAN_PENALTIES))
def test_nan_propagates_through_every_penalty_and_zero_keeps_a_zero_gradient(name):
    penalty = NAN_PENALTIES[name]
    w = jnp.array([[1.0, 2.0], [0.5, 3.0]])
    assert np.isnan(penalty({"w": w.at[0, 1].set(jnp.nan), "b": jnp.ones((2, 2))}))
    grad = jax.grad(lambda t: penalty({"w": t}))(jnp.zeros((2, 2)))
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize(
    "fn",
    [jaxreg.add_l1, jaxreg.l1_prox, jaxreg.coupled_weight_decay, jaxreg.decoupled_weight_decay],
)
def test_mask_is_keyword_only_everywhere(fn):
    assert inspect.signature(fn).parameters["mask"].kind is inspect.Parameter.KEYWORD_ONLY

"""Tests for jaxreg.masks: resolve_mask, path_to_str, weights_only, path_mask."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg.masks import path_mask, path_to_str, resolve_mask, weights_only


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.LayerNorm()(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        return nn.Dense(2)(x.reshape(x.shape[0], -1))


def _flax_variables():
    return _Net().init(jax.random.key(0), jnp.ones((1, 5, 5, 1)))


def _seed004_params():
    return {
        "W1": jnp.ones((784, 256)),
        "b1": jnp.zeros(256),
        "W2": jnp.ones((256, 10)),
        "b2": jnp.zeros(10),
    }


# --- path_to_str ---


def test_path_to_str_dicts_lists_and_attributes():
    tree = {"params": {"Dense_0": {"kernel": 1}}, "layers": [2, (3,)]}
    paths = [path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    assert paths == ["layers/0", "layers/1/0", "params/Dense_0/kernel"]

    class Holder:
        def __init__(self, w):
            self.w = w

    jax.tree_util.register_pytree_with_keys(
        Holder,
        lambda h: (((jax.tree_util.GetAttrKey("w"), h.w),), None),
        lambda _, children: Holder(*children),
    )
    ((keypath, _),) = jax.tree_util.tree_flatten_with_path(Holder(1.0))[0]
    assert path_to_str(keypath) == "w"
    assert path_to_str(()) == ""


def test_path_to_str_flax_params():
    params = _flax_variables()["params"]
    paths = {path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert "Conv_0/kernel" in paths and "LayerNorm_0/scale" in paths


# --- resolve_mask ---


def test_resolve_mask_none_selects_all():
    tree = {"a": jnp.ones(2), "b": [jnp.ones(1), jnp.ones(3)]}
    assert jax.tree.leaves(resolve_mask(None, tree)) == [True, True, True]


def test_resolve_mask_bool_tree_and_prefix():
    tree = {"enc": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "dec": jnp.ones(2)}
    full = {"enc": {"kernel": True, "bias": False}, "dec": np.bool_(True)}
    assert resolve_mask(full, tree) == {"enc": {"kernel": True, "bias": False}, "dec": True}
    prefix = {"enc": False, "dec": True}
    assert resolve_mask(prefix, tree) == {"enc": {"kernel": False, "bias": False}, "dec": True}
    assert resolve_mask(jnp.array(False), tree)["dec"] is False


def test_resolve_mask_predicate_gets_slash_paths():
    seen = []

    def pred(path):
        seen.append(path)
        return "kernel" in path

    tree = {"params": {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}}
    out = resolve_mask(pred, tree)
    assert out == {"params": {"Dense_0": {"kernel": True, "bias": False}}}
    assert sorted(seen) == ["params/Dense_0/bias", "params/Dense_0/kernel"]


def test_resolve_mask_callable_pytree_of_bools_is_a_tree_mask():
    # an Equinox-style module is callable and a pytree: as a mask it holds bools
    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Model:
        w: object
        b: object

        def __call__(self, x):
            return x * self.w + self.b

    params = Model(w=jnp.ones(2), b=jnp.zeros(2))
    resolved = resolve_mask(Model(w=True, b=False), params)
    assert (resolved.w, resolved.b) == (True, False)
    partial_pred = functools.partial(lambda suffix, path: path.endswith(suffix), "w")
    assert resolve_mask(partial_pred, {"w": 1.0, "b": 2.0}) == {"w": True, "b": False}


def test_resolve_mask_mismatched_structure_raises():
    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="mask structure does not match"):
        resolve_mask({"a": True}, tree)
    with pytest.raises(ValueError, match="mask structure does not match"):
        resolve_mask([True, False], tree)


def test_resolve_mask_non_bool_leaf_raises():
    with pytest.raises(ValueError, match=r"mask leaf at 'a' must be a bool.*got 1"):
        resolve_mask({"a": 1, "b": True}, {"a": jnp.ones(2), "b": jnp.ones(2)})


def test_resolve_mask_traced_leaf_raises():
    def f(flag):
        return resolve_mask({"a": flag}, {"a": jnp.ones(2)})

    with pytest.raises(ValueError, match="static Python bools"):
        jax.jit(f)(True)


def test_resolve_mask_predicate_must_return_bool():
    # The mistake of passing a whole-tree function where a path predicate is expected.
    with pytest.raises(ValueError, match=r"mask=weights_only\(params\)"):
        resolve_mask(weights_only, {"w": jnp.ones((2, 2))})
    with pytest.raises(ValueError, match="must return a bool"):
        resolve_mask(lambda p: None, {"w": jnp.ones(2)})


# --- weights_only ---


def test_weights_only_seed004_raw_params():
    assert weights_only(_seed004_params()) == {"W1": True, "b1": False, "W2": True, "b2": False}


def test_weights_only_flax_kernels_decay_norms_and_biases_dont():
    variables = _flax_variables()
    mask = weights_only(variables["params"])
    assert mask["Conv_0"] == {"kernel": True, "bias": False}
    assert mask["Dense_0"] == {"kernel": True, "bias": False}
    assert mask["LayerNorm_0"] == {"scale": False, "bias": False}
    assert mask["BatchNorm_0"] == {"scale": False, "bias": False}
    # works on the whole variables dict and on abstract shapes too
    full = weights_only(variables)
    assert full["params"]["Conv_0"]["kernel"] is True
    shapes = jax.eval_shape(lambda: variables["params"])
    assert weights_only(shapes) == mask


def test_weights_only_torch_style_names():
    params = {
        "fc1": {"weight": jnp.ones((6, 8)), "bias": jnp.ones(6)},
        "bn": {"weight": jnp.ones(6), "bias": jnp.ones(6)},
        "emb": jnp.ones((10, 3)),
        "offset": jnp.ones((2, 2)),
        "vec": jnp.ones(3),
    }
    mask = weights_only(params)
    assert mask["fc1"] == {"weight": True, "bias": False}
    assert mask["bn"]["bias"] is False
    assert mask["emb"] is True and mask["offset"] is False and mask["vec"] is False


def test_weights_only_rejects_string():
    with pytest.raises(ValueError, match=r"weights_only expects the params pytree"):
        weights_only("lin1/kernel")


def test_weights_only_mask_drives_penalty():
    params = _seed004_params()
    got = jaxreg.l2_penalty(params, weights_only(params))
    np.testing.assert_allclose(got, 0.5 * (784 * 256 + 256 * 10), rtol=1e-6)


# --- path_mask ---


def test_path_mask_include_and_exclude():
    params = _flax_variables()["params"]
    mask = path_mask(params, include=r"/kernel$")
    assert mask["Dense_0"] == {"kernel": True, "bias": False}
    assert mask["LayerNorm_0"] == {"scale": False, "bias": False}
    mask = path_mask(params, include=(r"^Conv", r"^Dense"), exclude=(r"bias$",))
    assert mask["Conv_0"] == {"kernel": True, "bias": False}
    assert mask["LayerNorm_0"]["scale"] is False
    assert all(jax.tree.leaves(path_mask(params)))
    assert not any(jax.tree.leaves(path_mask(params, exclude=".")))


def test_path_mask_invalid_patterns_raise():
    with pytest.raises(ValueError, match=r"include has an invalid regex '\('"):
        path_mask({"a": 1.0}, include="(")
    with pytest.raises(ValueError, match=r"exclude must be regex strings, got 3"):
        path_mask({"a": 1.0}, exclude=[3])
    with pytest.raises(ValueError, match="path_mask expects the params pytree"):
        path_mask("a/b")


def test_public_names_exported():
    for name in ("weights_only", "path_mask", "resolve_mask", "path_to_str"):
        assert getattr(jaxreg, name) is getattr(jaxreg.masks, name)

"""Tests for jaxreg.masks: resolve_mask (optax's mask convention), path_to_str, weights_only,
path_mask; the Flax NNX and Equinox sides are in tests/test_nnx.py and tests/test_equinox.py."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
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


# --- resolve_mask: the accepted forms ---


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


def test_resolve_mask_callable_is_called_on_the_whole_tree():
    seen = []

    def fn(params):
        seen.append(params)
        return {"params": {"Dense_0": {"kernel": True, "bias": False}}}

    tree = {"params": {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}}
    assert resolve_mask(fn, tree) == {"params": {"Dense_0": {"kernel": True, "bias": False}}}
    assert len(seen) == 1 and seen[0] is tree
    # a callable may return a prefix, as a bool tree may be one
    assert resolve_mask(lambda p: {"params": False}, tree)["params"]["Dense_0"]["bias"] is False
    # weights_only, unapplied, is a mask in this convention
    assert resolve_mask(weights_only, _seed004_params()) == weights_only(_seed004_params())
    # so are a callable object and a jax.tree_util.Partial
    partial = jax.tree_util.Partial(lambda flag, p: jax.tree.map(lambda _: flag, p), False)
    assert resolve_mask(partial, {"w": 1.0, "b": 2.0}) == {"w": False, "b": False}


def test_resolve_mask_matches_optax_masked():
    # The same mask value gives the same selection here and in optax.masked.
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    grads = jax.tree.map(jnp.ones_like, params)
    for mask in (weights_only, path_mask(r"^w$"), {"w": True, "b": False}):
        tx = optax.masked(optax.scale(-2.0), mask)
        updates, _ = tx.update(grads, tx.init(params), params)
        flags = resolve_mask(mask, params)
        expected = jax.tree.map(lambda g, m: -2.0 * g if m else g, grads, flags)
        jax.tree.map(np.testing.assert_array_equal, updates, expected)
        assert flags == {"w": True, "b": False}


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
    # the same module holding arrays is a tree of the wrong leaves, not a function to call
    with pytest.raises(ValueError, match=r"mask leaf at 'w' must be a bool"):
        resolve_mask(params, params)


# --- resolve_mask: the wrong kinds are clear errors, never AttributeError ---


def test_resolve_mask_rejects_strings():
    for mask in ("weights_only", "lin1/kernel", b"w"):
        with pytest.raises(TypeError, match=r"mask must be None, a pytree of bools.*string"):
            resolve_mask(mask, {"w": jnp.ones(2), "b": jnp.ones(2)})


def test_resolve_mask_rejects_path_string_predicates():
    tree = {"W1": jnp.ones((2, 2)), "b1": jnp.ones(2)}
    # str methods on the params dict: AttributeError inside, TypeError naming mask outside
    with pytest.raises(TypeError, match=r"mask: .*AttributeError.*jaxreg.path_mask\(fn\)"):
        resolve_mask(lambda path: path.startswith("W"), tree)
    with pytest.raises(TypeError, match=r"mask: .*jaxreg.path_mask\(fn\)"):
        resolve_mask(functools.partial(lambda suffix, path: path.endswith(suffix), "1"), tree)
    # `path == "w"` and `"W" in path` run on a dict and return one bool: still refused
    with pytest.raises(ValueError, match=r"returned the single value False for a tree of 2"):
        resolve_mask(lambda path: path == "W1", tree)
    with pytest.raises(ValueError, match=r"single value False"):
        resolve_mask(lambda path: "W" in path, tree)
    # wrapped in path_mask, the same predicates are right
    assert resolve_mask(path_mask(lambda path: path == "W1"), tree) == {"W1": True, "b1": False}


def test_resolve_mask_rejects_path_leaf_predicates():
    with pytest.raises(TypeError, match=r"mask: .* cannot be called with one argument"):
        resolve_mask(lambda path, leaf: leaf.ndim > 1, {"w": jnp.ones((2, 2))})


def test_resolve_mask_rejects_bad_callable_results():
    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"the tree returned by the callable mask .* does not "):
        resolve_mask(lambda p: {"a": True}, tree)
    with pytest.raises(ValueError, match=r"mask leaf at 'a' must be a bool.*got 1"):
        resolve_mask(lambda p: {"a": 1, "b": True}, tree)
    with pytest.raises(TypeError, match=r"returned 'a', not a pytree of bools"):
        resolve_mask(lambda p: "a", tree)
    with pytest.raises(TypeError, match=r"not a pytree of bools"):
        resolve_mask(lambda p: weights_only, tree)
    # one leaf: a single bool is that leaf's flag
    assert resolve_mask(lambda p: False, {"w": jnp.ones(2)}) == {"w": False}


def test_resolve_mask_mismatched_structure_raises():
    tree = {"a": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="mask does not match the structure"):
        resolve_mask({"a": True}, tree)
    with pytest.raises(ValueError, match="mask does not match the structure"):
        resolve_mask([True, False], tree)


def test_resolve_mask_non_bool_leaf_raises():
    with pytest.raises(ValueError, match=r"mask leaf at 'a' must be a bool.*got 1"):
        resolve_mask({"a": 1, "b": True}, {"a": jnp.ones(2), "b": jnp.ones(2)})


def test_resolve_mask_traced_leaf_raises():
    def f(flag):
        return resolve_mask({"a": flag}, {"a": jnp.ones(2)})

    with pytest.raises(ValueError, match="static Python bools"):
        jax.jit(f)(True)


def test_penalties_and_transforms_take_callable_masks():
    params = _seed004_params()
    for mask in (weights_only, weights_only(params), path_mask(r"^W")):
        got = jaxreg.l2_penalty(params, mask=mask)
        np.testing.assert_allclose(got, 0.5 * (784 * 256 + 256 * 10), rtol=1e-6)
    tx = jaxreg.coupled_weight_decay(0.5, mask=weights_only)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert float(updates["W1"][0, 0]) == 0.5 and float(updates["b1"].sum()) == 0.0
    with pytest.raises(TypeError, match="mask"):
        jaxreg.l2_penalty(params, mask=lambda path: path.startswith("W"))


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
        "dense": {"kernel": jnp.ones(3)},
    }
    mask = weights_only(params)
    assert mask["fc1"] == {"weight": True, "bias": False}
    # a norm layer's 1-D "weight" is its scale: no decay (torch, Equinox LayerNorm)
    assert mask["bn"] == {"weight": False, "bias": False}
    assert mask["emb"] is True and mask["offset"] is False and mask["vec"] is False
    assert mask["dense"]["kernel"] is True


def test_weights_only_rejects_string():
    with pytest.raises(TypeError, match=r"weights_only expects the params pytree"):
        weights_only("lin1/kernel")


def test_weights_only_mask_drives_penalty():
    params = _seed004_params()
    got = jaxreg.l2_penalty(params, mask=weights_only(params))
    np.testing.assert_allclose(got, 0.5 * (784 * 256 + 256 * 10), rtol=1e-6)


# --- path_mask ---


def test_path_mask_include_and_exclude():
    params = _flax_variables()["params"]
    mask = path_mask(r"/kernel$")(params)
    assert mask["Dense_0"] == {"kernel": True, "bias": False}
    assert mask["LayerNorm_0"] == {"scale": False, "bias": False}
    mask = path_mask(include=(r"^Conv", r"^Dense"), exclude=(r"bias$",))(params)
    assert mask["Conv_0"] == {"kernel": True, "bias": False}
    assert mask["LayerNorm_0"]["scale"] is False
    assert all(jax.tree.leaves(path_mask()(params)))
    assert not any(jax.tree.leaves(path_mask(exclude=".")(params)))


def test_path_mask_predicates_and_mixed_patterns():
    params = _seed004_params()
    seen = []

    def pred(path):
        seen.append(path)
        return path.startswith("W")

    assert path_mask(pred)(params) == {"W1": True, "b1": False, "W2": True, "b2": False}
    assert sorted(seen) == ["W1", "W2", "b1", "b2"]
    mixed = path_mask(include=[pred, r"^b1$"], exclude=lambda path: path == "W2")
    assert mixed(params) == {"W1": True, "b1": True, "W2": False, "b2": False}


def test_path_mask_invalid_patterns_raise():
    with pytest.raises(ValueError, match=r"include has an invalid regex '\('"):
        path_mask(include="(")
    with pytest.raises(TypeError, match=r"exclude must be regex strings or predicates.*got 3"):
        path_mask(exclude=[3])
    with pytest.raises(TypeError, match=r"include must be a regex string, a predicate"):
        path_mask(include=3)
    with pytest.raises(ValueError, match=r"predicate .* must return a bool.*NoneType for 'a'"):
        path_mask(lambda path: None)({"a": 1.0})
    with pytest.raises(TypeError, match="applied to the params pytree, got the string"):
        path_mask(r"a")("a/b")
    # the old form path_mask(params, include=...) fails loudly, not with a wrong mask
    with pytest.raises(TypeError):
        path_mask(_seed004_params(), include=r"^W")


def test_public_names_exported():
    for name in ("weights_only", "path_mask", "resolve_mask", "path_to_str"):
        assert getattr(jaxreg, name) is getattr(jaxreg.masks, name)

"""Tests for jaxreg.penalties: values vs NumPy, gradients at zeros, jit/vmap, masks."""

import flax.linen as nn
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxreg
from jaxreg.penalties import (
    activity_penalty,
    group_lasso_penalty,
    l1_penalty,
    l2_norm_penalty,
    l2_penalty,
    select_activations,
)

RNG = np.random.default_rng(0)


def _tree():
    return {
        "Dense_0": {"kernel": RNG.normal(size=(4, 3)), "bias": np.zeros(3)},
        "Dense_1": {"kernel": RNG.normal(size=(3, 2)), "bias": RNG.normal(size=2)},
    }


def _as_jnp(tree, dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), tree)


finite_arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
    # XLA flushes subnormals to zero (and torch.norm underflows alike), so magnitudes
    # whose squares leave the normal range are out of scope.
    elements=st.one_of(st.just(0.0), st.floats(1e-100, 1e3), st.floats(-1e3, -1e-100)),
)


# --- l1_penalty ---


def test_l1_penalty_value_matches_numpy():
    tree = _tree()
    expected = sum(np.abs(x).sum() for x in jax.tree.leaves(tree))
    np.testing.assert_allclose(l1_penalty(_as_jnp(tree)), expected, rtol=1e-6)


def test_l1_penalty_grad_is_sign_and_zero_at_zero():
    x = jnp.array([-2.0, -0.0, 0.0, 3.0])
    g = jax.grad(l1_penalty)(x)
    np.testing.assert_array_equal(g, [-1.0, 0.0, 0.0, 1.0])
    # jnp.abs alone would give 1 at 0: the trap the custom JVP removes.
    assert float(jax.grad(lambda v: jnp.abs(v).sum())(jnp.zeros(1))[0]) == 1.0


def test_l1_penalty_grad_of_zero_biases_is_zero():
    params = _as_jnp(_tree())
    grads = jax.grad(l1_penalty)(params)
    np.testing.assert_array_equal(grads["Dense_0"]["bias"], np.zeros(3))
    np.testing.assert_array_equal(grads["Dense_1"]["kernel"], np.sign(params["Dense_1"]["kernel"]))


def test_l1_penalty_matches_torch_abs_backward():
    torch = pytest.importorskip("torch")
    x = np.array([-1.5, 0.0, 2.0, 0.0], np.float32)
    t = torch.tensor(x, requires_grad=True)
    torch.abs(t).sum().backward()
    np.testing.assert_array_equal(jax.grad(l1_penalty)(jnp.asarray(x)), t.grad.numpy())


@settings(derandomize=True, max_examples=20, deadline=None)
@given(finite_arrays)
def test_l1_penalty_property_value_and_grad(x):
    with jax.enable_x64(True):
        v = jnp.asarray(x)
        np.testing.assert_allclose(l1_penalty(v), np.abs(x).sum(), rtol=1e-12)
        np.testing.assert_array_equal(jax.grad(l1_penalty)(v), np.sign(x))


def test_l1_penalty_mask_bool_tree_and_predicate():
    tree = _as_jnp(_tree())
    mask = {
        "Dense_0": {"kernel": True, "bias": False},
        "Dense_1": {"kernel": True, "bias": False},
    }
    expected = float(
        jnp.abs(tree["Dense_0"]["kernel"]).sum() + jnp.abs(tree["Dense_1"]["kernel"]).sum()
    )
    np.testing.assert_allclose(l1_penalty(tree, mask=mask), expected, rtol=1e-6)
    np.testing.assert_allclose(
        l1_penalty(tree, mask=jaxreg.path_mask(r"kernel$")), expected, rtol=1e-6
    )
    grads = jax.grad(lambda t: l1_penalty(t, mask=mask))(tree)
    np.testing.assert_array_equal(grads["Dense_1"]["bias"], np.zeros(2))


def test_l1_penalty_empty_selection_is_zero():
    assert float(l1_penalty({"a": jnp.ones(3)}, mask=lambda p: False)) == 0.0
    assert float(l1_penalty({})) == 0.0


def test_l1_penalty_jit_and_vmap():
    x = jnp.asarray(RNG.normal(size=(5, 7)), jnp.float32)
    np.testing.assert_allclose(jax.jit(l1_penalty)(x), l1_penalty(x), rtol=1e-6)
    per_row = jax.vmap(l1_penalty)(x)
    np.testing.assert_allclose(per_row, np.abs(np.asarray(x)).sum(axis=1), rtol=1e-6)
    per_row_grad = jax.vmap(jax.grad(l1_penalty))(x.at[0].set(0.0))
    np.testing.assert_array_equal(per_row_grad[0], np.zeros(7))


# --- l2_penalty ---


def test_l2_penalty_sum_value_and_grad():
    tree = _tree()
    expected = 0.5 * sum((x**2).sum() for x in jax.tree.leaves(tree))
    params = _as_jnp(tree)
    np.testing.assert_allclose(l2_penalty(params), expected, rtol=1e-6)
    grads = jax.grad(l2_penalty)(params)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_l2_penalty_mean_matches_seed_004():
    w1 = RNG.normal(size=(784, 256)).astype(np.float32)
    w2 = RNG.normal(size=(256, 10)).astype(np.float32)
    # seed 004: l2_penalty(W1) + l2_penalty(W2) with l2_penalty(w) = (w**2).mean() / 2
    expected = (w1.astype(np.float64) ** 2).mean() / 2 + (w2.astype(np.float64) ** 2).mean() / 2
    got = l2_penalty({"W1": jnp.asarray(w1), "W2": jnp.asarray(w2)}, reduction="mean")
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    g = jax.grad(l2_penalty)({"W1": jnp.asarray(w1)}, reduction="mean")["W1"]
    np.testing.assert_allclose(g, w1 / w1.size, rtol=1e-6)


def test_l2_penalty_grad_equals_torch_weight_decay():
    torch = pytest.importorskip("torch")
    w = RNG.normal(size=(3, 4)).astype(np.float32)
    lam, lr = 0.1, 0.5
    t = torch.nn.Parameter(torch.tensor(w))
    opt = torch.optim.SGD([t], lr=lr, weight_decay=lam)
    t.grad = torch.zeros_like(t)
    opt.step()
    ours = jnp.asarray(w) - lr * jax.grad(lambda p: lam * l2_penalty(p))(jnp.asarray(w))
    np.testing.assert_allclose(ours, t.detach().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad", ["max", "SUM", None, 1])
def test_l2_penalty_invalid_reduction_raises(bad):
    with pytest.raises(ValueError, match=r"reduction must be one of \('sum', 'mean'\)"):
        l2_penalty(jnp.ones(2), reduction=bad)


@settings(derandomize=True, max_examples=20, deadline=None)
@given(finite_arrays, st.sampled_from(["sum", "mean"]))
def test_l2_penalty_property(x, reduction):
    with jax.enable_x64(True):
        v = jnp.asarray(x)
        reduce = np.sum if reduction == "sum" else np.mean
        np.testing.assert_allclose(
            l2_penalty(v, reduction=reduction), reduce(x**2) / 2, rtol=1e-12, atol=1e-300
        )
        scale = 1.0 if reduction == "sum" else 1.0 / x.size
        np.testing.assert_allclose(
            jax.grad(l2_penalty)(v, reduction=reduction), x * scale, rtol=1e-12
        )


def test_l2_penalty_jit_vmap_and_mask():
    x = jnp.asarray(RNG.normal(size=(4, 6)), jnp.float32)
    np.testing.assert_allclose(jax.jit(l2_penalty)(x), l2_penalty(x), rtol=1e-6)
    np.testing.assert_allclose(
        jax.vmap(l2_penalty)(x), 0.5 * (np.asarray(x) ** 2).sum(1), rtol=1e-6
    )
    tree = {"w": x, "b": jnp.ones(3)}
    np.testing.assert_allclose(
        l2_penalty(tree, mask={"w": True, "b": False}), l2_penalty(x), rtol=1e-7
    )


# --- l2_norm_penalty ---


def test_l2_norm_penalty_is_sum_of_per_leaf_norms():
    tree = _tree()
    expected = sum(np.linalg.norm(x.ravel()) for x in jax.tree.leaves(tree))
    np.testing.assert_allclose(l2_norm_penalty(_as_jnp(tree)), expected, rtol=1e-6)
    global_norm = np.sqrt(sum((x**2).sum() for x in jax.tree.leaves(tree)))
    assert abs(float(l2_norm_penalty(_as_jnp(tree))) - global_norm) > 1e-3


def test_l2_norm_penalty_grad_closed_form_and_zero_leaf():
    w = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)
    tree = {"w": w, "zeros": jnp.zeros((2, 2))}
    grads = jax.grad(l2_norm_penalty)(tree)
    np.testing.assert_allclose(grads["w"], w / jnp.linalg.norm(w), rtol=1e-6)
    np.testing.assert_array_equal(grads["zeros"], np.zeros((2, 2)))
    assert not np.isnan(np.asarray(jax.grad(l2_norm_penalty)(jnp.zeros(5)))).any()
    # the naive formula (seed 001's sqrt(sum(x**2))) is NaN there
    naive = jax.grad(lambda x: jnp.sqrt(jnp.sum(x**2)))(jnp.zeros(5))
    assert np.isnan(np.asarray(naive)).all()


def test_l2_norm_penalty_matches_torch_norm():
    torch = pytest.importorskip("torch")
    leaves = [RNG.normal(size=(3, 4)).astype(np.float32), np.zeros(5, np.float32)]
    ts = [torch.tensor(x, requires_grad=True) for x in leaves]
    total = sum(torch.norm(t, 2) for t in ts)
    total.backward()
    ours = l2_norm_penalty([jnp.asarray(x) for x in leaves])
    np.testing.assert_allclose(ours, total.item(), rtol=1e-6)
    grads = jax.grad(l2_norm_penalty)([jnp.asarray(x) for x in leaves])
    for g, t in zip(grads, ts, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6, atol=1e-7)


@settings(derandomize=True, max_examples=20, deadline=None)
@given(finite_arrays)
def test_l2_norm_penalty_property_finite_differences(x):
    with jax.enable_x64(True):
        v = jnp.asarray(x)
        np.testing.assert_allclose(l2_norm_penalty(v), np.linalg.norm(x.ravel()), rtol=1e-12)
        g = np.asarray(jax.grad(l2_norm_penalty)(v))
        assert np.isfinite(g).all()
        norm = np.linalg.norm(x.ravel())
        if norm > 1e-3:
            direction = RNG.normal(size=x.shape)
            eps = 1e-6 * max(1.0, norm)
            fd = (
                float(l2_norm_penalty(v + eps * direction))
                - float(l2_norm_penalty(v - eps * direction))
            ) / (2 * eps)
            np.testing.assert_allclose((g * direction).sum(), fd, rtol=1e-5, atol=1e-7)


def test_l2_norm_penalty_jit_vmap_mask():
    x = jnp.asarray(RNG.normal(size=(4, 6)), jnp.float32).at[1].set(0.0)
    np.testing.assert_allclose(jax.jit(l2_norm_penalty)(x), l2_norm_penalty(x), rtol=1e-6)
    rows = jax.vmap(l2_norm_penalty)(x)
    np.testing.assert_allclose(rows, np.linalg.norm(np.asarray(x), axis=1), rtol=1e-6)
    row_grads = jax.vmap(jax.grad(l2_norm_penalty))(x)
    np.testing.assert_array_equal(row_grads[1], np.zeros(6))
    only_a = jaxreg.path_mask("^a$")
    assert float(l2_norm_penalty({"a": x, "b": x}, mask=only_a)) == pytest.approx(
        float(l2_norm_penalty(x)), rel=1e-6
    )


def test_mask_and_reduction_are_keyword_only():
    x = jnp.ones(3)
    # positionally, "mean" would have been taken for a mask
    for call in (
        lambda: l2_penalty(x, "mean"),
        lambda: l2_penalty(x, None, "mean"),
        lambda: l1_penalty(x, None),
        lambda: l2_norm_penalty(x, None),
        lambda: group_lasso_penalty(x, 0),
    ):
        with pytest.raises(TypeError, match="positional argument"):
            call()


# --- group_lasso_penalty ---


def _column_norms(w, axes):
    return np.sqrt((w**2).sum(axis=axes))


def test_group_lasso_penalty_value_dense_and_conv_kernels():
    dense = RNG.normal(size=(5, 4))
    conv = RNG.normal(size=(3, 3, 2, 6))
    np.testing.assert_allclose(
        group_lasso_penalty(jnp.asarray(dense)), _column_norms(dense, 0).sum(), rtol=1e-6
    )
    np.testing.assert_allclose(
        group_lasso_penalty(jnp.asarray(conv), axis=(0, 1, 2)),
        _column_norms(conv, (0, 1, 2)).sum(),
        rtol=1e-6,
    )
    # axis=-1 groups a Dense kernel by input unit (outgoing weights), the other convention
    np.testing.assert_allclose(
        group_lasso_penalty(jnp.asarray(dense), axis=-1), _column_norms(dense, 1).sum(), rtol=1e-6
    )
    # one group per leaf = l2_norm_penalty
    np.testing.assert_allclose(
        group_lasso_penalty(jnp.asarray(dense), axis=(0, 1)),
        l2_norm_penalty(jnp.asarray(dense)),
        rtol=1e-6,
    )


def test_group_lasso_penalty_grad_closed_form_and_zero_group():
    w = np.asarray(RNG.normal(size=(4, 3)), np.float32)
    w[:, 1] = 0.0
    g = np.asarray(jax.grad(group_lasso_penalty)(jnp.asarray(w)))
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g[:, 1], np.zeros(4))
    expected = w / np.where(_column_norms(w, 0) > 0, _column_norms(w, 0), 1.0)
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_group_lasso_penalty_matches_torch_vector_norm():
    torch = pytest.importorskip("torch")
    kernel = RNG.normal(size=(6, 4))
    kernel[:, 2] = 0.0
    weight = torch.tensor(kernel.T.copy(), requires_grad=True)  # torch Linear: (out, in)
    total = torch.linalg.vector_norm(weight, dim=1).sum()
    total.backward()
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(group_lasso_penalty)(jnp.asarray(kernel))
        np.testing.assert_allclose(value, total.item(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(grad).T, weight.grad.numpy(), rtol=1e-12)


def test_group_lasso_penalty_mask_jit_vmap():
    params = _as_jnp(_tree())
    expected = sum(
        _column_norms(np.asarray(params[m]["kernel"]), 0).sum() for m in ("Dense_0", "Dense_1")
    )
    got = group_lasso_penalty(params, mask=jaxreg.weights_only(params))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(group_lasso_penalty)(params["Dense_0"]["kernel"]),
                               _column_norms(np.asarray(params["Dense_0"]["kernel"]), 0).sum(),
                               rtol=1e-6)  # fmt: skip
    stack = jnp.asarray(RNG.normal(size=(3, 4, 2)), jnp.float32)
    np.testing.assert_allclose(
        jax.vmap(group_lasso_penalty)(stack), _column_norms(np.asarray(stack), 1).sum(1), rtol=1e-6
    )


@pytest.mark.parametrize(
    "axis, match",
    [
        (2, r"axis 2 is out of range for a leaf of shape \(4, 3\)"),
        ((0, 0), r"repeats an axis"),
        (1.0, r"axis must be an int or a non-empty tuple of ints"),
        ((), r"axis must be"),
        (True, r"axis must be"),
    ],
)
def test_group_lasso_penalty_bad_axis_raises(axis, match):
    with pytest.raises(ValueError, match=match):
        group_lasso_penalty(jnp.ones((4, 3)), axis=axis)


# --- activity regularization ---


class _SowMLP(nn.Module):
    """Seed 001's MLP shape, recording its hidden activations with sow."""

    @nn.compact
    def __call__(self, x):
        h1 = nn.relu(nn.Dense(8, name="linear1")(x))
        self.sow("intermediates", "layer1_out", h1)
        h2 = nn.relu(nn.Dense(4, name="linear2")(h1))
        self.sow("intermediates", "layer2_out", h2)
        return nn.Dense(2, name="linear3")(h2), h1, h2


def test_activity_penalty_with_sow_matches_direct_penalty():
    model = _SowMLP()
    x = jnp.asarray(RNG.uniform(size=(4, 16)), jnp.float32)
    params = model.init(jax.random.key(0), x)["params"]

    def loss_sow(params):
        (out, _, _), state = model.apply({"params": params}, x, mutable=["intermediates"])
        return (
            jnp.mean(out**2)
            + 0.5 * activity_penalty(state, l1_penalty, names="layer1_out")
            + 0.01 * activity_penalty(state, l2_norm_penalty, names=["layer2_out"])
        )

    def loss_direct(params):
        (out, h1, h2), _ = model.apply({"params": params}, x, mutable=["intermediates"])
        return jnp.mean(out**2) + 0.5 * l1_penalty(h1) + 0.01 * l2_norm_penalty(h2)

    v_sow, g_sow = jax.jit(jax.value_and_grad(loss_sow))(params)
    v_direct, g_direct = jax.jit(jax.value_and_grad(loss_direct))(params)
    np.testing.assert_allclose(v_sow, v_direct, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_sow), jax.tree.leaves(g_direct), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_activity_penalty_capture_intermediates_and_all_names():
    model = _SowMLP()
    x = jnp.ones((2, 16))
    params = model.init(jax.random.key(1), x)["params"]
    _, state = model.apply({"params": params}, x, capture_intermediates=True)
    (dense,) = select_activations(state, "linear1/__call__")
    np.testing.assert_allclose(dense, x @ params["linear1"]["kernel"] + params["linear1"]["bias"])
    _, sown = model.apply({"params": params}, x, mutable=["intermediates"])
    total = activity_penalty(sown, l1_penalty)
    h1, h2 = select_activations(sown, ["layer1_out", "layer2_out"])
    np.testing.assert_allclose(total, l1_penalty(h1) + l1_penalty(h2), rtol=1e-6)


def test_activity_penalty_unknown_name_raises():
    inter = {"intermediates": {"layer1_out": (jnp.ones(2),)}}
    with pytest.raises(ValueError, match=r"no activation named 'layer3_out'.*layer1_out"):
        activity_penalty(inter, l1_penalty, names="layer3_out")


def test_public_names_exported():
    for name in (
        "l1_penalty",
        "l2_penalty",
        "l2_norm_penalty",
        "activity_penalty",
        "select_activations",
        "group_lasso_penalty",
    ):
        assert getattr(jaxreg, name) is getattr(jaxreg.penalties, name)

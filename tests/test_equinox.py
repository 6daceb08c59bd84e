"""jaxreg's penalties, masks and torch-equivalent optimizers on Equinox modules.

Equinox models are pytrees; ``eqx.filter(model, eqx.is_array)`` / ``eqx.partition`` give the
array leaves, with paths such as ``"layers/0/weight"``. ``jaxreg.weights_only`` selects every
``Linear``/``Conv``/``Embedding`` ``weight`` and no ``bias`` nor norm-layer (1-D) ``weight``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

eqx = pytest.importorskip("equinox")


def _mlp():
    return eqx.nn.MLP(4, 3, 8, 2, key=jax.random.key(0))


def _params():
    return eqx.filter(_mlp(), eqx.is_array)


def test_weights_only_selects_linear_weights_not_biases():
    flags = jaxreg.weights_only(_params())
    assert [(layer.weight, layer.bias) for layer in flags.layers] == [(True, False)] * 3
    # the same flags through resolve_mask, from the callable and from the tree
    assert jaxreg.resolve_mask(jaxreg.weights_only, _params()) == flags
    assert jaxreg.resolve_mask(flags, _params()) == flags


def test_weights_only_on_conv_norm_and_embedding():
    keys = jax.random.split(jax.random.key(1), 2)
    tree = eqx.filter(
        {
            "conv": eqx.nn.Conv2d(2, 3, 3, key=keys[0]),
            "norm": eqx.nn.LayerNorm(5),
            "emb": eqx.nn.Embedding(10, 4, key=keys[1]),
        },
        eqx.is_array,
    )
    flags = jaxreg.weights_only(tree)
    assert (flags["conv"].weight, flags["conv"].bias) == (True, False)  # bias is (3, 1, 1)
    assert (flags["norm"].weight, flags["norm"].bias) == (False, False)
    assert flags["emb"].weight is True


def test_path_mask_on_equinox_paths():
    flags = jaxreg.path_mask(r"^layers/0/")(_params())
    assert [(layer.weight, layer.bias) for layer in flags.layers] == [
        (True, True),
        (False, False),
        (False, False),
    ]
    flags = jaxreg.path_mask(r"/weight$", exclude=r"^layers/2/")(_params())
    assert [layer.weight for layer in flags.layers] == [True, True, False]


def test_penalties_on_filtered_module_values_and_grads():
    params = _params()
    weights = [layer.weight for layer in params.layers]
    expected = 0.5 * sum(float(jnp.sum(w**2)) for w in weights)
    got = jaxreg.l2_penalty(params, mask=jaxreg.weights_only)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)
    l1 = jaxreg.l1_penalty(params, mask=jaxreg.weights_only)
    np.testing.assert_allclose(float(l1), sum(float(jnp.abs(w).sum()) for w in weights), rtol=1e-6)

    model = _mlp()

    def penalty(m):
        return jaxreg.l2_penalty(eqx.filter(m, eqx.is_array), mask=jaxreg.weights_only)

    grads = eqx.filter_grad(penalty)(model)
    for g, layer in zip(grads.layers, model.layers, strict=True):
        np.testing.assert_allclose(g.weight, layer.weight, rtol=1e-6)
        np.testing.assert_array_equal(g.bias, jnp.zeros_like(layer.bias))


def test_torch_sgd_decays_weights_only_on_partitioned_params():
    params, _ = eqx.partition(_mlp(), eqx.is_array)
    lr, wd = 0.1, 0.5
    tx = jaxreg.torch_sgd(lr, weight_decay=wd, mask=jaxreg.weights_only)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    for after, before in zip(new.layers, params.layers, strict=True):
        np.testing.assert_allclose(after.weight, before.weight * (1 - lr * wd), rtol=1e-6)
        np.testing.assert_array_equal(after.bias, before.bias)
    # optax's own masked decay takes the same mask value and gives the same step
    ref = optax.chain(optax.add_decayed_weights(wd, mask=jaxreg.weights_only), optax.sgd(lr))
    ref_updates, _ = ref.update(zeros, ref.init(params), params)
    jax.tree.map(np.testing.assert_allclose, updates, ref_updates)


def test_wrong_mask_kind_is_a_clear_error():
    with pytest.raises(TypeError, match=r"mask: .*jaxreg.path_mask\(fn\)"):
        jaxreg.l2_penalty(_params(), mask=lambda path: path.endswith("weight"))


def test_readme_example_trains_with_weight_decay_on_weights_only():
    x = jax.random.uniform(jax.random.key(2), (32, 4))
    y = jnp.arange(32) % 2

    # --- the README snippet ---
    model = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_array)
    tx = jaxreg.torch_sgd(0.5, weight_decay=0.01, mask=jaxreg.weights_only)
    opt_state = tx.init(params)

    def loss_fn(params, x, y):
        logits = jax.vmap(eqx.combine(params, static))(x)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce + 1e-4 * jaxreg.l1_penalty(params, mask=jaxreg.weights_only)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    # --- end ---
    losses = []
    for _ in range(30):
        params, opt_state, loss = step(params, opt_state, x, y)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    trained = eqx.combine(params, static)
    assert jax.vmap(trained)(x).shape == (32, 2)

"""Shared random draws: every jaxreg random layer captured in JAX and replayed in torch.

Each layer kind runs in JAX with its draw captured (``jaxreg.lab.draws``) and in torch with that
draw replayed (``jaxreg.torch_ref.replay``); in float64 the outputs agree to the last bit (d2l's
``mask * X / keep`` is one rounding from torch's ``X * (1 / keep)``: 1e-15). Then the refusals:
a torch random op that is not replayed, a JAX random module the capture does not know, a site
one side lacks, a site both sides skip, sites in another order, kind or rate.
"""

import re
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxreg.nn as jnn
import jaxreg.nnx as jnnx
from jaxreg.lab.draws import Draw, UnsharedDrawError, capture_draws, capture_draws_nnx

torch = pytest.importorskip("torch")
F = torch.nn.functional

from jaxreg.torch_ref import noise as tnoise  # noqa: E402
from jaxreg.torch_ref.dropout import dropout_layer  # noqa: E402
from jaxreg.torch_ref.replay import DrawReplay, MaskReplay, replaying  # noqa: E402

RNG = np.random.default_rng(0)
X4 = RNG.normal(size=(3, 4, 4, 5))  # NHWC
X3 = RNG.normal(size=(3, 6, 5))  # NLC
X5 = RNG.normal(size=(2, 3, 3, 3, 4))  # NDHWC
X2 = RNG.normal(size=(6, 7))


def _nchw(fn):
    """A torch function of channels-first input, applied to a channels-last tensor."""

    def run(t):
        perm = (0, t.dim() - 1, *range(1, t.dim() - 1))
        back = (0, *range(2, t.dim()), 1)
        return fn(t.permute(*perm)).permute(*back)

    return run


def _unbatched_nc(fn):
    """(L, C) channels-last -> torch's unbatched (C, L) and back."""
    return lambda t: fn(t.T).T


# case -> (Linen layer, NNX layer factory or None, torch function of the JAX-layout input, x,
#          draw kind, draw shape)
CASES = {
    "dropout": (jnn.Dropout(0.3), lambda r: jnnx.Dropout(0.3, rngs=r),
                lambda t: F.dropout(t, 0.3, True), X4, "dropout", X4.shape),
    "nn.Dropout module": (jnn.Dropout(0.3), None, lambda t: torch.nn.Dropout(0.3)(t), X2,
                          "dropout", X2.shape),
    "flax Dropout": (nn.Dropout(0.3), lambda r: nnx.Dropout(0.3, rngs=r),
                     lambda t: F.dropout(t, 0.3, True), X2, "dropout", X2.shape),
    "broadcast dropout": (jnn.Dropout(0.3, broadcast_dims=(1,)), None,
                          lambda t: F.dropout(t, 0.3, True), X3, "dropout", X3.shape),
    "d2l dropout_layer": (jnn.Dropout(0.3), None, lambda t: dropout_layer(t, 0.3), X2,
                          "dropout", X2.shape),
    "vanilla": (jnn.VanillaDropout(0.7), lambda r: jnnx.VanillaDropout(0.7, rngs=r),
                lambda t: tnoise.vanilla_dropout(t, 0.7), X2, "vanilla_dropout", X2.shape),
    "dropout1d": (jnn.Dropout1d(0.4), lambda r: jnnx.Dropout1d(0.4, rngs=r),
                  _nchw(lambda t: F.dropout1d(t, 0.4, True)), X3, "spatial_dropout", (3, 5)),
    "dropout1d unbatched": (jnn.Dropout1d(0.4), None,
                            _unbatched_nc(lambda t: F.dropout1d(t, 0.4, True)), X2,
                            "spatial_dropout", (7,)),
    "dropout2d": (jnn.Dropout2d(0.4), lambda r: jnnx.Dropout2d(0.4, rngs=r),
                  _nchw(lambda t: torch.nn.Dropout2d(0.4)(t)), X4, "spatial_dropout", (3, 5)),
    "dropout3d": (jnn.Dropout3d(0.4), lambda r: jnnx.Dropout3d(0.4, rngs=r),
                  _nchw(lambda t: F.dropout3d(t, 0.4, True)), X5, "spatial_dropout", (2, 4)),
    "spatial": (jnn.SpatialDropout(0.4), lambda r: jnnx.SpatialDropout(0.4, rngs=r),
                _nchw(lambda t: F.dropout2d(t, 0.4, True)), X4, "spatial_dropout", (3, 5)),
    "alpha": (jnn.AlphaDropout(0.3), lambda r: jnnx.AlphaDropout(0.3, rngs=r),
              lambda t: torch.nn.AlphaDropout(0.3)(t), X4, "alpha_dropout", X4.shape),
    "feature alpha": (jnn.FeatureAlphaDropout(0.3),
                      lambda r: jnnx.FeatureAlphaDropout(0.3, rngs=r),
                      _nchw(lambda t: F.feature_alpha_dropout(t, 0.3, True)), X4,
                      "feature_alpha_dropout", (3, 5)),
    "drop path": (jnn.DropPath(0.5), lambda r: jnnx.DropPath(0.5, rngs=r),
                  lambda t: tnoise.drop_path(t, 0.5), X2, "drop_path", (6,)),
    "gaussian dropout": (jnn.GaussianDropout(0.3), lambda r: jnnx.GaussianDropout(0.3, rngs=r),
                         lambda t: tnoise.gaussian_dropout(t, 0.3), X4, "gaussian_dropout",
                         X4.shape),
    "gaussian noise": (jnn.GaussianNoise(0.2), lambda r: jnnx.GaussianNoise(0.2, rngs=r),
                       lambda t: tnoise.gaussian_noise(t, 0.2), X4, "gaussian_noise", X4.shape),
}  # fmt: skip

KEY = {"dropout": jax.random.key(3)}


def _replayed(draws, fn, x, strict=True):
    replay = DrawReplay()
    replay.set_step(draws)
    with replaying(replay, strict=strict):
        out = fn(torch.from_numpy(np.array(x)))
    replay.finish_step()
    return out.detach().numpy()


def _check_draw(draws, kind, shape):
    assert [(d.kind, d.shape, d.call) for d in draws] == [(kind, tuple(shape), 0)]
    value = np.asarray(draws[0].value)
    if kind in ("gaussian_dropout", "gaussian_noise"):
        assert value.dtype == np.float64 and np.unique(value).size == value.size
    else:
        # A real draw: some kept, some dropped.
        assert value.dtype == np.bool_ and 0 < value.mean() < 1, value


@pytest.mark.parametrize("case", sorted(CASES))
def test_linen_layer_replayed_in_torch_float64(case):
    layer, _, torch_fn, x, kind, shape = CASES[case]
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        y = np.asarray(layer.apply({}, xj, False, rngs=KEY))
        draws = capture_draws(layer.apply, {}, xj, False, rngs=KEY)
        _check_draw(draws, kind, shape)
        assert draws[0].site == type(layer).__name__
        theirs = _replayed(draws, torch_fn, x)
    tol = 1e-15 if case == "d2l dropout_layer" else 0.0
    np.testing.assert_allclose(theirs, y, rtol=tol, atol=0)


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][1] is not None))
def test_nnx_layer_replayed_in_torch_float64(case):
    _, make, torch_fn, x, kind, shape = CASES[case]
    with jax.enable_x64(True):

        class Net(nnx.Module):
            def __init__(self, rngs):
                self.noise = make(rngs)

            def __call__(self, x):
                return self.noise(x)

        model = Net(nnx.Rngs(dropout=5))
        xj = jnp.asarray(x)
        draws = capture_draws_nnx(model, xj)
        _check_draw(draws, kind, shape)
        assert draws[0].site == "noise"
        # The capture left the streams as they were: the next real call draws the same values.
        y = np.asarray(model(xj))
        theirs = _replayed(draws, torch_fn, x)
    np.testing.assert_array_equal(theirs, y)


def test_drop_connect_dense_replayed_by_drop_connect_linear():
    with jax.enable_x64(True):
        layer = jnn.DropConnectDense(4, rate=0.5)
        xj = jnp.asarray(X2)
        params = layer.init(jax.random.key(0), xj, True)
        y = np.asarray(layer.apply(params, xj, False, rngs=KEY))
        draws = capture_draws(layer.apply, params, xj, False, rngs=KEY)
        _check_draw(draws, "drop_connect", (7, 4))
        # The capture does not consume a second key: the layer still draws the captured mask.
        assert np.array_equal(np.asarray(layer.apply(params, xj, False, rngs=KEY)), y)
        w = torch.from_numpy(np.array(params["params"]["kernel"]).T)
        b = torch.from_numpy(np.array(params["params"]["bias"]))
        theirs = _replayed(draws, lambda t: tnoise.drop_connect_linear(t, w, b, 0.5), X2)
    np.testing.assert_allclose(theirs, y, rtol=1e-12, atol=1e-15)


class _CNN(nn.Module):
    """Conv, spatial dropout, conv, flatten (torch's NCHW order), dropout, dense."""

    @nn.compact
    def __call__(self, x, deterministic: bool):
        h = nn.relu(nn.Conv(4, (3, 3), padding="VALID", name="conv1")(x))
        h = jnn.Dropout2d(0.3, name="drop2d")(h, deterministic)
        h = nn.relu(nn.Conv(3, (3, 3), padding="VALID", name="conv2")(h))
        h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)
        h = jnn.Dropout(0.5, name="drop")(h, deterministic)
        return nn.Dense(2, name="fc")(h)


class _TorchCNN(torch.nn.Module):
    def __init__(self, params, spatial=True, extra=False):
        super().__init__()
        p = {k: {n: torch.from_numpy(np.array(v)) for n, v in d.items()} for k, d in params.items()}
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 3, 3)
        self.fc = torch.nn.Linear(12, 2)
        for name in ("conv1", "conv2"):
            conv = getattr(self, name)
            conv.weight.data = p[name]["kernel"].permute(3, 2, 0, 1).contiguous()
            conv.bias.data = p[name]["bias"]
        self.fc.weight.data, self.fc.bias.data = p["fc"]["kernel"].T.contiguous(), p["fc"]["bias"]
        self.drop2d = torch.nn.Dropout2d(0.3) if spatial else torch.nn.Identity()
        self.drop = torch.nn.Dropout(0.5)
        self.extra = torch.nn.Dropout(0.1) if extra else torch.nn.Identity()

    def forward(self, x):
        h = self.drop2d(torch.relu(self.conv1(x)))
        h = torch.relu(self.conv2(h)).flatten(1)
        return self.fc(self.extra(self.drop(h)))


def _cnn(n=6):
    model = _CNN()
    x = RNG.normal(size=(n, 6, 6, 1))
    with jax.enable_x64(True):
        params = model.init(jax.random.key(0), jnp.asarray(x), True)["params"]
        params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    return model, params, x


def _cnn_draws(model, params, x):
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        y = np.asarray(model.apply({"params": params}, xj, False, rngs=KEY))
        draws = capture_draws(model.apply, {"params": params}, xj, False, rngs=KEY)
    return y, draws


@pytest.mark.slow
def test_cnn_forward_shared_draws_float64():
    model, params, x = _cnn()
    y, draws = _cnn_draws(model, params, x)
    assert [(d.site, d.kind, d.shape) for d in draws] == [
        ("drop2d", "spatial_dropout", (6, 4)),
        ("drop", "dropout", (6, 12)),
    ]
    net = _TorchCNN(params).double().train()
    theirs = _replayed(draws, net, np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_allclose(theirs, y, rtol=1e-12, atol=1e-14)


def test_a_site_missing_in_torch_fails_naming_it():
    # The route: the torch twin without its Dropout2d. The replay's first call is the
    # element-wise dropout, which meets the JAX spatial draw: refused, naming the JAX site.
    model, params, x = _cnn()
    _, draws = _cnn_draws(model, params, x)
    net = _TorchCNN(params, spatial=False).double().train()
    with pytest.raises(UnsharedDrawError, match=r"_TorchCNN\.drop.*'drop2d'.*spatial_dropout"):
        _replayed(draws, net, np.transpose(x, (0, 3, 1, 2)))


def test_a_site_skipped_on_both_sides_fails():
    # Torch draws the spatial mask itself with an op the replay does not know (allowed with
    # strict=False), so neither side shares it: the JAX draw is left over and refused.
    model, params, x = _cnn()
    _, draws = _cnn_draws(model, params, x)
    net = _TorchCNN(params, spatial=False).double().train()
    own = net.drop2d.forward
    net.drop2d.forward = lambda h: own(h) * (torch.rand(h.shape[:2]) > 0.3)[..., None, None]
    replay = DrawReplay()
    replay.set_step([draws[1]] + [draws[0]])  # the element-wise one matches first
    with replaying(replay, strict=False):
        net(torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy()))
    with pytest.raises(UnsharedDrawError, match=r"not replayed by torch: 'drop2d'"):
        replay.finish_step()


def test_an_extra_torch_site_fails():
    model, params, x = _cnn()
    _, draws = _cnn_draws(model, params, x)
    net = _TorchCNN(params, extra=True).double().train()
    with pytest.raises(UnsharedDrawError, match=r"_TorchCNN\.extra.*no JAX draw left"):
        _replayed(draws, net, np.transpose(x, (0, 3, 1, 2)))


def test_a_draw_of_another_kind_or_shape_fails():
    draws = capture_draws(jnn.AlphaDropout(0.3).apply, {}, jnp.ones((2, 3)), False, rngs=KEY)
    with pytest.raises(UnsharedDrawError, match=r"dropout draw of shape \(2, 3\).*alpha_dropout"):
        _replayed(draws, lambda t: F.dropout(t, 0.3, True), np.ones((2, 3)))
    with pytest.raises(UnsharedDrawError, match=r"shape \(3, 2\).*shape \(2, 3\)"):
        _replayed(draws, lambda t: F.alpha_dropout(t, 0.3, True), np.ones((3, 2)))


@pytest.mark.parametrize(
    "op, call",
    [
        ("torch.rand", lambda h: h * (torch.rand(h.shape) > 0.5)),
        ("torch.randn_like", lambda h: h + torch.randn_like(h)),
        ("torch.bernoulli", lambda h: h * torch.bernoulli(torch.full_like(h, 0.5))),
        ("Tensor.normal_", lambda h: h + torch.empty_like(h).normal_()),
        ("Tensor.uniform_", lambda h: h + torch.empty_like(h).uniform_()),
        ("Tensor.bernoulli_", lambda h: h * torch.empty_like(h).bernoulli_(0.5)),
        ("torch.randperm", lambda h: h[torch.randperm(h.shape[0])]),
        ("torch.randint", lambda h: h + torch.randint(0, 2, h.shape)),
        ("torch.normal", lambda h: h + torch.normal(0.0, 1.0, h.shape, dtype=h.dtype)),
        ("torch.multinomial", lambda h: h[torch.multinomial(torch.ones(h.shape[0]), 1)]),
        ("Tensor.exponential_", lambda h: h + torch.empty_like(h).exponential_()),
    ],
)
def test_a_torch_random_op_that_is_not_replayed_fails_naming_it(op, call):
    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)

        def forward(self, x):
            return call(self.fc(x))

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Noisy()

        def forward(self, x):
            return self.block(x)

    with pytest.raises(UnsharedDrawError, match=re.escape(op) + r" .*at Outer\.block"):
        _replayed([], Outer(), np.ones((4, 3), np.float32))
    # strict=False lets it draw (the site is then simply not matched).
    _replayed([], Outer(), np.ones((4, 3), np.float32), strict=False)


def test_an_unknown_jax_random_module_fails_naming_its_path():
    class Noisy(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x + jax.random.normal(self.make_rng("dropout"), x.shape)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, deterministic):
            h = jnn.Dropout(0.5)(nn.Dense(3)(x), deterministic)
            return Noisy(name="noisy")(h)

    x = jnp.ones((2, 3))
    params = Net().init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, x, True)
    with pytest.raises(UnsharedDrawError, match="module 'noisy' draws a random key"):
        capture_draws(Net().apply, params, x, False, rngs=KEY)


def test_an_unknown_nnx_random_module_fails_naming_its_path():
    class Noisy(nnx.Module):
        def __init__(self, rngs):
            self.rngs = rngs.dropout.fork()

        def __call__(self, x):
            return x + jax.random.normal(self.rngs(), x.shape)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.drop = jnnx.Dropout(0.5, rngs=rngs)
            self.noisy = Noisy(rngs)

        def __call__(self, x):
            return self.noisy(self.drop(x))

    with pytest.raises(UnsharedDrawError, match="module 'noisy' draws a random key"):
        capture_draws_nnx(Net(nnx.Rngs(0)), jnp.ones((2, 3)))


def test_no_random_layers_and_evaluation_mode_give_no_draws():
    dense = nn.Dense(3)
    params = dense.init(jax.random.key(0), jnp.ones((2, 3)))
    assert capture_draws(dense.apply, params, jnp.ones((2, 3)), rngs=KEY) == []
    model, params, x = _cnn()
    assert capture_draws(model.apply, {"params": params}, x, True, rngs=KEY) == []
    assert capture_draws_nnx(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), jnp.ones((2, 3))) == []


def test_a_site_called_twice_counts_its_calls():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            drop = jnn.Dropout(0.5, deterministic=False)
            return drop(drop(x))

    draws = capture_draws(Twice().apply, {}, jnp.ones((2, 8)), rngs=KEY)
    assert [(d.site, d.call) for d in draws] == [("Dropout_0", 0), ("Dropout_0", 1)]
    assert not np.array_equal(draws[0].value, draws[1].value)


def test_nnx_model_through_the_linen_bridge():
    model = nnx.bridge.ToLinen(jnnx.DropoutMLP, args=(8, 6, 6, 3))
    x = jnp.ones((4, 8))
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    draws = capture_draws(model.apply, variables, x, rngs=KEY)
    assert [(d.site, d.kind, d.shape) for d in draws] == [
        ("drop1", "dropout", (4, 6)),
        ("drop2", "dropout", (4, 6)),
    ]


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_degenerate_rates_take_a_traced_draw_and_check_it(p):
    # A traced rate draws even at 0 / 1; torch draws nothing there but takes the JAX draw.
    layer = jnn.Dropout(0.5)
    x = jnp.ones((3, 4))
    fn = jax.jit(lambda r: [d.value for d in capture_draws(
        layer.apply, {}, x, False, rngs=KEY, rate=r)])  # fmt: skip
    values = fn(jnp.float32(p))
    draws = [Draw("Dropout_0", "dropout", (3, 4), np.asarray(values[0]), 0)]
    out = _replayed(draws, lambda t: F.dropout(t, p, True), np.ones((3, 4)))
    assert np.array_equal(out, np.full((3, 4), 1.0 - p))
    # The same torch op against a draw of rate 0.5: the rates differ, refused.
    real = [Draw("Dropout_0", "dropout", (3, 4), np.asarray(fn(jnp.float32(0.5))[0]), 0)]
    with pytest.raises(UnsharedDrawError, match="rates differ"):
        _replayed(real, lambda t: F.dropout(t, p, True), np.ones((3, 4)))


def test_torchvision_stochastic_depth_is_replayed(monkeypatch):
    # torchvision does not import beside the CPU torch here: a module with its function
    # (verbatim arithmetic) stands in, at the path the replay patches.
    def stochastic_depth(input, p, mode, training=True):  # noqa: A002
        if not training or p == 0.0:
            return input
        survival_rate = 1.0 - p
        size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
        noise = torch.empty(size, dtype=input.dtype, device=input.device)
        noise = noise.bernoulli_(survival_rate)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return input * noise

    module = types.ModuleType("torchvision.ops.stochastic_depth")
    module.stochastic_depth = stochastic_depth

    class StochasticDepth(torch.nn.Module):
        def __init__(self, p, mode):
            super().__init__()
            self.p, self.mode = p, mode

        def forward(self, x):
            return sys.modules["torchvision.ops.stochastic_depth"].stochastic_depth(
                x, self.p, self.mode, self.training
            )

    ops = types.ModuleType("torchvision.ops")
    ops.stochastic_depth = stochastic_depth
    monkeypatch.setitem(sys.modules, "torchvision.ops.stochastic_depth", module)
    monkeypatch.setitem(sys.modules, "torchvision.ops", ops)
    layer = jnn.DropPath(0.5)
    with jax.enable_x64(True):
        y = np.asarray(layer.apply({}, jnp.asarray(X4), False, rngs=KEY))
        draws = capture_draws(layer.apply, {}, jnp.asarray(X4), False, rngs=KEY)
    theirs = _replayed(draws, StochasticDepth(0.5, "row"), X4)
    np.testing.assert_array_equal(theirs, y)
    assert module.stochastic_depth is stochastic_depth and ops.stochastic_depth is stochastic_depth
    with pytest.raises(UnsharedDrawError, match="mode='batch'"):
        _replayed(draws, StochasticDepth(0.5, "batch"), X4)
    # A reference taken before the block still draws with bernoulli_: refused in strict mode.
    with pytest.raises(UnsharedDrawError, match=r"Tensor\.bernoulli_"):
        _replayed(draws, lambda t: stochastic_depth(t, 0.5, "row"), X4)


def test_bare_masks_still_replay():
    # The older MaskReplay use: bare keep masks, the batch's rows first (JAX's padding cut).
    mask = np.array([[True, False], [False, True], [True, True]])
    replay = MaskReplay()
    replay.set_step([mask])
    with replaying(replay):
        y = F.dropout(torch.ones(2, 2), 0.5, True)
    replay.finish_step()
    assert y.tolist() == [[2.0, 0.0], [0.0, 2.0]]


def test_a_broadcast_draw_replays_once_per_group_only_if_shared():
    # jaxreg's Dropout(broadcast_dims=(1,)) draws one value per (example, feature); a torch twin
    # may draw it on an (N, 1, F) tensor. The same call against an unshared draw is refused.
    x = jnp.ones((4, 6, 5))
    shared = capture_draws(jnn.Dropout(0.4, broadcast_dims=(1,)).apply, {}, x, False, rngs=KEY)
    out = _replayed(shared, lambda t: F.dropout(t[:, :1, :], 0.4, True), np.ones((4, 6, 5)))
    np.testing.assert_array_equal(out != 0, np.asarray(shared[0].value)[:, :1, :])
    unshared = capture_draws(jnn.Dropout(0.4).apply, {}, x, False, rngs=KEY)
    with pytest.raises(UnsharedDrawError, match=r"shape \(4, 1, 5\).*shape \(4, 6, 5\)"):
        _replayed(unshared, lambda t: F.dropout(t[:, :1, :], 0.4, True), np.ones((4, 6, 5)))


def test_keep_rows_and_reorder_rows_cut_and_permute_the_batch_axis_only():
    from jaxreg.lab.draws import keep_rows, reorder_rows

    mask = np.arange(8)[:, None] % 3 == np.arange(5)[None, :] % 3
    draws = [
        Draw("drop", "dropout", (8, 5), mask, 0),
        Draw("path", "drop_path", (8,), np.arange(8) % 2 == 0, 0),
        Draw("dc", "drop_connect", (8, 3), np.ones((8, 3), bool), 0),
        Draw("sp", "spatial_dropout", (8,), np.arange(8) > 3, 0),  # unbatched (C,)
    ]
    cut = keep_rows(draws, 3, 8)
    assert [d.shape for d in cut] == [(3, 5), (3,), (8, 3), (8,)]
    perm = np.array([2, 0, 1])
    moved = reorder_rows(draws, perm, 8)
    np.testing.assert_array_equal(moved[0].value, mask[:3][perm])
    np.testing.assert_array_equal(moved[1].value, (np.arange(3) % 2 == 0)[perm])
    assert moved[2].value is draws[2].value and moved[3].value is draws[3].value

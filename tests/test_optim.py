"""Tests for jaxreg.optim: torch_sgd, torch_adam, torch_adamw against torch.optim."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxreg
from jaxreg.optim import TorchAdamState, TorchSGDState, torch_adam, torch_adamw, torch_sgd

STEPS = 25
SHAPES = {"W1": (12, 8), "b1": (8,), "W2": (8, 3), "b2": (3,)}
WEIGHTS = {"W1": True, "b1": False, "W2": True, "b2": False}  # seed 004's param groups


def _problem(dtype):
    rng = np.random.default_rng(0)
    init = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    init["b1"][:3] = 0.0  # exact zeros, as zero-initialized biases
    grads = [{k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()} for _ in range(STEPS)]
    return init, grads


def _torch_run(torch, cls, kwargs, masked, dtype):
    """Steps torch.optim on fixed gradients; a mask becomes two param groups."""
    init, grads = _problem(dtype)
    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
    if masked:
        decay = [params[k] for k in SHAPES if WEIGHTS[k]]
        no_decay = [params[k] for k in SHAPES if not WEIGHTS[k]]
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    else:
        groups = list(params.values())
    opt = cls(groups, **kwargs)
    for g in grads:
        for k, p in params.items():
            p.grad = torch.tensor(g[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}


def _scan(tx, params, grads):
    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        return (optax.apply_updates(params, updates), state), None

    return jax.lax.scan(step, (params, tx.init(params)), grads)[0][0]


def _inputs(dtype):
    init, grads = _problem(dtype)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
    return jax.tree.map(jnp.asarray, init), stacked


def _jax_run(tx, dtype):
    """Runs a concrete optimizer (hyperparameters baked in as constants)."""
    return jax.jit(lambda p, g: _scan(tx, p, g))(*_inputs(dtype))


@functools.partial(jax.jit, static_argnames=("factory", "static"))
def _traced_run(hparams, params, grads, factory, static):
    # hyperparameters are traced: one compilation serves every case of a structure
    static = dict(static)
    mask = WEIGHTS if static.pop("masked") else None
    return _scan(factory(**hparams, **static, mask=mask), params, grads)


def _assert_close(ours, theirs, rtol, case):
    for k in SHAPES:
        a, b = np.asarray(ours[k]), theirs[k]
        assert a.dtype == b.dtype, (case, k, a.dtype, b.dtype)
        # atol scales with the tensor: entries near 0 after cancellation carry the absolute
        # error of the large ones, so a pure rtol would be meaningless there.
        atol = rtol * max(1.0, float(np.abs(b).max()))
        err = np.abs(a - b).max()
        assert np.allclose(a, b, rtol=rtol, atol=atol), f"{case} {k}: max abs err {err:.3g}"


SGD_CASES = [
    ("plain", {"lr": 0.1}, False),
    ("momentum", {"lr": 0.05, "momentum": 0.9}, False),
    ("dampening", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, False),
    ("nesterov", {"lr": 0.05, "momentum": 0.8, "nesterov": True}, False),
    ("weight_decay", {"lr": 0.1, "weight_decay": 0.01}, False),
    ("all", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.05, "nesterov": True}, False),
    ("groups", {"lr": 0.1, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.1}, True),
    ("maximize", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.05, "maximize": True}, False),
    (
        "maximize_nesterov_groups",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1, "maximize": True},
        True,
    ),
]
ADAM_CASES = [
    ("default", {"lr": 1e-3}, False),
    ("weight_decay", {"lr": 1e-2, "weight_decay": 0.1}, False),
    ("small_beta1", {"lr": 1e-2, "betas": (0.3, 0.9), "eps": 1e-6}, False),
    ("groups", {"lr": 1e-2, "weight_decay": 0.1}, True),
    ("amsgrad", {"lr": 1e-2, "betas": (0.9, 0.9), "amsgrad": True}, False),
    (
        "amsgrad_maximize_weight_decay",
        {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True, "maximize": True},
        False,
    ),
    ("decoupled_groups", {"lr": 1e-2, "weight_decay": 0.5, "decoupled_weight_decay": True}, True),
]
ADAMW_CASES = [
    ("default", {"lr": 1e-3}, False),
    ("strong_decay", {"lr": 1e-2, "weight_decay": 0.5}, False),
    ("small_beta1", {"lr": 1e-2, "betas": (0.3, 0.99), "weight_decay": 0.1}, False),
    ("groups", {"lr": 1e-2, "weight_decay": 0.5}, True),
    ("amsgrad", {"lr": 1e-2, "betas": (0.9, 0.9), "weight_decay": 0.1, "amsgrad": True}, False),
    (
        "maximize_amsgrad_groups",
        {"lr": 1e-2, "weight_decay": 0.5, "amsgrad": True, "maximize": True},
        True,
    ),
]
# float32: XLA and torch fuse different multiply-adds into FMAs and torch's float32 sqrt
# is not correctly rounded, so trajectories drift by ~1e-7 of the scale per step.
# float64: the same operation order in double precision.
DTYPES = [(np.float32, 1e-5), (np.float64, 1e-10)]


_STATIC = ("nesterov", "maximize", "amsgrad", "decoupled_weight_decay")


def _parity(cls_name, ours_fn, case, kwargs, masked, dtype, rtol, traced=True):
    torch = pytest.importorskip("torch")
    theirs = _torch_run(torch, getattr(torch.optim, cls_name), kwargs, masked, dtype)
    mask = WEIGHTS if masked else None
    with jax.enable_x64(dtype == np.float64):
        if traced:
            hparams = {k: v for k, v in kwargs.items() if k not in _STATIC}
            if ours_fn is torch_sgd:
                hparams = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, **hparams}
            else:
                hparams = {"weight_decay": 0.0 if ours_fn is torch_adam else 1e-2, **hparams}
            static = tuple((k, kwargs[k]) for k in _STATIC if k in kwargs)
            static += (("masked", masked),)
            hparams = jax.tree.map(lambda x: np.asarray(x, dtype), hparams)
            ours = _traced_run(hparams, *_inputs(dtype), factory=ours_fn, static=static)
        else:
            ours = _jax_run(ours_fn(**kwargs, mask=mask), dtype)
        _assert_close(ours, theirs, rtol, f"{cls_name}[{case}, {dtype.__name__}]")


# --- torch_sgd ---


@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("case, kwargs, masked", SGD_CASES)
def test_torch_sgd_matches_torch(case, kwargs, masked, dtype, rtol):
    _parity("SGD", torch_sgd, case, kwargs, masked, dtype, rtol)


@pytest.mark.parametrize(
    "cls_name, fn, cases",
    [
        ("SGD", torch_sgd, SGD_CASES),
        ("Adam", torch_adam, ADAM_CASES),
        ("AdamW", torch_adamw, ADAMW_CASES),
    ],
)
def test_torch_optimizers_concrete_hparams_match_torch(cls_name, fn, cases):
    # the cases above trace their hyperparameters (as a sweep does); Python floats take
    # the constant-folded path (no momentum buffer when momentum is 0, no decay term)
    case, kwargs, masked = cases[-1]
    _parity(cls_name, fn, case, kwargs, masked, np.float32, 1e-5, traced=False)
    _parity(cls_name, fn, "default", {"lr": 0.01}, False, np.float32, 1e-5, traced=False)


def test_torch_sgd_plain_is_bit_identical_to_torch():
    torch = pytest.importorskip("torch")
    theirs = _torch_run(torch, torch.optim.SGD, {"lr": 0.1}, False, np.float32)
    ours = _jax_run(torch_sgd(0.1), np.float32)
    for k in SHAPES:
        np.testing.assert_array_equal(ours[k], theirs[k])


def test_torch_sgd_first_step_buffer_is_the_gradient():
    tx = torch_sgd(1.0, momentum=0.9, dampening=0.5)
    params = jnp.zeros(1)
    state = tx.init(params)
    updates = []
    for g in (2.0, 2.0, 0.0):
        u, state = tx.update(jnp.array([g]), state, params)
        updates.append(-float(u[0]))
    # buf: 2 (no dampening on step 1), 0.9*2 + 0.5*2 = 2.8, 0.9*2.8 = 2.52
    np.testing.assert_allclose(updates, [2.0, 2.8, 2.52], rtol=1e-6)


def test_torch_sgd_no_buffer_without_momentum():
    state = torch_sgd(0.1).init({"w": jnp.ones(2)})
    assert isinstance(state, TorchSGDState) and state.momentum_buffer is None
    state = torch_sgd(0.1, momentum=0.9).init({"w": jnp.ones(2)})
    np.testing.assert_array_equal(state.momentum_buffer["w"], np.zeros(2))


def test_torch_sgd_traced_hparams_no_recompile_and_vmap():
    @jax.jit
    def run(lr, momentum, wd):
        return _jax_run(torch_sgd(lr, momentum=momentum, weight_decay=wd), np.float32)

    a = run(jnp.float32(0.1), jnp.float32(0.9), jnp.float32(0.01))
    b = run(jnp.float32(0.05), jnp.float32(0.5), jnp.float32(0.0))
    assert run._cache_size() == 1
    assert not np.allclose(a["W1"], b["W1"])
    lrs = jnp.array([0.1, 0.05], jnp.float32)
    batched = jax.vmap(run, in_axes=(0, None, None))(lrs, jnp.float32(0.9), jnp.float32(0.01))
    np.testing.assert_allclose(batched["W1"][0], a["W1"], rtol=1e-6)
    direct = _jax_run(torch_sgd(0.1, momentum=0.9, weight_decay=0.01), np.float32)
    np.testing.assert_allclose(a["W1"], direct["W1"], rtol=1e-6, atol=1e-6)


def test_torch_sgd_traced_zero_momentum_bypasses_dampening():
    # torch with momentum=0 ignores dampening; a traced 0 must do the same.
    traced = jax.jit(lambda m: _jax_run(torch_sgd(0.1, momentum=m, dampening=0.5), np.float32))(
        jnp.float32(0.0)
    )
    plain = _jax_run(torch_sgd(0.1, dampening=0.5), np.float32)
    for k in SHAPES:
        np.testing.assert_allclose(traced[k], plain[k], rtol=1e-6)


def test_torch_sgd_schedule_matches_torch_lambda_lr():
    torch = pytest.importorskip("torch")
    init, grads = _problem(np.float32)
    params = [torch.nn.Parameter(torch.tensor(init[k])) for k in SHAPES]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.9**t)
    for g in grads:
        for k, p in zip(SHAPES, params, strict=True):
            p.grad = torch.tensor(g[k])
        opt.step()
        sched.step()
    ours = _jax_run(torch_sgd(optax.exponential_decay(0.1, 1, 0.9), momentum=0.9), np.float32)
    theirs = {k: p.detach().numpy() for k, p in zip(SHAPES, params, strict=True)}
    _assert_close(ours, theirs, 1e-5, "SGD[LambdaLR]")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -0.1}, r"torch_sgd: lr must be a finite number >= 0, got -0.1"),
        ({"lr": float("nan")}, r"torch_sgd: lr must be a finite number >= 0, got nan"),
        ({"lr": 0.1, "momentum": -0.5}, r"torch_sgd: momentum must be .* got -0.5"),
        ({"lr": 0.1, "weight_decay": -1.0}, r"torch_sgd: weight_decay must be .* got -1.0"),
        ({"lr": 0.1, "nesterov": True}, r"Nesterov momentum requires a momentum > 0"),
        (
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
            r"zero dampening, got momentum=0.9, dampening=0.1",
        ),
        ({"lr": 0.1, "nesterov": 1}, r"nesterov must be a bool, got 1"),
    ],
)
def test_torch_sgd_invalid_raises_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        torch_sgd(**kwargs)
    torch = pytest.importorskip("torch")
    if not isinstance(kwargs.get("nesterov", False), bool) or kwargs["lr"] != kwargs["lr"]:
        return  # torch accepts these; jaxreg is stricter
    with pytest.raises(ValueError):
        torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], **kwargs)


def test_torch_sgd_requires_params_for_weight_decay():
    tx = torch_sgd(0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="torch_sgd needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
    tx = torch_sgd(0.1)
    updates, _ = tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
    np.testing.assert_allclose(updates, [-0.1, -0.1])


# --- torch_adam ---


@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("case, kwargs, masked", ADAM_CASES)
def test_torch_adam_matches_torch(case, kwargs, masked, dtype, rtol):
    _parity("Adam", torch_adam, case, kwargs, masked, dtype, rtol)


def test_torch_adam_state_and_traced_lr():
    tx = torch_adam(1e-3)
    state = tx.init({"w": jnp.ones(3)})
    assert isinstance(state, TorchAdamState) and int(state.count) == 0

    @jax.jit
    def run(lr, wd):
        return _jax_run(torch_adam(lr, weight_decay=wd), np.float32)

    run(jnp.float32(1e-3), jnp.float32(0.0))
    out = run(jnp.float32(1e-2), jnp.float32(0.1))
    assert run._cache_size() == 1
    direct = _jax_run(torch_adam(1e-2, weight_decay=0.1), np.float32)
    np.testing.assert_allclose(out["W1"], direct["W1"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1e-3}, r"torch_adam: lr must be a finite number >= 0, got -0.001"),
        ({"eps": -1e-8}, r"torch_adam: eps must be"),
        ({"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\).*got 1.0"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\] must be in \[0, 1\).*got -0.1"),
        ({"betas": (0.9,)}, r"betas must be a pair"),
        ({"weight_decay": -0.1}, r"torch_adam: weight_decay must be"),
    ],
)
def test_torch_adam_invalid_raises_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        torch_adam(**kwargs)
    torch = pytest.importorskip("torch")
    if kwargs.get("betas") == (0.9,):
        return  # torch fails on unpacking with another error type
    with pytest.raises(ValueError):
        torch.optim.Adam([torch.nn.Parameter(torch.ones(1))], **kwargs)


# --- torch_adamw ---


@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("case, kwargs, masked", ADAMW_CASES)
def test_torch_adamw_matches_torch(case, kwargs, masked, dtype, rtol):
    _parity("AdamW", torch_adamw, case, kwargs, masked, dtype, rtol)


def test_torch_adamw_decay_is_decoupled_and_lr_scaled():
    params = {"w": jnp.array([2.0, -4.0]), "b": jnp.array([1.0, 1.0])}
    tx = torch_adamw(0.1, weight_decay=0.5, mask={"w": True, "b": False})
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, state = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["w"], [1.9, -3.8], rtol=1e-6)
    np.testing.assert_array_equal(new["b"], params["b"])
    # the moments never see the decay (coupled Adam's would)
    np.testing.assert_array_equal(state.exp_avg["w"], np.zeros(2))
    _, coupled = torch_adam(0.1, weight_decay=0.5).update(
        zeros, torch_adam(0.1).init(params), params
    )
    assert np.abs(np.asarray(coupled.exp_avg["w"])).min() > 0


def test_torch_adamw_equals_adam_plus_decoupled_weight_decay():
    lr, wd = 1e-2, 0.1
    ours = _jax_run(torch_adamw(lr, weight_decay=wd), np.float32)
    chained = _jax_run(
        optax.chain(torch_adam(lr), jaxreg.decoupled_weight_decay(wd, lr)), np.float32
    )
    for k in SHAPES:
        np.testing.assert_allclose(ours[k], chained[k], rtol=1e-5, atol=1e-6)


def test_torch_adamw_invalid_raises():
    with pytest.raises(ValueError, match=r"torch_adamw: weight_decay must be .* got -0.01"):
        torch_adamw(1e-3, weight_decay=-0.01)
    with pytest.raises(ValueError, match=r"torch_adamw: lr must be"):
        torch_adamw(float("inf"))


def test_public_names_exported():
    for name in ("torch_sgd", "torch_adam", "torch_adamw"):
        assert getattr(jaxreg, name) is getattr(jaxreg.optim, name)


# --- the full torch.optim keyword set ---


@pytest.mark.parametrize(
    "cls_name, fn", [("SGD", torch_sgd), ("Adam", torch_adam), ("AdamW", torch_adamw)]
)
def test_signature_has_every_torch_keyword_with_torch_defaults(cls_name, fn):
    import inspect

    torch = pytest.importorskip("torch")
    theirs = inspect.signature(getattr(torch.optim, cls_name)).parameters
    ours = inspect.signature(fn).parameters
    names = [n for n in theirs if n != "params"]
    assert [n for n in ours if n != "mask"] == names  # same order: positional calls agree
    for name in names:
        assert ours[name].default == theirs[name].default, name
        assert ours[name].kind == theirs[name].kind, name
    assert ours["mask"].kind is inspect.Parameter.KEYWORD_ONLY


def test_amsgrad_and_maximize_change_the_trajectory():
    # the parity cases above are not vacuous: each flag moves the parameters
    def final(**kwargs):
        return np.asarray(_jax_run(torch_adam(1e-2, betas=(0.9, 0.9), **kwargs), np.float64)["W1"])

    with jax.enable_x64(True):
        plain, ams, up = final(), final(amsgrad=True), final(maximize=True)
        sgd_up = np.asarray(_jax_run(torch_sgd(0.1, maximize=True), np.float64)["W1"])
        sgd_down = np.asarray(_jax_run(torch_sgd(0.1), np.float64)["W1"])
        init = np.asarray(_inputs(np.float64)[0]["W1"])
    assert np.abs(plain - ams).max() > 1e-3
    np.testing.assert_allclose(up - init, -(plain - init), rtol=1e-9)  # no decay: a mirror
    np.testing.assert_allclose(sgd_up - init, -(sgd_down - init), rtol=1e-9)


def test_amsgrad_state_keeps_the_running_maximum():
    tx = torch_adam(1e-3, betas=(0.9, 0.5), amsgrad=True)
    params = jnp.zeros(1)
    state = tx.init(params)
    assert torch_adam().init(params).max_exp_avg_sq is None
    for g in (2.0, 0.0, 0.0):
        _, state = tx.update(jnp.array([g]), state, params)
    # v: 2, 1, 0.5; the maximum stays at 2
    np.testing.assert_allclose(state.exp_avg_sq, [0.5], rtol=1e-6)
    np.testing.assert_allclose(state.max_exp_avg_sq, [2.0], rtol=1e-6)


def test_adam_decoupled_weight_decay_is_adamw():
    ours = _jax_run(torch_adam(1e-2, weight_decay=0.3, decoupled_weight_decay=True), np.float32)
    adamw = _jax_run(torch_adamw(1e-2, weight_decay=0.3), np.float32)
    for k in SHAPES:
        np.testing.assert_array_equal(ours[k], adamw[k])


@pytest.mark.parametrize(
    "fn, switches",
    [
        (torch_sgd, {"foreach": True, "differentiable": True}),
        (torch_sgd, {"fused": True}),
        (torch_adam, {"foreach": False, "capturable": True, "differentiable": True}),
        (torch_adamw, {"fused": True, "capturable": True}),
    ],
)
def test_implementation_switches_are_accepted_and_ignored(fn, switches):
    plain = _jax_run(fn(0.01, weight_decay=0.1), np.float32)
    switched = _jax_run(fn(0.01, weight_decay=0.1, **switches), np.float32)
    for k in SHAPES:
        np.testing.assert_array_equal(switched[k], plain[k])


@pytest.mark.parametrize("fn", [torch_sgd, torch_adam, torch_adamw])
@pytest.mark.parametrize(
    "switches, match",
    [
        ({"fused": True, "differentiable": True}, "`fused` does not support `differentiable`"),
        ({"fused": True, "foreach": True}, "`fused` and `foreach` cannot be `True` together"),
        ({"foreach": "yes"}, "foreach must be None or a bool, got 'yes'"),
        ({"maximize": 1}, "maximize must be a bool, got 1"),
    ],
)
def test_switch_combinations_torch_refuses_are_refused(fn, switches, match):
    with pytest.raises(ValueError, match=match):
        fn(0.01, **switches)
    torch = pytest.importorskip("torch")
    if "fused" in switches:
        cls = {torch_sgd: torch.optim.SGD, torch_adam: torch.optim.Adam}.get(fn, torch.optim.AdamW)
        with pytest.raises(RuntimeError, match=match):
            cls([torch.nn.Parameter(torch.ones(1))], lr=0.01, **switches)


@pytest.mark.parametrize(
    "cls_name, fn, kwargs",
    [
        ("SGD", torch_sgd, {"lr": -0.1}),
        ("SGD", torch_sgd, {"lr": 0.1, "momentum": -0.5}),
        ("SGD", torch_sgd, {"lr": 0.1, "weight_decay": -1.0}),
        ("SGD", torch_sgd, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}),
        ("Adam", torch_adam, {"lr": -1e-3}),
        ("Adam", torch_adam, {"eps": -1e-8}),
        ("Adam", torch_adam, {"betas": (1.0, 0.999)}),
        ("Adam", torch_adam, {"betas": (0.9, -0.1)}),
        ("AdamW", torch_adamw, {"weight_decay": -0.01}),
    ],
)
def test_invalid_values_carry_torchs_message(cls_name, fn, kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, cls_name)([torch.nn.Parameter(torch.ones(1))], **kwargs)
    with pytest.raises(ValueError) as ours:
        fn(**kwargs)
    assert f"'{theirs.value}'" in str(ours.value)


def test_mask_is_keyword_only():
    with pytest.raises(TypeError):
        torch_sgd(0.1, 0.0, 0.0, 0.1, False, {"w": True})
    with pytest.raises(TypeError):
        torch_adam(0.1, (0.9, 0.999), 1e-8, 0.1, False, {"w": True})


# --- property tests against a NumPy transcription of torch's algorithms ---


def _numpy_sgd(p, grads, lr, momentum, dampening, weight_decay, nesterov, maximize=False):
    buf = None
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        if momentum != 0:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def _numpy_adam(p, grads, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = np.maximum(v_max, v)
        denom = np.sqrt(v_max if amsgrad else v) / np.sqrt(1 - beta2**t) + eps
        p = p - lr / (1 - beta1**t) * m / denom
    return p


@functools.partial(jax.jit, static_argnames=("factory", "static"))
def _three_steps(hparams, p, grads, factory, static):
    return _scan(factory(**hparams, **dict(static)), p, grads)


_P0 = np.linspace(-2.0, 2.0, 7)
_GRADS = np.stack([np.cos(np.arange(7.0) * k) for k in range(1, 4)])


# allow_subnormal=False: XLA's CPU backend flushes subnormals to zero, so a traced momentum of
# 5e-324 is 0 there (torch and NumPy keep it, and take the momentum branch).
@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    lr=st.floats(0.0, 1.0, allow_subnormal=False),
    momentum=st.floats(0.0, 0.99, allow_subnormal=False),
    dampening=st.floats(0.0, 1.0, allow_subnormal=False),
    weight_decay=st.floats(0.0, 0.5, allow_subnormal=False),
    nesterov=st.booleans(),
    maximize=st.booleans(),
)
def test_torch_sgd_property_matches_numpy_reference(
    lr, momentum, dampening, weight_decay, nesterov, maximize
):
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    hp = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay}
    expected = _numpy_sgd(_P0, _GRADS, nesterov=nesterov, maximize=maximize, **hp)
    with jax.enable_x64(True):
        hp = {k: np.float64(v) for k, v in hp.items()}
        static = (("nesterov", nesterov), ("maximize", maximize))
        got = _three_steps(hp, jnp.asarray(_P0), jnp.asarray(_GRADS), torch_sgd, static)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    lr=st.floats(0.0, 0.5, allow_subnormal=False),
    beta1=st.floats(0.0, 0.99, allow_subnormal=False),
    beta2=st.floats(0.0, 0.9999, allow_subnormal=False),
    eps=st.floats(1e-8, 1e-3),
    weight_decay=st.floats(0.0, 0.5, allow_subnormal=False),
    decoupled=st.booleans(),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
)
def test_torch_adam_property_matches_numpy_reference(
    lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize
):
    expected = _numpy_adam(
        _P0, _GRADS, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize
    )
    with jax.enable_x64(True):
        hp = {
            "lr": np.float64(lr),
            "betas": (np.float64(beta1), np.float64(beta2)),
            "eps": np.float64(eps),
            "weight_decay": np.float64(weight_decay),
        }
        factory = torch_adamw if decoupled else torch_adam
        static = (("amsgrad", amsgrad), ("maximize", maximize))
        got = _three_steps(hp, jnp.asarray(_P0), jnp.asarray(_GRADS), factory, static)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)

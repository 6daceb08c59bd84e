"""The float64 gate fails a wrong implementation; the float32 attribution says who drifted.

A tiny dropout MLP (12-16-16-4, dropout 0.2 / 0.5, an L2 weight penalty, SGD) is trained in
float64 by the engine (``jaxreg.lab.engine``: per-step losses of ``Train.step``, which is the
scan's step bit for bit, or ``metrics["step_loss"]`` where the engine records it) and by a plain
torch loop on the engine's batches and masks (``jaxreg.lab.matched.MatchedStreams``). The correct
torch loop passes :func:`jaxreg.lab.verdict.float64_gate`; each mutation of the torch loop must
fail it: learning rate x1.01, penalty x2, unmatched streams, masks one step late, float32
arithmetic in a float64 run, and a random site that neither side shares (torch draws its own
mask there). The mutations are injected at the torch loop level (this file's loop), which
stands for any torch twin a user writes.

Also: an activity penalty on a dataset whose size is not a multiple of the batch (the engine
pads the last batch) against a plain loop on the true, unpadded batches, to 1e-10.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxreg
from jaxreg import models as M
from jaxreg.lab import engine, matched
from jaxreg.lab.verdict import (
    GATE_RTOL,
    attribution_rows,
    attribution_summary,
    float32_attribution,
    float64_gate,
    step_errors,
)

N, BATCH, EPOCHS, LR, L2 = 48, 16, 2, 0.2, 0.01
RATES = {"dropout1": 0.2, "dropout2": 0.5}
LAYERS = ("lin1", "lin2", "lin3")


@pytest.fixture(autouse=True)
def _x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _data(n=N, features=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    y = np.argmax(x @ rng.standard_normal((features, classes)), axis=1).astype(np.int32)
    return x, y


def _masks(streams, epoch):
    """The step's keep-masks, in call order (``step_masks`` or, after H4, ``step_draws``)."""
    if hasattr(streams, "step_masks"):
        return [[np.asarray(m) for m in step] for step in streams.step_masks(epoch)]
    return [[np.asarray(d.value) for d in step] for step in streams.step_draws(epoch)]


@functools.cache
def _jax_run(dtype="float64", dropout=True):
    """The engine's run: per-step data losses [epochs, steps], final params, the streams."""
    x, y = _data()
    model = M.DropoutMLP(num_inputs=12, num_hiddens1=16, num_hiddens2=16, num_outputs=4)
    config = engine.TrainConfig(
        model=model, lr=LR, batch_size=BATCH, epochs=EPOCHS, penalty="l2", dtype=dtype
    )
    train = engine.make_train(config, (x, y, x[:8], y[:8]))
    key = jax.random.key(7)
    hp = {"l2": L2, **(RATES if dropout else dict.fromkeys(RATES, 0.0))}
    state = train.init(key, hp)
    shapes = jax.eval_shape(train.pure, train.data, key, train.normalize_hparams(hp))
    if "step_loss" in shapes.metrics:  # the engine records per-step losses (issue 15)
        result = train(key, hp)
        steps, params = np.asarray(result.metrics["step_loss"], np.float64), result.params
    else:
        # Train.step is the scan's step bit for bit (engine docstring, tested in test_engine):
        # one compiled step instead of a second compilation of the whole run.
        step = jax.jit(train.step)
        steps = []
        for epoch in range(EPOCHS):
            order, valid = train.batch_order(key, epoch)
            row = []
            for idx, mask in zip(np.asarray(order), np.asarray(valid), strict=True):
                state, out = step(state, (x[idx], y[idx], mask), key, hp)
                row.append(float(out["loss"]))
            steps.append(row)
        steps, params = np.asarray(steps), state.params
    streams = matched.MatchedStreams(train, key, hp)
    init = jax.tree.map(np.asarray, train.init(key, hp).params)
    final = {f"{k}.{n}": np.asarray(v) for k, d in params.items() for n, v in d.items()}
    return steps, final, streams, init


def _torch_run(
    *, lr_scale=1.0, penalty_scale=1.0, streams="matched", masks_late=False,
    compute=torch.float64, unshared_site=None, dtype=torch.float64, dropout=True,
):  # fmt: skip
    """The torch loop on the engine's batches and masks, with one optional mutation."""
    _, _, matched_streams, init = _jax_run("float64", dropout)
    x, y = _data()
    params = {
        f"{k}.{n}": torch.tensor(np.array(init[k][n]), dtype=dtype, requires_grad=True)
        for k in LAYERS
        for n in ("kernel", "bias")
    }
    opt = torch.optim.SGD(params.values(), lr=LR * lr_scale)
    gen = torch.Generator().manual_seed(0)
    keep = (1 - RATES["dropout1"], 1 - RATES["dropout2"]) if dropout else (1.0, 1.0)
    all_masks = [m for e in range(EPOCHS) for m in _masks(matched_streams, e)]
    losses, k = [], 0
    for epoch in range(EPOCHS):
        if streams == "matched":
            order = np.asarray(matched_streams.order(epoch))
        else:
            order = torch.randperm(N, generator=gen).numpy()
        row = []
        for start in range(0, N, BATCH):
            idx = order[start : start + BATCH]
            xb = torch.tensor(x[idx], dtype=dtype).to(compute)
            step_masks = all_masks[k - 1 if masks_late and k else k]
            h = xb
            for i, name in enumerate(LAYERS):
                w, b = params[f"{name}.kernel"].to(compute), params[f"{name}.bias"].to(compute)
                h = h @ w + b
                if i < 2:
                    h = torch.relu(h)
                    if streams == "matched" and unshared_site != i:
                        mask = torch.from_numpy(np.array(step_masks[i][: len(idx)])).to(compute)
                    else:  # torch's own draw: a site the replay does not share
                        mask = (torch.rand(h.shape, generator=gen) < keep[i]).to(compute)
                    h = h * (mask / keep[i])
            labels = torch.from_numpy(y[idx].astype(np.int64))
            loss = F.cross_entropy(h, labels).to(dtype)
            penalty = sum((params[f"{n}.kernel"] ** 2).sum() for n in LAYERS) / 2
            objective = loss + penalty_scale * L2 * penalty
            opt.zero_grad()
            objective.backward()
            opt.step()
            row.append(loss.item())
            k += 1
        losses.append(row)
    final = {k_: v.detach().numpy() for k_, v in params.items()}
    return np.asarray(losses), final


def _gate(**mutation):
    jax_steps, jax_final, _, _ = _jax_run()
    torch_steps, torch_final = _torch_run(**mutation)
    return float64_gate(jax_steps, torch_steps, jax_params=jax_final, torch_params=torch_final)


def test_correct_float64_pair_passes_the_gate():
    gate = _gate()
    assert gate.passed, gate.summary()
    assert gate.steps == EPOCHS * (N // BATCH) and gate.params_worst is not None
    assert gate.worst < 1e-12 and gate.params_worst < 1e-12, gate.summary()


MUTATIONS = {
    "learning rate x1.01": {"lr_scale": 1.01},
    "penalty x2": {"penalty_scale": 2.0},
    "unmatched streams": {"streams": "own"},
    "masks one step late": {"masks_late": True},
    "float64 run computing in float32": {"compute": torch.float32},
    "a random site shared by neither side": {"unshared_site": 1},
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_wrong_implementation_fails_the_gate(name):
    gate = _gate(**MUTATIONS[name])
    assert not gate.passed, f"{name}: {gate.summary()}"
    # Not by a hair: beyond the gate by 10x somewhere (float32 arithmetic: by its own rounding,
    # ~6e-8 relative per operation, so 2x).
    margin = 2 if "float32" in name else 10
    assert max(gate.worst, gate.params_worst) > margin * GATE_RTOL, f"{name}: {gate.summary()}"
    assert gate.first_failure is not None


def test_late_masks_fail_from_the_second_step():
    """Step 1 uses its own masks either way; the gate names step 2 as the first failure."""
    gate = _gate(masks_late=True)
    assert gate.per_step[0, 0] < 1e-12
    assert gate.first_failure == "epoch 1 step 2", gate.summary()


def test_gate_rejects_float32_inputs_and_bad_arguments():
    a = np.ones(3)
    with pytest.raises(ValueError, match="float64 gate compares float64 runs"):
        float64_gate(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="shape"):
        float64_gate(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="give both or neither"):
        float64_gate(a, a, jax_params={"w": a})
    with pytest.raises(ValueError, match="different tensors"):
        float64_gate(a, a, jax_params={"w": a}, torch_params={"v": a})
    with pytest.raises(ValueError, match="rtol"):
        float64_gate(a, a, rtol=0.0)
    with pytest.raises(ValueError, match="empty"):
        float64_gate(np.ones(0), np.ones(0))


def test_gate_counts_nan_as_failure_and_checks_params():
    nan = np.array([1.0, np.nan])
    assert not float64_gate(nan, nan).passed  # two NaNs are not an agreement
    ok = np.array([2.0, 1.0])
    gate = float64_gate(ok, ok, jax_params={"w": np.ones(2)}, torch_params={"w": np.ones(2) * 1.1})
    assert not gate.passed and gate.params_worst_name == "w"
    assert gate.params_worst == pytest.approx(0.1 / 1.1)


@pytest.mark.slow
def test_float32_attribution_names_the_side_that_drifted():
    """A JAX float32 run against the engine's float64 run, and a float32 torch run.

    Dropout off: the attribution needs the float32 and float64 runs on the same masks, which
    the engine's streams give once masks do not depend on the run's dtype (jaxreg.lab.draws).
    """
    jax64, *_ = _jax_run("float64", False)
    jax32, *_ = _jax_run("float32", False)
    torch64, _ = _torch_run(dropout=False)
    torch32, _ = _torch_run(compute=torch.float32, dropout=False)
    att = float32_attribution(jax32, jax64, torch32, torch64)
    # Both sides' float32 errors are float32-sized, the float64 pair is not.
    assert 1e-9 < np.max(att.jax_error) < 1e-3 and 1e-9 < np.max(att.torch_error) < 1e-3
    assert np.max(att.float64_gap) < 1e-12
    # The triangle inequality, exact because every entry shares torch64 as its scale.
    assert np.all(att.gap <= att.jax_error + att.float64_gap + att.torch_error + 1e-15)
    line = attribution_summary(att, "tiny MLP")
    assert line.startswith("tiny MLP: float32 JAX-torch gap up to") and "own float32 error" in line
    rows = attribution_rows(att)
    assert [r["steps"] for r in rows] == ["step 1", "steps 2-10", "epoch 1", "epoch 2"]
    # A side made 100x worse is named.
    worse = float32_attribution(jax32, jax64, torch64 + 100 * (torch32 - torch64), torch64)
    assert "torch (" in attribution_summary(worse)


def test_step_errors_rules():
    assert step_errors([1.0, 0.0], [1.0, 0.0]).tolist() == [0.0, 0.0]
    assert step_errors([1.0], [0.0]).tolist() == [np.inf]
    with pytest.raises(ValueError, match="shape"):
        step_errors([1.0], [1.0, 2.0])


# --- the activity penalty on a partial last batch ---------------------------------------------

ACT = {"act_l1": 0.05, "act_l2": 0.01}


def test_activity_penalty_ignores_padded_rows():
    """The engine (40 examples, batch 16: the last batch is 8 real rows + 8 padded ones) against
    a plain loop of the same steps on the true batches, float64, to 1e-10: an activity penalty
    that counts the padded rows (copies of example 0) fails by ~1e-3."""
    n, bs, epochs, lr = 40, 16, 2, 0.05
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 128))
    y = rng.integers(0, 2, n).astype(np.int32)
    model = M.ActivityMLP(param_dtype=jnp.float64)
    config = engine.TrainConfig(
        model=model, lr=lr, batch_size=bs, epochs=epochs, dtype="float64",
        activity=(("l1", 1), ("l2_norm", 2)),
    )  # fmt: skip
    train = engine.make_train(config, (x, y))
    key = jax.random.key(11)
    result = train(key, ACT)

    def objective(p, xb, yb):
        out, h1, h2 = model.apply({"params": p}, xb)
        ce = -jnp.mean(jax.nn.log_softmax(out)[jnp.arange(len(yb)), yb])
        return (
            ce
            + ACT["act_l1"] * jaxreg.l1_penalty(h1)
            + ACT["act_l2"] * (jaxreg.l2_norm_penalty(h2))
        )

    grad = jax.jit(jax.value_and_grad(objective))
    params = train.init(key, ACT).params
    objectives = []
    for epoch in range(epochs):
        order, valid = train.batch_order(key, epoch)
        total = 0.0
        for idx, mask in zip(np.asarray(order), np.asarray(valid), strict=True):
            real = idx[mask > 0]  # the true batch: the padding rows dropped
            assert len(real) in (bs, n % bs)
            value, g = grad(params, x[real], y[real])
            params = jax.tree.map(lambda p, d: p - lr * d, params, g)
            total += float(value) * len(real)
        objectives.append(total / n)
    for layer, leaves in params.items():
        for name, ref in leaves.items():
            ours = np.asarray(result.params[layer][name])
            rel = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
            assert rel <= 1e-10, f"{layer}.{name}: {rel:.2e}"
    np.testing.assert_allclose(result.metrics["train_objective"], objectives, rtol=1e-10)

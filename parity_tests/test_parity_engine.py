"""The training loops users run, against each other: ``jaxreg.lab.engine`` vs ``jaxreg.torch_ref``.

Every case trains a seed model with dropout ON through the JAX engine (``make_train``, the one
compiled loop behind ``jaxreg run`` and ``jaxreg sweep``) and through the torch loop
(``train_classifier`` / ``train_regression``, the loop behind ``--framework torch``), matched:
both start from the same weights, visit the same batches in the same order and use the same
dropout masks (drawn by the engine with its JAX keys, replayed in torch by
``jaxreg.torch_ref.replay``; ``jaxreg.lab.matched``). The runs then differ only by rounding.

Compared: the loss of every optimizer step (torch's ``loss.item()``, the engine's
``metrics["step_loss"]``), the per-epoch training objective and (where evaluation is
deterministic) test loss, and every final parameter. Tolerances: float64 ``F64`` (1e-10;
observed ~1e-15). float32: the bound is measured from torch's own float32 noise on the same run,
per step: the torch loop is run ``SAMPLES`` (3) more times on RELABELED copies of the network
(``_trajectory.Relabeled``: inputs and hidden units permuted by seeded permutations, the
dropout masks' features permuted with their units, each batch's rows reordered:
``_trajectory.RelabeledStreams``), which compute the same function with every forward inner
product and batch sum rounded in another order (reordering batch rows alone changes no forward
inner product and underestimates two libraries' different kernels). Per step ``k``, the bound
is ``max(5e-5, 10 x the largest drift of any sample at any step <= k)``; each final tensor is
held to ``max(5e-5, 10 x its largest final drift)`` (relative, infinity norm; 5e-5 is the
suite's ``f32-steps`` tolerance). The same case checks that the bound can fail: the torch
loop with its own masks (unmatched) must exceed it, or the case reports itself as vacuous.

Models and what each case would catch:

* ``seed003_dropout_mlp_{scratch,concise}`` (d2l's ``dropout_layer`` / ``nn.Dropout``): the rates
  attached to the wrong layers (torch scales each replayed mask by its own ``1 / (1 - p)``);
* ``seed001_two_layer_net`` (``log_softmax`` + NLL) and its ``always_dropout`` variant (the
  seeds' ``F.dropout`` that never turns off; its evaluation draws unshared masks, so only
  training is compared);
* ``seed002_net_dropped`` (dropout BEFORE the ReLU, full-batch Adam, MSE);
* ``vanilla_dropout_mlp`` (cs231n's vanilla dropout in training: no rescaling);
* ``broadcast_dims_mlp`` (one draw shared along the time axis; the torch twin draws one value per
  (example, feature) and takes JAX's value at time 0, so a JAX mask that ignores
  ``broadcast_dims`` trains differently);
* ``seed004_l2_mean_weights_only`` / ``seed004_sgd_decay_weights_only`` (no dropout: the penalty's
  and the optimizer's weights-only masks, against seed 004's hand-written penalty / param groups).
"""

import flax.linen as fnn
import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _parity import F32_STEPS, F64, Tol, errors, torch_dtype
from _trajectory import MULTIPLE, PROBE_SEEDS, Relabeled, RelabeledStreams, step_drift

import jaxreg.nn as jnn
from jaxreg import convert
from jaxreg import models as M
from jaxreg.lab import engine, matched
from jaxreg.lab.data import regression_data
from jaxreg.torch_ref import engine as torch_engine
from jaxreg.torch_ref import models as T
from jaxreg.torch_ref import penalties as P
from jaxreg.torch_ref.replay import active_replay

FAMILY = "engine"
# The floor is the suite's tolerance for ~25-step float32 optimizer runs (_parity.F32_STEPS), for
# the first steps of a short, tame run where the relabeled samples' drift is still ~1e-7.
F32_FLOOR = F32_STEPS.value
STEP_LOSS = "loss per step"


def _linear(*names):
    return [(f"{n}.weight", f"{n}.bias", False) for n in names]


# Each torch twin's layers, input to output (``_trajectory.Relabeled``'s chain): its hidden units
# and inputs are relabeled for the float32 noise samples. Mask j of a step multiplies hidden
# layer j in every model here.
CHAINS = {
    "seed003_dropout_mlp_scratch": _linear("lin1", "lin2", "lin3"),
    "seed003_dropout_mlp_concise": _linear("1", "4", "7"),
    "seed001_two_layer_net": _linear("fc1", "fc2"),
    "seed001_two_layer_net_always_dropout": _linear("fc1", "fc2"),
    "vanilla_dropout_mlp": _linear("fc1", "fc2"),
    "broadcast_dims_mlp": _linear("fc1", "fc2", "fc3"),
    "seed004_l2_mean_weights_only": [("W1", "b1", True), ("W2", "b2", True)],
    "seed004_sgd_decay_weights_only": [("W1", "b1", True), ("W2", "b2", True)],
    "seed002_net_dropped": _linear("0", "3", "6"),
}


class VanillaMLP(fnn.Module):
    """784-64-10 with cs231n's vanilla dropout (keep 0.7, no rescaling) after the hidden ReLU."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        x = fnn.relu(jaxreg_dense(64, "fc1")(x))
        x = jnn.VanillaDropout(keep_prob=0.7)(x, deterministic)
        return jaxreg_dense(10, "fc2")(x)


class BroadcastMLP(fnn.Module):
    """(N, 6, 16) sequences: Dense, ReLU, dropout shared over time (axis 1), Dense, mean, Dense."""

    @fnn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = fnn.relu(jaxreg_dense(32, "fc1")(x))
        h = jnn.Dropout(rate=0.4, broadcast_dims=(1,))(h, deterministic)
        h = jaxreg_dense(32, "fc2")(h).mean(axis=1)
        return jaxreg_dense(10, "fc3")(h)


def jaxreg_dense(features, name):
    from jaxreg.init import Dense

    return Dense(features, name=name)


class TorchVanillaMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(784, 64), torch.nn.Linear(64, 10)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        if self.training:
            replay = active_replay()
            keep = (
                replay.take(h.shape, h.dtype, h.device)
                if replay is not None
                else (torch.rand(h.shape) < 0.7).to(h.dtype)
            )
            h = h * keep  # cs231n's train_step: H *= (rand < p), no 1 / p
        else:
            h = h * 0.7  # cs231n's predict: scale at test time
        return self.fc2(h)


class TorchBroadcastMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 32)
        self.fc3 = torch.nn.Linear(32, 10)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        if self.training:
            # One draw per (example, feature), shared over time: the mask has shape (N, 1, F).
            h = h * F.dropout(torch.ones_like(h[:, :1, :]), p=0.4, training=True)
        return self.fc3(self.fc2(h).mean(dim=1))


def _classification(shape, classes=10, n_train=600, n_test=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, *shape)).astype(np.float32)
    teacher = rng.standard_normal((int(np.prod(shape)), classes))
    y = np.argmax(x.reshape(len(x), -1) @ teacher, axis=1).astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# case -> (flax model, torch twin factory, config kwargs, hparams, data, what is compared)
CLASSIFIERS = {
    "seed003_dropout_mlp_scratch": (
        lambda: M.DropoutMLP(style="scratch", weight_init="torch"),
        lambda: T.DropoutMLP(style="scratch", weight_init="torch"),
        {"lr": 0.1, "batch_size": 64, "epochs": 2},
        {"dropout1": 0.2, "dropout2": 0.5},
        (784,),
    ),
    "seed003_dropout_mlp_concise": (
        lambda: M.DropoutMLP(style="concise", weight_init="normal"),
        lambda: T.DropoutMLP(style="concise", weight_init="normal"),
        {"lr": 0.1, "batch_size": 64, "epochs": 2},
        {"dropout1": 0.2, "dropout2": 0.5},
        (784,),
    ),
    "seed001_two_layer_net": (
        lambda: M.TwoLayerNet(),
        lambda: T.TwoLayerNet(),
        {"lr": 0.1, "batch_size": 64, "epochs": 2, "loss": "nll"},
        {},
        (784,),
    ),
    "seed001_two_layer_net_always_dropout": (
        lambda: M.TwoLayerNet(always_dropout=True),
        lambda: T.TwoLayerNet(always_dropout=True),
        {"lr": 0.1, "batch_size": 64, "epochs": 2, "loss": "nll"},
        {},
        (784,),
    ),
    "vanilla_dropout_mlp": (
        VanillaMLP,
        TorchVanillaMLP,
        {"lr": 0.2, "batch_size": 64, "epochs": 2},
        {},
        (784,),
    ),
    "broadcast_dims_mlp": (
        BroadcastMLP,
        TorchBroadcastMLP,
        {"lr": 0.3, "batch_size": 50, "epochs": 2},
        {},
        (6, 16),
    ),
    "seed004_l2_mean_weights_only": (
        lambda: M.WeightDecayMLP(weight_std=0.1),
        lambda: T.WeightDecayMLP(weight_std=0.1),
        {"lr": 0.1, "batch_size": 64, "epochs": 2, "penalty": "l2_mean"},
        {"l2": 1.0},
        (784,),
    ),
    "seed004_sgd_decay_weights_only": (
        lambda: M.WeightDecayMLP(weight_std=0.1),
        lambda: T.WeightDecayMLP(weight_std=0.1),
        {"lr": 0.1, "batch_size": 64, "epochs": 2},
        {"weight_decay": 0.05},
        (784,),
    ),
}
CASES = sorted([*CLASSIFIERS, "seed002_net_dropped"])


def _twin(factory, params, dtype, relabel=None):
    torch.manual_seed(0)
    net = factory()
    torch_engine.load_params(net, convert.flax_to_torch(jax.tree.map(np.asarray, params)))
    net = net.to(torch_dtype(dtype))
    if relabel is not None:
        net.load_state_dict(relabel.state(net.state_dict()))
    return net


def _relabel(case, factory, params, seed):
    return Relabeled(_twin(factory, params, "float64").state_dict(), CHAINS[case], seed)


def _inputs(x, relabel):
    """The data with its features relabeled (the last axis: 784 pixels, 16 channels, 1)."""
    return x if relabel is None else np.ascontiguousarray(x[..., relabel.perms[0]])


def _streams(streams, relabel):
    return streams if relabel is None or streams is None else RelabeledStreams(streams, relabel)


def _torch_optimizer(case, net, cfg_kwargs, hp):
    lr = cfg_kwargs["lr"]
    if case == "seed004_sgd_decay_weights_only":
        params = dict(net.named_parameters())
        groups = [
            {"params": [params["W1"], params["W2"]], "weight_decay": hp["weight_decay"]},
            {"params": [params["b1"], params["b2"]]},
        ]
        return torch.optim.SGD(groups, lr=lr)
    return torch.optim.SGD(net.parameters(), lr=lr)


def _torch_penalty(case, hp):
    if case != "seed004_l2_mean_weights_only":
        return None
    return lambda net: hp["l2"] * (P.seed004_l2_penalty(net.W1) + P.seed004_l2_penalty(net.W2))


def _series(history, params_or_net, keys, steps, relabel=None) -> dict[str, np.ndarray]:
    """The compared tensors of one run: per-step losses, per-epoch series, final parameters."""
    if isinstance(params_or_net, torch.nn.Module):
        final = {k: v.detach().cpu().numpy() for k, v in params_or_net.state_dict().items()}
        final = final if relabel is None else relabel.unstate(final)
    else:
        final = convert.flax_to_torch(jax.tree.map(np.asarray, params_or_net))
    out = {STEP_LOSS: np.asarray(steps, np.float64).ravel()}
    out.update({f"{k} per epoch": np.asarray(history[k], np.float64) for k in keys})
    out.update({f"final/{k}": np.asarray(v, np.float64) for k, v in final.items()})
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return errors(a, b)[1]


def _compare(parity, dtype, ours, run_torch, streams):
    """Checks JAX against the matched torch run with a dtype-appropriate, measured bound.

    ``run_torch(streams, seed)``: the torch run on ``streams`` (None: its own shuffles and
    masks), on the network relabeled by ``seed`` (None: as it is), in the reference's labels.
    """
    reference = run_torch(streams, None)
    if dtype == "float64":
        for name in sorted(reference):
            parity.check(name, ours[name], reference[name], F64)
        return
    samples = [run_torch(streams, seed) for seed in PROBE_SEEDS]
    unmatched = run_torch(None, None)
    why = (
        f"float32: {MULTIPLE:g} x torch's own drift on this run ({len(samples)} runs on relabeled "
        "networks: inputs and hidden units permuted, masks with their units, batch rows "
        f"reordered), at least {F32_FLOOR:g} (f32-steps)"
    )
    vacuous = []
    for name in sorted(reference):
        ref = reference[name]
        if name.startswith("final/"):
            drift = max(_rel(sample[name], ref) for sample in samples)
            bound = max(F32_FLOOR, MULTIPLE * drift)
            parity.check(name, ours[name], ref, Tol("f32-noise", bound, f"{why}; {drift:.1e}"))
            if _rel(unmatched[name], ref) <= bound:
                vacuous.append(name)
            continue
        # Per step (per epoch for epoch series): the largest drift of any sample so far.
        drift = np.max([step_drift(sample[name], ref) for sample in samples], axis=0)
        allowed = np.maximum(F32_FLOOR, MULTIPLE * np.maximum.accumulate(drift))
        tol = Tol("f32-noise", float(allowed[-1]), why)
        parity.check_envelope(name, ours[name], ref, allowed, tol, scale="step")
    # The unmatched torch run (its own masks and shuffles) must be told apart by the bound: a
    # bound that also admits it could not detect a wrong mask or order.
    weights = [n for n in reference if n.startswith("final/")]
    assert len(vacuous) < len(weights), f"bound admits an unmatched run on {vacuous}"


def _classifier_case(case, parity, dtype):
    flax_factory, torch_factory, cfg_kwargs, hp, shape = CLASSIFIERS[case]
    x, y, xt, yt = _classification(shape)
    kwargs = {"loss": "cross_entropy", "optimizer": "sgd", **cfg_kwargs}
    config = engine.TrainConfig(model=flax_factory(), dtype=dtype, **kwargs)
    train = engine.make_train(config, (x, y, xt, yt))
    key = jax.random.key(3)
    start = train.init(key, hp).params
    keys = ["train_objective"]
    if "always_dropout" in case:
        parity.note("evaluation keeps dropout on with unshared masks: training compared only")
    else:
        keys.append("test_loss")

    def run_torch(streams, seed):
        relabel = None if seed is None else _relabel(case, torch_factory, start, seed)
        net = _twin(torch_factory, start, dtype, relabel)
        history = torch_engine.train_classifier(
            net,
            _torch_optimizer(case, net, cfg_kwargs, hp),
            (_inputs(x, relabel), y),
            (_inputs(xt, relabel), yt),
            epochs=kwargs["epochs"],
            batch_size=kwargs["batch_size"],
            seed=0,
            penalty=_torch_penalty(case, hp),
            matched=_streams(streams, relabel),
            dtype=torch_dtype(dtype),
        )
        return _series(history, net, keys, history["step_loss"], relabel)

    result = train(key, hp)
    steps = result.metrics["step_loss"]
    ours = _series({k: result.metrics[k] for k in keys}, result.params, keys, steps)
    streams = matched.MatchedStreams(train, key, hp)
    _compare(parity, dtype, ours, run_torch, streams)


def _net_dropped_case(parity, dtype):
    data = regression_data(seed=1)
    config = engine.TrainConfig(
        model=M.RegressionNet(hidden=300, dropout_rate=0.5),
        loss="mse",
        optimizer="adam",
        lr=0.01,
        batch_size=None,
        epochs=20,
        dtype=dtype,
    )
    train = engine.make_train(config, data)
    key = jax.random.key(5)
    start = train.init(key).params
    keys = ["test_loss"]
    factory = lambda: T.RegressionNet(hidden=300, dropout_rate=0.5)  # noqa: E731

    def run_torch(streams, seed):
        relabel = None if seed is None else _relabel("seed002_net_dropped", factory, start, seed)
        net = _twin(factory, start, dtype, relabel)
        history = torch_engine.train_regression(
            net,
            torch.optim.Adam(net.parameters(), lr=0.01),
            (_inputs(data.x_train, relabel), data.y_train),
            (_inputs(data.x_test, relabel), data.y_test),
            epochs=20,
            eval_every=1,
            seed=0,
            matched=_streams(streams, relabel),
            dtype=torch_dtype(dtype),
        )
        # Full-batch: one step per epoch, whose loss is the epoch's training loss.
        return _series(history, net, keys, history["train_loss"], relabel)

    result = train(key)
    ours = _series({k: result.metrics[k] for k in keys}, result.params, keys,
                   result.metrics["train_loss"])  # fmt: skip
    streams = matched.MatchedStreams(train, key)
    _compare(parity, dtype, ours, run_torch, streams)


@pytest.mark.parametrize("case", CASES)
def test_engine_loop(case, dtype, device, parity):
    if device != "cpu":
        pytest.skip("the torch loops run on the CPU (jaxreg.torch_ref.engine)")
    if case == "seed002_net_dropped":
        _net_dropped_case(parity, dtype)
    else:
        _classifier_case(case, parity, dtype)

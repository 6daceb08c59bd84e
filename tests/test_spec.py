"""The typed spec (jaxreg.lab.spec) and the one runner (jaxreg.lab.runner), on tiny models.

What is checked: a spec's bad fields fail naming the field; masks resolve alike on both sides;
a model declares its traced hyperparameters (three dropout sites, an NNX model) and the engine
sweeps them without recompiling and without an engine edit; the torch side derived from the spec
(AdamW param groups without decay on biases, an L1 penalty on one kernel) trains the same
computation as the JAX side in float64, and a wrong derivation would show.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg.nn as jnn
from jaxreg.lab import runner
from jaxreg.lab import spec as S
from jaxreg.lab.config import TrainConfig, normalize_hparams


class ThreeSites(nn.Module):
    """An MLP with three dropout sites whose rates it declares traced."""

    traced_hparams = {"p1": (0.0, 1.0), "p2": (0.0, 1.0), "p3": (0.0, 1.0)}
    p1: float = 0.1
    p2: float = 0.2
    p3: float = 0.3

    @nn.compact
    def __call__(self, x, *, deterministic: bool = True):
        x = jnn.Dropout(rate=self.p1)(x, deterministic=deterministic)
        x = nn.relu(nn.Dense(8, name="fc1")(x))
        x = jnn.Dropout(rate=self.p2)(x, deterministic=deterministic)
        x = nn.relu(nn.Dense(8, name="fc2")(x))
        x = jnn.Dropout(rate=self.p3)(x, deterministic=deterministic)
        return nn.Dense(3, name="fc3")(x)


def tiny_data(n=48, d=6, classes=3):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(n, d)).astype(np.float32),
        "y_train": rng.integers(0, classes, n).astype(np.int32),
        "x_test": rng.normal(size=(16, d)).astype(np.float32),
        "y_test": rng.integers(0, classes, 16).astype(np.int32),
    }


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: {"loss": "hinge"}, "Spec.loss='hinge': allowed values"),
        (lambda: {"optimizer": S.Optimizer("lbfgs")}, "Optimizer.kind='lbfgs'"),
        (lambda: {"optimizer": S.Optimizer(lr=0.0)}, "Optimizer.lr=0.0"),
        (lambda: {"hparams": {"lr": 0.1}}, r"\['lr'\] are the runner's own"),
        (lambda: {"variants": (S.Variant("a"), S.Variant("a"))}, "duplicate names"),
        (lambda: {"penalties": (S.Penalty("l1"), S.Penalty("l2"))}, "at most one weight"),
        (lambda: {"penalties": (S.Penalty("l3"),)}, "Penalty.kind='l3'"),
        (lambda: {"data": S.Data(layout="chw")}, "Data.layout='chw'"),
        (lambda: {"epochs": 0}, "Spec.epochs=0"),
        (lambda: {"seeds": ()}, "Spec.seeds"),
    ],
)
def test_bad_spec_fields_name_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        S.Spec("bad", ThreeSites(), **make())


def test_masks_and_traced_hparams_as_data():
    params = {"fc1": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "W1": jnp.ones((2, 2))}
    assert S.names("W1").resolve(params) == {
        "W1": True,
        "fc1": {"bias": False, "kernel": False},
    }
    assert S.WEIGHTS(params) == {"W1": True, "fc1": {"bias": False, "kernel": True}}
    assert S.Mask("weights_only", exclude=("^W1$",)).resolve(params)["W1"] is False
    with pytest.raises(ValueError, match="Mask.include"):
        S.Mask(include=("(",))
    spec = S.Spec(
        "s",
        ThreeSites(),
        hparams={"p1": 0.1},
        penalties=(S.Penalty("l1", 1e-3, S.paths("^fc1/kernel$")),),
        variants=(S.Variant("a"), S.Variant("b", {"p1": 0.5, "l1": 0.0})),
    )
    assert spec.traced_hparams("b") == {"lr": 0.1, "weight_decay": 0.0, "l1": 0.0, "p1": 0.5}
    with pytest.raises(ValueError, match=r"variant 'c': hyperparameters \['p9'\]"):
        spec.traced_hparams(S.Variant("c", {"p9": 1.0}))
    with pytest.raises(ValueError, match="variant 'z' is not one of"):
        spec.variant("z")


def test_a_model_with_three_dropout_sites_needs_no_engine_edit():
    from jaxreg.lab import engine

    config = TrainConfig(model=ThreeSites(), lr=0.1, epochs=1, batch_size=16)
    assert config.used_hparams() == ("lr", "weight_decay", "p1", "p2", "p3")
    # Given one, all three are traced (the others at the model's values).
    hp = normalize_hparams(config, {"p2": 0.0})
    assert sorted(hp) == ["lr", "p1", "p2", "p3", "weight_decay"]
    assert float(hp["p3"]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"hparams\['p1'\]=1.5: the model declares the range"):
        normalize_hparams(config, {"p1": 1.5})
    train = engine.make_train(config, tiny_data())
    key = jax.random.key(0)
    losses = [
        float(train(key, {"p1": p, "p2": p, "p3": p}).metrics["train_loss"][0])
        for p in (0.0, 0.5, 0.0)
    ]
    assert train.compile_count() == 1  # rates are traced: no recompilation
    assert losses[0] == losses[2] != losses[1]
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        TrainConfig(model=ThreeSites(), model_hparams=("nope",))
    with pytest.raises(ValueError, match="declares no traced hyperparameters"):
        normalize_hparams(TrainConfig(model=nn.Dense(3)), {"dropout1": 0.5})


def test_an_nnx_model_trains_through_the_runner():
    from flax import nnx

    import jaxreg.nnx as jnnx

    class Net(nnx.Module):
        traced_hparams = ("p",)

        def __init__(self, p=0.3, *, rngs):
            self.lin1 = nnx.Linear(6, 8, rngs=rngs)
            self.drop = jnnx.Dropout(p, rngs=rngs)
            self.lin2 = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x, *, deterministic=False):
            return self.lin2(self.drop(nnx.relu(self.lin1(x)), deterministic=deterministic))

    data = tiny_data()
    spec = S.Spec(
        "nnx",
        Net,
        model_kwargs={"p": 0.3},
        hparams={"p": 0.3},
        data=lambda: data,
        epochs=2,
        batch_size=16,
        variants=(S.Variant("on"), S.Variant("off", {"p": 0.0})),
    )
    results = runner.run(spec, ("jax",))
    on, off = (results.histories(v, "jax")[0]["train_loss"] for v in ("on", "off"))
    assert len(on) == 2 and np.all(np.isfinite(on)) and on != off
    assert set(results.select("on", "jax")[0].params) == {"lin1", "lin2"}
    with pytest.raises(ValueError, match="NNX module INSTANCE"):
        S.linen_model(Net(rngs=nnx.Rngs(0)))


def _torch_twin():
    import torch

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = (
                torch.nn.Linear(6, 8),
                torch.nn.Linear(8, 8),
                torch.nn.Linear(8, 3),
            )

        def forward(self, x):
            x = torch.nn.functional.dropout(x, 0.1, self.training)
            x = torch.nn.functional.dropout(torch.relu(self.fc1(x)), 0.2, self.training)
            x = torch.nn.functional.dropout(torch.relu(self.fc2(x)), 0.3, self.training)
            return self.fc3(x)

    return Twin()


def derived_spec(l1=1e-2):
    return S.Spec(
        "derived",
        ThreeSites(),
        torch_model=_torch_twin,
        optimizer=S.Optimizer("adamw", lr=1e-2, weight_decay=0.1, decay_mask=S.WEIGHTS),
        penalties=(S.Penalty("l1", l1, S.paths("^fc1/kernel$")),),
        hparams={"p1": 0.1, "p2": 0.2, "p3": 0.3},
        data=tiny_data,
        epochs=2,
        batch_size=20,  # a partial last batch (48 = 20 + 20 + 8)
        dtype="float64",
    )


def test_the_derived_torch_side_computes_what_jax_computes_float64():
    pytest.importorskip("torch")
    with jax.enable_x64(True):
        results = runner.run(derived_spec(), matched=True)
        jax_run = results.select(framework="jax")[0]
        torch_run = results.select(framework="torch")[0]
        assert torch_run.matched and torch_run.step_loss.shape == (2, 3)
        # The per-step gate: every step's data loss and objective, before its update.
        for name in ("step_loss", "step_objective"):
            np.testing.assert_allclose(
                getattr(jax_run, name), getattr(torch_run, name), rtol=1e-10, err_msg=name
            )
        for name in ("train_loss", "train_objective", "test_loss", "param_norm", "weight_norm"):
            np.testing.assert_allclose(
                jax_run.history[name], torch_run.history[name], rtol=1e-10, err_msg=name
            )
        # The torch twin decays fc*.weight only, and penalizes fc1.weight only.
        twin = torch_run.extra
        hp = {"lr": 0.1, "weight_decay": 0.1}
        groups = runner.torch_optimizer(derived_spec(), twin, hp, jax_run.params)
        assert [len(g["params"]) for g in groups.param_groups] == [3, 3]
        # The L1 term is there, alike on both sides: a derivation that dropped it would fail.
        for run in (jax_run, torch_run):
            gap = np.subtract(run.history["train_objective"], run.history["train_loss"])
            assert np.all(gap > 1e-3)


def test_the_torch_loop_reports_the_engines_metric_names():
    pytest.importorskip("torch")
    from jaxreg.lab.config import EPOCH_METRICS
    from jaxreg.torch_ref import engine as torch_engine

    # torch_ref keeps its own copy (it never imports the harness): the two must agree.
    assert torch_engine.METRICS == EPOCH_METRICS

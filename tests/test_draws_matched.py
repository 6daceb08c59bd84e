"""``MatchedStreams``: the draws of every step of an engine run, for any random layer.

The streams of a small CNN (spatial dropout, drop path, dropout) trained by the engine: each
step's draws are those the engine's key for that step gives (``Train.dropout_key``), the last
partial batch keeps its real rows, an unknown random module is refused when the streams are
built, and a float64 run draws the float32 run's masks.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg.nn as jnn
from jaxreg.lab import engine, objective
from jaxreg.lab.draws import UnsharedDrawError, capture_draws
from jaxreg.lab.matched import MatchedStreams

N, BATCH = 70, 32  # 3 steps per epoch, the last with 6 real rows


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = nn.relu(nn.Conv(4, (3, 3), padding="VALID")(x))
        h = jnn.Dropout2d(0.3)(h, deterministic)
        h = h + jnn.DropPath(0.2)(nn.relu(nn.Conv(4, (1, 1))(h)), deterministic)
        h = jnn.Dropout(0.5)(h.reshape(h.shape[0], -1), deterministic)
        return nn.Dense(3)(h)


class NoisyMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, deterministic: bool = True):
        h = nn.Dense(4, name="fc")(x.reshape(x.shape[0], -1))
        if not deterministic:
            h = h + jax.random.normal(self.make_rng("dropout"), h.shape)
        return nn.Dense(3, name="out")(h)


def _train(model, dtype="float32"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, N)
    config = engine.TrainConfig(model=model, batch_size=BATCH, epochs=1, dtype=dtype)
    return engine.make_train(config, (x, y, x[:8], y[:8]))


@pytest.fixture(scope="module")
def streams():
    return MatchedStreams(_train(SmallCNN()), jax.random.key(0))


@pytest.mark.slow
def test_each_step_draws_the_engine_keys_draws(streams):
    train = streams.train
    spe = streams.steps_per_epoch
    assert spe == 3
    epochs = [list(streams.step_draws(e)) for e in (0, 1)]
    x = jnp.zeros((BATCH, 6, 6, 1))
    for epoch, steps in enumerate(epochs):
        for s, draws in enumerate(steps):
            key = train.dropout_key(streams.key, epoch * spe + s)
            expected = capture_draws(
                objective.apply_model, train.config, streams._params, x, streams.hparams,
                train=True, key=key,
            )  # fmt: skip
            rows = min(BATCH, N - s * BATCH)
            assert [(d.site, d.kind, d.call) for d in draws] == [
                (d.site, d.kind, d.call) for d in expected
            ]
            for got, want in zip(draws, expected, strict=True):
                np.testing.assert_array_equal(got.value, np.asarray(want.value)[:rows])
                assert got.shape == got.value.shape and got.shape[0] == rows
    assert not np.array_equal(epochs[0][0][0].value, epochs[1][0][0].value)


def test_sites_describe_and_bare_masks(streams):
    assert [(site, kind, shape) for site, kind, shape, _ in streams.sites] == [
        ("Dropout2d_0", "spatial_dropout", (BATCH, 4)),
        ("DropPath_0", "drop_path", (BATCH,)),
        ("Dropout_0", "dropout", (BATCH, 64)),
    ]
    described = streams.describe()
    assert described["dropout_sites"] == 3
    assert described["draw_kinds"] == {"spatial_dropout": 1, "drop_path": 1, "dropout": 1}
    masks = next(streams.step_masks(0))
    draws = next(streams.step_draws(0))
    assert all(np.array_equal(m, d.value) for m, d in zip(masks, draws, strict=True))


def test_an_unknown_random_module_is_refused_when_the_streams_are_built():
    with pytest.raises(UnsharedDrawError, match="module 'NoisyMLP' draws a random key"):
        MatchedStreams(_train(NoisyMLP()), jax.random.key(0))


def test_a_float64_run_draws_the_float32_runs_masks():
    ours = [
        d.value for d in next(MatchedStreams(_train(SmallCNN()), jax.random.key(1)).step_draws(0))
    ]
    with jax.enable_x64(True):
        train64 = _train(SmallCNN(), "float64")
        wide = [d.value for d in next(MatchedStreams(train64, jax.random.key(1)).step_draws(0))]
    for a, b in zip(ours, wide, strict=True):
        np.testing.assert_array_equal(a, b)

"""Tests of `jaxreg sweep noise-injection` (jaxreg.lab.noise_injection, noise_report) and the
engine options it needs (a traced NoiseMLP strength, TrainConfig.max_norm)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.lab import cli, data, engine, noise_report
from jaxreg.lab import noise_injection as ni
from jaxreg.models import NoiseMLP

ISSUE_TECHNIQUES = [
    "none",
    "dropout",
    "dropconnect",
    "gaussian dropout",
    "gaussian noise",
    "weight decay",
    "max-norm + dropout",
]


def test_shipped_preset_has_the_issues_techniques_and_small_grids():
    preset = ni.load_preset()
    assert [t["name"] for t in preset["techniques"]] == ISSUE_TECHNIQUES
    assert preset["reference"] == "dropout" and preset["validation"] > 0
    assert not set(preset["seeds"]) & set(preset["tune_seeds"])
    for tech in preset["techniques"][1:]:
        (values,) = tech["grid"].values()
        assert 3 <= len(values) <= 4, tech["name"]
    # The recipe is seed 003's, read from experiments/dropout.py, not restated.
    assert not {"lr", "batch_size", "model", "epochs"} & set(preset)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"extra": 1}, "unknown keys"),
        ({"reference": "bagging"}, "reference='bagging'"),
        ({"seeds": [0, 100], "tune_seeds": [100]}, r"share \[100\]"),
        ({"techniques": []}, "'techniques' is empty"),
    ],
)
def test_bad_presets_are_named_errors(change, match):
    with pytest.raises(ValueError, match=match):
        ni.check_preset({**ni.load_preset(), **change})


@pytest.mark.parametrize(
    "tech,match",
    [
        ({"name": "a", "technique": "dropout", "grid": {"dropout1": [0.1]}}, "grid axis"),
        ({"name": "a", "technique": "dropout", "grid": {"strength": []}}, "finite values"),
        ({"name": "a", "technique": "dropout", "inherit": {"strength": "b"}}, "inherit"),
        ({"name": "a", "technique": "dropout", "rate": 0.1}, "unknown keys"),
    ],
)
def test_bad_techniques_are_named_errors(tech, match):
    preset = {"reference": "a", "techniques": [tech]}
    with pytest.raises(ValueError, match=match):
        ni.check_preset(preset)


def test_train_configs_and_used_hyperparameters():
    preset = ni.load_preset()
    by_name = {t["name"]: t for t in preset["techniques"]}
    cfg = ni.train_config(preset, by_name["gaussian noise"])
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.eval_every) == (0.5, 256, 10, 10)
    assert cfg.model.technique == "gaussian_noise" and cfg.max_norm is None
    assert cfg.used_hparams() == ("lr", "weight_decay", "strength")
    cfg = ni.train_config(preset, by_name["max-norm + dropout"], epochs=2)
    assert cfg.used_hparams() == ("lr", "weight_decay", "strength", "max_norm")
    assert ni.train_config(preset, by_name["none"]) == ni.train_config(
        preset, by_name["weight decay"]
    )
    points = ni._points(by_name["max-norm + dropout"], {"dropout": {"strength": 0.3}})
    assert points[0] == {"weight_decay": 0.0, "strength": 0.3, "max_norm": 1.0}
    assert len(points) == 4 and {p["strength"] for p in points} == {0.3}


@pytest.mark.slow
def test_engine_strength_is_traced_and_max_norm_bounds_the_weights():
    ds = data.synthetic_classification(256, 64, validation=64, seed=0)
    model = NoiseMLP(technique="dropconnect", num_hiddens1=16, num_hiddens2=16)
    cfg = engine.TrainConfig(model=model, lr=0.5, epochs=2, batch_size=64, max_norm=1.0)
    train = engine.make_train(cfg, ds)
    for strength, bound in ((0.1, 0.5), (0.4, 0.25)):
        res = train(jax.random.key(0), {"strength": strength, "max_norm": bound})
        for layer in ("lin1", "lin2", "lin3"):
            norms = jnp.linalg.norm(res.params[layer]["kernel"], axis=0)
            assert float(jnp.max(norms)) <= bound * (1 + 1e-6), (layer, bound)
    assert train.compile_count() == 1
    plain = engine.TrainConfig(model=model, epochs=1, batch_size=64)
    with pytest.raises(ValueError, match="'max_norm' is not used .*no max-norm constraint"):
        engine.make_train(plain, ds).normalize_hparams({"max_norm": 1.0})
    with pytest.raises(ValueError, match="max_norm=-1.0"):
        engine.TrainConfig(model=model, max_norm=-1.0)


def _fake_results(ref_accs, other_accs, diverged=False):
    other = list(other_accs)
    if diverged:
        other[0] = float("nan")
    return {
        "reference": "dropout",
        "epochs": 1,
        "seeds": [0, 1, 2, 3],
        "techniques": [
            {"name": "dropout", "chosen": {"strength": 0.2}, "test_acc": ref_accs, "tuning": []},
            {
                "name": "b",
                "chosen": {"weight_decay": 0.0, "strength": 0.1},
                "test_acc": other,
                "tuning": [
                    {"point": {"weight_decay": 0.0, "strength": 0.1}, "val_acc_mean": 0.9},
                    {"point": {"weight_decay": 0.0, "strength": 0.3}, "val_acc_mean": 0.8},
                ],
            },
        ],
    }


def test_analysis_pairs_seeds_and_says_which_beat_the_reference():
    ref = [0.80, 0.82, 0.81, 0.83]
    # Every seed +0.01: the paired interval is a point above 0 even though the spread of each
    # side is larger than the gap (a Welch interval would hold 0).
    results = _fake_results(ref, [a + 0.01 for a in ref])
    rows = noise_report.analyse(results)
    assert rows[1]["diff"].method == "paired" and rows[1]["diff"].verdict == "different"
    assert rows[1]["beats"] and rows[1]["val_acc"] == 0.9 and rows[1]["chosen"] == "strength=0.1"
    assert rows[0]["diff"] is None and rows[0]["test"].n == 4
    text = noise_report.conclusion(rows, "dropout")
    assert "Higher mean test accuracy than dropout: b (+0.0100)" in text[0]
    assert "Significantly better at 95%" in text[1]
    noisy = noise_report.analyse(_fake_results(ref, [0.83, 0.80, 0.84, 0.81]))
    assert noisy[1]["diff"].verdict == "consistent"
    assert (
        "None of these differences is significant" in noise_report.conclusion(noisy, "dropout")[1]
    )
    broken = noise_report.analyse(_fake_results(ref, ref, diverged=True))
    assert broken[1]["test"] is None and broken[1]["diff"] is None
    assert noise_report.table_rows(broken, "dropout")[1]["verdict"] == "diverged run: no interval"


def test_cli_refuses_options_that_do_not_apply(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "noise-injection", "--grid", "lr=0.1,0.2"])
    assert exc.value.code == 2
    assert "--grid: not options of noise-injection" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_cli_writes_a_row_per_technique_with_finite_intervals(tmp_path, capsys):
    out = tmp_path / "ni"
    argv = ["sweep", "noise-injection", "--synthetic", "256", "--validation", "64"]
    argv += ["--test-size", "64", "--epochs", "1", "--seeds", "0", "1", "--out", str(out)]
    argv += ["--quiet"]
    assert cli.main(argv) == 0
    report = (out / "report.md").read_text()
    for name in ISSUE_TECHNIQUES:
        assert f"\n| {name} |" in report, name
    assert "jaxreg sweep noise-injection --synthetic 256" in report
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1] and results["epochs"] == 1
    assert [r["technique"] for r in results["summary"]] == ISSUE_TECHNIQUES
    for row in results["summary"]:
        assert all(
            math.isfinite(row[k]) for k in ("test_acc_mean", "test_acc_low", "test_acc_high")
        )
        if row["technique"] != "dropout":
            assert math.isfinite(row["diff_low"]) and math.isfinite(row["diff_high"])
    tuned = [t for t in results["techniques"] if t["tuning"]]
    assert len(tuned) == 6 and all(len(t["tuning"]) == 4 for t in tuned)
    assert np.isfinite([p["val_acc_mean"] for t in tuned for p in t["tuning"]]).all()
    assert (out / "results.csv").is_file() and (out / "tuning.csv").is_file()
    assert (out / noise_report.PLOT).stat().st_size > 1000
    # results.json holds every number the report states: rendering it again gives the same text.
    assert noise_report.rewrite(out).read_text() == report
    # One run per folder: the manifest says complete, the rows carry its id, a second run into
    # the folder is refused (naming the flag that allows it) and leaves it as it was.
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert {r["run_id"] for r in results["summary"]} == {manifest["run_id"]}
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err
    assert (out / "report.md").read_text() == report

"""End-to-end runs of the Fashion-MNIST experiments through the CLI entry point, tiny slices.

Each test runs ``jaxreg run NAME --framework both`` on a few hundred examples for one or two
epochs and checks what the run leaves: config.json, metrics.jsonl with both frameworks,
results.csv/jsonl, PNG plots and report.md with the side-by-side table. The cheaper
experiments (numpy-dropout, vgg-norms, activity, overfit) are in tests/test_cli.py.
"""

import csv
import json
from pathlib import Path

import pytest

from jaxreg.lab import cli
from jaxreg.lab.data import resolve_data_dir

pytest.importorskip("torch")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--epochs", "1", "--limit-train", "512", "--limit-test", "256", "--no-progress"]

if not (resolve_data_dir() / "train-images-idx3-ubyte.gz").exists():
    pytest.skip("Fashion-MNIST not installed (make data)", allow_module_level=True)


def run_cli(out: Path, name: str, *extra: str) -> list[dict]:
    """Runs one experiment via cli.main and checks the files every run leaves."""
    assert cli.main(["run", name, "--out", str(out), *TINY, *extra]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["options"]["epochs"] == 1
    metrics = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert {m["framework"] for m in metrics} == {"jax", "torch"}
    rows = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    text = (out / "report.md").read_text()
    for row in rows:
        assert f"| {row['experiment']} | {row['variant']} | {row['framework']} |" in text
    pngs = sorted(out.glob("*.png"))
    assert pngs, "no plot"
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"![{png.name}]({png.name})" in text
    return rows


def _by(rows):
    return {(r["variant"], r["framework"]): r for r in rows}


def test_weight_decay_compiles_once_for_three_variants(tmp_path):
    rows = _by(run_cli(tmp_path, "weight-decay"))
    assert set(rows) == {
        (v, fw) for v in ("no-penalty", "l2-penalty", "weight-decay") for fw in ("jax", "torch")
    }
    assert rows[("no-penalty", "jax")]["compile_s"] > 0
    # The variants differ only in traced hyperparameters: one compiled function serves all.
    assert rows[("l2-penalty", "jax")]["compile_s"] == 0
    assert rows[("weight-decay", "jax")]["compile_s"] == 0
    for row in rows.values():
        assert 0 <= row["test"] <= 1 and row["seed_figure"] in (0.772, 0.81, 0.822)


@pytest.mark.slow
def test_dropout_faithful(tmp_path):
    rows = _by(run_cli(tmp_path, "dropout", "--faithful"))
    assert set(rows) == {(v, fw) for v in ("scratch", "concise") for fw in ("jax", "torch")}
    assert all(0 <= r["test"] <= 1 and r["wall_s"] > 0 for r in rows.values())
    assert "dropout ACTIVE" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_mc_dropout(tmp_path):
    rows = _by(run_cli(tmp_path, "mc-dropout"))
    for fw in ("jax", "torch"):
        assert ("weight scaling", fw) in rows
        assert "variance 0;" in rows[("MC M=1", fw)]["detail"]
        assert float(rows[("MC M=10", fw)]["detail"].split()[3].rstrip(";")) > 0


@pytest.mark.slow
def test_weight_decay_faithful_continues_the_run(tmp_path):
    # The JAX side continues each run from the previous TrainResult (step and epoch counters
    # carried; the engine tests prove that this never replays shuffles or masks).
    assert (
        cli.main(
            ["run", "weight-decay", "--faithful", "--framework", "jax", "--out"]
            + [str(tmp_path), *TINY]
        )
        == 0
    )
    metrics = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    norms = {m["variant"]: m["param_norm"] for m in metrics if m["epoch"] == 1}
    assert len(set(norms.values())) == 3  # three different runs, none a copy of another
    assert "--faithful: one network" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_recipes_read_their_constants_from_the_configs(tmp_path):
    # The seed constants live in experiments/*.py only: a changed config changes the run.
    from jaxreg.lab.configs import experiments_dir

    text = (experiments_dir() / "dropout.py").read_text()
    assert 'Optimizer("sgd", lr=0.5)' in text
    text = text.replace('Optimizer("sgd", lr=0.5)', 'Optimizer("sgd", lr=0.05)')
    config = tmp_path / "dropout_lr.py"
    config.write_text(text)
    out = tmp_path / "run"
    assert (
        cli.main(
            ["run", "dropout", "--config", str(config), "--framework", "jax", "--out"]
            + [str(out), *TINY]
        )
        == 0
    )
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["optimizer"]["lr"] == 0.05
    assert "SGD lr 0.05" in (out / "report.md").read_text()

"""Slow check on real Fashion-MNIST (make test-slow, not CI): the dropout recipe's accuracy.

10 epochs of seeds 003/004's dropout MLP (rates 0.2/0.5, SGD lr 0.5, batch 256), evaluated with
dropout off, must reach at least 0.84 test accuracy in JAX and in torch, and the two frameworks'
final test accuracies must differ by less than 1.5 points (same initial weights; the dropout
masks and shuffles differ, so the runs are statistically, not bitwise, equal).
"""

import json

import pytest

from jaxreg.lab import cli
from jaxreg.lab.data import resolve_data_dir

pytest.importorskip("torch")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dropout_rows(tmp_path_factory):
    if not (resolve_data_dir() / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed (make data)")
    out = tmp_path_factory.mktemp("dropout")
    assert cli.main(["run", "dropout", "--framework", "both", "--out", str(out)]) == 0
    rows = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    return {(r["variant"], r["framework"]): r for r in rows}


@pytest.mark.parametrize("variant", ["scratch", "concise"])
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_dropout_reaches_084(dropout_rows, variant, framework):
    acc = dropout_rows[(variant, framework)]["test"]
    assert acc >= 0.84, f"{variant} ({framework}): test accuracy {acc:.4f} < 0.84"


@pytest.mark.parametrize("variant", ["scratch", "concise"])
def test_frameworks_agree_within_1p5_points(dropout_rows, variant):
    jax_acc = dropout_rows[(variant, "jax")]["test"]
    torch_acc = dropout_rows[(variant, "torch")]["test"]
    gap = 100 * abs(jax_acc - torch_acc)
    assert gap < 1.5, f"{variant}: JAX {jax_acc:.4f} vs torch {torch_acc:.4f}: {gap:.2f} points"

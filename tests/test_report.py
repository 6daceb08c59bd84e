"""Tests for jaxreg.lab.report, .files and .plots: run and sweep folders, atomic files, tables,
plots, report.md."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxreg.lab import files, plots, report
from jaxreg.lab.results import SweepResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_make_run_dir_default_is_timestamped_and_unique(tmp_path):
    first = report.make_run_dir("dropout", root=tmp_path)
    second = report.make_run_dir("dropout", root=tmp_path)
    assert first.parent == tmp_path / "dropout"
    assert first != second and first.is_dir() and second.is_dir()
    assert len(first.name) == len("20260101-000000")


def test_make_run_dir_out_is_used_as_is(tmp_path):
    out = tmp_path / "a" / "b"
    assert report.make_run_dir("x", out) == out
    assert out.is_dir()


def test_recorder_appends_metrics_and_results(tmp_path):
    rec = report.RunRecorder(tmp_path, "weight-decay")
    rec.write_config({"lr": 0.1, "variants": [{"name": "a"}], "options": {"seed": 3, "seeds": 1}})
    rec.add_history("a", "jax", {"test_acc": [0.5, 0.6], "train_loss": (1.0, 0.5)})
    rec.add_history("a", "torch", {"test_acc": [0.55, 0.65], "note": "ignored scalar"})
    rec.add_result(variant="a", framework="jax", metric="accuracy", train=0.7, test=0.6)
    rec.add_result(variant="a", framework="torch", metric="accuracy", train=0.71, test=0.65)

    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.1
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert lines[1] == {
        "experiment": "weight-decay",
        "variant": "a",
        "framework": "jax",
        "epoch": 2,
        "test_acc": 0.6,
        "train_loss": 0.5,
        "seed": 3,
        "run_id": rec.run_id,
    }
    assert "note" not in lines[2]
    results = [json.loads(s) for s in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["framework"] for r in results] == ["jax", "torch"]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[1]["test"]) == 0.65
    assert rows[0]["experiment"] == "weight-decay"
    # Every row says which run and which seed it belongs to; report.md's table does not.
    assert {(r["run_id"], r["seed"], r["seeds"]) for r in rows} == {(rec.run_id, "3", "1")}
    assert json.loads((tmp_path / "config.json").read_text())["run_id"] == rec.run_id


def test_recorder_converts_numpy_values(tmp_path):
    np = pytest.importorskip("numpy")
    rec = report.RunRecorder(tmp_path, "e")
    rec.add_history("v", "jax", {"test_acc": np.array([0.25, 0.5], np.float32)})
    row = rec.add_result(variant="v", framework="jax", test=np.float32(0.5), wall_s=np.float64(2))
    assert row["test"] == 0.5 and isinstance(row["test"], float)
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])["test_acc"] == 0.5


def test_recorder_rejects_unknown_result_keys(tmp_path):
    rec = report.RunRecorder(tmp_path, "e")
    with pytest.raises(ValueError, match="accuracy_typo"):
        rec.add_result(variant="v", accuracy_typo=1.0)


def test_format_table():
    rows = [
        {"experiment": "e", "variant": "v", "framework": "jax", "test": 0.81234, "wall_s": 12.0},
        {"variant": "big", "test": 1.38e8, "seed_figure": "a|b"},
    ]
    table = report.format_table(rows).splitlines()
    assert table[0].startswith("| experiment | variant | framework | metric | final train |")
    assert table[1] == "|" + "---|" * (len(report.RESULT_COLUMNS) - 1)
    assert "detail" not in table[0]
    assert "| 0.8123 |" in table[2] and "| 12.0000 |" in table[2]
    assert "1.38e+08" in table[3] and "a\\|b" in table[3]
    rows[1]["detail"] = "rel. err 1e-7"
    assert report.format_table(rows).splitlines()[0].endswith("| detail |")


def test_plots_are_pngs(tmp_path):
    histories = {
        ("scratch", "jax"): {"train_loss": [1.0, 0.5], "test_acc": [0.7, 0.8]},
        ("scratch", "torch"): {"train_loss": [1.1, 0.6], "test_acc": [0.71, 0.79]},
    }
    curves = plots.plot_learning_curves(tmp_path / "c.png", histories, title="t")
    series = plots.plot_series(
        tmp_path / "s.png", {"a (jax)": [3, 2], "a (torch)": [3, 1]}, xlabel="x", ylabel="y"
    )
    fit = {"net (jax)": {"epochs": [0, 50], "pred": [[0, 1], [0, 0.5]], "loss": [0.3, 0.2]}}
    fits = plots.plot_fit_curves(tmp_path / "f.png", ([0, 1], [0, 1]), ([0, 1], [1, 0]), fit)
    for path in (curves, series, fits):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_write_report_has_table_notes_and_plots(tmp_path):
    (tmp_path / "c.png").write_bytes(PNG_MAGIC)
    path = report.write_report(
        tmp_path,
        "dropout (seeds 003/004)",
        [{"variant": "scratch", "framework": "jax", "test": 0.85, "seed_figure": 0.841}],
        plots=[tmp_path / "c.png"],
        notes=["A note."],
        command="jaxreg run dropout",
    )
    text = path.read_text()
    assert text.startswith("# dropout (seeds 003/004)")
    assert "`jaxreg run dropout`" in text
    assert "| scratch | jax |" in text and "| 0.8410 |" in text
    assert "A note." in text and "![c.png](c.png)" in text


def test_format_table_custom_headers_and_values():
    rows = [{"point": "a", "test_acc": "0.8000 +- 0.0100"}]
    table = report.format_table(rows, ["point", "test_acc"], headers={})
    assert table.splitlines() == ["| point | test_acc |", "|---|---|", "| a | 0.8000 +- 0.0100 |"]
    assert report.format_value(0.0) == "0" and report.format_value(2e-5) == "2e-05"
    assert report.format_value(float("nan")) == "nan" and report.format_value(None) == ""


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    files.atomic_write_text(path, "old")
    files.atomic_append_text(path, "+new")
    assert path.read_text() == "old+new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    files.write_json(path, {"v": 1})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        files.write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}


def test_two_recorders_of_one_run_append_with_its_run_id(tmp_path):
    folder = report.make_run_dir("e", tmp_path / "run")
    report.RunRecorder(folder, "e").add_history("a", "jax", {"test_acc": [0.5]})
    report.RunRecorder(folder, "e").add_history("b", "jax", {"test_acc": [0.6]})
    lines = [json.loads(s) for s in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [line["variant"] for line in lines] == ["a", "b"]
    assert len({line["run_id"] for line in lines}) == 1


def _sweep_result():
    acc = np.array([[[0.5, 0.7], [0.6, 0.9]], [[0.4, np.nan], [0.5, 0.6]]])
    return SweepResult(
        ["low", "high"],
        [{"weight_decay": 1e-4, "dropout1": 0.2}, {"weight_decay": 1e-2, "dropout1": 0.2}],
        [0, 1],
        {
            "train_acc": acc,
            "test_acc": acc - 0.1,
            "diverged_step": np.array([[-1, -1], [7, -1]]),
        },
        epochs=2,
        stats={
            "run_s": 2.0,
            "compile_s": 1.0,
            "chunk_size": 4,
            "num_chunks": 1,
            "resumed_chunks": 0,
            "devices": 1,
            "platform": "cpu",
            "processes": 1,
            "timed_runs": 4,
        },
    )


def test_sweep_report_files_and_table(tmp_path):
    result = _sweep_result()
    extra = [("acc.png", lambda r, p: plots.plot_final_vs(r, "weight_decay", p, mark=0))]
    path = report.write_sweep_report(
        result, tmp_path, name="demo", command="jaxreg sweep demo", notes=["A note."], plots=extra
    )
    for name in ("config.json", "metrics.npz", "results.csv", "report.md", "curves.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "acc.png").read_bytes()[:8] == PNG_MAGIC
    text = path.read_text()
    assert "| point | train_acc | test_acc | diverged |" in text
    # Point "high", seed 0 diverged: its final values are NaN and the summary is seed 1's.
    assert "| high | 0.6000 +- 0.0000 | 0.5000 +- 0.0000 | seed 0 at step 7 |" in text
    assert "| low | 0.8000 +- 0.1000 | 0.7000 +- 0.1000 | - |" in text
    assert "**250.0 ms per configuration-epoch**" in text and "A note." in text
    assert "![acc.png](acc.png)" in text
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["point"] == "high" and rows[1]["diverged"] == "seed 0 at step 7"
    config = json.loads((tmp_path / "config.json").read_text())
    assert {(r["run_id"], r["seeds"]) for r in rows} == {(config["run_id"], "0 1")}
    assert config["timing"]["configuration_epoch_s"] == 0.25 and config["name"] == "demo"
    assert list(np.load(tmp_path / "metrics.npz")["labels"]) == ["low", "high"]
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_sweep_plots_are_pngs(tmp_path):
    result = _sweep_result()
    result.metrics["act_var"] = np.ones((2, 2, 2, 2))
    paths = [
        plots.plot_curves(result, tmp_path / "c.png"),
        plots.plot_heatmap(result, "weight_decay", "dropout1", tmp_path / "h.png"),
        plots.plot_activation_variance(result, tmp_path / "v.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_report_and_plots_import_without_side_effects():
    code = (
        "import sys, jaxreg.lab.report, jaxreg.lab.plots, jaxreg.lab.files\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

"""train_matched, compare_seeds, compare() and `jaxreg compare` on a tiny spec; mutations fail."""

import functools
import json

import numpy as np
import pytest
from _compare_models import TorchMLP, tiny_spec

from jaxreg.lab import cli
from jaxreg.lab.compare import MismatchError, compare_seeds, train_matched


@pytest.mark.slow
def test_matched_float64_runs_agree_at_every_step():
    report = train_matched(tiny_spec())
    assert report.ok, report
    # 48 examples, batch 16: 3 steps; float64 is the same computation (measured ~1e-16).
    assert report.steps[("float64", "jax")].shape == (1, 3)
    assert report.gate.worst < 1e-12 and report.gate.params_worst < 1e-12
    # Float32 is attributed, not gated: both sides' own float32 errors are reported per step.
    assert report.attribution.gap.shape == (1, 3)
    assert "float64 gate PASSED" in str(report)
    report.raise_for_mismatch()


def test_a_wrong_dropout_rate_in_the_twin_fails_the_gate():
    spec = tiny_spec(torch_model=functools.partial(TorchMLP, rate=0.31))
    report = train_matched(spec, dtypes=("float64",))
    assert not report.ok
    # The masks are shared, so only the survivors' scale differs: from the first step on.
    assert report.gate.first_failure == "epoch 1 step 1"
    with pytest.raises(MismatchError, match="float64 gate FAILED"):
        report.raise_for_mismatch()


@pytest.mark.slow
def test_seeds_give_intervals_and_verdicts():
    report = compare_seeds(tiny_spec(), seeds=2)
    assert report.seeds == (0, 1) and report.matched
    assert set(report.metrics()) >= {"train_loss", "test_acc"}
    assert report.verdict("train_loss") in ("consistent", "different")
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare_seeds(tiny_spec(), seeds=[3])


def _parse(argv):
    import argparse

    from jaxreg.lab import compare_cli

    parser = argparse.ArgumentParser(prog="jaxreg")
    compare_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["compare", *argv])


def test_the_command_runs_a_spec_file_and_writes_its_report(tmp_path, capsys):

    spec_file = tmp_path / "tiny_spec.py"
    spec_file.write_text(
        "from _compare_models import tiny_spec\n\n\ndef get_config():\n"
        '    """jaxreg compare tiny_spec.py"""\n    return tiny_spec()\n'
    )
    out = tmp_path / "out"
    argv = [str(spec_file), "--dtype", "float64", "--seeds", "0", "--out", str(out)]
    assert cli.main(["compare", *argv]) == 0  # the command: a run folder around compare_cli.run
    printed = capsys.readouterr().out
    assert "float64 gate PASSED" in printed and "compare: PASSED" in printed
    record = json.loads((out / "compare.json").read_text())
    assert record["ok"] and np.shape(record["matched"]["step_loss"]["float64 jax"]) == (1, 3)
    assert record["batch"]["rows"][0]["max_rel"] < 1e-12
    assert "one-batch check" in (out / "report.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and record["run_id"] == manifest["run_id"]


def test_the_command_refuses_a_file_without_get_config(tmp_path, capsys):
    from jaxreg.lab import compare_cli

    spec_file = tmp_path / "empty.py"
    spec_file.write_text("x = 1\n")
    assert compare_cli.run(_parse([str(spec_file)])) == 2
    assert "defines no get_config()" in capsys.readouterr().err
    assert compare_cli.run(_parse([str(tmp_path / "missing.py")])) == 2
    with pytest.raises(SystemExit):
        _parse(["x.py", "--dtype", "float16"])

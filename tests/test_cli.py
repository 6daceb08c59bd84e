"""Tests for jaxreg.cli: parsing, errors that list the allowed values, dispatch."""

import subprocess
import sys

import pytest

from jaxreg import cli


def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_run_defaults():
    args = cli.build_parser().parse_args(["run", "weight-decay"])
    assert (args.framework, args.epochs, args.seed, args.faithful, args.out) == (
        "both",
        None,
        0,
        False,
        None,
    )


def test_run_options_parse():
    argv = ["run", "dropout", "--framework", "jax", "--epochs", "3", "--seed", "7", "--faithful"]
    argv += ["--out", "o", "--data-dir", "d", "--limit-train", "512", "--limit-test", "64"]
    args = cli.build_parser().parse_args(argv)
    assert args.framework == "jax" and args.epochs == 3 and args.seed == 7 and args.faithful
    assert (args.out, args.data_dir, args.limit_train, args.limit_test) == ("o", "d", 512, 64)


def test_unknown_experiment_lists_allowed_names(capsys):
    err = _error(capsys, ["run", "dropconnect"])
    for name in cli.EXPERIMENT_NAMES:
        assert name in err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "dropout", "--framework", "tf"], "jax"),
        (["run", "dropout", "--epochs", "0"], "positive"),
        (["run", "dropout", "--epochs", "two"], "not an integer"),
        (["run", "dropout", "--seed", "-1"], "negative"),
        (["run", "dropout", "--limit-train", "-5"], "positive"),
        (["main", "--faithful"], "unrecognized"),
        ([], "COMMAND"),
    ],
)
def test_bad_values_are_argparse_errors(capsys, argv, fragment):
    assert fragment in _error(capsys, argv)


def test_framework_error_lists_choices(capsys):
    err = _error(capsys, ["run", "dropout", "--framework", "tf"])
    assert "'jax'" in err and "'torch'" in err and "'both'" in err


@pytest.mark.parametrize("framework", ["torch", "both"])
def test_torch_side_without_torch_is_a_clear_error(capsys, monkeypatch, framework):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    err = _error(capsys, ["run", "numpy-dropout", "--framework", framework])
    assert "needs PyTorch" in err and "pip install" in err


def test_names_match_the_recipe_registry():
    from jaxreg import recipes

    assert tuple(recipes.EXPERIMENTS) == cli.EXPERIMENT_NAMES


def test_list_prints_every_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in cli.EXPERIMENT_NAMES:
        assert name in out
    assert out.count("--faithful:") == len(cli.EXPERIMENT_NAMES)


def test_missing_config_file_is_an_error(capsys, tmp_path):
    argv = ["run", "numpy-dropout", "--framework", "jax", "--config", str(tmp_path / "no.py")]
    assert cli.main(argv + ["--out", str(tmp_path / "o")]) == 1
    assert "not found" in capsys.readouterr().err


def test_cli_and_recipes_import_no_torch():
    code = (
        "import sys, jaxreg, jaxreg.cli, jaxreg.report, jaxreg.recipes\n"
        "jaxreg.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

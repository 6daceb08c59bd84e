"""Tests for jaxreg.lab.cli: parsing, errors that list the allowed values, dispatch."""

import json
import subprocess
import sys

import pytest

from jaxreg.lab import cli


def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    # One line naming the problem: no usage block, no traceback.
    assert len(err.strip().splitlines()) == 1, err
    return err


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
    assert (args.out, args.data_dir, args.train_size, args.test_size) == ("o", "d", 512, 64)
    # --train-size / --test-size are the same options, shared with `jaxreg sweep`.
    args = cli.build_parser().parse_args(["sweep", "custom", "--train-size", "9", "--epochs", "2"])
    assert (args.train_size, args.epochs) == (9, 2)


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
        (["sweep", "custom", "--epochs", "-3"], "--epochs: -3 is not a positive integer"),
        (["sweep", "custom", "--train-size", "0"], "--train-size/--limit-train: 0 is not a pos"),
        (["sweep", "custom", "--chunk-size", "-1"], "--chunk-size: -1"),
        (["sweep", "custom", "--seeds", "0", "-2"], "seed -2 is negative"),
        (["sweep", "custom", "--validation", "-1"], "--validation: -1 is not an integer >= 0"),
        (["sweep", "custom", "--lr", "nan"], "--lr: nan is not a finite number > 0"),
        (["sweep", "custom", "--grid", "l9=1"], "NAME one of lr, weight_decay, l1"),
        (["sweep", "custom", "--grid", "lr=log:0:1:3"], "lr='log:0:1:3': expected"),
        (["sweep", "custom", "--grid", "lr=1,x"], "lr='1,x': expected"),
        (["sweep", "custom", "--grid", "lr=1", "--grid", "lr=2"], "given once"),
        (["sweep", "lambda"], "invalid choice: 'lambda'"),
        (["sweep", "custom", "--model", "vgg"], "'weight-decay-mlp'"),
        (["sweep", "custom", "--num-processes", "2", "--process-id", "0"], "go together"),
        (["sweep", "custom", "--grid", "l1=0,0.1,10"], "hyperparameter 'l1' is not used"),
        (["sweep", "custom", "--model", "weight-decay-mlp"], "'dropout1' is not used"),
    ],
)
def test_bad_values_are_argparse_errors(capsys, argv, fragment):
    assert fragment in _error(capsys, argv)


def test_comparison_flags_parse():
    args = cli.build_parser().parse_args(["run", "dropout"])
    assert (args.matched, args.dtype, args.seeds) == (False, "float32", None)
    argv = ["main", "--matched", "--dtype", "float64", "--seeds", "4", "--seed", "2"]
    args = cli.build_parser().parse_args(argv)
    assert (args.matched, args.dtype, args.seeds, args.seed) == (True, "float64", 4, 2)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "vgg-norms", "--matched"], "vgg-norms has no training loop"),
        (["run", "numpy-dropout", "--dtype", "float64"], "numpy-dropout has no training loop"),
        (["run", "mc-dropout", "--seeds", "3"], "mc-dropout evaluates with Monte-Carlo"),
        (["run", "activity", "--matched"], "activity trains one model on batches drawn once"),
        (["run", "dropout", "--faithful", "--matched"], "cannot be --matched"),
        (["run", "dropout", "--matched", "--framework", "jax"], "needs --framework both"),
        (["main", "--matched", "--framework", "torch"], "needs --framework both"),
        (["run", "weight-decay", "--faithful", "--seeds", "2"], "use it with --seeds 1"),
        (["run", "dropout", "--seeds", "0"], "--seeds: 0 is not a positive integer"),
        (["run", "dropout", "--dtype", "float16"], "'float64'"),
    ],
)
def test_comparison_flag_errors(capsys, argv, fragment):
    import jax

    before = jax.config.jax_enable_x64
    assert fragment in _error(capsys, argv)
    assert jax.config.jax_enable_x64 == before  # --dtype float64 restores the setting


def test_framework_error_lists_choices(capsys):
    err = _error(capsys, ["run", "dropout", "--framework", "tf"])
    assert "'jax'" in err and "'torch'" in err and "'both'" in err


@pytest.mark.parametrize("framework", ["torch", "both"])
def test_torch_side_without_torch_is_a_clear_error(capsys, monkeypatch, framework):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    err = _error(capsys, ["run", "numpy-dropout", "--framework", framework])
    assert "needs PyTorch" in err and "pip install" in err


def test_names_match_the_recipe_registry():
    from jaxreg.lab import recipes

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
        "import sys, jaxreg, jaxreg.lab.cli, jaxreg.lab.report, jaxreg.lab.recipes\n"
        "jaxreg.lab.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# End-to-end runs of the experiments that need no Fashion-MNIST (the others are in
# tests/test_recipes.py): each through cli.main, in both frameworks, checking the files.

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(out, name, *extra):
    pytest.importorskip("torch")
    assert cli.main(["run", name, "--out", str(out), "--no-progress", *extra]) == 0
    assert (out / "config.json").is_file()
    rows = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    report_md = (out / "report.md").read_text()
    for row in rows:
        variant = row["variant"].replace("|", "\\|")
        assert f"| {variant} | {row['framework']} |" in report_md
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC and f"({png.name})" in report_md
    metrics = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    return {(r["variant"], r["framework"]): r for r in rows}, metrics


def test_numpy_dropout_matches_the_references(tmp_path):
    rows, _ = _run(tmp_path, "numpy-dropout", "--epochs", "2")
    assert len(rows) == 12
    for (variant, framework), row in rows.items():
        # JAX replays the masks bit for bit; torch's matmuls may round differently.
        limit = 0.0 if framework == "jax" else 1e-12
        assert row["test"] <= limit, (variant, framework, row["test"])


def test_framework_jax_runs_only_jax(tmp_path):
    assert cli.main(["run", "numpy-dropout", "--framework", "jax", "--out", str(tmp_path)]) == 0
    rows = [json.loads(s) for s in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["framework"] for r in rows} == {"jax"}


def test_vgg_norms_same_weights_same_sums(tmp_path):
    config = tmp_path / "vgg_tiny.py"
    config.write_text(
        "def get_config():\n"
        '    """jaxreg run vgg-norms --config vgg_tiny.py"""\n'
        '    return {"model": {"name": "VGG16", "num_classes": 10, "hidden": 32},\n'
        '            "input_shape": [1, 32, 32, 3], "seed_figure": "none"}\n'
    )
    rows, _ = _run(tmp_path / "out", "vgg-norms", "--config", str(config))
    for label in ("L1 = sum |p|", "L2 = sum ||p||_2"):
        ref = rows[(label, "numpy float64")]["test"]
        assert rows[(label, "jax")]["test"] == pytest.approx(ref, rel=1e-6)
        # torch.norm accumulates float32 sequentially: a looser bound (see the recipe's note).
        assert rows[(label, "torch")]["test"] == pytest.approx(ref, rel=1e-3)


def test_activity_same_weights_same_losses(tmp_path):
    rows, metrics = _run(tmp_path, "activity", "--epochs", "20")
    jax_losses = [m["train_objective"] for m in metrics if m["framework"] == "jax"]
    torch_losses = [m["train_objective"] for m in metrics if m["framework"] == "torch"]
    assert len(jax_losses) == len(torch_losses) == 20
    # Same initial weights, same batches, deterministic: the two frameworks agree step by step.
    assert jax_losses == pytest.approx(torch_losses, rel=1e-5)
    assert (tmp_path / "loss_per_step.png").is_file()


def test_activity_faithful_relearns_nothing(tmp_path):
    rows, metrics = _run(tmp_path, "activity", "--epochs", "5", "--faithful", "--framework", "jax")
    assert list(rows) == [("model per step (seed)", "jax")]
    assert len(metrics) == 5


def test_overfit_fit_curves(tmp_path):
    rows, metrics = _run(tmp_path, "overfit", "--epochs", "3")
    assert set(rows) == {(v, f) for v in ("overfitting", "dropout") for f in ("jax", "torch")}
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert set(fits) == {f"{v} ({f})" for v in ("overfitting", "dropout") for f in ("jax", "torch")}
    for fit in fits.values():
        assert fit["epochs"] == [0, 2] and len(fit["pred"][0]) == 20
    assert (tmp_path / "fit_curves.png").is_file()
    # Without dropout both frameworks run the same deterministic full-batch Adam steps.
    ofit_jax, ofit_torch = rows[("overfitting", "jax")], rows[("overfitting", "torch")]
    assert ofit_jax["test"] == pytest.approx(ofit_torch["test"], rel=1e-4)


def test_sweep_help_lists_the_presets(capsys):
    from jaxreg.lab import presets

    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "jaxreg sweep" in out and "--grid" in out
    words = "".join(out.split())  # argparse wraps long lines, also after a hyphen
    for name in presets.preset_names():
        assert name in words


def test_unused_hyperparameter_error_names_it(capsys):
    # The example: an L1 axis on the dropout MLP would report three identical rows.
    err = _error(capsys, ["sweep", "custom", "--model", "dropout-mlp", "--grid", "l1=0,0.1,10"])
    assert "'l1'" in err and "penalty='none'" in err


def test_bench_outside_a_checkout_is_a_clear_error(capsys, monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_benchmarks(name, *args, **kwargs):
        if name == "benchmarks" or name.startswith("benchmarks."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="benchmarks")
        return real_import(name, *args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(builtins, "__import__", no_benchmarks)
    assert cli.main(["bench", "--quick"]) == 1
    assert "runs from a source checkout (make bench)" in capsys.readouterr().err


def test_only_cli_builds_a_parser():
    from pathlib import Path

    import jaxreg

    root = Path(jaxreg.__file__).parent
    builders = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if "ArgumentParser(" in p.read_text() or "add_subparsers(" in p.read_text()
    ]
    assert builders == ["lab/cli.py"], builders

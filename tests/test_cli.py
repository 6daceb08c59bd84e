"""Tests for jaxreg.lab.cli: parsing, errors that list the allowed values, dispatch."""

import json
import subprocess
import sys
from pathlib import Path

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


def _python_ok(code: str) -> None:
    """Runs ``code`` in a fresh interpreter (nothing imported yet) and asserts it succeeds."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_and_recipes_import_no_torch():
    code = (
        "import sys, jaxreg, jaxreg.lab.cli, jaxreg.lab.report, jaxreg.lab.recipes\n"
        "jaxreg.lab.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    _python_ok(code)


def test_torch_references_import_no_lab():
    # The references stand alone: the harness (jaxreg.lab) drives them, never the reverse.
    pytest.importorskip("torch")
    code = (
        "import pkgutil, importlib, sys, jaxreg.torch_ref as t\n"
        "for m in pkgutil.iter_modules(t.__path__):\n"
        "    importlib.import_module(f'{t.__name__}.{m.name}')\n"
        "bad = sorted(m for m in sys.modules if m.startswith('jaxreg.lab'))\n"
        "assert not bad, f'jaxreg.torch_ref imported {bad}'\n"
    )
    _python_ok(code)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_activity_same_weights_same_losses(tmp_path):
    rows, metrics = _run(tmp_path, "activity", "--epochs", "20")
    jax_losses = [m["train_objective"] for m in metrics if m["framework"] == "jax"]
    torch_losses = [m["train_objective"] for m in metrics if m["framework"] == "torch"]
    assert len(jax_losses) == len(torch_losses) == 20
    # Same initial weights, same batches, deterministic: the two frameworks agree step by step.
    assert jax_losses == pytest.approx(torch_losses, rel=1e-5)
    assert (tmp_path / "loss_per_step.png").is_file()


@pytest.mark.slow
def test_activity_faithful_relearns_nothing(tmp_path):
    rows, metrics = _run(tmp_path, "activity", "--epochs", "5", "--faithful", "--framework", "jax")
    assert list(rows) == [("model per step (seed)", "jax")]
    assert len(metrics) == 5


@pytest.mark.slow
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


# Issue 16's bad inputs: each one line naming the option or the path, never a traceback, before
# any work starts. (setup(tmp_path) -> extra argv, expected exit status, fragments.)
def _outcome(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return code, err


def _a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return tmp_path / "f"


def _bad_config(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def get_config():\n    return {'lr': 0.1,\n")
    return path


NO_FM = ["run", "numpy-dropout", "--framework", "jax", "--epochs", "1"]
SWEEP = ["sweep", "custom", "--epochs", "1", "--hidden", "8", "--quiet"]


@pytest.mark.parametrize(
    "argv, code, fragments",
    [
        (lambda t: [*NO_FM, "--out", str(_a_file(t))], 1, ["--out", "is a file, not a folder"]),
        (
            lambda t: [*NO_FM, "--out", str(_a_file(t) / "sub" / "o")],
            1,
            ["is a file, so no folder can be made under it"],
        ),
        (
            lambda t: [*NO_FM, "--config", str(_bad_config(t)), "--out", str(t / "o")],
            1,
            ["bad.py: syntax error at line 2"],
        ),
        (lambda t: [*SWEEP, "--coordinator", "h:1"], 2, ["--coordinator needs --num-processes"]),
        (lambda t: [*SWEEP, "--num-processes", "2"], 2, ["needs --coordinator and --process-id"]),
        (
            lambda t: [*SWEEP, "--distributed", "--num-processes", "2"],
            2,
            ["--distributed detects the cluster", "drop --num-processes"],
        ),
        (
            lambda t: [*SWEEP, "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
            2,
            ["--process-id 2 must be in 0..1"],
        ),
        (
            lambda t: [*SWEEP, "--coordinator", "h", "--num-processes", "1", "--process-id", "0"],
            2,
            ["expected HOST:PORT"],
        ),
        (
            lambda t: ["run", "dropout", "--seed", "4294967295", "--seeds", "2"],
            2,
            ["the last seed, 4294967296, is above 4294967295", "use --seed 4294967294"],
        ),
        (lambda t: ["run", "dropout", "--seed", "4294967296"], 2, ["above 4294967295"]),
        (lambda t: [*SWEEP, "--seeds", "0", "4294967296"], 2, ["seed 4294967296 is above"]),
        (lambda t: [*SWEEP, "--synthetic", "64", "--train-size", "32"], 2, ["drop --train-size"]),
        (lambda t: [*SWEEP, "--synthetic", "64", "--data-dir", str(t)], 2, ["drop --data-dir"]),
        (lambda t: [*SWEEP, "--grid", "dropout1=0,0.5,0.5"], 2, ["value 0.5 is given twice"]),
        (lambda t: [*SWEEP, "--seeds", "1", "2", "1"], 2, ["seed 1 is given twice"]),
        (lambda t: [*SWEEP, "--train-size", "70000"], 2, ["Fashion-MNIST has 60000 training"]),
        (
            lambda t: ["run", "dropout", "--train-size", "60001"],
            2,
            ["--train-size 60001: Fashion-MNIST has 60000 train"],
        ),
        (lambda t: ["run", "dropout", "--test-size", "10001"], 2, ["has 10000 test examples"]),
        (lambda t: [*NO_FM, "--train-size", "100"], 2, ["numpy-dropout reads no Fashion-MNIST"]),
        (lambda t: ["run", "overfit", "--data-dir", str(t)], 2, ["overfit reads no Fashion"]),
        (lambda t: [*SWEEP, "--overwrite", "--resume"], 2, ["--overwrite and --resume exclude"]),
    ],
)
def test_bad_inputs_are_one_line_errors(capsys, tmp_path, argv, code, fragments):
    got, err = _outcome(capsys, argv(tmp_path))
    assert got == code, err
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["dropout", "weight-decay", "overfit"])
def test_seed_memory_estimate_knows_every_multi_seed_experiment(name):
    # The estimate skips configs it cannot read: every shipped one must be readable.
    from jaxreg.lab import cli_commands, recipes

    per_seed = cli_commands._seed_bytes(recipes.load_config(name), "float32", None)
    assert 2**20 < per_seed < 2**30
    float64 = cli_commands._seed_bytes(recipes.load_config(name), "float64", None)
    assert float64 == 2 * per_seed


def test_seeds_beyond_memory_are_refused_with_the_figure(capsys, monkeypatch):
    from jaxreg.lab import distributed, recipes

    monkeypatch.setattr(distributed, "available_bytes", lambda: 8 * 2**30)
    # Were the check to let it through, fail here instead of allocating 10000 seeds.
    monkeypatch.setattr(recipes, "run_experiment", lambda *a, **k: pytest.fail("not refused"))
    code, err = _outcome(capsys, ["run", "dropout", "--seeds", "10000", "--framework", "jax"])
    assert code == 2 and "more than the 8.0 GiB available" in err
    per_seed = float(err.split(" x ")[1].split(" MiB")[0])
    assert 1 < per_seed < 100  # MiB per seed of the 784-256-256-10 MLP, generously counted
    assert f"use --seeds {int(8 * 1024 // per_seed)}" in err or "or fewer" in err


def test_unwritable_out_is_an_error_naming_it(capsys, monkeypatch, tmp_path):
    import os

    out = tmp_path / "ro"
    out.mkdir()
    real = os.access
    # Root ignores permission bits, so the check itself is what is exercised here.
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != out and real(p, mode))
    code, err = _outcome(capsys, [*NO_FM, "--out", str(out)])
    assert code == 1 and f"--out {out} is not writable" in err


@pytest.mark.parametrize("problem", ["file", "under a file"])
def test_unusable_compile_cache_is_one_warning_and_the_run_goes_on(
    capsys, monkeypatch, tmp_path, problem
):
    import jax

    from jaxreg.lab import cli_commands, timing

    cache = _a_file(tmp_path) if problem == "file" else _a_file(tmp_path) / "cache"
    monkeypatch.setenv(timing.CACHE_DIR_ENV, str(cache))
    monkeypatch.delenv(timing.NO_CACHE_ENV, raising=False)
    before = jax.config.jax_compilation_cache_dir
    cli_commands.compile_cache(off=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jaxreg: warning: compilation cache folder" in err
    assert str(cache) in err and "running without the cache" in err
    assert not jax.config.jax_enable_compilation_cache
    assert jax.config.jax_compilation_cache_dir == before
    # The run itself goes on.
    assert cli.main([*NO_FM, "--out", str(tmp_path / "o")]) == 0


def test_compare_subcommand_is_wired(capsys):
    pytest.importorskip("jaxreg.lab.compare_cli")
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("SPEC.py", "--dtype", "--epochs", "--seeds", "--out", "--overwrite"):
        assert flag in out

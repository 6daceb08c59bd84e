"""Smoke tests of the benchmark machinery on a tiny slice, one epoch. No timing is asserted:
the speed targets are checked by ``make bench`` itself and reported in its results file."""

import dataclasses
import json

import pytest

pytest.importorskip("torch")

from benchmarks import analysis, common, render, run  # noqa: E402

TINY = dataclasses.replace(
    common.QUICK,
    train_size=1024,
    test_size=256,
    warmup_epochs=1,
    epochs=1,
    sweep_configs=2,
    sweep_epochs=1,
    torch_sequential_configs=1,
    torch_func_configs=1,
    sweep_chunk=1,
    peak_size=128,
)


@pytest.fixture(scope="module")
def data_available():
    from jaxreg.lab.data import load_fashion_mnist

    try:
        load_fashion_mnist(train_size=16, test_size=16)
    except FileNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")


def test_flop_formula_counts_forward_and_backward_matmuls():
    # 3 GEMMs (forward, dX, dW) of 2*in*out FLOPs per Linear and example.
    assert common.FLOPS_PER_EXAMPLE == 2 * 3 * (784 * 256 + 256 * 256 + 256 * 10)
    fig = common.throughput(epoch_s=2.0, samples_per_epoch=1000, configs=4)
    assert fig["samples_per_s"] == 2000.0
    assert fig["gflops"] == pytest.approx(4000 * common.FLOPS_PER_EXAMPLE / 2.0 / 1e9)


def test_summarize_reports_median_and_spread():
    stats = common.summarize([0.3, 0.1, 0.2, 0.5, 0.4])
    assert stats["median_s"] == 0.3
    assert (stats["min_s"], stats["max_s"], stats["n"]) == (0.1, 0.5, 5)
    assert stats["iqr_s"] > 0


def test_report_marks_failed_rows_and_missing_targets(tmp_path):
    rows = {
        "peak_start": {"peak_gflops": 100.0, "method": "m"},
        "torch_compile": {"error": "RuntimeError: no compiler"},
    }
    results = analysis.build(common.machine_info(), TINY, rows, wall_s=1.0)
    assert results["speedup_vs_torch_eager"] is None
    assert all(t["pass"] is None for t in results["targets"])
    assert results["findings"] == {} and results["compile_cache"] is None
    paths = render.write(results, tmp_path, "m-d", plot=False)
    text = paths[1].read_text()
    assert "error: RuntimeError: no compiler" in text


def test_rows_in_process_feed_the_report(tmp_path, data_available):
    from benchmarks import jax_profile, jax_rows, sweep_rows, torch_rows

    init_path = str(tmp_path / "init.npz")
    rows = {"init": jax_rows.init_params(TINY, init_path)}
    rows["peak_start"] = jax_rows.peak(TINY, init_path)
    rows["jax_scan"] = jax_rows.scan(TINY, init_path)
    rows["jax_step"] = jax_rows.jitted_step(TINY, init_path)
    rows["jax_profile"] = jax_profile.profile(TINY, init_path)
    rows["torch_eager"] = torch_rows.eager_memory(TINY, init_path, device="cpu")
    rows["sweep_jax_vmap"] = sweep_rows.jax_vmap(TINY, init_path)
    rows["sweep_jax_vmap_chunked"] = sweep_rows.jax_vmap_chunked(TINY, init_path)
    results = analysis.build(common.machine_info(), TINY, rows, wall_s=1.0)

    for name in ("jax_scan", "jax_step", "torch_eager"):
        row = results["rows"][name]
        assert row["epoch"]["n"] == TINY.epochs
        assert row["samples_per_epoch"] == 1024
        assert row["gflops"] > 0 and 0 < row["roofline_fraction"]
        assert 0.0 <= row["test_acc"] <= 1.0
    sweep = results["rows"]["sweep_jax_vmap"]
    assert sweep["configs"] == 2 and len(sweep["test_acc_per_config"]) == 2
    assert sweep["sweep_epoch_s"] == pytest.approx(2 * sweep["config_epoch"]["median_s"])
    assert results["speedup_vs_torch_eager"] > 0
    assert results["roofline_fraction"] > 0
    assert results["sweep_cost_ratio"] > 0 and results["sweep_cost_ratio_chunked"] > 0
    chunked = results["rows"]["sweep_jax_vmap_chunked"]
    assert chunked["chunk"] == 1 and len(chunked["test_acc_per_config"]) == 2
    # Same runs, same keys: chunking changes the layout of the computation, not its result.
    assert chunked["test_acc_per_config"] == pytest.approx(sweep["test_acc_per_config"], abs=0.02)
    assert {t["target"] for t in results["targets"]} >= {
        "JAX scan fraction of measured matmul peak"
    }

    parts = results["rows"]["jax_profile"]["parts_ms"]
    assert parts["engine_step"] > 0 and parts["gemms_only"] > 0
    # The prose quotes the profile of this run.
    assert {"jax_step_profile", "roofline", "speedup_vs_torch_eager"} <= set(results["findings"])
    masks = results["findings"]["roofline"]["masks_ms"]
    assert masks == parts["dropout_masks_only"]

    paths = render.write(results, tmp_path, "machine-date")
    assert f"Dropout's masks cost {masks:.3f} ms" in paths[1].read_text()
    assert [p.suffix for p in paths] == [".json", ".md", ".png"]
    saved = json.loads(paths[0].read_text())
    assert {"speedup_vs_torch_eager", "roofline_fraction", "fairness", "machine"} <= set(saved)
    assert "| PyTorch eager, data in memory |" in paths[1].read_text()


def test_run_is_a_plain_function_running_rows_in_subprocesses(tmp_path, data_available):
    tiny = dataclasses.replace(TINY, train_size=512)
    md_path = run.run(
        rows=["init", "compile_cold", "compile_warm"], out=tmp_path, workload=tiny, plot=False
    )
    assert md_path.suffix == ".md" and md_path.parent == tmp_path
    (json_path,) = tmp_path.glob("*.json")
    results = json.loads(json_path.read_text())
    assert set(results["rows"]) == {"init", "compile_cold", "compile_warm"}
    init = results["rows"]["init"]
    assert "error" not in init
    assert "lin1.weight" in init["params"] and "seed1/lin1.weight" in init["params"]
    assert 0.0 <= init["foreign_cpu_fraction"] <= 1.0
    assert results["targets"][0]["pass"] is None
    # Two fresh processes, one cache folder: the second reads the first one's program.
    cold, warm = results["rows"]["compile_cold"], results["rows"]["compile_warm"]
    assert cold["cache_writes"] >= 1 and cold["cache_hits"] == 0
    assert warm["cache_hits"] >= 1 and warm["cache_writes"] == 0
    cache = results["compile_cache"]
    assert cache["cold_s"] == cold["compile_s"] and cache["warm_s"] == warm["compile_s"]
    assert f"{cache['warm_s']:.2f} s in the next fresh process" in md_path.read_text()


def test_run_rejects_unknown_rows_and_devices():
    with pytest.raises(ValueError, match="rows: unknown"):
        run.run(rows=["nope"])
    with pytest.raises(ValueError, match="device"):
        run.run(device="tpu")


def test_recipe_constants_come_from_the_experiment_config():
    from jaxreg.lab.configs import experiments_dir, load_config_file

    config = load_config_file(experiments_dir() / "dropout.py")
    assert common.BATCH_SIZE == config["batch_size"]
    assert common.LEARNING_RATE == config["lr"]
    assert list(common.DROPOUT) == config["rates"]
    assert common.LAYERS[0][0] == config["model"]["num_inputs"]
    assert common.LAYERS[-1][1] == config["model"]["num_outputs"]


def test_jax_rows_do_not_import_the_sweep_rows():
    import ast
    import pathlib

    source = pathlib.Path(run.__file__).with_name("jax_rows.py").read_text()
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    } | {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {"sweep_rows", "benchmarks.sweep_rows"} & imported


def test_torch_rows_start_from_the_jax_initial_weights(tmp_path, data_available):
    import jax
    import numpy as np
    import torch

    from benchmarks import jax_rows, torch_rows

    init_path = str(tmp_path / "init.npz")
    jax_rows.init_params(TINY, init_path)
    net = torch_rows.load_model(init_path, torch.device("cpu")).eval()
    train = jax_rows._make_train(TINY, 1)
    params = train.init(jax.random.key(jax_rows.INIT_KEY), jax_rows.HPARAMS).params
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    expected = jax_rows._model().apply({"params": params}, x, deterministic=True)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-5)

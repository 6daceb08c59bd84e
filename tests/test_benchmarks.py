"""Smoke tests of the benchmark machinery on a tiny slice, one epoch. No timing is asserted:
the speed targets are checked by ``make bench`` itself and reported in its results file.

The fast tests run one row of each framework (JAX engine, torch, the CNN's torch twin) for real
and every row kind (MLP, CNN, sweeps, peers, profiles) through the analysis and the report from
rows shaped as the row functions return them; ``test_every_row_runs`` (``-m slow``) runs every
row function of ``make bench`` at the tiniest sizes.
"""

import dataclasses
import importlib.util
import json

import pytest

pytest.importorskip("torch")

from benchmarks import analysis, common, render, run  # noqa: E402

TINY = dataclasses.replace(
    common.QUICK,
    train_size=512,
    test_size=256,
    warmup_epochs=1,
    epochs=1,
    sweep_configs=2,
    sweep_epochs=1,
    torch_sequential_configs=1,
    torch_func_configs=1,
    sweep_chunk=1,
    peak_size=128,
    cnn_steps=2,
    cnn_warmup_epochs=1,
    cnn_epochs=1,
    cnn_test_size=128,
    cnn_scan_steps=1,
    cnn_profile_steps=1,
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


@pytest.mark.slow
def test_rows_in_process_feed_the_report(tmp_path, data_available):
    from benchmarks import jax_rows, torch_rows

    init_path = str(tmp_path / "init.npz")
    rows = {"init": jax_rows.init_params(TINY, init_path)}
    _check_torch_starts_from_the_jax_weights(init_path)
    rows["peak_start"] = {"peak_gflops": 100.0, "method": "m"}
    rows["jax_scan"] = jax_rows.scan(TINY, init_path)
    rows["torch_eager"] = torch_rows.eager_memory(TINY, init_path, device="cpu")
    rows.update(_synthetic_rows())
    results = analysis.build(common.machine_info(), TINY, rows, wall_s=1.0)

    for name in ("jax_scan", "torch_eager"):
        row = results["rows"][name]
        assert row["epoch"]["n"] == TINY.epochs
        assert row["samples_per_epoch"] == 512
        assert row["gflops"] > 0 and 0 < row["roofline_fraction"]
        assert 0.0 <= row["test_acc"] <= 1.0
    assert results["speedup_vs_torch_eager"] > 0
    assert results["roofline_fraction"] > 0
    # The prose quotes the profile of this run.
    assert {"jax_step_profile", "roofline", "speedup_vs_torch_eager"} <= set(results["findings"])
    masks = results["findings"]["roofline"]["masks_ms"]
    paths = render.write(results, tmp_path, "machine-date")
    text = paths[1].read_text()
    assert f"Dropout's masks cost {masks:.3f} ms" in text
    assert [p.suffix for p in paths] == [".json", ".md", ".png"]
    saved = json.loads(paths[0].read_text())
    assert {"speedup_vs_torch_eager", "roofline_fraction", "fairness", "machine"} <= set(saved)
    assert {"cnn_engine_over_best_loop", "cnn_speedup_vs_torch_eager"} <= set(saved)
    assert "| PyTorch eager, data in memory |" in text
    assert "| CNN: PyTorch eager, 1 thread |" in text and "## CNN" in text


def _check_torch_starts_from_the_jax_weights(init_path):
    import jax
    import numpy as np
    import torch

    from benchmarks import jax_rows, torch_rows

    net = torch_rows.load_model(init_path, torch.device("cpu")).eval()
    train = jax_rows._make_train(TINY, 1)
    params = train.init(jax.random.key(jax_rows.INIT_KEY), jax_rows.HPARAMS).params
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    expected = jax_rows._model().apply({"params": params}, x, deterministic=True)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-5)


def _timed(median_s, steps=2, batch=256, **extra):
    return {
        "epoch": {"median_s": median_s, "min_s": median_s, "max_s": median_s, "n": 1},
        "epoch_times_s": [median_s],
        "samples_per_epoch": steps * batch,
        "steps_per_epoch": steps,
        "test_acc": 0.5,
        **extra,
    }


def _synthetic_rows() -> dict:
    """Rows of every other kind, shaped as their row functions return them."""
    from benchmarks import cnn_rows

    cnn = {"flops_per_example": cnn_rows.FLOPS_PER_EXAMPLE}
    parts = {
        "engine_step": 2.2,
        "engine_step_bits16": 1.9,
        "step_with_dropout": 2.1,
        "step_without_dropout": 1.4,
        "dropout_masks_only": 0.8,
        "dropout_masks_only_bits16": 0.3,
        "dropout_masks_only_rbg": 0.7,
        "gather_only": 0.1,
        "gemms_only": 1.6,
        "step_vmapped_8_per_config": 2.0,
        "step_vmapped_8_without_dropout_per_config": 1.5,
    }
    return {
        "jax_profile": {"parts_ms": parts, "gemm_gflops": 50.0, "gemm_gflops_batch_1024": 60.0},
        "jax_step": _timed(0.02),
        "keras_fit": _timed(0.03),
        "nnx_jit": _timed(0.04),
        "torch_compile": {"error": "RuntimeError: no compiler"},
        "sweep_jax_vmap": _timed(
            0.1, config_epoch=common.summarize([0.05]), configs=2, test_acc_per_config=[0.5, 0.6]
        ),
        "cnn_engine_auto": _timed(1.0, 100, 64, loop_used="stepped", **cnn),
        "cnn_engine_scan": _timed(9.0, 100, 64, extrapolated=True, **cnn),
        "cnn_engine_stepped": _timed(1.0, 100, 64, **cnn),
        "cnn_step_loop": _timed(0.98, 100, 64, **cnn),
        "cnn_torch_eager_1thread": _timed(2.0, 100, 64, **cnn),
        "cnn_torch_eager": _timed(1.5, 100, 64, **cnn),
        "cnn_torch_compile": {"error": "RuntimeError: no compiler"},
        "cnn_keras_fit": _timed(1.2, 100, 64, **cnn),
        "cnn_nnx_jit": _timed(1.1, 100, 64, **cnn),
        "cnn_profile": {
            "parts_ms": {
                "step_jit": 10.0,
                "step_scan": 60.0,
                "step_jit_without_dropout": 9.0,
                "conv2_fwd_bwd_jit": 3.0,
                "conv2_fwd_bwd_scan": 30.0,
            },
            "scan_over_jit": 6.0,
            "conv_scan_over_jit": 10.0,
            "dropout_share": 0.1,
            "step_gflops_jit": 160.0,
        },
    }


def test_cnn_keys_targets_and_profile_from_the_rows():
    rows = {"peak_start": {"peak_gflops": 100.0}, **_synthetic_rows()}
    results = analysis.build({"gpu": None}, TINY, rows, wall_s=1.0)
    # Engine default / the fastest of scan, stepped and the jit(Train.step) loop.
    assert results["cnn_engine_over_best_loop"] == pytest.approx(1.0 / 0.98)
    assert results["cnn_speedup_vs_fastest_jax_peer"] == pytest.approx(1.1)
    # The faster torch eager (here all cores) over the engine.
    assert results["cnn_speedup_vs_torch_eager"] == pytest.approx(1.5)
    assert results["cnn_speedup_vs_torch_compile"] is None
    assert results["cnn"]["engine_loop_used"] == "stepped"
    assert results["cnn"]["fastest_jax_peer"] == "cnn_nnx_jit"
    verdicts = {t["target"]: t["pass"] for t in results["targets"]}
    assert verdicts[next(k for k in verdicts if k.startswith("CNN: engine default epoch /"))]
    assert verdicts[next(k for k in verdicts if "(Keras, NNX)" in k)] is True
    gflops = results["rows"]["cnn_engine_auto"]["gflops"]
    assert gflops == pytest.approx(100 * 64 * rows["cnn_engine_auto"]["flops_per_example"] / 1e9)
    finding = results["findings"]["cnn"]
    assert finding["extrapolated"] == ["cnn_engine_scan"]
    assert "cnn_torch_compile" in finding["errors"]
    text = render.markdown(results)
    assert "inside a lax.scan 60.0 ms (6.0x)" in text
    # The MLP step's breakdown: masks in the step, gather, the rest.
    step = results["findings"]["step_over_matmuls"]
    assert step["masks_in_step_ms"] == pytest.approx(0.7)
    assert step["other_ms"] == pytest.approx(1.4 - 1.6 - 0.1)


@pytest.fixture(scope="module")
def cnn_init(tmp_path_factory):
    """The ``cnn_init`` row's file (its folder is the bench's temporary folder)."""
    from benchmarks import cnn_rows

    init_path = str(tmp_path_factory.mktemp("cnn") / "init.npz")
    cnn_rows.init_row(TINY, init_path)
    return init_path


def _cnn_probe(init_path):
    import numpy as np

    from benchmarks import cnn_rows

    params = cnn_rows._shared(init_path, "flax")
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    return params, x, np.asarray(cnn_rows.SmallCNN().apply({"params": params}, x))


@pytest.mark.slow
def test_cnn_twins_compute_the_flax_model(cnn_init):
    """The shared weights make torch's and NNX's CNN the Flax model (eval mode)."""
    import numpy as np
    import torch

    from benchmarks import cnn_rows

    init_path = cnn_init
    params, x, expected = _cnn_probe(init_path)
    net = cnn_rows.torch_model(cnn_rows._shared(init_path, "torch")).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    nnx_model = cnn_rows.build_nnx(params)
    nnx_model.eval()
    np.testing.assert_allclose(np.asarray(nnx_model(x)), expected, rtol=1e-4, atol=1e-4)
    # Without the flatten reordering torch would compute another function.
    plain = dict(cnn_rows._shared(init_path, "torch"))
    from jaxreg.convert import flax_to_torch

    plain["fc1.weight"] = np.asarray(flax_to_torch(params)["fc1.weight"])
    with torch.no_grad():
        wrong = cnn_rows.torch_model(plain).eval()(torch.from_numpy(x)).numpy()
    assert not np.allclose(wrong, expected, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("keras"), reason="keras (bench extra) missing")
def test_cnn_keras_twin_computes_the_flax_model(cnn_init):
    import os

    import numpy as np

    os.environ["KERAS_BACKEND"] = "jax"
    from benchmarks import cnn_rows

    params, x, expected = _cnn_probe(cnn_init)
    got = np.asarray(cnn_rows.build_keras(params)(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_cnn_torch_row_trains_from_the_shared_weights(cnn_init, data_available):
    from benchmarks import cnn_rows

    row = cnn_rows.torch_eager_1thread(TINY, cnn_init)
    assert row["threads"] == 1 and row["steps_per_epoch"] == TINY.cnn_steps
    assert row["samples_per_epoch"] == TINY.cnn_steps * 64 and row["epoch"]["n"] == 1
    assert len(row["train_loss_per_epoch"]) == 2 and 0.0 <= row["test_acc"] <= 1.0


def test_compare_summary_adds_the_parts():
    from benchmarks import compare_rows

    rows = {
        "jax32": {"fixed_s": 2.0, "epoch_s": 0.5},
        "jax64": {"fixed_s": 3.0, "epoch_s": 1.5},
        "torch32_1thread": {"fixed_s": 0.0, "epoch_s": 1.0},
        "torch32_2threads": {"fixed_s": 0.0, "epoch_s": 0.8},
        "torch64_1thread": {"fixed_s": 0.0, "epoch_s": 2.0},
        "torch32_matched": {"fixed_s": 1.0, "epoch_s": 1.2},
        "masks": {"error": "exit 1"},
    }
    summary = compare_rows.summarize(rows, epochs=10)
    assert summary["part_cost_s"]["jax32"] == pytest.approx(7.0)
    assert summary["part_cost_s"]["masks"] is None
    assert summary["torch_threads_faster"] == 2
    assert summary["torch32_epoch_1_over_2_threads"] == pytest.approx(1.25)
    assert summary["matched_torch_extra_s"] == pytest.approx(13.0 - 10.0)
    assert summary["float64_over_float32_jax_epoch"] == pytest.approx(3.0)
    text = compare_rows.markdown(
        {"summary": summary, "machine": {}, "date": "d", "rows": {**rows, "jax32": rows["jax32"]}}
    )
    assert "| jax32 | 2.00 | 0.500 | 7.00 |" in text and "| masks | error: exit 1" in text


def test_every_row_is_a_function_of_the_workload():
    import importlib
    import inspect

    for name, (module, function) in {**run.ROWS, **run.COMPARE_ROWS}.items():
        fn = getattr(importlib.import_module(module), function)
        params = list(inspect.signature(fn).parameters)
        assert params[:3] == ["workload", "init_path", "device"], name


@pytest.mark.slow
def test_every_row_runs(tmp_path, data_available):
    """Every row function of ``make bench`` at the tiniest sizes (minutes: ``-m slow``)."""
    import importlib
    import os

    os.environ["KERAS_BACKEND"] = "jax"
    init_path = str(tmp_path / "init.npz")
    rows = {}
    for name, (module, function) in run.ROWS.items():
        if name in ("compile_cold", "compile_warm"):
            continue
        rows[name] = getattr(importlib.import_module(module), function)(TINY, init_path, "cpu")
    failed = {n: r["error"] for n, r in rows.items() if "error" in r}
    # torch.compile needs a C compiler; its failure is a recorded result, not a crash.
    assert set(failed) <= {"torch_compile", "cnn_torch_compile"}, failed
    results = analysis.build(common.machine_info(), TINY, rows, wall_s=1.0)
    assert results["cnn_engine_over_best_loop"] is not None
    assert results["speedup_vs_fastest_jax_peer"] is not None
    render.write(results, tmp_path, "all-rows", plot=False)


@pytest.mark.slow
def test_run_is_a_plain_function_running_rows_in_subprocesses(tmp_path, data_available):
    md_path = run.run(rows=["init", "numpy_peak"], out=tmp_path, workload=TINY, plot=False)
    assert md_path.suffix == ".md" and md_path.parent == tmp_path
    (json_path,) = tmp_path.glob("*.json")
    results = json.loads(json_path.read_text())
    assert set(results["rows"]) == {"init", "numpy_peak"}
    init = results["rows"]["init"]
    assert "error" not in init
    assert "lin1.weight" in init["params"] and "seed1/lin1.weight" in init["params"]
    assert 0.0 <= init["foreign_cpu_fraction"] <= 1.0
    assert results["rows"]["numpy_peak"]["peak_gflops"] > 0
    assert results["targets"][0]["pass"] is None


def test_run_rejects_unknown_rows_and_devices():
    with pytest.raises(ValueError, match="rows: unknown"):
        run.run(rows=["nope"])
    with pytest.raises(ValueError, match="device"):
        run.run(device="tpu")


def test_recipe_constants_come_from_the_experiment_config():
    from jaxreg.lab.configs import experiments_dir, load_config_file

    config = common.recipe_data(load_config_file(experiments_dir() / "dropout.py"))
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

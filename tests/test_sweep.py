"""Tests for jaxreg.lab.sweep and its parts (grids, checkpoint, distributed, presets, analysis):
vmapped == one by one, compiles once, sharding, multi-host, resume, presets from the configs.

Tolerances: a vmapped or sharded run executes the same operations as a single run, but XLA may
batch and fuse them differently, so float32 results agree to reassociation error (rtol 1e-5,
atol 1e-6 after 2 epochs). Resuming replays the same executable on the same device: identical.

Subprocess tests set XLA_FLAGS / jax.distributed before jax is imported, which cannot be done in
the pytest process; they share a persistent compilation cache so each program compiles once.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxreg.lab import (
    analysis,
    checkpoint,
    cli,
    configs,
    distributed,
    engine,
    grids,
    presets,
    sweep,
)

RTOL, ATOL = 1e-5, 1e-6
REPO = Path(__file__).resolve().parents[1]

# A tiny sweep program shared by the subprocess tests (written to a file and imported there).
CHILD_COMMON = """
import os, sys, time
import jax
import numpy as np
from jaxreg import models
from jaxreg.lab import data, distributed, engine, grids, sweep

POINTS = grids.grid(dropout1=[0.0, 0.5], lr=[0.1, 0.5])
SEEDS = [0, 7]

def make(batch_mesh=None):
    ds = data.synthetic_classification(96, 32, num_features=12, noise=0.3, seed=0)
    model = models.DropoutMLP(num_inputs=12, num_hiddens1=8, num_hiddens2=8)
    cfg = engine.TrainConfig(model=model, epochs=2, batch_size=32, eval_batch_size=32)
    return engine.make_train(cfg, ds, batch_mesh=batch_mesh)

def dump(path, result):
    np.savez(path, **result.metrics)
"""


# The in-process runs use the very code the subprocesses import, so results are comparable.
COMMON = {}
exec(CHILD_COMMON, COMMON)
POINTS, SEEDS = COMMON["POINTS"], COMMON["SEEDS"]


@pytest.fixture(scope="module")
def tiny():
    return COMMON["make"]()


@pytest.fixture(scope="module")
def swept(tiny):
    caplog_records = []

    class Grab(logging.Handler):
        def emit(self, record):
            caplog_records.append(record.getMessage())

    handler = Grab(level=logging.WARNING)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            # 8 runs in chunks of 3: 3 chunks, the last one padded.
            result = sweep.run_sweep(tiny, POINTS, SEEDS, chunk_size=3)
    finally:
        logger.removeHandler(handler)
    return result, caplog_records


def test_sweep_equals_one_by_one(tiny, swept):
    result, _ = swept
    assert result.metrics["test_acc"].shape == (4, 2, 2)
    for p, point in enumerate(POINTS):
        for s, seed in enumerate(SEEDS):
            single = tiny(jax.random.key(seed), point)
            for name in engine.EPOCH_METRICS:
                np.testing.assert_allclose(
                    result.metrics[name][p, s],
                    single.metrics[name],
                    rtol=RTOL,
                    atol=ATOL,
                    err_msg=f"point {point} seed {seed} metric {name}",
                )


def test_sweep_whole_grid_compiles_once(swept):
    result, messages = swept
    chunk_compiles = [m for m in messages if m.startswith("Compiling jit(_sweep_chunk)")]
    assert result.stats["num_chunks"] == 3
    assert len(chunk_compiles) == 1, chunk_compiles
    # Nothing else as big as a training program was compiled along the way.
    assert not [m for m in messages if "jit(pure)" in m or "jit(_epoch_pure)" in m]


def test_sweep_diverged_config_is_marked_and_others_go_on(tiny, swept):
    points = [{"dropout1": 0.0, "lr": 0.1}, {"name": "too fast", "dropout1": 0.0, "lr": 1e30}]
    result = sweep.run_sweep(tiny, points, [0], chunk_size=3)
    assert result.stats["compile_s"] == 0.0  # the chunk program was reused from the grid above
    steps = result.metrics["diverged_step"][:, 0]
    assert steps[0] == -1 and steps[1] >= 0
    assert result.diverged.tolist() == [[False], [True]]
    assert result.labels == ["dropout1=0, lr=0.1", "too fast"]
    np.testing.assert_array_equal(
        result.metrics["test_loss"][0, 0], swept[0].metrics["test_loss"][0, 0]
    )
    rows = result.rows()
    assert rows[1]["diverged"].startswith("seed 0 at step") and rows[0]["diverged"] == ""
    assert np.isnan(result.final("test_acc")[1, 0])


def test_sweep_chunk_size_from_memory_budget(tiny):
    per_run = distributed.estimate_run_bytes(tiny)
    assert per_run > 0
    assert distributed.choose_chunk_size(tiny, 64, 1, memory_budget=3 * per_run) == 3
    assert distributed.choose_chunk_size(tiny, 64, 4, memory_budget=3 * per_run) == 12
    assert distributed.choose_chunk_size(tiny, 5, 4, memory_budget=10**15) == 8
    with pytest.raises(ValueError, match="chunk_size"):
        sweep.run_sweep(tiny, POINTS, [0], chunk_size=0)


def test_sweep_bad_points_raise(tiny):
    with pytest.raises(ValueError, match="same hyperparameters"):
        sweep.run_sweep(tiny, [{"lr": 0.1}, {"dropout1": 0.5}], [0])
    with pytest.raises(ValueError, match="no configurations"):
        sweep.run_sweep(tiny, [], [0])
    with pytest.raises(ValueError, match="empty"):
        grids.grid(lr=[])


def test_sweep_parse_values():
    assert grids.parse_values("0,0.5") == [0.0, 0.5]
    assert grids.parse_values("lin:0:0.6:4") == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert grids.parse_values("log:1e-5:1e-2:4") == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    for bad in ("", "a,b", "log:0:1:3", "lin:0:1:0", "1,nan", "log:1:2"):
        with pytest.raises(ValueError, match="expected"):
            grids.parse_values(bad)


def test_sweep_unused_hyperparameter_is_an_error_naming_it(tiny):
    with pytest.raises(ValueError, match="'l1' is not used"):
        sweep.run_sweep(tiny, [{"l1": 0.0}, {"l1": 0.1}], [0])


# ---- subprocesses --------------------------------------------------------------------------
def _env(tmp_path, **extra):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    # Less XLA optimization halves compile time; numerics stay within the stated tolerance.
    flags = "--xla_backend_optimization_level=0 " + extra.pop("XLA_FLAGS", "")
    env["XLA_FLAGS"] = flags.strip()
    env.update(extra)
    return env


def _write_child(tmp_path, body):
    (tmp_path / "sweep_child_common.py").write_text(CHILD_COMMON)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return script


def _assert_close_to(result_file, swept_result):
    got = np.load(result_file)
    worst = 0.0
    for k in swept_result.metrics:
        a, b = np.asarray(got[k], float), np.asarray(swept_result.metrics[k], float)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=k)
        worst = max(worst, float(np.nanmax(np.abs(a - b))))
    return worst


@pytest.mark.slow
def test_shard_configs_and_batch_over_4_devices_equals_single_device(tmp_path, swept):
    script = _write_child(
        tmp_path,
        f"""
        import jax
        from sweep_child_common import make, sweep, distributed, dump, POINTS, SEEDS
        assert jax.device_count() == 4, jax.devices()
        res = sweep.run_sweep(make(), POINTS, SEEDS, chunk_size=4)
        assert res.stats["devices"] == 4, res.stats
        dump({str(tmp_path / "sharded.npz")!r}, res)
        # One model, its batch of 32 split 8 per device (data parallelism).
        one = make(batch_mesh=distributed.make_mesh())(jax.random.key(SEEDS[0]), POINTS[1])
        assert len(one.params["lin1"]["kernel"].sharding.device_set) == 4
        dump({str(tmp_path / "batch.npz")!r}, one)
        """,
    )
    env = _env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Against the single-device, single-process sweep of the same grid (chunks of 3).
    _assert_close_to(tmp_path / "sharded.npz", swept[0])
    batch = np.load(tmp_path / "batch.npz")
    for name in engine.EPOCH_METRICS:
        np.testing.assert_allclose(
            batch[name], swept[0].metrics[name][1, 0], rtol=RTOL, atol=ATOL, err_msg=name
        )


def test_resume_after_kill_is_identical(tmp_path):
    out = tmp_path / "sweep-out"
    script = _write_child(
        tmp_path,
        f"""
        import sys, time
        from sweep_child_common import make, sweep, dump, POINTS, SEEDS
        train = make()
        pause = sys.argv[1] == "pause"

        def on_chunk(c, n):
            print("CHUNK", c, flush=True)
            if pause and c == 1:
                time.sleep(120)  # killed here, mid-sweep

        res = sweep.run_sweep(train, POINTS, SEEDS, chunk_size=2, out_dir={str(out)!r},
                              on_chunk=on_chunk)
        print("RESUMED", res.stats["resumed_chunks"], flush=True)
        dump({str(tmp_path / "resumed.npz")!r}, res)
        fresh = sweep.run_sweep(train, POINTS, SEEDS, chunk_size=2)  # uninterrupted, no files
        dump({str(tmp_path / "fresh.npz")!r}, fresh)
        """,
    )
    env = _env(tmp_path)
    child = subprocess.Popen(
        [sys.executable, str(script), "pause"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        for line in child.stdout:
            if line.strip() == "CHUNK 1" or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    chunks = out / "chunks"
    assert sorted(p.name for p in chunks.glob("chunk_*.npz")) == [
        "chunk_00000.npz",
        "chunk_00001.npz",
    ]
    # What a crash mid-write would leave under the atomic protocol (a temp file), and a final
    # name holding garbage: neither may be read as a finished chunk.
    (chunks / "chunk_00002.npz.tmp-999").write_bytes(b"PK\x03\x04partial")
    (chunks / "chunk_00003.npz").write_bytes(b"PK\x03\x04garbage")
    proc = subprocess.run(
        [sys.executable, str(script), "go"], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESUMED 2" in proc.stdout  # chunks 0 and 1 reused; 2 and 3 (garbage) recomputed
    # The garbage chunk is reported, by name and reason; the temporary file is not read at all.
    assert "chunk_00003.npz is unreadable" in proc.stderr and "CheckpointWarning" in proc.stderr
    assert "tmp-999" not in proc.stderr
    resumed, fresh = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "fresh.npz")
    assert sorted(resumed.files) == sorted(fresh.files)
    for k in fresh.files:
        np.testing.assert_array_equal(resumed[k], fresh[k], err_msg=k)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multihost_sweep_two_cpu_processes(tmp_path, swept):
    script = _write_child(
        tmp_path,
        f"""
        import sys
        import jax
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
        from sweep_child_common import make, sweep, dump, POINTS, SEEDS
        assert jax.process_count() == 2 and jax.device_count() == 4
        res = sweep.run_sweep(make(), POINTS, SEEDS, chunk_size=4)  # 4 devices over 2 hosts
        dump({str(tmp_path)!r} + f"/host{{jax.process_index()}}.npz", res)
        print("OK", jax.process_index(), res.stats["processes"], res.stats["devices"])
        """,
    )
    env = _env(tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    address = f"localhost:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), address, str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for i, (p, (stdout, stderr)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, stderr[-3000:]
        assert f"OK {i} 2 4" in stdout
        # Every host gathered the whole grid, equal to the single-process sweep.
        _assert_close_to(tmp_path / f"host{i}.npz", swept[0])


@pytest.mark.slow
def test_sweep_cli_writes_outputs(tmp_path):
    out = tmp_path / "cli"
    argv = ["sweep", "custom", "--synthetic", "64", "--hidden", "16", "--grid", "dropout1=0,0.5"]
    argv += ["--epochs", "1"]
    argv += ["--seeds", "0", "1", "--out", str(out), "--quiet", "--chunk-size", "4"]
    assert cli.main(argv) == 0
    for name in ("config.json", "metrics.npz", "results.csv", "report.md", "curves.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "per configuration-epoch" in report and "dropout1=0.5" in report
    # The same command with --resume reads every chunk back: nothing is recomputed.
    assert cli.main([*argv, "--resume"]) == 0
    assert "1 resumed" in (out / "report.md").read_text()


def test_torch_sweep_func_vmap_matches_sequential():
    pytest.importorskip("torch")
    from jaxreg.lab.data import synthetic_classification
    from jaxreg.torch_ref import sweep as torch_sweep

    ds = synthetic_classification(80, 20, num_features=12, noise=0.3, seed=1)
    # Dropout-free points: the vmapped functional SGD must follow torch.optim.SGD exactly
    # (80 = 2 batches of 32 + a partial batch of 16; decay on weights only).
    points = [
        {"weight_decay": wd, "dropout1": 0.0, "dropout2": 0.0, "lr": lr}
        for wd, lr in ((0.0, 0.5), (1e-2, 0.1))
    ]
    kw = {
        "epochs": 2,
        "batch_size": 32,
        "model_kwargs": {"num_inputs": 12, "num_hiddens1": 8, "num_hiddens2": 8},
    }
    seq = torch_sweep.sequential_sweep(ds, points, [0, 3], **kw)
    fun = torch_sweep.func_sweep(ds, points, [0, 3], **kw)
    np.testing.assert_allclose(fun["train_loss"], seq["train_loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fun["test_acc"], seq["test_acc"], atol=1e-6)
    assert fun["groups"] == 1
    with_dropout = torch_sweep.func_sweep(ds, [{"dropout1": 0.5}, {"dropout1": 0.2}], [0], **kw)
    assert with_dropout["groups"] == 2
    text = torch_sweep.compare_sweeps(ds, points[:1], [0], epochs=1, hidden=4)
    assert "torch sequential" in text and "torch.func vmap" in text
    assert text.count("ms per configuration-epoch") == 2


# ---- checkpoints, presets, analysis (no training) ---------------------------------------------
def test_checkpoint_from_another_sweep_is_reported(tmp_path):
    path = checkpoint.chunk_path(tmp_path, 0)
    checkpoint.save_chunk(path, "sweep-a", np.arange(2), {"test_acc": np.ones((2, 1))}, 0.5)
    assert checkpoint.load_chunk(path, "sweep-a", np.arange(2))[1] == 0.5
    with pytest.warns(checkpoint.CheckpointWarning, match="chunk_00000.npz is written by another"):
        assert checkpoint.load_chunk(path, "sweep-b", np.arange(2)) is None
    with pytest.warns(checkpoint.CheckpointWarning, match=r"for runs \[0, 1\]"):
        assert checkpoint.load_chunk(path, "sweep-a", np.arange(2, 4)) is None
    assert checkpoint.load_chunk(tmp_path / "missing.npz", "sweep-a", np.arange(2)) is None


def test_presets_take_the_recipe_from_the_experiment_configs():
    exp_dir = configs.experiments_dir()
    dropout = configs.load_config_file(exp_dir / "dropout.py")
    decay = configs.load_config_file(exp_dir / "weight_decay.py")
    for name in presets.preset_names():
        raw = configs.load_config_file(exp_dir / "sweeps" / f"{name.replace('-', '_')}.py")
        if not {"points", "grid"} & set(raw):
            continue  # a procedure of its own (noise-injection), not one grid
        preset = presets.load_preset(name)
        # The recipe constants live in experiments/dropout.py and weight_decay.py only.
        assert not {"lr", "batch_size", "model"} & set(preset), name
        plan = presets.build_plan(name)
        base = dropout if preset["base"] == "dropout" else decay
        assert plan.config.lr == base.optimizer.lr and plan.config.batch_size == base.batch_size
        assert plan.config.epochs == preset.get("overrides", {}).get("epochs", base.epochs)
        for key in ("num_inputs", "num_hiddens1", "num_hiddens2", "num_outputs"):
            if hasattr(base.model, key):
                assert getattr(plan.config.model, key) == getattr(base.model, key), (name, key)
        assert plan.points and all(isinstance(s, int) for s in plan.seeds)
    mlp = presets.build_plan("fmnist-64").config.model
    assert (mlp.dropout1, mlp.dropout2) == (dropout.model.dropout1, dropout.model.dropout2)


def test_preset_overrides_and_errors():
    plan = presets.build_plan("custom", model="weight-decay-mlp", grid={"weight_decay": [0, 1]})
    assert type(plan.config.model).__name__ == "WeightDecayMLP" and len(plan.points) == 2
    assert presets.build_plan("dropout-swap", hidden=16).config.model.num_hiddens2 == 16
    with pytest.raises(ValueError, match="'dropout1' is not used"):
        presets.build_plan("custom", model="weight-decay-mlp")
    with pytest.raises(ValueError, match="allowed presets: .*lambda-curve"):
        presets.load_preset("lambda")
    with pytest.raises(ValueError, match="'act_l1' is not used"):
        presets.build_plan("custom", grid={"act_l1": [0.1]})


def _result(test_acc, labels, points, seeds):
    acc = np.asarray(test_acc, float)[:, :, None]
    steps = -np.ones(acc.shape[:2], int)
    return sweep.SweepResult(
        labels, points, seeds, {"test_acc": acc, "diverged_step": steps}, epochs=1
    )


def test_analysis_states_only_measured_figures():
    names = ["none", "dropout", "decay", "both"]
    pts = [{"weight_decay": 0.0}] * 4
    one_seed = _result([[0.80], [0.82], [0.81], [0.84]], names, pts, [0])
    (text,) = analysis.additivity(one_seed)
    assert "no verdict" in text and "noise" not in text and "+0.0200" in text
    two = _result([[0.80, 0.80], [0.82, 0.82], [0.81, 0.81], [0.9, 0.9]], names, pts, [0, 1])
    assert "more than additive" in analysis.additivity(two)[0]
    lam = _result([[0.7], [0.8]], ["a", "b"], [{"weight_decay": 0.1}, {"weight_decay": 1.0}], [0])
    assert "No validation split" in analysis.lambda_choice(lam)[0]
    lam.metrics["val_acc"] = np.array([[[0.9]], [[0.6]]])
    text = analysis.lambda_choice(lam)[0]
    assert "**0.1**" in text and "-0.1000" not in text and "+0.1000" in text

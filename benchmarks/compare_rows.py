"""What a JAX-vs-torch comparison run costs, part by part (issue 17, part 4: measurement).

A comparison such as ``jaxreg main`` trains the seed 003 dropout MLP in both frameworks: the JAX
engine (float32, and float64 for the exact gate), the torch loop (float32 and float64, with some
number of intra-op threads) and, for a matched pair, the JAX run's batch orders and dropout
masks recomputed and carried over to torch (``jaxreg.lab.matched.MatchedStreams``, replayed by
``jaxreg.torch_ref.engine.train_classifier(matched=...)``). Each part here is one row in a fresh
process (``benchmarks.run.run_row``), on the full training set for ``workload.compare_epochs``
epochs; a row reports its wall time split into the fixed cost (compilation, stream setup) and
the per-epoch cost, so the parts add up to what a recipe of any length pays::

    python -m benchmarks.compare_rows   # benchmarks/results/compare-cost-*.{json,md}

Not part of ``make bench`` (``benchmarks.run.ROWS``): the recipes' owners read its figures to
decide what a comparison must run (e.g. torch's thread count, float64 only where the gate
needs it).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

EPOCHS_DEFAULT = 2


def _jax_run(workload: common.Workload, dtype: str) -> dict:
    """The engine's whole run (``train(key)``, one compiled computation), twice: the first call
    pays the compilation, the second is the run alone."""
    import jax

    from benchmarks import jax_rows
    from jaxreg.lab.engine import make_train

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    jax_rows.setup()
    epochs = workload.compare_epochs
    train = jax_rows._make_train(workload, epochs)
    if dtype != "float32":
        config = dataclasses.replace(train.config, dtype=dtype)
        train = make_train(config, jax_rows._data(workload))
    key = jax.random.key(jax_rows.INIT_KEY)
    start = time.perf_counter()
    jax.block_until_ready(train(key, jax_rows.HPARAMS))
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(train(key, jax_rows.HPARAMS))
    second = time.perf_counter() - start
    return {
        "dtype": dtype,
        "epochs": epochs,
        "first_call_s": first,
        "run_s": second,
        "epoch_s": second / epochs,
        "fixed_s": first - second,
        "fixed_note": "compilation: first call minus the compiled run",
        "test_acc": float(result.metrics["test_acc"][-1]),
    }


def jax32(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The JAX side of a comparison in float32."""
    return _jax_run(workload, "float32")


def jax64(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The JAX side in float64 (``jax_enable_x64``; the exact gate's run)."""
    return _jax_run(workload, "float64")


def masks(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The matched pair's shared streams alone: ``MatchedStreams`` built, then every epoch's
    orders and dropout draws computed (one vmapped call per epoch) and brought to the host."""
    import jax

    from benchmarks import jax_rows
    from jaxreg.lab.matched import MatchedStreams

    jax_rows.setup()
    epochs = workload.compare_epochs
    train = jax_rows._make_train(workload, epochs)
    start = time.perf_counter()
    streams = MatchedStreams(train, jax.random.key(jax_rows.INIT_KEY), jax_rows.HPARAMS)
    setup_s = time.perf_counter() - start
    per_epoch, nbytes = [], 0
    for epoch in range(epochs):
        start = time.perf_counter()
        streams.order(epoch)
        for draws in streams.step_draws(epoch):
            nbytes += sum(np.asarray(d.value).nbytes for d in draws)
        per_epoch.append(time.perf_counter() - start)
    return {
        "epochs": epochs,
        "setup_s": setup_s,
        "epoch_times_s": per_epoch,
        # The first epoch compiles the vmapped draw function; the others are the steady cost.
        "epoch_s": min(per_epoch),
        "fixed_s": setup_s + per_epoch[0] - min(per_epoch),
        "mask_mb_per_epoch": nbytes / epochs / 2**20,
        "steps_per_epoch": train.steps_per_epoch,
    }


def _torch_run(
    workload: common.Workload, init_path: str, threads: int, dtype: str, matched: bool
) -> dict:
    """``train_classifier`` (the one torch loop) on the shared initial weights."""
    import torch

    from benchmarks import jax_rows, torch_rows
    from jaxreg.torch_ref.engine import train_classifier

    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")
    epochs = workload.compare_epochs
    ds = jax_rows._data(workload) if not matched else None
    streams = None
    setup_s = 0.0
    if matched:
        import jax

        from jaxreg.lab.matched import MatchedStreams

        jax_rows.setup()
        train = jax_rows._make_train(workload, epochs)
        ds = jax_rows._data(workload)
        start = time.perf_counter()
        streams = MatchedStreams(train, jax.random.key(jax_rows.INIT_KEY), jax_rows.HPARAMS)
        setup_s = time.perf_counter() - start
    model = torch_rows.load_model(init_path, torch.device("cpu"))
    torch_dtype = torch.float32
    if dtype == "float64":
        model = model.double()
        torch_dtype = torch.float64
    optimizer = torch.optim.SGD(model.parameters(), lr=common.LEARNING_RATE)
    start = time.perf_counter()
    history = train_classifier(
        model,
        optimizer,
        (ds.x_train, ds.y_train),
        (ds.x_test, ds.y_test),
        epochs=epochs,
        batch_size=common.BATCH_SIZE,
        seed=0,
        drop_last=True,
        matched=streams,
        dtype=torch_dtype,
    )
    wall = time.perf_counter() - start
    times = history["epoch_time"]
    # A matched run's first epoch compiles the streams' draw function: its steady epochs follow.
    steady = float(np.median(times[1:] if matched else times))
    return {
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "matched": matched,
        "epochs": epochs,
        "run_s": wall,
        "epoch_times_s": times,
        "epoch_s": steady,
        # Eager torch compiles nothing; a matched run first builds the streams, and its first
        # epoch compiles their draw function.
        "fixed_s": setup_s + (max(times[0] - steady, 0.0) if matched else 0.0),
        "test_acc": history["test_acc"][-1],
    }


def torch32_1thread(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch float32, one intra-op thread (the recipes' default)."""
    return _torch_run(workload, init_path, 1, "float32", matched=False)


def torch32_2threads(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch float32, two intra-op threads."""
    return _torch_run(workload, init_path, 2, "float32", matched=False)


def torch64_1thread(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch float64, one thread."""
    return _torch_run(workload, init_path, 1, "float64", matched=False)


def torch64_2threads(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch float64, two threads."""
    return _torch_run(workload, init_path, 2, "float64", matched=False)


def torch32_matched(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch float32, one thread, replaying the JAX run's batch orders and dropout masks."""
    return _torch_run(workload, init_path, 1, "float32", matched=True)


# Row name -> function name in this module; ``benchmarks.run`` runs them (``COMPARE_ROWS``).
ROWS = (
    "jax32",
    "jax64",
    "masks",
    "torch32_1thread",
    "torch32_2threads",
    "torch64_1thread",
    "torch64_2threads",
    "torch32_matched",
)


def summarize(rows: dict[str, dict], epochs: int) -> dict[str, Any]:
    """The parts of a comparison of ``epochs`` epochs, and the thread choice they imply.

    Each part's cost is ``fixed_s + epochs * epoch_s`` (None where its row failed).
    """

    def cost(name: str) -> float | None:
        row = rows.get(name, {})
        if "epoch_s" not in row:
            return None
        return row.get("fixed_s", 0.0) + epochs * row["epoch_s"]

    parts = {name: cost(name) for name in ROWS}
    one, two = rows.get("torch32_1thread", {}), rows.get("torch32_2threads", {})
    threads = None
    if "epoch_s" in one and "epoch_s" in two:
        threads = 1 if one["epoch_s"] <= two["epoch_s"] else 2
    matched_extra = None
    if parts["torch32_matched"] is not None and parts["torch32_1thread"] is not None:
        matched_extra = parts["torch32_matched"] - parts["torch32_1thread"]
    return {
        "epochs": epochs,
        "part_cost_s": parts,
        "torch_threads_faster": threads,
        "torch32_epoch_1_over_2_threads": common.ratio(one.get("epoch_s"), two.get("epoch_s")),
        "torch64_epoch_1_over_2_threads": common.ratio(
            rows.get("torch64_1thread", {}).get("epoch_s"),
            rows.get("torch64_2threads", {}).get("epoch_s"),
        ),
        "matched_torch_extra_s": matched_extra,
        "float64_over_float32_jax_epoch": common.ratio(
            rows.get("jax64", {}).get("epoch_s"), rows.get("jax32", {}).get("epoch_s")
        ),
        "float64_over_float32_torch_epoch": common.ratio(
            rows.get("torch64_1thread", {}).get("epoch_s"), one.get("epoch_s")
        ),
    }


def markdown(results: dict) -> str:
    """The figures as a Markdown page (every number read from ``results``)."""
    s = results["summary"]
    m = results["machine"]
    lines = [
        "# What a JAX-vs-torch comparison costs, by part",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores; date {results['date']}; load average "
        f"at start {m.get('loadavg_at_start')}. Seed 003 dropout MLP, full training set, "
        f"{s['epochs']} epochs per row, each row in a fresh process.",
        "",
        "| part | fixed (s) | per epoch (s) | for the run (s) | others' CPU |",
        "|---|---|---|---|---|",
    ]
    for name in ROWS:
        row = results["rows"].get(name, {})
        if "error" in row or "epoch_s" not in row:
            lines.append(f"| {name} | {_status(row)} | | | |")
            continue
        lines.append(
            f"| {name} | {row.get('fixed_s', 0.0):.2f} | {row['epoch_s']:.3f} | "
            f"{s['part_cost_s'][name]:.2f} | {row.get('foreign_cpu_fraction', 0.0):.0%} |"
        )
    lines += [
        "",
        f"- torch float32 epoch, 1 thread / 2 threads: "
        f"{_fmt(s['torch32_epoch_1_over_2_threads'])}; float64: "
        f"{_fmt(s['torch64_epoch_1_over_2_threads'])}; faster here: "
        f"{s['torch_threads_faster']} thread(s).",
        f"- float64 / float32 epoch: JAX {_fmt(s['float64_over_float32_jax_epoch'])}, torch "
        f"{_fmt(s['float64_over_float32_torch_epoch'])}.",
        f"- a matched torch run costs {_fmt(s['matched_torch_extra_s'])} s more than an "
        "unmatched one over the run (streams built, masks computed per epoch in one call, "
        "carried to torch and replayed).",
        "",
    ]
    return "\n".join(lines)


def _status(row: dict) -> str:
    return f"error: {row['error'][:80]}" if "error" in row else "not run"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> Path:
    """Runs every part in a fresh process and writes ``compare-cost-<machine>-<date>.json/.md``.

    Args:
      argv: ``[--epochs N] [--out FOLDER]`` (defaults: 2 epochs, ``benchmarks/results``).

    Returns:
      The Markdown file.
    """
    import argparse

    from benchmarks import run

    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_rows")
    parser.add_argument("--epochs", type=int, default=EPOCHS_DEFAULT)
    parser.add_argument("--out", default=str(run.RESULTS_DIR))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs}: at least 2 (a matched run's first epoch compiles)")
    workload = dataclasses.replace(common.FULL, compare_epochs=args.epochs)
    machine = common.machine_info()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="jaxreg-compare-") as tmp:
        init_path = str(Path(tmp) / "init.npz")
        rows["init"] = run.run_row("init", workload, init_path, "cpu", Path(tmp), settle_s=8.0)
        for name in ROWS:
            print(f"[compare] {name} ...", flush=True)
            rows[name] = run.run_row(
                f"compare_{name}", workload, init_path, "cpu", Path(tmp), settle_s=8.0
            )
            status = rows[name].get("error") or f"{rows[name]['wall_s']:.1f} s"
            print(f"[compare] {name}: {status}", flush=True)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "rows": rows,
        "summary": summarize(rows, args.epochs),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare-cost-{run.machine_slug(machine)}-{datetime.date.today().isoformat()}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    md = out / f"{stem}.md"
    md.write_text(markdown(results))
    print(md.read_text())
    return md


if __name__ == "__main__":
    main(sys.argv[1:])

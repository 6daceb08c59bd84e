"""Parity-suite plumbing: case x dtype x device parametrization, pinned numerics, the report.

* Every test with ``dtype`` and ``device`` arguments runs for float32 and float64, on ``cpu``
  and on ``gpu``; the GPU cases are skipped, with the reason, unless torch sees CUDA AND JAX has a
  GPU device.
* Each case runs inside ``jax.enable_x64(dtype == "float64")`` (scoped: x64 is never switched on
  globally), ``jax.default_matmul_precision("highest")`` and the JAX device of the case; torch has
  TF32 off and float32 matmul precision "highest".
* The ``parity`` fixture hands each case a :class:`_parity.Recorder`; at teardown its worst
  comparison becomes one report row. A case that compares nothing is an error.
* Under pytest-xdist each worker ships its rows to the controller through ``workeroutput``; the
  controller (or a plain single-process run) writes ``results/<device>.json`` and ``.md``.
  Partial runs (``-k``, ``--lf``, single files, ``-m "not slow"`` as in ``make test``) print the
  rows but leave the committed reports; ``make parity`` runs every case and writes them.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import platform
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _parity import DEVICES, DTYPES, Recorder, jax_device  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MIN_CASES = 60
_ROWS: list[dict] = []
_COLLECTED_ALL: dict[str, bool] = {"value": True}

# Two pytest workers share two cores: one intra-op thread each avoids oversubscription, which
# makes small torch ops 10-20x slower on a loaded machine.
torch.set_num_threads(1)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def _gpu_status() -> tuple[bool, str]:
    cuda = torch.cuda.is_available()
    try:
        jax_gpus = jax.devices("gpu")
    except RuntimeError:
        jax_gpus = []
    if cuda and jax_gpus:
        return True, ""
    return False, (
        f"GPU parity needs torch.cuda and a JAX GPU: torch.cuda.is_available()={cuda}, "
        f"JAX GPU devices={len(jax_gpus)}"
    )


GPU_OK, GPU_REASON = _gpu_status()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)
    if "device" in metafunc.fixturenames:
        params = [
            pytest.param(d, marks=pytest.mark.skipif(not GPU_OK, reason=GPU_REASON))
            if d == "gpu"
            else d
            for d in DEVICES
        ]
        metafunc.parametrize("device", params)


@pytest.fixture(autouse=True)
def _pinned_numerics(request: pytest.FixtureRequest):
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    if "dtype" not in params or "device" not in params:
        yield
        return
    with (
        jax.enable_x64(params["dtype"] == "float64"),
        jax.default_matmul_precision("highest"),
        jax.default_device(jax_device(params["device"])),
    ):
        yield


@pytest.fixture
def parity(request: pytest.FixtureRequest):
    """The case's comparison recorder; its worst comparison becomes the report row."""
    params = request.node.callspec.params
    family = getattr(request.module, "FAMILY", request.module.__name__)
    recorder = Recorder(str(params["case"]), family, params["device"], params["dtype"])
    yield recorder
    outcome = getattr(request.node, "_parity_outcome", "error")
    row = recorder.row(outcome)
    row["nodeid"] = request.node.nodeid
    _ROWS.append(row)
    if outcome == "passed" and not recorder.checks:
        pytest.fail(f"parity case {row['name']} compared nothing (a vacuous case is a defect)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item._parity_outcome = report.outcome


# `make test` (CI: 7 minutes on 2 cores for everything) runs the float64 cases of every family but
# the optimizers (the gate for "the same computation"; the engine's and the streams' on one
# recipe) and the float32 trajectory bounds with their rejection tests; `make parity` runs every
# case. The rest is marked `slow`: VGG16 (about 75 s of its own), the other float32 cases, the
# float64 trajectories, and the optimizer family (tests/test_optim.py compares the same
# optimizers with torch in make test).
_FLOAT32_FAST = ("test_parity_trajectories.py", "test_parity_precision.py")
_SLOW_FILES = ("test_parity_optim.py",)
_FAST_ENGINE = {"seed001_two_layer_net_always_dropout"}
_FAST_STREAMS = {"spatial_dropout2d"}


def _slow_case(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    name = item.path.name
    if "vgg16" in item.nodeid or name in _SLOW_FILES:
        return True
    if params.get("dtype") == "float32":
        return name not in _FLOAT32_FAST
    if name == "test_parity_trajectories.py":
        return params.get("dtype") == "float64"
    if name == "test_parity_engine.py":
        return params.get("case") not in _FAST_ENGINE
    if name == "test_parity_streams.py":
        return params.get("case") not in _FAST_STREAMS
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        if _slow_case(item):
            item.add_marker(pytest.mark.slow)
    opt = config.option
    if opt.keyword or getattr(opt, "lf", False) or getattr(opt, "deselect", None):
        _COLLECTED_ALL["value"] = False
    args = [str(a) for a in config.args]
    if any("::" in a or a.endswith(".py") for a in args):
        _COLLECTED_ALL["value"] = False


def pytest_deselected(items) -> None:
    # A marker expression (`-m "not slow"`) that drops parity cases makes this a partial run.
    if any("parity_tests" in item.nodeid for item in items):
        _COLLECTED_ALL["value"] = False


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config):
        config.workeroutput["parity_rows"] = json.dumps(_ROWS)
        config.workeroutput["parity_complete"] = _COLLECTED_ALL["value"]
        return
    if not _ROWS:
        return
    complete = _COLLECTED_ALL["value"] and all(_WORKER_COMPLETE or [True])
    devices = sorted({r["device"] for r in _ROWS})
    for device in devices:
        rows = sorted(
            (r for r in _ROWS if r["device"] == device),
            key=lambda r: (r["family"], r["case"], r["dtype"]),
        )
        failed = [r for r in rows if not r["passed"]]
        print(f"\nparity [{device}]: {len(rows)} cases, {len(failed)} failed", file=sys.stderr)
        if device == "cpu" and complete and len(rows) < MIN_CASES:
            print(f"parity: only {len(rows)} CPU cases ran (< {MIN_CASES})", file=sys.stderr)
            session.exitstatus = 1
        if complete:
            _write_report(device, rows)
        else:
            print("parity: partial run, results/ left unchanged", file=sys.stderr)
            for r in rows:
                tol = "-" if r["tol"] is None else f"{r['tol']:.1e}"
                print(f"  {r['name']} [{r['dtype']}] rel {_fmt(r['max_rel_err'])} tol {tol} "
                      f"{'pass' if r['passed'] else 'FAIL'} {r['worst_tensor']} "
                      f"{'; '.join(r['notes'])}{_reference_text(r)}", file=sys.stderr)  # fmt: skip


_WORKER_COMPLETE: list[bool] = []

if importlib.util.find_spec("xdist") is not None:

    def pytest_testnodedown(node, error) -> None:
        output = getattr(node, "workeroutput", {}) or {}
        _ROWS.extend(json.loads(output.get("parity_rows", "[]")))
        _WORKER_COMPLETE.append(bool(output.get("parity_complete", False)))


def _device_name(device: str) -> str:
    if device == "gpu":
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _torchvision_version() -> str:
    try:
        import torchvision
    except Exception as err:  # noqa: BLE001 (reported as such: the VGG16 cases name their reference)
        return f"not importable ({type(err).__name__})"
    return torchvision.__version__


def _environment(device: str) -> dict:
    import flax
    import optax

    from jaxreg.torch_ref.vgg import vgg16_reference

    return {
        "device": device,
        "device_name": _device_name(device),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
        "vgg16_reference": str(vgg16_reference()),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _reference_text(row: dict) -> str:
    return f"; reference: {row['reference']}" if row.get("reference") else ""


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def _worst(rows: list[dict], dtype: str) -> tuple[float | None, str]:
    """Largest max rel err over every tensor compared in ``rows`` of ``dtype``."""
    best, where = None, "-"
    for r in rows:
        for c in r.get("checks", []):
            if r["dtype"] == dtype and (best is None or c["max_rel_err"] > best):
                best, where = c["max_rel_err"], f"{r['case']}: {c['tensor']}"
    return best, where


def _margin(row: dict) -> float:
    checks = row.get("checks", [])
    ratios = [0.0 if c["max_rel_err"] == 0 else (math.inf if c["tol"] == 0 else
              c["max_rel_err"] / c["tol"]) for c in checks]  # fmt: skip
    return max(ratios, default=math.inf)


def _write_report(device: str, rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = _environment(device)
    tols: dict[str, str] = {}
    for r in rows:
        for c in r.get("checks", []):
            tols.setdefault(c["tol_label"], c.pop("tol_reason"))
        r.pop("tol_reason", None)
    families = sorted({r["family"] for r in rows})
    summary = []
    for fam in families:
        fr = [r for r in rows if r["family"] == fam]
        f32, f32_where = _worst(fr, "float32")
        f64, f64_where = _worst(fr, "float64")
        worst_margin = max(fr, key=_margin)
        summary.append(
            {
                "family": fam,
                "cases": len(fr),
                "passed": sum(r["passed"] for r in fr),
                "largest_rel_err_float32": f32,
                "largest_rel_err_float32_at": f32_where,
                "largest_rel_err_float64": f64,
                "largest_rel_err_float64_at": f64_where,
                "largest_error_over_tolerance": _margin(worst_margin),
                "largest_error_over_tolerance_at": f"{worst_margin['case']} "
                f"[{worst_margin['dtype']}]",
            }
        )
    doc = {"environment": env, "summary": summary, "tolerances": tols, "cases": rows}
    (RESULTS / f"{device}.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")

    lines = [
        f"# jaxreg parity report: {device}",
        "",
        f"Device: {env['device_name']}. jax {env['jax']}, flax {env['flax']}, optax "
        f"{env['optax']}, torch {env['torch']}, numpy {env['numpy']}, Python {env['python']}. "
        f"Generated {env['generated']} by `make parity` "
        "(`.venv/bin/python -m pytest -q -n 2 parity_tests`).",
        "",
        f"References: torchvision {env['torchvision']}; seed 000's VGG16 on the torch side is "
        f"the {env['vgg16_reference']} (torchvision's model wherever torchvision imports; each "
        "VGG16 case names the reference it used).",
        "",
        f"**{sum(r['passed'] for r in rows)} of {len(rows)} cases pass.** Each row compares "
        "jaxreg (JAX) with the PyTorch (or seed NumPy) reference written to the seed's recipe "
        "and shows the case's worst tensor: the largest error relative to its tolerance.",
        "",
        "- max abs err = max |jax - torch|; max rel err = max abs err / max |torch| (absolute "
        "when the torch tensor is all zeros). A case passes when max rel err <= tolerance.",
        "- Trajectory rows compare every step against a per-step bound (`traj-*` below); the "
        "tolerance shown is the bound at the step closest to it.",
        "",
        "## Largest error per family",
        "",
        "Over every tensor compared (statistical and trajectory bounds included, see the "
        "tolerances); the last column is the largest error / tolerance ratio (1 = at the bound).",
        "",
        "| family | cases | passed | largest rel err, float32 | largest rel err, float64 "
        "| largest err / tol |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['family']} | {s['cases']} | {s['passed']} | "
            f"{_fmt(s['largest_rel_err_float32'])} ({s['largest_rel_err_float32_at']}) | "
            f"{_fmt(s['largest_rel_err_float64'])} ({s['largest_rel_err_float64_at']}) | "
            f"{s['largest_error_over_tolerance']:.2f} ({s['largest_error_over_tolerance_at']}) |"
        )
    lines += ["", "## Tolerances", ""]
    lines += [f"- `{label}`: {reason}" for label, reason in sorted(tols.items())]
    lines += [
        "",
        "## All cases",
        "",
        "| name | device | dtype | max abs err | max rel err | tolerance | pass | worst tensor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tol = "-" if r["tol"] is None else f"{r['tol']:.0e} ({r['tol_label']})"
        note = ("; " + "; ".join(r["notes"])) if r["notes"] else ""
        note += _reference_text(r)
        lines.append(
            f"| {r['name']} | {r['device']} | {r['dtype']} | {_fmt(r['max_abs_err'])} | "
            f"{_fmt(r['max_rel_err'])} | {tol} | {'pass' if r['passed'] else 'FAIL'} | "
            f"{r['worst_tensor']} ({r['tensors']} tensors){note} |"
        )
    (RESULTS / f"{device}.md").write_text("\n".join(lines) + "\n")

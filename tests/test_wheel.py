"""Installed use: build the wheel, install it into a fresh virtual environment, run the CLI.

The wheel is built from this checkout (``pip wheel . --no-deps --no-build-isolation``: no
network) and installed with ``--no-deps`` by the own pip of a new venv; the dependencies (jax,
flax, optax, torch, ...) come from the development venv through a ``.pth`` line, which adds that
folder to ``sys.path`` without running its own ``.pth`` files, so the editable install of jaxreg
there stays invisible. Every command runs from an empty folder outside the source tree with no
``PYTHONPATH``, so the checkout cannot be imported by accident; the test checks that ``jaxreg``
resolves inside the new venv. The configs (``experiments/``) must travel in the wheel as
``jaxreg.lab.experiments``: without them ``jaxreg run`` cannot find a recipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from jaxreg.lab.data import resolve_data_dir

ROOT = Path(__file__).resolve().parents[1]
DEV_SITE = Path(sysconfig.get_paths()["purelib"])
HAS_FMNIST = (resolve_data_dir() / "train-images-idx3-ubyte.gz").exists()


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation"]
    _run([*cmd, "-q", "-w", str(out)], cwd=out, env=dict(os.environ))
    (path,) = out.glob("jaxreg-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv holding only the wheel; returns (bin folder, env, an outside cwd)."""
    home = tmp_path_factory.mktemp("installed")
    env_dir = home / "env"
    venv.create(env_dir, with_pip=True)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    # The new venv's own pip, so the console script's shebang is the new venv's python.
    _run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + [str(wheel)],
        cwd=home,
        env=dict(os.environ),
    )
    (site / "_jaxreg_deps.pth").write_text(str(DEV_SITE) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(env_dir), JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    cwd = home / "elsewhere"
    cwd.mkdir()
    return env_dir / "bin", env, cwd


def test_wheel_carries_every_module_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [p for p in (ROOT / "jaxreg").rglob("*.py") if "__pycache__" not in p.parts]
    expected = {p.relative_to(ROOT).as_posix() for p in sources}
    expected |= {
        "jaxreg/lab/experiments/" + p.relative_to(ROOT / "experiments").as_posix()
        for p in (ROOT / "experiments").rglob("*.py")
    }
    assert "jaxreg/lab/experiments/dropout.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}: add the package to pyproject.toml"
    assert not [n for n in names if n.startswith("experiments/")]  # only under jaxreg.lab


@pytest.mark.slow
def test_installed_jaxreg_is_the_wheel_not_the_checkout(installed):
    bin_dir, env, cwd = installed
    code = (
        "import jaxreg, jaxreg.lab.configs as c; print(jaxreg.__file__); print(c.experiments_dir())"
    )
    module, configs = _run([str(bin_dir / "python"), "-c", code], cwd, env).split()
    env_dir = bin_dir.parent.resolve()
    assert Path(module).resolve().is_relative_to(env_dir), module
    assert Path(configs).resolve().is_relative_to(env_dir), configs
    assert not Path(module).resolve().is_relative_to(ROOT)


@pytest.mark.slow
def test_installed_cli_list_and_activity(installed):
    bin_dir, env, cwd = installed
    listing = _run([str(bin_dir / "jaxreg"), "list"], cwd, env)
    for name in ("weight-decay", "dropout", "activity", "overfit", "mc-dropout"):
        assert name in listing
    out = _run(
        [str(bin_dir / "jaxreg"), "run", "activity", "--framework", "both", "--no-progress"]
        + ["--out", str(cwd / "activity")],
        cwd,
        env,
    )
    assert "| activity | one model | jax |" in out and "| activity | one model | torch |" in out
    assert (cwd / "activity" / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_FMNIST, reason="Fashion-MNIST not installed (make data)")
def test_installed_cli_dropout_and_sweep(installed):
    bin_dir, env, cwd = installed
    tiny = ["--epochs", "1", "--limit-train", "512", "--limit-test", "256", "--no-progress"]
    out = _run([str(bin_dir / "jaxreg"), "run", "dropout", *tiny], cwd, env)
    assert "| dropout | scratch | jax |" in out and "| dropout | concise | torch |" in out
    assert list((cwd / "runs" / "dropout").glob("*/report.md"))
    sweep = [str(bin_dir / "jaxreg"), "sweep", "lambda-curve", "--epochs", "1"]
    _run([*sweep, "--train-size", "1024", "--out", str(cwd / "sweep")], cwd, env)
    assert list((cwd / "sweep").rglob("report.md"))

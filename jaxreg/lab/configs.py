"""Configs as data: where the ``experiments/`` configs live and how one is loaded.

Every experiment and sweep preset is a Python file with a ``get_config()`` that returns plain
data (its docstring is the command that runs it). In a checkout they sit in the top-level
``experiments/`` folder; an installed jaxreg carries the same files as the package
``jaxreg.lab.experiments`` (``pyproject.toml`` maps the folder there with setuptools'
``package-dir``), so ``jaxreg run`` works from any folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

PACKAGE = "jaxreg.lab.experiments"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "experiments"


def experiments_dir() -> Path:
    """The folder holding the config files: the installed package, else the checkout's.

    Returns:
      A ``Path`` to the folder with ``dropout.py``, ``weight_decay.py``, ...

    Example:
      >>> (experiments_dir() / "dropout.py").is_file()
      True
    """
    # jaxreg.lab always exists, so find_spec answers None (never raises) when the configs are
    # not installed as a package: a checkout run from source.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if _SOURCE_TREE.is_dir():
        return _SOURCE_TREE
    raise FileNotFoundError(
        f"no experiment configs: neither the package {PACKAGE} nor {_SOURCE_TREE} exists "
        "(reinstall jaxreg, or pass --config FILE)"
    )


def load_config_file(path: str | Path, *, name: str = "config") -> Any:
    """Runs ``get_config()`` of a config file and returns its data.

    Args:
      path: a Python file defining ``get_config()``.
      name: a label for the module (error messages, ``sys.modules`` hygiene).

    Returns:
      What ``get_config()`` returns (a :class:`jaxreg.lab.spec.Spec` for the experiments, a
      dict for the sweep presets).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file is not valid Python (file, line and the parser's message), raises
        while it runs or while ``get_config()`` runs (named, with the exception), or has no
        callable ``get_config``.

    Example:
      >>> load_config_file(experiments_dir() / "dropout.py").optimizer.lr
      0.5
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a folder; expected a .py file with get_config()")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    spec = importlib.util.spec_from_file_location(f"jaxreg_config_{name}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"config file {path}: not a Python file (expected a .py file)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        where = f"line {err.lineno}" + (f", column {err.offset}" if err.offset else "")
        raise ValueError(f"config file {path}: syntax error at {where}: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - any error of the user's file, named in one line
        raise ValueError(
            f"config file {path}: {type(err).__name__} while loading it: {err}"
        ) from err
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"config file {path} has no get_config() function")
    try:
        return module.get_config()
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"config file {path}: get_config() raised {type(err).__name__}: {err}"
        ) from err

"""The seven seed experiments as runnable recipes, each in JAX and in PyTorch.

``run_experiment(name, options)`` loads ``experiments/<name>.py``'s ``get_config()``, runs the
JAX side through ``jaxreg.lab.engine`` and the torch side through ``jaxreg.torch_ref.engine``
(same data, same initial weights where the recipe allows: initialized in JAX and converted with
``jaxreg.convert.flax_to_torch``), and leaves config, metrics, plots and ``report.md`` in the run
folder (see ``jaxreg.lab.report``). ``run_main`` is ``jaxreg main``: weight-decay and dropout as a
matched pair, then a multi-seed comparison (``jaxreg.lab.recipes.main``). ``--matched``,
``--dtype float64`` and ``--seeds N`` (``RunOptions``) apply to weight-decay, dropout and overfit;
``check_options`` says why not elsewhere. torch is imported only when a torch side runs.
"""

from __future__ import annotations

from jaxreg.lab.recipes._common import (
    EXPERIMENTS,
    RunOptions,
    RunResult,
    check_options,
    describe_experiments,
    load_config,
    run_experiment,
)
from jaxreg.lab.recipes.main import MAIN_EXPERIMENTS, MAIN_SEEDS, machine_description, run_main

__all__ = [
    "EXPERIMENTS",
    "RunOptions",
    "MAIN_EXPERIMENTS",
    "MAIN_SEEDS",
    "RunResult",
    "check_options",
    "describe_experiments",
    "machine_description",
    "load_config",
    "run_experiment",
    "run_main",
]

"""The seven seed experiments as runnable recipes, each in JAX and in PyTorch.

``run_experiment(name, options)`` loads ``experiments/<name>.py``'s ``get_config()``, runs the
JAX side through ``jaxreg.lab.engine`` and the torch side through ``jaxreg.torch_ref.engine``
(same data, same initial weights where the recipe allows: initialized in JAX and converted with
``jaxreg.convert.flax_to_torch``), and leaves config, metrics, plots and ``report.md`` in the run
folder (see ``jaxreg.lab.report``). ``run_main`` is ``jaxreg main``: weight-decay and dropout with
one
side-by-side table. torch is imported only when a torch side runs.
"""

from __future__ import annotations

from jaxreg.lab.recipes._common import (
    EXPERIMENTS,
    RunOptions,
    RunResult,
    describe_experiments,
    load_config,
    run_experiment,
    run_main,
)

__all__ = [
    "EXPERIMENTS",
    "RunOptions",
    "RunResult",
    "describe_experiments",
    "load_config",
    "run_experiment",
    "run_main",
]

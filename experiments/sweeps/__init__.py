"""Sweep presets as data: one ``get_config()`` per file, its docstring the command.

A preset names its base experiment (``"base": "dropout"`` reads ``experiments/dropout.py``: the
model, learning rate, batch size and epochs of seeds 003/004), engine overrides, the points or
grid, the seeds, the plots and the analysis. Run by ``jaxreg sweep NAME``
(:mod:`jaxreg.lab.presets`); installed as ``jaxreg.lab.experiments.sweeps``.
"""

"""jaxreg's experiment configs as data: one ``get_config()`` per file, its docstring the command.

Installed as ``jaxreg.lab.experiments`` (see ``jaxreg.lab.configs``).
"""

"""jaxreg's implementation modules (private: import the public modules of :mod:`jaxreg`).

Following optax's ``_src`` layout, every public module of the package (``jaxreg.dropout``,
``jaxreg.nn``, ``jaxreg.optim``, ...) is a façade that re-exports the public names of a module
here, so the implementation can be split or renamed without changing a public import path.
"""

"""jaxreg.lab: the harness that runs experiments on the jaxreg library.

Data loading, the one jit-compiled training engine, sweeps, reports, the ``jaxreg`` command line
and the recipes of the seed experiments. The library (``import jaxreg``) never imports this
package; this package imports the library, and ``jaxreg.torch_ref`` for the PyTorch side.
"""

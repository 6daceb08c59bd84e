"""``make bench``: JAX vs PyTorch on the seed 003/004 dropout MLP, against the matmul roofline.

``python -m benchmarks.run`` (see :mod:`benchmarks.run`) writes ``benchmarks/results/``.
This package imports torch (in its torch rows); ``jaxreg`` itself never does.
"""

"""NumPy references of the seeds' hand-written dropout, with explicit generators.

These are the seeds' code with one change: the global ``np.random`` state is replaced by a
caller-passed ``np.random.Generator``. They are references for tests and teaching, not for
training.

Convention: both seeds use a KEEP probability (seed 000's ``prob``, seed 002's ``p``), which
jaxreg calls ``keep_prob``. PyTorch, d2l, Flax and :func:`jaxreg.dropout` take the DROP
probability ``rate = 1 - keep_prob``. Given the same mask, ``NumpyDropout(keep_prob)`` and
``jaxreg.dropout_with_mask(x, mask, rate=1 - keep_prob)`` compute the same numbers.

Seed 002's cs231n 3-layer network uses the column convention: ``X`` is ``(features, batch)``,
``W`` is ``(out, in)``, ``b`` is ``(out, 1)``, and ``H1 = relu(W1 @ X + b1)``.
"""

from jaxreg._src.numpy_ref import (
    NumpyDropout,
    cs231n_params,
    predict,
    train_forward,
)

__all__ = [
    "NumpyDropout",
    "cs231n_params",
    "predict",
    "train_forward",
]

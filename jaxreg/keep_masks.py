"""Keep masks for dropout: which random bits decide that an element survives.

The ``generator`` argument of :func:`jaxreg.dropout.dropout` and
:func:`jaxreg.dropout.dropout_mask` picks one of two generators. Both take the caller's key, so
the same key gives the same mask under ``jit`` and ``vmap`` and from one run to the next; they
are different random streams, so the two masks for one key differ.

``"bernoulli"`` (the default) is ``jax.random.bernoulli(key, keep_prob, shape)``, the mask of
``flax.linen.Dropout``. Each element costs one 32-bit draw, turned into a uniform ``u`` on the
grid ``k / 2**23`` (``k / 2**52`` for float64), and is kept when ``u < keep_prob``: the exact
keep probability is ``ceil(keep_prob * 2**23) / 2**23`` with ``keep_prob`` rounded to float32.

``"bits16"`` gives each element a uniform 16-bit value ``v`` and keeps it when ``v < K``, with
``K = round(keep_prob * 65536)`` (round half to even). The exact keep probability is
``K / 65536``: within ``2**-17`` of ``keep_prob``, and exact for rates 0, 1 and every multiple
of ``2**-16`` (0.5, 0.25, 0.125, ...). A threefry key (JAX's default) hashes two counters into
64 bits, four elements' worth; ``jax.random.bits`` spends one such block per 32-bit word, so
this generator calls the Threefry-2x32 hash itself. A key of another implementation (``"rbg"``)
draws ``jax.random.bits`` words, two elements each. On a 2-core Xeon the two masks of the seed
003 MLP's step (2 x 256 x 256) take 0.27 ms instead of 0.76 ms.

The inverted-dropout scale stays ``1 / keep_prob`` with either generator, so a mask replays
through :func:`jaxreg.dropout.dropout_with_mask` and PyTorch's arithmetic unchanged; the mean of
an output is then off by ``|P(keep) - keep_prob| / keep_prob``, below ``2**-17 / keep_prob``
with ``"bits16"``.
"""

from jaxreg._src.keep_masks import (
    GENERATORS,
    check_generator,
    keep_mask,
)

__all__ = [
    "GENERATORS",
    "check_generator",
    "keep_mask",
]

"""Matched runs: one batch order per epoch and one set of dropout masks, shared by both frameworks.

A JAX run and a torch run of the same recipe differ in three ways that have nothing to do with
the frameworks' arithmetic: the initial weights, the order of the minibatches and the dropout
masks. jaxreg already starts both from the same weights (initialized in JAX and converted). In a
matched run the other two are shared as well: the engine draws its batch orders and its masks
from explicit JAX keys, and :class:`MatchedStreams` recomputes exactly those draws, as NumPy
arrays, for the torch loop to replay (``jaxreg.torch_ref.replay``). The two runs then differ
only by rounding, which is what a side-by-side comparison needs.

How the masks are found: the model is run once per step on a batch of zeros with the step's
dropout key, and every dropout layer's call is intercepted (``flax.linen.intercept_methods``)
and fed ones instead of its input, so its output is ``1 / keep`` where it keeps and 0 where it
drops. The key stream, the module paths and the call order are those of the training step, so
the masks are the ones the engine draws; a parity case (``parity_tests/test_parity_engine.py``)
checks this end to end, with the torch loop trained on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxreg.nn as jnn
from jaxreg.lab import objective

# The layers whose masks are shared: each draws one keep-mask per call from its rng stream.
DROPOUT_LAYERS = (jnn.Dropout, jnn.VanillaDropout, nn.Dropout)


def capture_dropout_masks(apply_fn, *args, **kwargs) -> list[jax.Array]:
    """The keep-masks the dropout layers of ``apply_fn(*args, **kwargs)`` draw, in call order.

    ``apply_fn`` is a Flax ``apply`` (or anything that calls Linen modules) run in training mode
    with its usual rng streams. Each dropout layer is fed ones instead of its input, so it
    returns ``1 / keep`` where it keeps and 0 where it drops; the draws (key, module path, call
    count) are those of the real call, only the values that flow on are not.

    Example:
      >>> import jaxreg.models as M
      >>> model = M.DropoutMLP()
      >>> params = model.init(jax.random.key(0), jnp.ones((4, 784)))
      >>> masks = capture_dropout_masks(model.apply, params, jnp.ones((4, 784)),
      ...                               deterministic=False, rngs={"dropout": jax.random.key(1)})
      >>> [m.shape for m in masks]
      [(4, 256), (4, 256)]
    """
    masks = []

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, DROPOUT_LAYERS):
            out = next_fun(jnp.ones_like(args[0]), *args[1:], **kwargs)
            masks.append(out != 0)
            return out
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        apply_fn(*args, **kwargs)
    return masks


class MatchedStreams:
    """The batch orders and dropout masks of one engine run, recomputed for the torch side.

    Args:
      train: the engine's ``Train`` (``jaxreg.lab.engine.make_train``).
      key: the run's PRNG key (the one passed to ``train``).
      hparams: the run's hyperparameters (dropout rates set the masks' keep probability).
      first_step: the run's first global step (0 for a fresh run).
      first_epoch: the run's first epoch index (0 for a fresh run).

    Example:
      >>> streams = MatchedStreams(train, jax.random.key(0), {"dropout1": 0.2})  # doctest: +SKIP
      >>> order = streams.order(0)            # indices into x_train, one epoch  # doctest: +SKIP
      >>> masks = next(streams.step_masks(0))  # one keep-mask per dropout call  # doctest: +SKIP
    """

    def __init__(self, train, key, hparams=None, *, first_step: int = 0, first_epoch: int = 0):
        self.train = train
        self.key = key
        self.hparams = train.normalize_hparams(hparams)
        self.first_step = int(first_step)
        self.first_epoch = int(first_epoch)
        self._params = train.init(key, hparams).params
        x = jnp.zeros((train.batch_size, *train.data["x_train"].shape[1:]), train.config.dtype)

        def epoch_masks(params, hp, steps):
            def one(step):
                dkey = train.dropout_key(key, step)
                return capture_dropout_masks(
                    objective.apply_model, train.config, params, x, hp, train=True, key=dkey
                )

            return jax.vmap(one)(steps)

        self._epoch_masks = jax.jit(epoch_masks)

    @property
    def steps_per_epoch(self) -> int:
        return self.train.steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """Indices into the training set in the order the engine visits them in ``epoch``."""
        order, _ = self.train.batch_order(self.key, self.first_epoch + epoch)
        return np.asarray(order, np.int64).reshape(-1)[: self.train.num_train]

    def step_masks(self, epoch: int) -> Iterator[list[np.ndarray]]:
        """Yields, step by step through ``epoch``, the list of keep-masks of its dropout calls.

        Each mask has the engine's full batch rows; the last partial batch uses its first rows
        (the engine pads that batch at the end).
        """
        spe = self.steps_per_epoch
        start = self.first_step + epoch * spe
        steps = jnp.arange(start, start + spe, dtype=jnp.int32)
        stacked = [np.asarray(m) for m in self._epoch_masks(self._params, self.hparams, steps)]
        for s in range(spe):
            yield [m[s] for m in stacked]

    def describe(self) -> dict[str, Any]:
        """What was shared, for the run's report."""
        sites = len(next(self.step_masks(0))) if self.steps_per_epoch else 0
        return {
            "matched": True,
            "batch_order": "one JAX permutation per epoch, replayed by torch",
            "dropout_sites": sites,
            "masks": "drawn with the engine's JAX keys, replayed in torch (torch_ref.replay)",
        }

"""Matched runs: one batch order per epoch and one set of random draws, shared by both frameworks.

A JAX run and a torch run of the same recipe differ in three ways that have nothing to do with
the frameworks' arithmetic: the initial weights, the order of the minibatches and the random
draws (dropout masks, noise). jaxreg already starts both from the same weights (initialized in
JAX and converted). In a matched run the other two are shared as well: the engine draws its
batch orders and its random values from explicit JAX keys, and :class:`MatchedStreams`
recomputes exactly those draws, as NumPy arrays, for the torch loop to replay
(``jaxreg.torch_ref.replay``). The two runs then differ only by rounding, which is what a
side-by-side comparison needs.

How the draws are found: :func:`jaxreg.lab.draws.capture_draws` runs the model once per step on
a batch of zeros with the step's dropout key and reads every random layer's draw (dropout,
spatial, alpha, drop path, DropConnect, Gaussian noise and dropout; Flax's ``Dropout``) off its
output on a neutral input; a random module it does not know raises
:class:`~jaxreg.lab.draws.UnsharedDrawError`. The key stream, the module paths and the call
order are those of the training step, so the draws are the ones the engine makes; a parity case
(``parity_tests/test_parity_engine.py``) checks this end to end, with the torch loop trained
on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.lab import objective
from jaxreg.lab.draws import Draw, UnsharedDrawError, capture_draws, keep_rows

__all__ = ["Draw", "MatchedStreams", "UnsharedDrawError", "capture_dropout_masks"]


def capture_dropout_masks(apply_fn, *args, **kwargs) -> list[jax.Array]:
    """The values of every random draw of ``apply_fn(*args, **kwargs)``, in call order.

    The older form of :func:`jaxreg.lab.draws.capture_draws` (which also gives each draw's
    site, kind and call): the same draws, values only. A random module the capture does not
    know raises :class:`~jaxreg.lab.draws.UnsharedDrawError` instead of being skipped.

    Example:
      >>> import jaxreg.models as M
      >>> model = M.DropoutMLP()
      >>> params = model.init(jax.random.key(0), jnp.ones((4, 784)))
      >>> masks = capture_dropout_masks(model.apply, params, jnp.ones((4, 784)),
      ...                               deterministic=False, rngs={"dropout": jax.random.key(1)})
      >>> [m.shape for m in masks]
      [(4, 256), (4, 256)]
    """
    return [d.value for d in capture_draws(apply_fn, *args, **kwargs)]


class MatchedStreams:
    """The batch orders and random draws of one engine run, recomputed for the torch side.

    Args:
      train: the engine's ``Train`` (``jaxreg.lab.engine.make_train``).
      key: the run's PRNG key (the one passed to ``train``).
      hparams: the run's hyperparameters (dropout rates set the masks' keep probability).
      first_step: the run's first global step (0 for a fresh run).
      first_epoch: the run's first epoch index (0 for a fresh run).

    Raises:
      UnsharedDrawError: if the model has a random module the capture does not know (at
        construction, naming its module path).

    Example:
      >>> streams = MatchedStreams(train, jax.random.key(0), {"dropout1": 0.2})  # doctest: +SKIP
      >>> order = streams.order(0)            # indices into x_train, one epoch  # doctest: +SKIP
      >>> draws = next(streams.step_draws(0))  # one Draw per random call  # doctest: +SKIP
    """

    def __init__(self, train, key, hparams=None, *, first_step: int = 0, first_epoch: int = 0):
        self.train = train
        self.key = key
        self.hparams = train.normalize_hparams(hparams)
        self.first_step = int(first_step)
        self.first_epoch = int(first_epoch)
        self._params = train.init(key, hparams).params
        x = jnp.zeros((train.batch_size, *train.data["x_train"].shape[1:]), train.config.dtype)
        # Site, kind, shape and call of each draw: static, recorded when the capture is traced.
        self._meta: list[tuple[str, str, tuple[int, ...], int]] = []

        def one(params, hp, step):
            dkey = train.dropout_key(key, step)
            draws = capture_draws(
                objective.apply_model, train.config, params, x, hp, train=True, key=dkey
            )
            self._meta[:] = [(d.site, d.kind, d.shape, d.call) for d in draws]
            return [d.value for d in draws]

        self._one = one
        self._epoch_draws = jax.jit(
            lambda params, hp, steps: jax.vmap(lambda s: one(params, hp, s))(steps)
        )
        # Trace once now, so that an unknown random module fails here, naming its path.
        jax.eval_shape(one, self._params, self.hparams, jnp.int32(0))

    @property
    def steps_per_epoch(self) -> int:
        return self.train.steps_per_epoch

    @property
    def sites(self) -> list[tuple[str, str, tuple[int, ...], int]]:
        """``(site, kind, shape, call)`` of each draw of a (full) step, in call order."""
        return list(self._meta)

    def order(self, epoch: int) -> np.ndarray:
        """Indices into the training set in the order the engine visits them in ``epoch``."""
        order, _ = self.train.batch_order(self.key, self.first_epoch + epoch)
        return np.asarray(order, np.int64).reshape(-1)[: self.train.num_train]

    def step_draws(self, epoch: int) -> Iterator[list[Draw]]:
        """Yields, step by step through ``epoch``, the list of :class:`Draw` of its forward pass.

        The last partial batch's draws keep its real rows only (the engine pads that batch at
        the end), so every draw has the shape the torch forward pass asks for.
        """
        spe, batch = self.steps_per_epoch, self.train.batch_size
        start = self.first_step + epoch * spe
        steps = jnp.arange(start, start + spe, dtype=jnp.int32)
        stacked = [np.asarray(v) for v in self._epoch_draws(self._params, self.hparams, steps)]
        for s in range(spe):
            draws = [
                Draw(site, kind, shape, v[s], call)
                for (site, kind, shape, call), v in zip(self._meta, stacked, strict=True)
            ]
            rows = min(batch, self.train.num_train - s * batch)
            yield keep_rows(draws, rows, batch) if rows < batch else draws

    def step_masks(self, epoch: int) -> Iterator[list[np.ndarray]]:
        """:meth:`step_draws`' values only, for callers that replay bare masks."""
        for draws in self.step_draws(epoch):
            yield [d.value for d in draws]

    def describe(self) -> dict[str, Any]:
        """What was shared, for the run's report."""
        kinds: dict[str, int] = {}
        for _, kind, _, _ in self._meta:
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "matched": True,
            "batch_order": "one JAX permutation per epoch, replayed by torch",
            "dropout_sites": len(self._meta),
            "draw_sites": [
                {"site": site, "kind": kind, "shape": list(shape), "call": call}
                for site, kind, shape, call in self._meta
            ],
            "draw_kinds": kinds,
            "masks": "drawn with the engine's JAX keys, replayed in torch (torch_ref.replay)",
        }

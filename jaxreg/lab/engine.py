"""The one training engine: ``make_train(config, data)`` returns a pure, jit-compiled ``train``.

Every experiment (seeds 001-004) and every sweep trains through this module, in the style of
purejaxrl: the static structure is a frozen :class:`TrainConfig` (:mod:`jaxreg.lab.config`), the
hyperparameters a sweep varies are a dict of traced scalars, and the arithmetic of a step (model
call, loss, penalties, optimizer) comes from :mod:`jaxreg.lab.objective`. So
``jax.vmap(train.pure, in_axes=(None, 0, 0))`` trains a whole grid in one compiled computation
(:mod:`jaxreg.lab.sweep`), and a new learning rate or dropout rate never recompiles.

One epoch is a sequence of :meth:`Train.step` over shuffled minibatches of a data set that lives
on the device (gathered by index, never copied per epoch). Two loop forms run it
(``TrainConfig.loop``, the resolved one in :attr:`Train.loop`): ``"scan"``, the whole run as one
compiled program (``lax.scan`` over epochs of ``lax.scan`` over steps), and ``"stepped"``, a
Python loop over one compiled step (plus a compiled epoch start and end). XLA on CPU runs a
convolution inside a loop body several times slower than outside one (jax-ml/jax#12868: it cannot
give the kernel-gradient convolution the layout of its fast library kernel there), so
``loop="auto"`` picks ``"stepped"`` for a model with convolutions on CPU and ``"scan"`` otherwise
(see :func:`resolve_loop` for the measurements). Both forms run the same step function on the same
batches, keys and counters: for matmul models (every seed model) their results are identical bit
for bit; for a convolutional model on CPU the kernel gradients come from different convolution
kernels, so the forms agree to rounding (a float64 test CNN: within 1e-12 relative), not bit
for bit.

``result.metrics`` holds the per-epoch metrics and, per optimizer step, ``step_loss`` and
``step_objective`` (``[epochs, steps_per_epoch]``: each step's data loss and objective on its
batch before the update, torch's ``loss.item()``), in both forms.
PyTorch's ``DataLoader(shuffle=True)`` keeps the last partial batch, and so does the engine
(``drop_last=False``): the permutation is padded to whole batches and the padding is masked out of
the loss, which is then exactly torch's mean over the short batch.

Random streams follow the run, not the call: the dropout key of optimizer step ``s`` is
``fold_in(dropout_key, s)`` and the shuffle of epoch ``e`` ``fold_in(shuffle_key, e)``, where
``s`` and ``e`` count from the start of the run and travel in :class:`TrainState`. Continuing a
run (``init_state=`` a state or result) therefore never replays its shuffles and masks, and with
the same key ``train`` for 2 epochs then 1 more is the same run as 3 epochs.

PyTorch equivalent: d2l's ``train_ch3`` (seed 004) and the loops in
:mod:`jaxreg.torch_ref.engine`, which report the same metric names.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.lab import objective, placement

# TrainConfig, EPOCH_METRICS and HPARAMS are re-exported: callers import them from the engine.
from jaxreg.lab.config import EPOCH_METRICS, HPARAMS, TrainConfig, call_kwargs, normalize_hparams
from jaxreg.lab.state import TrainResult, TrainState, as_state

__all__ = [
    "EPOCH_METRICS",
    "HPARAMS",
    "STEP_METRICS",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "make_train",
    "resolve_loop",
]

STEP_METRICS = ("step_loss", "step_objective")
"""Per-step metrics of ``result.metrics``, each ``[epochs, steps_per_epoch]``: the data loss and
the objective (loss plus penalties) of every optimizer step on its batch, measured before the
update (torch's ``loss.item()``); padded rows of a partial last batch are excluded."""

CONV_PRIMITIVES = frozenset({"conv_general_dilated"})
"""Primitives that make ``loop="auto"`` choose ``"stepped"`` on CPU (see :func:`resolve_loop`)."""

_KEY_NAMES = ("init", "shuffle", "dropout", "eval")


def _selected_epochs(epochs: int, every: int) -> np.ndarray:
    return np.array([e for e in range(epochs) if e % every == 0 or e == epochs - 1], np.int32)


def _primitives(jaxpr: Any) -> set[str]:
    """Names of every primitive in a (closed) jaxpr, sub-jaxprs of calls and control flow too."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr | jax.extend.core.Jaxpr):
                    names |= _primitives(sub)
    return names


def resolve_loop(loop: str, platform: str, primitives: set[str] | frozenset[str]) -> str:
    """The loop form the engine runs: ``loop`` itself unless it is ``"auto"``.

    ``"auto"`` picks ``"stepped"`` (a Python loop over the compiled step) on CPU when the model
    calls a convolution, and ``"scan"`` (the whole run as one compiled program) otherwise.
    Measured on a 2-core Intel Xeon (jax 0.10.2, a shared and loaded machine, so absolute figures
    are high): a 100-step epoch of a small CNN (conv3x3-32, max-pool, spatial dropout,
    conv3x3-64, max-pool, dense 128, dropout, dense 10; AdamW; batch 64) took 292 s as a scan
    and 29.6 s stepped (the issue's quieter figures: 9.27 s vs 1.48 s); XLA's CPU backend runs
    the kernel-gradient convolution inside a loop body with another kernel (jax-ml/jax#12868).
    For the seed MLPs the scan is as fast or faster (no per-step dispatch; see the engine's
    benchmark). On GPU the convolutions are library calls in either form and the scan saves
    the per-step launch overhead, so ``"auto"`` keeps the scan there.

    Args:
      loop: ``"auto"``, ``"scan"`` or ``"stepped"`` (:data:`jaxreg.lab.config.LOOPS`).
      platform: the backend the data live on (``"cpu"``, ``"gpu"``, ``"tpu"``).
      primitives: names of the primitives the model's forward pass uses.

    Returns:
      ``"scan"`` or ``"stepped"``.

    Example:
      >>> resolve_loop("auto", "cpu", {"dot_general", "conv_general_dilated"})
      'stepped'
      >>> resolve_loop("auto", "gpu", {"conv_general_dilated"})
      'scan'
    """
    if loop != "auto":
        return loop
    if platform == "cpu" and CONV_PRIMITIVES & set(primitives):
        return "stepped"
    return "scan"


def _fresh(tree: Any) -> Any:
    """New buffers holding the same values: what a donating program may consume instead."""
    return jax.tree.map(lambda a: jnp.copy(a) if isinstance(a, jax.Array) else a, tree)


class Train:
    """The compiled training function returned by :func:`make_train` (see there).

    Calling it runs a whole training in the loop form :attr:`loop` (one compiled program, or a
    Python loop over the compiled step). ``pure`` is the whole run un-jitted with the data as an
    explicit argument, for ``vmap``/``jit`` by :mod:`jaxreg.lab.sweep`; being traced, it is
    always the scan form. ``step`` is one optimizer step on a given batch.
    """

    def __init__(self, config: TrainConfig, data: Any, batch_mesh: Any = None):
        self.config = config
        self.batch_mesh = batch_mesh
        given = placement.as_arrays(data)
        self._has = {split for split in ("test", "val") if "x_" + split in given}
        n = len(given["x_train"])
        bs = n if config.batch_size is None else min(config.batch_size, n)
        self.num_train = n
        self.batch_size = bs
        self.steps_per_epoch = n // bs if config.drop_last else math.ceil(n / bs)
        self.eval_epochs = _selected_epochs(config.epochs, config.eval_every)
        self.snapshot_epochs = (
            _selected_epochs(config.epochs, config.snapshot_every)
            if config.snapshot_every
            else np.zeros(0, np.int32)
        )
        self._call_kwargs = call_kwargs(config.model)
        self.data = placement.device_arrays(given, config)
        if batch_mesh is not None:
            if bs % batch_mesh.devices.size:
                raise ValueError(
                    f"batch_size={bs}: must be a multiple of the {batch_mesh.devices.size} "
                    "devices of batch_mesh to shard the batch"
                )
            replicated = jax.sharding.NamedSharding(batch_mesh, jax.sharding.PartitionSpec())
            self.data = jax.device_put(self.data, replicated)
        self._template_x = jnp.zeros((1, *np.shape(given["x_train"])[1:]), config.dtype)
        self._loop: str | None = None
        # The caller's init_state is never consumed unless asked (donate=True): two programs.
        self._jit_run = jax.jit(self.pure)
        self._jit_run_donated = jax.jit(self.pure, donate_argnames=("init_state",))
        self._jit_epoch = jax.jit(self._epoch_pure, donate_argnames=("state",))
        self._jit_init = jax.jit(self._init_pure)
        self._jit_init_donated = jax.jit(self._init_pure, donate_argnames=("init_state",))
        # The stepped form: epoch start (batch order), one step, epoch end (metrics, eval).
        self._jit_order = jax.jit(self._order_pure)
        self._jit_step = jax.jit(self._indexed_step_pure, donate_argnames=("state", "outs"))
        self._jit_epoch_end = jax.jit(self._epoch_end_pure)
        self._step_indices = None

    @property
    def loop(self) -> str:
        """The loop form that runs: ``config.loop``, or what ``"auto"`` resolved to
        (:func:`resolve_loop` from the model's primitives and the data's backend)."""
        if self._loop is None:
            platform = next(iter(self.data["x_train"].devices())).platform
            primitives = set() if platform != "cpu" else self._model_primitives()
            self._loop = resolve_loop(self.config.loop, platform, primitives)
        return self._loop

    def _model_primitives(self) -> set[str]:
        if self.config.loop != "auto":
            return set()
        kwargs = {"deterministic": True} if "deterministic" in self._call_kwargs else {}

        def forward(key):
            return self.config.model.init(
                {"params": key, "dropout": key}, self._template_x, **kwargs
            )

        return _primitives(jax.make_jaxpr(forward)(jax.random.key(0)))

    def normalize_hparams(self, hparams) -> dict[str, jax.Array]:
        """:func:`jaxreg.lab.config.normalize_hparams` for this run's config."""
        return normalize_hparams(self.config, hparams)

    # ----- pure pieces ------------------------------------------------------------------------
    def _keys(self, key):
        if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.wrap_key_data(key)
        return {name: jax.random.fold_in(key, i) for i, name in enumerate(_KEY_NAMES)}

    def _init_pure(self, key, hparams, init_state=None) -> TrainState:
        zero = jnp.int32(0)
        if init_state is None:
            kwargs = {"deterministic": True} if "deterministic" in self._call_kwargs else {}
            init_key = self._keys(key)["init"]
            variables = self.config.model.init(
                {"params": init_key, "dropout": init_key}, self._template_x, **kwargs
            )
            # Initialized as in float32, then cast: a float64 run starts from the same weights.
            params = jax.tree.map(lambda p: p.astype(self.config.dtype), variables["params"])
            state = TrainState(params, None, zero, jnp.int32(-1), zero)
        elif isinstance(init_state, TrainState | TrainResult):
            state = as_state(init_state)
        else:
            # Bare parameters: a fresh run (counters at 0) from these weights.
            state = TrainState(init_state, None, zero, jnp.int32(-1), zero)
        if state.opt_state is None:
            opt = objective.optimizer(self.config, hparams, state.params)
            state = state._replace(opt_state=opt.init(state.params))
        return state

    def _batch_order(self, keys, epoch) -> tuple[jax.Array, jax.Array]:
        n, bs, steps = self.num_train, self.batch_size, self.steps_per_epoch
        if self.config.shuffle:
            order = jax.random.permutation(jax.random.fold_in(keys["shuffle"], epoch), n)
        else:
            order = jnp.arange(n)
        total = steps * bs
        if total > n:
            order = jnp.concatenate([order, jnp.zeros(total - n, order.dtype)])
        order = order[:total].reshape(steps, bs)
        valid = (jnp.arange(total) < n).astype(self.config.dtype).reshape(steps, bs)
        return order, valid

    def _step_pure(self, opt, keys, state: TrainState, xb, yb, row_mask, hparams):
        if self.batch_mesh is not None:
            # Data parallelism for one large model: GSPMD splits the batch over the mesh
            # and all-reduces the gradients (torch: DistributedDataParallel).
            xb, yb, row_mask = self._shard_batch(xb, yb, row_mask)
        dkey = jax.random.fold_in(keys["dropout"], state.step)

        def loss_fn(p):
            return objective.batch_objective(self.config, p, xb, yb, row_mask, hparams, dkey)

        (obj, (loss, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        bad = jnp.where(
            (state.diverged_step < 0) & ~jnp.isfinite(obj), state.step, state.diverged_step
        )
        return TrainState(params, opt_state, state.step + 1, bad, state.epoch), (loss, obj, acc)

    def _data_step(self, data, keys, state: TrainState, idx, row_mask, hparams):
        """One step of an epoch on the rows ``idx`` of the training set: both loop forms."""
        opt = objective.optimizer(self.config, hparams, state.params)
        xb, yb = data["x_train"][idx], data["y_train"][idx]
        return self._step_pure(opt, keys, state, xb, yb, row_mask, hparams)

    def _epoch_end_pure(self, data, state: TrainState, outs, valid, hparams, key, epoch):
        """An epoch's metrics from its per-step outputs; ``epoch`` counts in this call.

        ``outs`` = (loss, objective, accuracy), each ``[steps]``. Shared by both loop forms, so
        the stepped form's epoch metrics are the scan's arithmetic.
        """
        cfg = self.config
        keys = self._keys(key)
        run_epoch = state.epoch
        loss, obj, acc = outs
        count = jnp.sum(valid, axis=1)
        state = state._replace(epoch=run_epoch + 1)
        seen = jnp.sum(valid)
        metrics = {
            "train_loss": jnp.sum(loss * count) / seen,
            "train_objective": jnp.sum(obj * count) / seen,
            "train_acc": jnp.sum(acc * count) / seen,
            **objective.param_metrics(cfg, state.params),
        }
        eval_key = jax.random.fold_in(keys["eval"], run_epoch)

        def evaluate():
            return objective.evaluate(cfg, self._has, data, state.params, hparams, eval_key)

        nan = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), jax.eval_shape(evaluate))
        is_eval = jnp.isin(epoch, jnp.asarray(self.eval_epochs))
        evaluated = jax.lax.cond(is_eval, evaluate, lambda: nan)
        metrics.update(evaluated)
        metrics["step_loss"], metrics["step_objective"] = loss, obj
        return state, metrics

    def _epoch_pure(self, data, state: TrainState, hparams, key, epoch):
        """One epoch (a ``lax.scan`` of steps), then its metrics; ``epoch`` counts in this call."""
        keys = self._keys(key)
        order, valid = self._batch_order(keys, state.epoch)

        def body(state, batch):
            idx, row_mask = batch
            return self._data_step(data, keys, state, idx, row_mask, hparams)

        state, outs = jax.lax.scan(body, state, (order, valid))
        return self._epoch_end_pure(data, state, outs, valid, hparams, key, epoch)

    # ----- the stepped form's compiled pieces -------------------------------------------------
    def _order_pure(self, key, epoch):
        order, valid = self._batch_order(self._keys(key), epoch)
        dtype = self.config.dtype
        outs = tuple(jnp.zeros(self.steps_per_epoch, dtype) for _ in range(3))
        return order, valid, outs

    def _indexed_step_pure(self, data, state, order, valid, i, outs, hparams, key):
        """Step ``i`` of an epoch; its (loss, objective, accuracy) written into ``outs[.][i]``."""
        state, values = self._data_step(data, self._keys(key), state, order[i], valid[i], hparams)
        outs = tuple(o.at[i].set(v.astype(o.dtype)) for o, v in zip(outs, values, strict=True))
        return state, outs

    def _stepped_epoch(self, state, hp, key, epoch):
        """One epoch as a Python loop over the compiled step (``state`` is consumed)."""
        if self._step_indices is None:
            self._step_indices = [jnp.int32(i) for i in range(self.steps_per_epoch)]
        order, valid, outs = self._jit_order(key, state.epoch)
        for i in self._step_indices:
            state, outs = self._jit_step(self.data, state, order, valid, i, outs, hp, key)
        return self._jit_epoch_end(self.data, state, outs, valid, hp, key, jnp.int32(epoch))

    def _shard_batch(self, *arrays):
        axis = self.batch_mesh.axis_names[0]
        spec = jax.sharding.NamedSharding(self.batch_mesh, jax.sharding.PartitionSpec(axis))
        return tuple(jax.lax.with_sharding_constraint(a, spec) for a in arrays)

    def pure(self, data, key, hparams, init_state=None) -> TrainResult:
        """The whole run as a pure function of ``(data, key, hparams, init_state)``.

        ``data`` is ``train.data`` (or the same dict placed on other devices). Not jitted: wrap it
        in ``jax.jit``/``jax.vmap`` (``jaxreg.lab.sweep`` does); ``hparams`` must already be
        normalized (:meth:`normalize_hparams`). Traced, it is the scan form whatever
        :attr:`loop` says: under ``jit``/``vmap`` there is no Python loop to step.
        """
        state = self._init_pure(key, hparams, init_state)
        n_snap = len(self.snapshot_epochs)
        slots = np.full(self.config.epochs, n_snap, np.int32)
        slots[self.snapshot_epochs] = np.arange(n_snap)
        # One spare row absorbs the writes of epochs that are not snapshotted, so no cond is needed.
        buffer = jax.tree.map(lambda p: jnp.zeros((n_snap + 1, *p.shape), p.dtype), state.params)

        def epoch_body(carry, epoch):
            state, buffer = carry
            state, metrics = self._epoch_pure(data, state, hparams, key, epoch)
            if n_snap:
                slot = jnp.asarray(slots)[epoch]
                buffer = jax.tree.map(
                    lambda b, p: jax.lax.dynamic_update_index_in_dim(b, p, slot, 0),
                    buffer,
                    state.params,
                )
            return (state, buffer), metrics

        (state, buffer), metrics = jax.lax.scan(
            epoch_body, (state, buffer), jnp.arange(self.config.epochs)
        )
        metrics["diverged_step"] = state.diverged_step
        snapshots = jax.tree.map(lambda b: b[:n_snap], buffer) if n_snap else None
        return TrainResult(
            state.params, state.opt_state, metrics, snapshots, state.step, state.epoch
        )

    # ----- public entry points ----------------------------------------------------------------
    def __call__(self, key, hparams=None, init_state=None, *, donate: bool = False) -> TrainResult:
        """Trains ``config.epochs`` epochs in the loop form :attr:`loop`.

        Args:
          key: PRNG key (new-style ``jax.random.key`` or raw ``PRNGKey``): it seeds the
            initialization, shuffling, dropout and evaluation streams through ``fold_in``.
          hparams: traced hyperparameters (see :data:`HPARAMS`); missing ones take defaults.
          init_state: None (fresh init from ``key``), a params pytree (a fresh run from those
            weights, fresh optimizer state), or a :class:`TrainState`/:class:`TrainResult` to
            continue: its step and epoch counters carry on, so the continuation draws the
            shuffles and masks that follow, never those already used.
          donate: let the run consume ``init_state``'s buffers (saves one copy of the
            parameters and optimizer state; the caller's arrays are deleted). Default False:
            ``init_state`` stays usable.

        Returns:
          A :class:`TrainResult`; ``metrics`` has the per-epoch metrics and :data:`STEP_METRICS`.
        """
        hp = self.normalize_hparams(hparams)
        if self.loop == "stepped":
            return self._run_stepped(key, hp, init_state, donate=donate)
        run = self._jit_run_donated if donate else self._jit_run
        return run(self.data, key, hp, as_state(init_state))

    def _start(self, key, hp, init_state, donate: bool) -> TrainState:
        if donate:
            return self._jit_init_donated(key, hp, as_state(init_state))
        state = self._jit_init(key, hp, as_state(init_state))
        # jit may hand an unchanged input back as the same array: copy what the caller still
        # owns before the donating step consumes it.
        return state if init_state is None else _fresh(state)

    def _run_stepped(self, key, hp, init_state, *, donate, on_epoch=None, progress=None):
        state = self._start(key, hp, init_state, donate)
        return self._epochs(state, hp, key, self._stepped_epoch, on_epoch, progress)

    def _epochs(self, state, hp, key, run_epoch, on_epoch, progress) -> TrainResult:
        history, snaps = [], []
        snap_set = set(self.snapshot_epochs.tolist())
        for epoch in range(self.config.epochs):
            state, metrics = run_epoch(state, hp, key, epoch)
            if epoch in snap_set:
                snaps.append(_fresh(state.params))
            if on_epoch is not None:
                host = jax.device_get(metrics)
                on_epoch(epoch, {k: float(np.mean(v)) for k, v in host.items() if np.ndim(v) == 0})
            if progress is not None:
                progress.update(1)
            history.append(metrics)
        stacked = {k: jnp.stack([h[k] for h in history]) for k in history[0]}
        stacked["diverged_step"] = state.diverged_step
        snapshots = jax.tree.map(lambda *s: jnp.stack(s), *snaps) if snaps else None
        return TrainResult(
            state.params, state.opt_state, stacked, snapshots, state.step, state.epoch
        )

    def fit(
        self, key, hparams=None, init_state=None, *, on_epoch=None, progress=None, donate=False
    ):
        """Same run as calling ``train``, one epoch at a time (for progress and callbacks).

        In the ``"stepped"`` form this is exactly ``train(...)`` with callbacks. In the
        ``"scan"`` form one epoch is one compiled call (compiled once: ``epoch`` is traced).

        Args:
          key: PRNG key, as for ``__call__``.
          hparams: traced hyperparameters.
          init_state: as for ``__call__``.
          on_epoch: optional ``on_epoch(epoch, {metric: float})`` called after every epoch.
          progress: optional tqdm-like object; ``update(1)`` per epoch.
          donate: as for ``__call__``.

        Returns:
          A :class:`TrainResult` equal to ``train(key, hparams, init_state)`` (bit for bit in
          the stepped form; up to float reassociation in the scan form, where XLA compiles an
          epoch program and a run program apart).
        """
        hp = self.normalize_hparams(hparams)
        if self.loop == "stepped":
            return self._run_stepped(
                key, hp, init_state, donate=donate, on_epoch=on_epoch, progress=progress
            )
        state = self._start(key, hp, init_state, donate)

        def scan_epoch(state, hp, key, epoch):
            return self._jit_epoch(self.data, state, hp, key, jnp.int32(epoch))

        return self._epochs(state, hp, key, scan_epoch, on_epoch, progress)

    def step(self, state: TrainState, batch, key, hparams=None):
        """One optimizer step on one batch: the body of the epoch scan, jit-able and scannable.

        The arithmetic is the scan's (same objective, same update, dropout key
        ``fold_in(dropout_key(key), state.step)``), so stepping through the batches of
        :meth:`batch_order` reproduces an epoch of ``train(key)`` bit for bit. ``state.epoch`` is
        left as it is: a caller running its own epochs advances it.

        Args:
          state: a :class:`TrainState` (from :meth:`init` or a previous step).
          batch: ``(x, y)`` or ``(x, y, row_mask)``; ``row_mask`` (1 = real row, 0 = padding)
            defaults to all ones.
          key: the run's PRNG key (as for ``__call__``), not a per-step key.
          hparams: traced hyperparameters.

        Returns:
          ``(new_state, {"loss", "objective", "acc"})``: the batch's data loss, loss plus
          penalties, and accuracy, measured before the update (torch's ``loss.item()``).

        Example:
          >>> from jaxreg.models import ActivityMLP
          >>> x, y = jnp.ones((4, 128)), jnp.ones(4, jnp.int32)
          >>> cfg = TrainConfig(model=ActivityMLP(), lr=1e-4, activity=(("l1", 1),))
          >>> train = make_train(cfg, (x, y))
          >>> state = train.init(jax.random.key(0))
          >>> state, out = jax.jit(train.step)(state, (x, y), jax.random.key(0), {"act_l1": 0.5})
          >>> int(state.step), bool(out["objective"] > out["loss"])
          (1, True)
        """
        hp = self.normalize_hparams(hparams)
        x, y, *rest = batch
        label_dtype = placement.label_dtype(self.config)
        dtype = self.config.dtype
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, label_dtype)
        row_mask = jnp.asarray(rest[0], dtype) if rest else jnp.ones(len(x), dtype)
        opt = objective.optimizer(self.config, hp, state.params)
        state, (loss, obj, acc) = self._step_pure(opt, self._keys(key), state, x, y, row_mask, hp)
        return state, {"loss": loss, "objective": obj, "acc": acc}

    def batch_order(self, key, epoch) -> tuple[jax.Array, jax.Array]:
        """The minibatches of run epoch ``epoch``: ``(indices [steps, batch], row_mask)``.

        Epochs count from the start of the run (``state.epoch``), so a continued run's epochs
        use new orders. Padded rows (index 0, mask 0) fill the last batch.
        """
        return self._batch_order(self._keys(key), epoch)

    def dropout_key(self, key, step) -> jax.Array:
        """The dropout key of global step ``step`` of the run keyed by ``key``.

        Every dropout layer of that step draws its mask from this key (through Flax's rng
        streams), which is how ``jaxreg.lab.matched`` recomputes the masks for the torch side.
        """
        return jax.random.fold_in(self._keys(key)["dropout"], step)

    def init(self, key, hparams=None) -> TrainState:
        """The initial state ``train(key, hparams)`` starts from (params from ``key``).

        Example:
          >>> state = train.init(jax.random.key(0))  # doctest: +SKIP
        """
        return self._jit_init(key, self.normalize_hparams(hparams), None)

    def compile_count(self) -> int:
        """How many times the training program of :attr:`loop` has been compiled (tests assert
        it stays 1): the whole run (with and without donation) in the scan form, the most
        compiled of the step, epoch start and epoch end in the stepped form."""
        if self.loop == "stepped":
            return max(
                f._cache_size() for f in (self._jit_step, self._jit_order, self._jit_epoch_end)
            )
        return self._jit_run._cache_size() + self._jit_run_donated._cache_size()


def make_train(config: TrainConfig, data: Any, *, batch_mesh: Any = None) -> Train:
    """Builds the pure, jit-compiled training function of a config (all seeds, 001-004).

    PyTorch equivalent: d2l's ``train_ch3(net, train_iter, test_iter, loss, optimizer, epochs)``
    (seed 004) and seed 002's full-batch loop; :mod:`jaxreg.torch_ref.engine` holds the torch
    loops with the same metrics.

    Args:
      config: the static :class:`TrainConfig`.
      data: arrays with ``x_train, y_train`` and optionally ``x_test, y_test, x_val, y_val``: a
        :class:`jaxreg.lab.data.FashionMNIST` / ``RegressionData``, a dict, or a tuple, put on
        the device once (:mod:`jaxreg.lab.placement`) and passed to the compiled function as
        arguments (never baked in as constants).
      batch_mesh: optional 1-D ``jax.sharding.Mesh``: shard every minibatch over its devices
        (data parallelism for one large model; the data are replicated on the mesh). The
        batch size must be a multiple of the device count. Sweeps shard configurations instead
        (:mod:`jaxreg.lab.sweep`).

    Returns:
      A :class:`Train`: ``train(key, hparams=None, init_state=None, donate=False) ->
      TrainResult`` (in the loop form ``train.loop``; ``init_state`` is left usable unless
      ``donate=True``), ``train.fit(...)`` (epoch by epoch with callbacks, same result),
      ``train.pure(data, key, hparams, init_state)`` (un-jitted, for ``vmap``),
      ``train.step(state, batch, key, hparams)`` (one optimizer step), ``train.batch_order``,
      ``train.normalize_hparams``, ``train.init``, ``train.data``, ``train.compile_count()``.

    Example:
      >>> from jaxreg.models import DropoutMLP
      >>> from jaxreg.lab.data import load_fashion_mnist
      >>> cfg = TrainConfig(model=DropoutMLP(), lr=0.5, epochs=10, batch_size=256)
      >>> train = make_train(cfg, load_fashion_mnist())  # doctest: +SKIP
      >>> result = train(jax.random.key(0), {"dropout1": 0.2, "dropout2": 0.5})  # doctest: +SKIP
      >>> float(result.metrics["test_acc"][-1]) > 0.84  # doctest: +SKIP
      True
    """
    return Train(config, data, batch_mesh=batch_mesh)

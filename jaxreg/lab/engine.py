"""The one training engine: ``make_train(config, data)`` returns a pure, jit-compiled ``train``.

Every experiment (seeds 001-004) and every sweep trains through this module, in the style of
purejaxrl: the static structure (model, loss, optimizer kind, batch size, epochs, penalties) is a
frozen :class:`TrainConfig`; the hyperparameters a sweep varies (``lr``, ``weight_decay``, ``l1``,
``l2``, ``act_l1``, ``act_l2``, ``dropout1``, ``dropout2``) are a dict of traced scalars. So
``jax.vmap(train.pure, in_axes=(None, 0, 0))`` trains a whole grid in one compiled computation
(:mod:`jaxreg.lab.sweep`), and a new learning rate or dropout rate never recompiles.

One run is ``lax.scan`` over epochs; one epoch is ``lax.scan`` over shuffled minibatches of a data
set that lives on the device (gathered by index, never copied per epoch). The dropout key of step
``s`` is ``fold_in(dropout_key, s)``. PyTorch's ``DataLoader(shuffle=True)`` keeps the last
partial batch, and so does the engine (``drop_last=False``): the permutation is padded to whole
batches and the padding is masked out of the loss, which is then exactly torch's mean over the
short batch; the alternative, dropping it, would skip 96 of Fashion-MNIST's 60000 images per epoch.

PyTorch equivalent: d2l's ``train_ch3`` (seed 004) and the loops in
:mod:`jaxreg.torch_ref.engine`, which report the same metric names.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import masks, optim, penalties

LOSSES = ("cross_entropy", "nll", "mse", "bce")
OPTIMIZERS = ("sgd", "adam", "adamw")
PENALTIES = ("none", "l1", "l2", "l2_mean", "l2_norm")
ACTIVITY_KINDS = ("l1", "l2", "l2_norm")
HPARAMS = ("lr", "weight_decay", "l1", "l2", "act_l1", "act_l2", "dropout1", "dropout2")
"""Traced hyperparameters; ``lr`` defaults to ``TrainConfig.lr``, the others to 0 (dropout: the
model's own rates)."""

EPOCH_METRICS = (
    "train_loss",
    "train_objective",
    "train_acc",
    "test_loss",
    "test_acc",
    "param_norm",
    "weight_norm",
    "zero_fraction",
)
"""Per-epoch metrics every run reports (names shared with :mod:`jaxreg.torch_ref.engine`).

``train_loss`` is the data loss alone (what seed 002 notes torch prints: optimizer weight decay
never shows in it), ``train_objective`` adds the penalties; both are example-weighted means over
the epoch's minibatches, measured in training mode as ``train_acc`` is. ``test_*`` (and ``val_*``
when the data has a validation split) are NaN on epochs that are not evaluated. ``test_acc`` is NaN
for regression. ``param_norm`` is the global L2 norm of all parameters, ``weight_norm`` that of the
weight-decay-masked ones, ``zero_fraction`` the fraction of parameter entries exactly zero.
"""

_WEIGHTS_ONLY = "weights_only"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static description of a training run (everything that changes shapes or code).

    Attributes:
      model: a Flax Linen module from :mod:`jaxreg.models` (or any module whose ``__call__(x)``
        returns outputs, or ``(outputs, *activations)`` like seed 001's ``ActivityMLP``).
      loss: ``"cross_entropy"`` (logits, ``nn.CrossEntropyLoss``), ``"nll"`` (log-probabilities,
        ``F.nll_loss``, seed 001's ``TwoLayerNet``), ``"mse"`` (``nn.MSELoss``, seed 002) or
        ``"bce"`` (probabilities, ``nn.BCELoss``, seed 000). All are means over the batch.
      optimizer: ``"sgd"`` / ``"adam"`` / ``"adamw"``: :func:`jaxreg.optim.torch_sgd` etc., which
        match ``torch.optim`` step for step. Weight decay is the optimizer's (coupled for SGD and
        Adam, decoupled for AdamW), masked by ``decay_mask``.
      lr: learning rate used when ``hparams`` has no ``"lr"``.
      momentum: SGD momentum (static; seeds use 0).
      betas: Adam betas.
      eps: Adam epsilon.
      batch_size: minibatch size; None = full batch (seed 002).
      epochs: passes over the training set.
      penalty: weight penalty added to the loss: ``"none"``, ``"l1"`` (``hparams["l1"] *
        l1_penalty``, seed 002), ``"l2"`` (``hparams["l2"] * 0.5*sum w^2``), ``"l2_mean"``
        (``hparams["l2"] *`` seed 004's ``(w**2).mean()/2`` summed over tensors), ``"l2_norm"``
        (``hparams["l2"] *`` seed 000's sum of per-tensor L2 norms).
      penalty_mask: which parameters the penalty sees: ``"weights_only"`` (seed 004's W1, W2),
        None (all, seed 002's loop over ``model.parameters()``), a bool pytree or a callable on
        the params tree such as ``jaxreg.path_mask(...)`` (see :func:`jaxreg.masks.resolve_mask`).
      decay_mask: which parameters the optimizer decays (same forms; seed 004's param groups).
      activity: activation penalties: ``(kind, index)`` pairs, ``index`` into the model's output
        tuple; ``"l1"`` uses ``hparams["act_l1"]``, ``"l2"``/``"l2_norm"`` ``hparams["act_l2"]``.
        Seed 001: ``(("l1", 1), ("l2_norm", 2))``.
      shuffle: reshuffle the training set every epoch (``DataLoader(shuffle=True)``).
      drop_last: drop the last partial batch instead of masking it.
      eval_every: evaluate after epoch ``e`` (0-based) when ``e % eval_every == 0`` (seed 002's
        ``epoch % 50 == 0``) and after the last epoch.
      eval_batch_size: evaluation chunk size (memory only, results do not depend on it).
      snapshot_every: if > 0, keep the parameters after the epochs picked by the same rule as
        ``eval_every`` (seed 002 plots its fit curves every 50 epochs).
      eval_dropout_active: evaluate with dropout on (``--faithful``: seed 004's
        ``evaluate_accuracy`` never called ``net.eval()``).
      track_activation_variance: also report ``act_var`` (eval mode) and ``act_var_train``
        (dropout on), each ``[epochs, hidden layers]``: per hidden layer, the mean over units of
        the across-example variance of ``relu(Dense output)`` (the layer's output before its own
        dropout; in train mode it reflects the dropout of the layers below) on the first
        ``probe_size`` test examples (seed 004's exercise).
      probe_size: examples used for ``act_var``.
    """

    model: nn.Module
    loss: str = "cross_entropy"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int | None = 256
    epochs: int = 10
    penalty: str = "none"
    penalty_mask: Any = _WEIGHTS_ONLY
    decay_mask: Any = _WEIGHTS_ONLY
    activity: tuple[tuple[str, int], ...] = ()
    shuffle: bool = True
    drop_last: bool = False
    eval_every: int = 1
    eval_batch_size: int = 2000
    snapshot_every: int = 0
    eval_dropout_active: bool = False
    track_activation_variance: bool = False
    probe_size: int = 1000

    def __post_init__(self):
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("penalty", self.penalty, PENALTIES)
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model={self.model!r}: expected a flax.linen.Module instance")
        if self.batch_size is not None and not _is_pos_int(self.batch_size):
            raise ValueError(f"batch_size={self.batch_size!r}: expected a positive int or None")
        for name in ("epochs", "eval_every", "eval_batch_size", "probe_size"):
            if not _is_pos_int(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a positive int")
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ValueError(f"snapshot_every={self.snapshot_every!r}: expected an int >= 0")
        for entry in self.activity:
            if (
                not isinstance(entry, tuple)
                or len(entry) != 2
                or entry[0] not in ACTIVITY_KINDS
                or not _is_pos_int(entry[1])
            ):
                raise ValueError(
                    f"activity entry {entry!r}: expected (kind, index) with kind in "
                    f"{ACTIVITY_KINDS} and index >= 1 into the model's output tuple"
                )

    def used_hparams(self) -> tuple[str, ...]:
        """The names of :data:`HPARAMS` this run reads; any other one is an error.

        ``lr`` and ``weight_decay`` always (every optimizer the engine builds applies weight
        decay: coupled for SGD and Adam, decoupled for AdamW); ``l1`` with ``penalty="l1"``,
        ``l2`` with the three L2 penalties; ``act_l1`` / ``act_l2`` with an activity penalty of
        that kind; ``dropout1`` and ``dropout2`` when the model's ``__call__`` takes ``rates=``,
        ``dropout1`` alone when it takes ``rate=``.

        Returns:
          A tuple of names, in the order of :data:`HPARAMS`.

        Example:
          >>> from jaxreg.models import DropoutMLP
          >>> TrainConfig(model=DropoutMLP()).used_hparams()
          ('lr', 'weight_decay', 'dropout1', 'dropout2')
        """
        used = {"lr", "weight_decay"}
        if self.penalty == "l1":
            used.add("l1")
        elif self.penalty != "none":
            used.add("l2")
        for kind, _ in self.activity:
            used.add("act_l1" if kind == "l1" else "act_l2")
        call = _call_kwargs(self.model)
        if "rates" in call:
            used |= {"dropout1", "dropout2"}
        elif "rate" in call:
            used.add("dropout1")
        return tuple(name for name in HPARAMS if name in used)

    def unused_reason(self, name: str) -> str:
        """Why hyperparameter ``name`` does nothing in this run (for error messages)."""
        if name in ("l1", "l2"):
            return f"penalty={self.penalty!r}"
        if name.startswith("act_"):
            return f"activity={self.activity!r}"
        model = type(self.model).__name__
        if "rate" in _call_kwargs(self.model):
            return f"{model}.__call__ takes one `rate=`, which dropout1 sets"
        return f"{model}.__call__ takes no `rates=`/`rate=` argument to receive dropout rates"


class TrainState(NamedTuple):
    """What one epoch carries to the next: parameters, optimizer state, step counters."""

    params: Any
    opt_state: Any
    step: jax.Array
    diverged_step: jax.Array


class TrainResult(NamedTuple):
    """What ``train`` returns.

    ``metrics`` maps each name of :data:`EPOCH_METRICS` (and ``val_*``, ``act_var*`` when present)
    to an ``[epochs]`` array, plus ``diverged_step``: the first optimizer step whose objective was
    NaN or Inf, -1 if none. ``snapshots`` is the parameter pytree with a leading axis over the
    epochs ``train.snapshot_epochs`` (None when ``snapshot_every == 0``).
    """

    params: Any
    opt_state: Any
    metrics: dict[str, jax.Array]
    snapshots: Any = None


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: allowed values are {allowed}")


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _as_arrays(data: Any) -> dict[str, np.ndarray]:
    """Accepts :class:`jaxreg.lab.data.FashionMNIST`-like objects, dicts or 4-tuples."""
    names = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
    if isinstance(data, Mapping):
        got = {k: data.get(k) for k in names}
    elif hasattr(data, "x_train"):
        got = {k: getattr(data, k, None) for k in names}
    elif isinstance(data, tuple | list) and len(data) in (2, 4, 6):
        got = dict(zip(names, data, strict=False))
    else:
        raise ValueError(
            f"data={type(data).__name__}: expected an object with x_train/y_train[/x_test/y_test"
            "/x_val/y_val] attributes or keys, or a tuple (x_train, y_train[, x_test, y_test])"
        )
    out = {}
    for split in ("train", "test", "val"):
        x, y = got.get("x_" + split), got.get("y_" + split)
        if (x is None) != (y is None):
            raise ValueError(f"data: x_{split} and y_{split} must both be given or both be None")
        if x is None:
            continue
        if len(x) != len(y):
            raise ValueError(f"data: len(x_{split})={len(x)} != len(y_{split})={len(y)}")
        if len(x) == 0:
            raise ValueError(f"data: the {split} split is empty")
        out["x_" + split], out["y_" + split] = x, y
    if "x_train" not in out:
        raise ValueError("data: x_train and y_train are required")
    return out


def _call_kwargs(model: nn.Module) -> frozenset[str]:
    params = inspect.signature(type(model).__call__).parameters
    return frozenset(k for k in ("deterministic", "rates", "rate") if k in params)


def _selected_epochs(epochs: int, every: int) -> np.ndarray:
    return np.array([e for e in range(epochs) if e % every == 0 or e == epochs - 1], np.int32)


def _resolve(mask: Any, params: Any) -> Any:
    if isinstance(mask, str):
        if mask != _WEIGHTS_ONLY:
            raise ValueError(f"mask={mask!r}: allowed strings are ({_WEIGHTS_ONLY!r},)")
        return masks.weights_only(params)
    return masks.resolve_mask(mask, params)


def _masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _example_loss(kind: str, out: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example loss and per-example correctness (NaN for regression)."""
    if kind in ("cross_entropy", "nll"):
        y = y.astype(jnp.int32)
        if kind == "cross_entropy":
            loss = optax.softmax_cross_entropy_with_integer_labels(out, y)
        else:
            loss = -jnp.take_along_axis(out, y[:, None], axis=1)[:, 0]
        correct = (jnp.argmax(out, axis=-1) == y).astype(jnp.float32)
        return loss, correct
    y = y.reshape(out.shape).astype(out.dtype)
    axes = tuple(range(1, out.ndim))
    if kind == "mse":
        return jnp.mean((out - y) ** 2, axis=axes), jnp.full(out.shape[:1], jnp.nan)
    # nn.BCELoss clamps each log term at -100 so a saturated probability gives a finite loss.
    log_p = jnp.maximum(jnp.log(out), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-out), -100.0)
    loss = -jnp.mean(y * log_p + (1.0 - y) * log_1mp, axis=axes)
    correct = jnp.mean(((out > 0.5) == (y > 0.5)).astype(jnp.float32), axis=axes)
    return loss, correct


def _global_norm(tree: Any, mask: Any = None) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    flags = jax.tree.leaves(mask) if mask is not None else [True] * len(leaves)
    terms = [
        jnp.sum(jnp.square(leaf.astype(jnp.float32)))
        for leaf, f in zip(leaves, flags, strict=True)
        if f
    ]
    return jnp.sqrt(sum(terms)) if terms else jnp.float32(0.0)


def _zero_fraction(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    zeros = sum(jnp.sum(leaf == 0) for leaf in leaves)
    return zeros / sum(leaf.size for leaf in leaves)


class Train:
    """The compiled training function returned by :func:`make_train` (see there).

    Calling it runs a whole training as ONE jit-compiled computation. ``pure`` is the same function
    un-jitted with the data as an explicit argument, for ``vmap``/``jit`` by
    :mod:`jaxreg.lab.sweep`.
    """

    def __init__(self, config: TrainConfig, data: Any, batch_mesh: Any = None):
        self.config = config
        self.batch_mesh = batch_mesh
        arrays = _as_arrays(data)
        self._has = {split for split in ("test", "val") if "x_" + split in arrays}
        n = len(arrays["x_train"])
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
        self._call_kwargs = _call_kwargs(config.model)
        self.data = self._device_data(arrays)
        if batch_mesh is not None:
            if bs % batch_mesh.devices.size:
                raise ValueError(
                    f"batch_size={bs}: must be a multiple of the {batch_mesh.devices.size} "
                    "devices of batch_mesh to shard the batch"
                )
            replicated = jax.sharding.NamedSharding(batch_mesh, jax.sharding.PartitionSpec())
            self.data = jax.device_put(self.data, replicated)
        self._template_x = jnp.zeros((1, *np.shape(arrays["x_train"])[1:]), jnp.float32)
        self._jit_run = jax.jit(self.pure, donate_argnames=("init_state",))
        self._jit_epoch = jax.jit(self._epoch_pure, donate_argnames=("state",))
        self._jit_init = jax.jit(self._init_pure)

    # ----- data -----------------------------------------------------------------------------
    def _device_data(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        cfg = self.config
        label_dtype = np.int32 if cfg.loss in ("cross_entropy", "nll") else np.float32
        out = {
            "x_train": jnp.asarray(np.asarray(arrays["x_train"], np.float32)),
            "y_train": jnp.asarray(np.asarray(arrays["y_train"], label_dtype)),
        }
        for split in sorted(self._has):
            x = np.asarray(arrays["x_" + split], np.float32)
            y = np.asarray(arrays["y_" + split], label_dtype)
            eb = min(cfg.eval_batch_size, len(x))
            pad = (-len(x)) % eb
            # Padding to whole eval batches keeps one static shape; the mask drops the pad rows.
            out["x_" + split] = jnp.asarray(
                np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
            )
            out["y_" + split] = jnp.asarray(
                np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
            )
            out["m_" + split] = jnp.asarray(np.arange(len(x) + pad) < len(x), jnp.float32)
        if cfg.track_activation_variance:
            probe = arrays.get("x_test", arrays["x_train"])
            out["x_probe"] = jnp.asarray(np.asarray(probe[: cfg.probe_size], np.float32))
        return out

    # ----- hyperparameters --------------------------------------------------------------------
    def normalize_hparams(self, hparams: Mapping[str, Any] | None) -> dict[str, jax.Array]:
        """Fills defaults and checks concrete values; every value becomes a float32 array.

        All values are broadcast to the largest leading shape given, so a sweep may pass some
        hyperparameters as ``(C,)`` arrays and others as scalars.

        Args:
          hparams: a subset of :data:`HPARAMS` -> scalar or array.

        Returns:
          A dict with the non-dropout names of :meth:`TrainConfig.used_hparams` (and the
          dropout ones when any was given), float32 arrays of one common shape.

        Raises:
          ValueError: a name outside :data:`HPARAMS`, a name this run does not use (naming it),
            or a concrete value out of range.
        """
        hp = dict(hparams or {})
        unknown = sorted(set(hp) - set(HPARAMS))
        if unknown:
            raise ValueError(f"hparams: unknown keys {unknown}; allowed keys are {HPARAMS}")
        used = self.config.used_hparams()
        for name in hp:
            if name not in used:
                # A sweep axis that does nothing would report identical rows as "no effect".
                raise ValueError(
                    f"hyperparameter {name!r} is not used by this run "
                    f"({self.config.unused_reason(name)}); used: {', '.join(used)}"
                )
        defaults = {"lr": self.config.lr}
        keys = [k for k in used if not k.startswith("dropout")]
        if "dropout1" in hp or "dropout2" in hp:
            model = self.config.model
            defaults["dropout1"] = getattr(model, "dropout1", getattr(model, "dropout_rate", 0.0))
            defaults["dropout2"] = getattr(model, "dropout2", defaults["dropout1"])
            keys += [k for k in used if k.startswith("dropout")]
        values = {k: hp.get(k, defaults.get(k, 0.0)) for k in keys}
        shape = max((np.shape(v) for v in values.values()), key=len)
        out = {}
        for k, v in values.items():
            if not isinstance(v, jax.core.Tracer):
                _check_hparam(k, np.asarray(v, np.float64))
            out[k] = jnp.broadcast_to(jnp.asarray(v, jnp.float32), shape)
        return out

    # ----- model ------------------------------------------------------------------------------
    def _apply(self, params, x, hp, *, train: bool, key, capture: bool = False):
        kwargs: dict[str, Any] = {}
        if "deterministic" in self._call_kwargs:
            kwargs["deterministic"] = not train
        if "dropout1" in hp:
            if "rates" in self._call_kwargs:
                kwargs["rates"] = (hp["dropout1"], hp["dropout2"])
            else:
                kwargs["rate"] = hp["dropout1"]
        if capture:
            # Hidden activations = relu of every Dense output but the last (the logits).
            out, state = self.config.model.apply(
                {"params": params},
                x,
                rngs={"dropout": key},
                capture_intermediates=lambda mdl, name: (
                    name == "__call__" and hasattr(mdl, "features")
                ),
                mutable=["intermediates"],
                **kwargs,
            )
            acts = jax.tree.leaves(
                {k: v for k, v in state["intermediates"].items() if k != "__call__"}
            )
            return out, acts[:-1]
        return self.config.model.apply({"params": params}, x, rngs={"dropout": key}, **kwargs)

    def _optimizer(self, hp, params) -> optax.GradientTransformation:
        cfg = self.config
        mask = _resolve(cfg.decay_mask, params)
        if cfg.optimizer == "sgd":
            return optim.torch_sgd(
                hp["lr"], momentum=cfg.momentum, weight_decay=hp["weight_decay"], mask=mask
            )
        make = optim.torch_adam if cfg.optimizer == "adam" else optim.torch_adamw
        return make(
            hp["lr"], betas=cfg.betas, eps=cfg.eps, weight_decay=hp["weight_decay"], mask=mask
        )

    def _penalty(self, params, hp) -> jax.Array:
        cfg = self.config
        if cfg.penalty == "none":
            return jnp.float32(0.0)
        mask = _resolve(cfg.penalty_mask, params)
        if cfg.penalty == "l1":
            return hp["l1"] * penalties.l1_penalty(params, mask=mask)
        if cfg.penalty == "l2_norm":
            return hp["l2"] * penalties.l2_norm_penalty(params, mask=mask)
        reduction = "mean" if cfg.penalty == "l2_mean" else "sum"
        return hp["l2"] * penalties.l2_penalty(params, mask=mask, reduction=reduction)

    def _activity_penalty(self, outputs, hp, row_mask) -> jax.Array:
        total = jnp.float32(0.0)
        for kind, index in self.config.activity:
            # Padded rows are zeroed so they add nothing to a sum or a norm.
            act = outputs[index] * row_mask.reshape((-1,) + (1,) * (outputs[index].ndim - 1))
            if kind == "l1":
                total = total + hp["act_l1"] * penalties.l1_penalty(act)
            elif kind == "l2_norm":
                total = total + hp["act_l2"] * penalties.l2_norm_penalty(act)
            else:
                total = total + hp["act_l2"] * penalties.l2_penalty(act)
        return total

    # ----- pure pieces ------------------------------------------------------------------------
    def _keys(self, key):
        if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.wrap_key_data(key)
        return {name: jax.random.fold_in(key, i) for i, name in enumerate(_KEY_NAMES)}

    def _init_pure(self, key, hparams, init_state=None) -> TrainState:
        keys = self._keys(key)
        if init_state is None:
            kwargs = {"deterministic": True} if "deterministic" in self._call_kwargs else {}
            variables = self.config.model.init(
                {"params": keys["init"], "dropout": keys["init"]}, self._template_x, **kwargs
            )
            params, opt_state = variables["params"], None
        elif isinstance(init_state, TrainState | TrainResult):
            params, opt_state = init_state.params, init_state.opt_state
        else:
            params, opt_state = init_state, None
        if opt_state is None:
            opt_state = self._optimizer(hparams, params).init(params)
        return TrainState(params, opt_state, jnp.int32(0), jnp.int32(-1))

    def _epoch_pure(self, data, state: TrainState, hparams, key, epoch):
        """One epoch (a ``lax.scan`` over minibatches), then the epoch's metrics."""
        cfg = self.config
        keys = self._keys(key)
        n, bs, steps = self.num_train, self.batch_size, self.steps_per_epoch
        if cfg.shuffle:
            order = jax.random.permutation(jax.random.fold_in(keys["shuffle"], epoch), n)
        else:
            order = jnp.arange(n)
        total = steps * bs
        if total > n:
            order = jnp.concatenate([order, jnp.zeros(total - n, order.dtype)])
        order = order[:total].reshape(steps, bs)
        valid = (jnp.arange(total) < n).astype(jnp.float32).reshape(steps, bs)
        opt = self._optimizer(hparams, state.params)

        def step(carry, batch):
            params, opt_state, step_i, bad = carry
            idx, row_mask = batch
            xb, yb = data["x_train"][idx], data["y_train"][idx]
            if self.batch_mesh is not None:
                # Data parallelism for one large model: GSPMD splits the batch over the mesh
                # and all-reduces the gradients (torch: DistributedDataParallel).
                xb, yb, row_mask = self._shard_batch(xb, yb, row_mask)
            dkey = jax.random.fold_in(keys["dropout"], step_i)

            def objective(p):
                outputs = self._apply(p, xb, hparams, train=True, key=dkey)
                outputs = outputs if isinstance(outputs, tuple) else (outputs,)
                loss_i, correct_i = _example_loss(cfg.loss, outputs[0], yb)
                loss = _masked_mean(loss_i, row_mask)
                reg = self._penalty(p, hparams) + self._activity_penalty(outputs, hparams, row_mask)
                return loss + reg, (loss, _masked_mean(correct_i, row_mask))

            (obj, (loss, acc)), grads = jax.value_and_grad(objective, has_aux=True)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            bad = jnp.where((bad < 0) & ~jnp.isfinite(obj), step_i, bad)
            count = jnp.sum(row_mask)
            return (params, opt_state, step_i + 1, bad), (loss * count, obj * count, acc * count)

        carry = (state.params, state.opt_state, state.step, state.diverged_step)
        carry, (loss_sum, obj_sum, acc_sum) = jax.lax.scan(step, carry, (order, valid))
        state = TrainState(*carry)
        seen = jnp.sum(valid)
        metrics = {
            "train_loss": jnp.sum(loss_sum) / seen,
            "train_objective": jnp.sum(obj_sum) / seen,
            "train_acc": jnp.sum(acc_sum) / seen,
            "param_norm": _global_norm(state.params),
            "weight_norm": _global_norm(state.params, _resolve(cfg.decay_mask, state.params)),
            "zero_fraction": _zero_fraction(state.params),
        }
        is_eval = jnp.isin(epoch, jnp.asarray(self.eval_epochs))
        eval_key = jax.random.fold_in(keys["eval"], epoch)
        template = jax.eval_shape(lambda: self._evaluate(data, state.params, hparams, eval_key))
        nan = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), template)
        evaluated = jax.lax.cond(
            is_eval,
            lambda: self._evaluate(data, state.params, hparams, eval_key),
            lambda: nan,
        )
        metrics.update(evaluated)
        return state, metrics

    def _shard_batch(self, *arrays):
        axis = self.batch_mesh.axis_names[0]
        spec = jax.sharding.NamedSharding(self.batch_mesh, jax.sharding.PartitionSpec(axis))
        return tuple(jax.lax.with_sharding_constraint(a, spec) for a in arrays)

    def _evaluate(self, data, params, hparams, key) -> dict[str, jax.Array]:
        cfg = self.config
        out = {}
        dropout_on = cfg.eval_dropout_active
        for split in ("test", "val"):
            if split not in self._has:
                if split == "test":
                    out["test_loss"] = out["test_acc"] = jnp.float32(jnp.nan)
                continue
            x, y, m = data["x_" + split], data["y_" + split], data["m_" + split]
            eb = min(cfg.eval_batch_size, x.shape[0])
            nb = x.shape[0] // eb

            def chunk(i, x=x, y=y, m=m, eb=eb):
                sl = jax.lax.dynamic_slice_in_dim
                xb, yb, mb = sl(x, i * eb, eb), sl(y, i * eb, eb), sl(m, i * eb, eb)
                k = jax.random.fold_in(key, i)
                outputs = self._apply(params, xb, hparams, train=dropout_on, key=k)
                logits = outputs[0] if isinstance(outputs, tuple) else outputs
                loss_i, correct_i = _example_loss(cfg.loss, logits, yb)
                return jnp.sum(loss_i * mb), jnp.sum(correct_i * mb)

            loss_sum, correct_sum = jax.lax.map(chunk, jnp.arange(nb))
            count = jnp.sum(m)
            out[split + "_loss"] = jnp.sum(loss_sum) / count
            out[split + "_acc"] = jnp.sum(correct_sum) / count
        if cfg.track_activation_variance:
            for suffix, train in (("", False), ("_train", True)):
                _, acts = self._apply(
                    params, data["x_probe"], hparams, train=train, key=key, capture=True
                )
                out["act_var" + suffix] = jnp.stack(
                    [jnp.mean(jnp.var(nn.relu(a), axis=0)) for a in acts]
                )
        return out

    def pure(self, data, key, hparams, init_state=None) -> TrainResult:
        """The whole run as a pure function of ``(data, key, hparams, init_state)``.

        ``data`` is ``train.data`` (or the same dict placed on other devices). Not jitted: wrap it
        in ``jax.jit``/``jax.vmap`` (``jaxreg.lab.sweep`` does); ``hparams`` must already be
        normalized
        (:meth:`normalize_hparams`).
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
        return TrainResult(state.params, state.opt_state, metrics, snapshots)

    # ----- public entry points ----------------------------------------------------------------
    def __call__(self, key, hparams=None, init_state=None) -> TrainResult:
        """Trains ``config.epochs`` epochs as one compiled computation.

        Args:
          key: PRNG key (new-style ``jax.random.key`` or raw ``PRNGKey``): it seeds the
            initialization, shuffling, dropout and evaluation streams through ``fold_in``.
          hparams: traced hyperparameters (see :data:`HPARAMS`); missing ones take defaults.
          init_state: None (fresh init from ``key``), a params pytree (fresh optimizer state) or a
            :class:`TrainState`/:class:`TrainResult` to continue from. Its buffers are DONATED.

        Returns:
          A :class:`TrainResult`.
        """
        return self._jit_run(
            self.data, key, self.normalize_hparams(hparams), _continuation(init_state)
        )

    def fit(self, key, hparams=None, init_state=None, *, on_epoch=None, progress=None):
        """Same run as calling ``train``, one jitted epoch at a time (for progress and callbacks).

        The epoch function is compiled once: ``epoch`` is a traced argument, state is donated.

        Args:
          key: PRNG key, as for ``__call__``.
          hparams: traced hyperparameters.
          init_state: as for ``__call__``.
          on_epoch: optional ``on_epoch(epoch, {metric: float})`` called after every epoch.
          progress: optional tqdm-like object; ``update(1)`` per epoch.

        Returns:
          A :class:`TrainResult` equal to ``train(key, hparams, init_state)`` up to float
          reassociation.
        """
        hp = self.normalize_hparams(hparams)
        state = self._jit_init(key, hp, _continuation(init_state))
        history, snaps = [], []
        snap_set = set(self.snapshot_epochs.tolist())
        for epoch in range(self.config.epochs):
            state, metrics = self._jit_epoch(self.data, state, hp, key, jnp.int32(epoch))
            metrics = jax.device_get(metrics)
            history.append(metrics)
            if epoch in snap_set:
                snaps.append(jax.tree.map(jnp.copy, state.params))
            if on_epoch is not None:
                on_epoch(
                    epoch, {k: float(np.mean(v)) for k, v in metrics.items() if np.ndim(v) == 0}
                )
            if progress is not None:
                progress.update(1)
        stacked = {k: jnp.stack([h[k] for h in history]) for k in history[0]}
        stacked["diverged_step"] = state.diverged_step
        snapshots = jax.tree.map(lambda *s: jnp.stack(s), *snaps) if snaps else None
        return TrainResult(state.params, state.opt_state, stacked, snapshots)

    def init(self, key, hparams=None) -> TrainState:
        """The initial state ``train(key, hparams)`` starts from (params from ``key``).

        Example:
          >>> state = train.init(jax.random.key(0))  # doctest: +SKIP
        """
        return self._jit_init(key, self.normalize_hparams(hparams), None)

    def compile_count(self) -> int:
        """How many times the whole-run function has been compiled (tests assert it stays 1)."""
        return self._jit_run._cache_size()


_KEY_NAMES = ("init", "shuffle", "dropout", "eval")


def _continuation(init_state: Any) -> Any:
    # Only parameters and optimizer state are carried over (and donated), not old metrics.
    if isinstance(init_state, TrainResult):
        return TrainState(init_state.params, init_state.opt_state, jnp.int32(0), jnp.int32(-1))
    return init_state


def _check_hparam(name: str, value: np.ndarray) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"hparams[{name!r}]={value}: must be finite")
    if name.startswith("dropout"):
        if np.any((value < 0) | (value > 1)):
            raise ValueError(f"hparams[{name!r}]={value}: a drop probability must be in [0, 1]")
    elif name == "lr":
        if np.any(value <= 0):
            raise ValueError(f"hparams['lr']={value}: must be > 0")
    elif np.any(value < 0):
        raise ValueError(f"hparams[{name!r}]={value}: must be >= 0")


def make_train(config: TrainConfig, data: Any, *, batch_mesh: Any = None) -> Train:
    """Builds the pure, jit-compiled training function of a config (all seeds, 001-004).

    PyTorch equivalent: d2l's ``train_ch3(net, train_iter, test_iter, loss, optimizer, epochs)``
    (seed 004) and seed 002's full-batch loop; :mod:`jaxreg.torch_ref.engine` holds the torch
    loops with the same metrics.

    Args:
      config: the static :class:`TrainConfig`.
      data: arrays with ``x_train, y_train`` and optionally ``x_test, y_test, x_val, y_val``: a
        :class:`jaxreg.lab.data.FashionMNIST` / ``RegressionData``, a dict, or a tuple. They are
        put on
        the device once and passed to the compiled function as arguments (never baked in as
        constants).
      batch_mesh: optional 1-D ``jax.sharding.Mesh``: shard every minibatch over its devices
        (data parallelism for one large model; the data are replicated on the mesh). The
        batch size must be a multiple of the device count. Sweeps shard configurations instead
        (:mod:`jaxreg.lab.sweep`).

    Returns:
      A :class:`Train`: ``train(key, hparams=None, init_state=None) -> TrainResult`` (one jit,
      donated ``init_state``), ``train.fit(...)`` (one jitted epoch at a time, same result),
      ``train.pure(data, key, hparams, init_state)`` (un-jitted, for ``vmap``),
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

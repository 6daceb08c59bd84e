"""What a training run is: :class:`TrainConfig` (static, validated) and its traced hyperparameters.

The static structure of a run (model, loss, optimizer kind, batch size, epochs, penalties) is a
frozen :class:`TrainConfig`, checked when built; the values a sweep varies are :data:`HPARAMS`,
traced scalars that :func:`normalize_hparams` fills and checks. A configuration knows which
hyperparameters it reads (:meth:`TrainConfig.used_hparams`), so one it does not read is an error
that names it rather than a sweep axis that silently does nothing.

PyTorch equivalent: the arguments of d2l's ``train_ch3`` and of ``torch.optim.SGD`` (seed 004).
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.keep_masks import check_generator

LOSSES = ("cross_entropy", "nll", "mse", "bce")
OPTIMIZERS = ("sgd", "adam", "adamw")
PENALTIES = ("none", "l1", "l2", "l2_mean", "l2_norm")
ACTIVITY_KINDS = ("l1", "l2", "l2_norm")
DTYPES = ("float32", "float64")
LOOPS = ("auto", "scan", "stepped")
"""Loop forms of :mod:`jaxreg.lab.engine`; ``"auto"`` picks one per model and backend."""
LIBRARY_HPARAMS = ("lr", "weight_decay", "l1", "l2", "act_l1", "act_l2", "max_norm")
"""The traced hyperparameters the engine itself reads (optimizer, penalties, constraint)."""
HPARAMS = (*LIBRARY_HPARAMS[:6], "dropout1", "dropout2", "strength", "max_norm")
"""Traced hyperparameters of the library and of the shipped models: ``lr`` defaults to
``TrainConfig.lr``, ``max_norm`` to ``TrainConfig.max_norm``, the penalties' strengths to 0.
The others are MODEL hyperparameters: attributes a model declares traced (:func:`declared_hparams`:
``dropout1``/``dropout2`` of :class:`jaxreg.models.DropoutMLP`, ``strength`` of
:class:`jaxreg.models.NoiseMLP`); they default to the model's own values. A user model may
declare any attribute names (``traced_hparams``)."""

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

WEIGHTS_ONLY = "weights_only"
"""The default mask: every parameter with ``ndim >= 2`` (:func:`jaxreg.masks.weights_only`)."""


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
      dtype: ``"float32"`` (default) or ``"float64"``: the dtype of the data, the parameters
        (initialized as usual, then cast) and the hyperparameters. ``"float64"`` needs 64-bit
        JAX (``jax.config.update("jax_enable_x64", True)`` before any array is made;
        ``jaxreg run --dtype float64`` does it), the torch side then runs ``model.double()``.
      max_norm: None, or the default bound of a max-norm constraint applied after every step
        (:func:`jaxreg.max_norm` on the weights only, Srivastava et al. 2014's companion of
        dropout); ``hparams["max_norm"]`` overrides it, traced.
      dropout_generator: None (the model's own masks) or a mask generator of
        :mod:`jaxreg.keep_masks` (``"bernoulli"``, ``"bits16"``) set on a model that has a
        ``dropout_generator`` attribute (:class:`jaxreg.models.DropoutMLP`); ``model`` is then
        that model with the attribute replaced.
      model_hparams: the names of the model's attributes that are traced hyperparameters
        (the values arrive in ``hparams`` under those names and the engine calls
        ``model.clone(name=value)``); None: what the model declares (:func:`declared_hparams`).
        For an NNX model wrapped by ``flax.nnx.bridge.ToLinen``, constructor keywords.
      loop: the engine's loop form, one of :data:`LOOPS`: ``"scan"`` (a whole epoch as one
        ``lax.scan`` of steps), ``"stepped"`` (a Python loop over the jitted step) or ``"auto"``
        (the engine picks; the run records which form ran). Results are bit-identical for matmul
        models; conv models on CPU agree to rounding (XLA picks other conv-gradient kernels
        inside a loop, jax-ml/jax#12868).
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
    penalty_mask: Any = WEIGHTS_ONLY
    decay_mask: Any = WEIGHTS_ONLY
    activity: tuple[tuple[str, int], ...] = ()
    shuffle: bool = True
    drop_last: bool = False
    eval_every: int = 1
    eval_batch_size: int = 2000
    snapshot_every: int = 0
    eval_dropout_active: bool = False
    track_activation_variance: bool = False
    probe_size: int = 1000
    max_norm: float | None = None
    dtype: str = "float32"
    dropout_generator: str | None = None
    model_hparams: tuple[str, ...] | None = None
    loop: str = "auto"

    def __post_init__(self):
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("loop", self.loop, LOOPS)
        _check_choice("dtype", self.dtype, DTYPES)
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError(
                "dtype='float64' needs 64-bit JAX, which is off: call "
                "jax.config.update('jax_enable_x64', True) (or set JAX_ENABLE_X64=1) before "
                "creating arrays; `jaxreg run --dtype float64` does this"
            )
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("penalty", self.penalty, PENALTIES)
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model={self.model!r}: expected a flax.linen.Module instance")
        if self.dropout_generator is not None:
            check_generator(self.dropout_generator)
            if not hasattr(self.model, "dropout_generator"):
                raise ValueError(
                    f"dropout_generator={self.dropout_generator!r}: "
                    f"{type(self.model).__name__} has no dropout_generator attribute"
                )
            generator = self.dropout_generator
            object.__setattr__(self, "model", self.model.clone(dropout_generator=generator))
        if self.model_hparams is not None:
            object.__setattr__(self, "model_hparams", tuple(self.model_hparams))
        for name in self.declared_hparams():
            _check_model_hparam(self.model, name)
        if self.batch_size is not None and not _is_pos_int(self.batch_size):
            raise ValueError(f"batch_size={self.batch_size!r}: expected a positive int or None")
        for name in ("epochs", "eval_every", "eval_batch_size", "probe_size"):
            if not _is_pos_int(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a positive int")
        if self.max_norm is not None and not (
            isinstance(self.max_norm, numbers.Real) and 0 <= self.max_norm < float("inf")
        ):
            raise ValueError(f"max_norm={self.max_norm!r}: expected None or a finite float >= 0")
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

    def declared_hparams(self) -> tuple[str, ...]:
        """The model's traced hyperparameters: ``model_hparams``, else :func:`declared_hparams`."""
        if self.model_hparams is not None:
            return self.model_hparams
        return declared_hparams(self.model)

    def used_hparams(self) -> tuple[str, ...]:
        """The names of the hyperparameters this run reads; any other one is an error.

        ``lr`` and ``weight_decay`` always (every optimizer the engine builds applies weight
        decay: coupled for SGD and Adam, decoupled for AdamW); ``l1`` with ``penalty="l1"``,
        ``l2`` with the three L2 penalties; ``act_l1`` / ``act_l2`` with an activity penalty of
        that kind; ``max_norm`` when ``max_norm`` is not None; then the model's declared
        hyperparameters (:meth:`declared_hparams`: ``dropout1`` and ``dropout2`` of
        :class:`jaxreg.models.DropoutMLP`, ``strength`` of :class:`jaxreg.models.NoiseMLP`).

        Returns:
          A tuple of names in the order of :data:`HPARAMS`, then the model's other ones.

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
        if self.max_norm is not None:
            used.add("max_norm")
        used |= set(self.declared_hparams())
        known = tuple(name for name in HPARAMS if name in used)
        return known + tuple(n for n in self.declared_hparams() if n not in known)

    def unused_reason(self, name: str) -> str:
        """Why hyperparameter ``name`` does nothing in this run (for error messages)."""
        if name in ("l1", "l2"):
            return f"penalty={self.penalty!r}"
        if name.startswith("act_"):
            return f"activity={self.activity!r}"
        if name == "max_norm":
            return "max_norm=None: no max-norm constraint"
        model = _model_label(self.model)
        declared = self.declared_hparams()
        if not declared:
            return (
                f"{model} declares no traced hyperparameters (dropout rates, noise strengths: "
                "list its attributes in a `traced_hparams` class attribute or in "
                "TrainConfig.model_hparams)"
            )
        return f"{model} declares only {', '.join(declared)} as traced hyperparameters"


def normalize_hparams(
    config: TrainConfig, hparams: Mapping[str, Any] | None
) -> dict[str, jax.Array]:
    """Fills defaults and checks names and concrete values; every value becomes an array.

    The arrays have the config's ``dtype`` (float32 unless the run is in float64).

    All values are broadcast to the largest leading shape given, so a sweep may pass some
    hyperparameters as ``(C,)`` arrays and others as scalars.

    Args:
      config: the run's :class:`TrainConfig`.
      hparams: a subset of :data:`HPARAMS` -> scalar or array.

    Returns:
      A dict with the library's names of :meth:`TrainConfig.used_hparams` (and the model's
      declared ones when any was given), arrays of one common shape.

    Raises:
      ValueError: a name outside :data:`HPARAMS` and the model's declared names, a name this
        run does not use (naming it), or a concrete value out of range.

    Example:
      >>> from jaxreg.models import WeightDecayMLP
      >>> cfg = TrainConfig(model=WeightDecayMLP(), penalty="l2_mean")
      >>> sorted(normalize_hparams(cfg, {"l2": 1.0}))
      ['l2', 'lr', 'weight_decay']
      >>> normalize_hparams(cfg, {"l1": 0.1})  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: hyperparameter 'l1' is not used by this run (penalty='l2_mean'); used: lr, ...
    """
    hp = dict(hparams or {})
    known = (*HPARAMS, *(n for n in config.declared_hparams() if n not in HPARAMS))
    unknown = sorted(set(hp) - set(known))
    if unknown:
        raise ValueError(f"hparams: unknown keys {unknown}; allowed keys are {known}")
    used = config.used_hparams()
    for name in hp:
        if name not in used:
            # A sweep axis that does nothing would report identical rows as "no effect".
            raise ValueError(
                f"hyperparameter {name!r} is not used by this run "
                f"({config.unused_reason(name)}); used: {', '.join(used)}"
            )
    defaults = {"lr": config.lr, "max_norm": config.max_norm}
    declared = config.declared_hparams()
    keys = [k for k in used if k not in declared]
    # The model's hyperparameters are traced only when the caller sets one of them (then all,
    # the others at the model's values): a concrete rate keeps the layers' static shortcuts
    # (rate 0 draws no key), so a run that sets none is the model as written.
    if any(k in hp for k in declared):
        for k in declared:
            defaults[k] = model_attribute(config.model, k)
        keys += list(declared)
    values = {k: hp.get(k, defaults.get(k, 0.0)) for k in keys}
    shape = max((np.shape(v) for v in values.values()), key=len)
    out = {}
    bounds = declared_bounds(config.model)
    for k, v in values.items():
        if not isinstance(v, jax.core.Tracer):
            check_hparam(k, np.asarray(v, np.float64), bounds.get(k))
        out[k] = jnp.broadcast_to(jnp.asarray(v, config.dtype), shape)
    return out


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: allowed values are {allowed}")


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def call_kwargs(model: nn.Module) -> frozenset[str]:
    """``{"deterministic"}`` when the model's ``__call__`` takes the train/eval switch, else empty.

    For an NNX model wrapped by ``flax.nnx.bridge.ToLinen``, the NNX class's ``__call__``.
    """
    call = _nnx_class(model).__call__ if _is_to_linen(model) else type(model).__call__
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(k for k in ("deterministic",) if k in params)


def _is_to_linen(model: Any) -> bool:
    from flax.nnx import bridge

    return isinstance(model, bridge.ToLinen)


def _nnx_class(model: Any) -> Any:
    return model.nnx_class


def _model_label(model: Any) -> str:
    if _is_to_linen(model):
        return getattr(model.nnx_class, "__name__", repr(model.nnx_class))
    return type(model).__name__


def declared_hparams(model: Any) -> tuple[str, ...]:
    """The traced hyperparameters a model declares: the attribute names in ``traced_hparams``.

    A Linen module declares them with a class attribute, e.g. ``traced_hparams = ("p1", "p2",
    "p3")`` for a net with three dropout sites whose rates are the module attributes ``p1``,
    ``p2``, ``p3``; an NNX model (wrapped by ``flax.nnx.bridge.ToLinen``) names constructor
    keywords the same way on its class. The engine then sets those attributes to traced values
    (``model.clone(p1=...)``): any layer that accepts a traced value there (every jaxreg
    layer does; ``flax.linen.Dropout`` does not) is swept without recompiling and without an
    engine edit. jaxreg's own models declare theirs the same way (``DropoutMLP``: ``dropout1,
    dropout2``; ``NoiseMLP``: ``strength``).

    Example:
      >>> from jaxreg.models import DropoutMLP, WeightDecayMLP
      >>> declared_hparams(DropoutMLP()), declared_hparams(WeightDecayMLP())
      (('dropout1', 'dropout2'), ())
    """
    owner = _nnx_class(model) if _is_to_linen(model) else type(model)
    names = getattr(owner, "traced_hparams", None) or ()
    if isinstance(names, str):
        names = (names,)
    if getattr(owner, "__module__", "").startswith("jaxreg."):
        # jaxreg's models: an attribute set to None (no such layer here) is not declared.
        names = tuple(n for n in names if model_attribute(model, n, None) is not None)
    return tuple(names)


def declared_bounds(model: Any) -> dict[str, tuple[float, float]]:
    """The ranges a model gives its traced hyperparameters: ``traced_hparams`` as a mapping.

    ``traced_hparams = {"p1": (0.0, 1.0), "scale": (0.0, math.inf)}`` declares the names and
    the closed range a concrete value must lie in (a tuple of names declares no range beyond
    the built-in ones: names starting ``dropout`` or ending ``rate`` are probabilities).

    Example:
      >>> class M(nn.Module):
      ...     traced_hparams = {"p": (0.0, 1.0)}
      ...     p: float = 0.5
      >>> declared_bounds(M())
      {'p': (0.0, 1.0)}
    """
    owner = _nnx_class(model) if _is_to_linen(model) else type(model)
    names = getattr(owner, "traced_hparams", None)
    if not isinstance(names, Mapping):
        return {}
    return {str(k): (float(lo), float(hi)) for k, (lo, hi) in names.items()}


def model_attribute(model: Any, name: str, default: Any = ...) -> Any:
    """The value of a declared hyperparameter on the model (an NNX model: its constructor kwarg)."""
    if _is_to_linen(model):
        if name in model.kwargs:
            return model.kwargs[name]
        if default is not ...:
            return default
        raise ValueError(
            f"hyperparameter {name!r}: not among the NNX model's constructor keywords "
            f"{sorted(model.kwargs)}; pass its value in model_kwargs"
        )
    if default is ...:
        return getattr(model, name)
    return getattr(model, name, default)


def with_hparams(model: Any, values: Mapping[str, Any]) -> Any:
    """``model`` with the given declared hyperparameters set (traced values allowed).

    A Linen module is cloned with the attributes replaced; an NNX model wrapped by
    ``ToLinen`` gets them as constructor keywords.
    """
    if not values:
        return model
    if _is_to_linen(model):
        from flax.core import FrozenDict

        return model.clone(kwargs=FrozenDict({**model.kwargs, **values}))
    return model.clone(**values)


def _check_model_hparam(model: Any, name: str) -> None:
    if name in LIBRARY_HPARAMS:
        raise ValueError(
            f"model_hparams: {name!r} is one of the engine's own hyperparameters "
            f"{LIBRARY_HPARAMS}; a model attribute needs another name"
        )
    value = model_attribute(model, name, None)
    if _is_to_linen(model):
        if name not in model.kwargs:
            model_attribute(model, name)  # raises with the message
        return
    if not hasattr(model, name):
        raise ValueError(
            f"model_hparams: {type(model).__name__} has no attribute {name!r} to trace"
        )
    if not isinstance(value, numbers.Real):
        raise ValueError(
            f"model_hparams: {type(model).__name__}.{name}={value!r} is not a number; a traced "
            "hyperparameter needs a numeric default"
        )


def check_hparam(name: str, value: np.ndarray, bounds: tuple[float, float] | None = None) -> None:
    """Raises ValueError naming ``name`` if a concrete value is out of its range.

    ``bounds``: the closed range the model declared for it (:func:`declared_bounds`).
    """
    if not np.all(np.isfinite(value)):
        raise ValueError(f"hparams[{name!r}]={value}: must be finite")
    if bounds is not None:
        low, high = bounds
        if np.any((value < low) | (value > high)):
            raise ValueError(
                f"hparams[{name!r}]={value}: the model declares the range [{low}, {high}]"
            )
        return
    if name.startswith("dropout") or name.endswith("rate"):
        if np.any((value < 0) | (value > 1)):
            raise ValueError(f"hparams[{name!r}]={value}: a drop probability must be in [0, 1]")
    elif name == "lr":
        if np.any(value <= 0):
            raise ValueError(f"hparams['lr']={value}: must be > 0")
    elif name in HPARAMS and np.any(value < 0):
        # A model's own hyperparameters may be signed; the library's strengths may not.
        raise ValueError(f"hparams[{name!r}]={value}: must be >= 0")

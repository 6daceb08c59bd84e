"""One experiment as ONE typed spec: the models of both frameworks and everything else as data.

A :class:`Spec` is what ``get_config()`` of an experiment file (``experiments/*.py`` or a user's
``SPEC.py``) returns, and the only thing :mod:`jaxreg.lab.runner` needs to train both sides:

* ``model``: the Flax model, a Linen module (or an NNX module class / factory, trained through
  ``flax.nnx.bridge.ToLinen``: see :func:`linen_model`), and ``torch_model``, a zero-argument
  factory of its PyTorch twin (torch is imported by the factory, never by this module);
* ``optimizer``: an :class:`Optimizer` (jaxreg's torch-exact ``torch_sgd`` / ``torch_adam`` /
  ``torch_adamw``; the torch side gets ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` with param
  groups derived from the same :class:`Mask`);
* ``penalties`` (:class:`Penalty`) and ``activity`` (:class:`Activity`): regularizers as data;
* ``data``: a :class:`Data` description (Fashion-MNIST in a layout, a subset) or a callable
  returning arrays;
* ``hparams``: the traced hyperparameters THE MODEL DECLARES, by the names of its attributes
  (``{"dropout1": 0.2, "dropout2": 0.5}`` for :class:`jaxreg.models.DropoutMLP`): the engine
  sets those attributes to traced values (``module.clone(...)``), so a model with three dropout
  sites, or a named noise layer, needs no engine edit and a sweep over them never recompiles;
* ``variants`` (:class:`Variant`), ``seeds``, ``epochs``, ``batch_size``, ``dtype``, and what the
  recipe layer shows (``notes``, ``plots``, ``meta``).

In the style of big_vision's ``get_config()`` read by one ``train.py``: the spec holds no code
path of its own; :mod:`jaxreg.lab.runner` turns it into a :class:`jaxreg.lab.config.TrainConfig`
for the JAX engine and derives the torch optimizer, param groups, penalties and loop from the
same fields.

PyTorch equivalent: the arguments of a hand-written torch training script (model, optimizer with
param groups, penalty terms, DataLoader), gathered in one object.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from jaxreg.lab.config import ACTIVITY_KINDS, DTYPES, LIBRARY_HPARAMS, LOSSES, OPTIMIZERS

PENALTY_KINDS = ("l1", "l2", "l2_mean", "l2_norm")
MASK_BASES = ("all", "weights_only", "none")
LAYOUTS = ("flat", "nhwc", "nchw")
DATA_SOURCES = ("fashion_mnist",)


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: allowed values are {tuple(allowed)}")


def _check_number(name: str, value: Any, *, low: float = 0.0, strict: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        sign = ">" if strict else ">="
        raise ValueError(f"{name}={value!r}: expected a real number {sign} {low}")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclasses.dataclass(frozen=True)
class Mask:
    """Which parameters something applies to, as data (both frameworks resolve it alike).

    A parameter is selected when ``base`` admits it, some ``include`` regex matches its
    "/"-joined Flax path (``re.search``, big_vision's ``".*/kernel$"`` style; the path of the
    JAX parameter, e.g. ``"conv1/kernel"``, ``"W1"``, ``"layers_1/bias"``) and no ``exclude``
    regex does. The torch side selects the twin's tensors that the conversion
    (:mod:`jaxreg.convert`) maps onto the selected Flax leaves.

    Attributes:
      base: ``"all"``, ``"weights_only"`` (:func:`jaxreg.masks.weights_only`: kernels and
        weights, no biases nor norm scales) or ``"none"``.
      include: regexes, at least one of which must match the path.
      exclude: regexes none of which may match.

    Example:
      >>> Mask(include=("^conv1/kernel$",)).resolve({"conv1": {"kernel": 1.0, "bias": 0.0}})
      {'conv1': {'bias': False, 'kernel': True}}
      >>> Mask("weights_only", exclude=("head",)).describe()
      "weights_only, excluding ('head',)"
    """

    base: str = "all"
    include: tuple[str, ...] = (".*",)
    exclude: tuple[str, ...] = ()

    def __post_init__(self):
        _check_choice("Mask.base", self.base, MASK_BASES)
        for field in ("include", "exclude"):
            value = getattr(self, field)
            if isinstance(value, str):
                object.__setattr__(self, field, (value,))
            for pattern in getattr(self, field):
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as err:
                    raise ValueError(f"Mask.{field}: {pattern!r} is not a regex ({err})") from err

    def selects(self, path: str, leaf: Any = None) -> bool:
        """Whether the parameter at ``path`` (with value ``leaf``) is selected."""
        if self.base == "none":
            return False
        if not any(re.search(p, path) for p in self.include):
            return False
        if any(re.search(p, path) for p in self.exclude):
            return False
        if self.base == "weights_only":
            from jaxreg import masks

            # weights_only decides by the leaf's name and shape: ask it about this one leaf.
            name = path.rsplit("/", 1)[-1]
            return bool(masks.weights_only({name: leaf})[name])
        return True

    def resolve(self, params: Any) -> Any:
        """A pytree of Python bools with the structure of ``params``."""
        import jax

        from jaxreg import masks

        base = masks.weights_only(params) if self.base == "weights_only" else None

        def one(key_path, leaf):
            if self.base == "none":
                return False
            path = masks.path_to_str(key_path)
            if not any(re.search(p, path) for p in self.include):
                return False
            return not any(re.search(p, path) for p in self.exclude)

        chosen = jax.tree_util.tree_map_with_path(one, params)
        if base is None:
            return chosen
        # weights_only decides on the whole tree (names and shapes): and it with the paths.
        return jax.tree.map(lambda a, b: bool(a) and bool(b), chosen, base)

    def __call__(self, params: Any) -> Any:
        """:meth:`resolve`: a Mask is a mask in optax's callable convention too."""
        return self.resolve(params)

    def describe(self) -> str:
        """A short human-readable form, for reports."""
        text = self.base
        if self.include != (".*",):
            text += f", paths {self.include}"
        if self.exclude:
            text += f", excluding {self.exclude}"
        return text


ALL = Mask()
"""Every parameter (seed 002's loop over ``model.parameters()``)."""
WEIGHTS = Mask("weights_only")
"""Kernels / weights only: no biases, no norm scales (the usual decay mask)."""
NONE = Mask("none")
"""No parameter."""


def paths(*patterns: str, exclude: Sequence[str] = ()) -> Mask:
    """A :class:`Mask` of the parameters whose path matches one of ``patterns`` (regexes).

    Example:
      >>> paths("^W1$", "^W2$").resolve({"W1": 0, "b1": 0, "W2": 0})
      {'W1': True, 'W2': True, 'b1': False}
    """
    return Mask("all", tuple(patterns), tuple(exclude))


def names(*leaf_names: str) -> Mask:
    """A :class:`Mask` of the parameters whose last path component is one of ``leaf_names``.

    Seed 004's param group ``[W1, W2]`` is ``names("W1", "W2")``.
    """
    return paths(*(f"(^|/){re.escape(n)}$" for n in leaf_names))


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """The optimizer as data: jaxreg's torch-exact optax optimizers and their torch twins.

    ``kind`` picks :func:`jaxreg.torch_sgd` / :func:`jaxreg.torch_adam` /
    :func:`jaxreg.torch_adamw` on the JAX side and ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` on
    the torch side; weight decay (coupled for SGD and Adam, decoupled for AdamW) applies to the
    parameters ``decay_mask`` selects: in torch, one param group with ``weight_decay`` and one
    without. ``lr`` and ``weight_decay`` are the defaults of the traced hyperparameters of the
    same names (a :class:`Variant` may override them without recompiling).

    Attributes:
      kind: ``"sgd"``, ``"adam"`` or ``"adamw"``.
      lr: learning rate (> 0).
      weight_decay: decay strength (>= 0).
      momentum: SGD momentum (static).
      betas: Adam betas.
      eps: Adam epsilon.
      decay_mask: which parameters decay (a :class:`Mask`).

    Example:
      >>> Optimizer("adamw", lr=1e-3, weight_decay=0.01).decay_mask == WEIGHTS
      True
    """

    kind: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decay_mask: Mask = WEIGHTS

    def __post_init__(self):
        _check_choice("Optimizer.kind", self.kind, OPTIMIZERS)
        _check_number("Optimizer.lr", self.lr, strict=True)
        _check_number("Optimizer.weight_decay", self.weight_decay)
        _check_number("Optimizer.momentum", self.momentum)
        _check_number("Optimizer.eps", self.eps)
        if len(tuple(self.betas)) != 2:
            raise ValueError(f"Optimizer.betas={self.betas!r}: expected a pair (beta1, beta2)")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if not isinstance(self.decay_mask, Mask):
            raise ValueError(f"Optimizer.decay_mask={self.decay_mask!r}: expected a spec.Mask")


@dataclasses.dataclass(frozen=True)
class Penalty:
    """A weight penalty added to the loss, as data.

    ``strength * penalty(params selected by mask)``; the strength is the traced hyperparameter
    ``"l1"`` (kind ``"l1"``) or ``"l2"`` (the L2 kinds), so a variant or a sweep may change it
    without recompiling. The torch side adds the same term (:mod:`jaxreg.torch_ref.penalties`).

    Attributes:
      kind: ``"l1"`` (sum |w|, :func:`jaxreg.l1_penalty`), ``"l2"`` (0.5 sum w^2), ``"l2_mean"``
        (seed 004's ``(w**2).mean() / 2`` per tensor, summed) or ``"l2_norm"`` (seed 000's sum
        of per-tensor L2 norms).
      strength: lambda (>= 0).
      mask: which parameters it sees.

    Example:
      >>> Penalty("l1", 1e-4, paths("^conv1/kernel$")).hparam
      'l1'
    """

    kind: str
    strength: float = 0.0
    mask: Mask = WEIGHTS

    def __post_init__(self):
        _check_choice("Penalty.kind", self.kind, PENALTY_KINDS)
        _check_number("Penalty.strength", self.strength)
        if not isinstance(self.mask, Mask):
            raise ValueError(f"Penalty.mask={self.mask!r}: expected a spec.Mask")

    @property
    def hparam(self) -> str:
        """The traced hyperparameter holding the strength: ``"l1"`` or ``"l2"``."""
        return "l1" if self.kind == "l1" else "l2"


@dataclasses.dataclass(frozen=True)
class Activity:
    """An activation penalty on one of the model's extra outputs (seed 001).

    The model returns ``(outputs, act_1, act_2, ...)``; ``index`` picks ``act_index``.

    Attributes:
      kind: ``"l1"`` (strength ``act_l1``), ``"l2"`` or ``"l2_norm"`` (strength ``act_l2``).
      index: position in the model's output tuple (>= 1).
      strength: lambda (>= 0).
    """

    kind: str
    index: int
    strength: float = 0.0

    def __post_init__(self):
        _check_choice("Activity.kind", self.kind, ACTIVITY_KINDS)
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 1:
            raise ValueError(f"Activity.index={self.index!r}: expected an int >= 1")
        _check_number("Activity.strength", self.strength)

    @property
    def hparam(self) -> str:
        """``"act_l1"`` or ``"act_l2"``."""
        return "act_l1" if self.kind == "l1" else "act_l2"


@dataclasses.dataclass(frozen=True)
class Data:
    """Where the training data come from.

    Attributes:
      source: ``"fashion_mnist"`` (the IDX files of :func:`jaxreg.lab.data.load_fashion_mnist`).
      layout: ``"flat"`` (``[N, 784]``), ``"nhwc"`` (``[N, 28, 28, 1]``, Flax convolutions) or
        ``"nchw"`` (``[N, 1, 28, 28]``, torch convolutions). The torch side gets the same
        arrays unless ``torch_layout`` says otherwise.
      torch_layout: the torch side's layout (None: ``layout``); ``"nchw"`` with ``layout="nhwc"``
        is the usual pair for a CNN.
      train_size: the first N training examples (None: all).
      test_size: the first N test examples (None: all).
      validation: examples held out of training as a validation split.
      data_dir: the IDX folder (None: the default, see ``load_fashion_mnist``).

    Example:
      >>> Data(layout="nhwc", torch_layout="nchw", train_size=512).torch_layout
      'nchw'
    """

    source: str = "fashion_mnist"
    layout: str = "flat"
    torch_layout: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    validation: int = 0
    data_dir: str | None = None

    def __post_init__(self):
        _check_choice("Data.source", self.source, DATA_SOURCES)
        _check_choice("Data.layout", self.layout, LAYOUTS)
        if self.torch_layout is not None:
            _check_choice("Data.torch_layout", self.torch_layout, LAYOUTS)
        for field in ("train_size", "test_size"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Data.{field}={value!r}: expected None or an int >= 1")
        if not isinstance(self.validation, int) or self.validation < 0:
            raise ValueError(f"Data.validation={self.validation!r}: expected an int >= 0")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One configuration of a spec: traced overrides, or other models.

    Attributes:
      name: the variant's label (rows, plots, files).
      hparams: traced hyperparameters overriding the spec's (``lr``, ``weight_decay``, ``l1``,
        ``l2``, ``act_l1``, ``act_l2``, ``max_norm`` or a name the model declares): variants
        differing only here share one compiled program.
      model: a Flax model replacing the spec's (None: the spec's).
      torch_model: a zero-argument torch factory replacing the spec's (None: the spec's).
      meta: recipe data (e.g. ``{"seed_figure": 0.841}``), never read by the runner.
    """

    name: str
    hparams: Mapping[str, float] = dataclasses.field(default_factory=dict)
    model: Any = None
    torch_model: Callable[[], Any] | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Variant.name={self.name!r}: expected a non-empty string")
        object.__setattr__(self, "hparams", _frozen_mapping(self.hparams))
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))


DEFAULT_VARIANT = "default"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One experiment: both models and everything else as data (see the module docstring).

    Attributes:
      name: the experiment's name.
      model: the Flax model: a ``flax.linen.Module`` instance, or an NNX module class or
        factory (called with the NNX constructor's keywords and ``rngs=``; wrapped by
        :func:`linen_model`).
      torch_model: a zero-argument factory returning the torch twin (its ``state_dict`` keys
        are what :mod:`jaxreg.convert` maps the Flax parameters onto), or None (JAX only).
      model_kwargs: keywords of an NNX model's constructor (ignored for a Linen module).
      loss: ``"cross_entropy"``, ``"nll"``, ``"mse"`` or ``"bce"`` (means over the batch).
      optimizer: an :class:`Optimizer`.
      penalties: the weight penalty (:class:`Penalty`): none or one (the engine adds one
        penalty term per run, with one traced strength).
      activity: activation penalties (:class:`Activity`).
      data: a :class:`Data`, or a zero-argument callable returning a dataset (a
        :class:`jaxreg.lab.data.FashionMNIST`-like tuple or a dict with ``x_train, y_train``
        and optionally ``x_test, y_test``).
      hparams: the traced hyperparameters the model declares, ``attribute name -> value``: the
        engine sets those attributes of the model (for an NNX model: those constructor
        keywords) to traced scalars.
      variants: the configurations to run (default: one named ``"default"``).
      seeds: the seeds to run.
      epochs: passes over the training set.
      batch_size: minibatch size (None: full batch).
      dtype: ``"float32"`` or ``"float64"``.
      max_norm: None, or a max-norm bound on the weights after every step.
      eval_every: evaluate after every ``eval_every``-th epoch (and the last).
      options: further :class:`jaxreg.lab.config.TrainConfig` fields (``shuffle``,
        ``drop_last``, ``eval_dropout_active``, ``snapshot_every``, ``loop``, ...).
      notes: lines for the report.
      plots: per-epoch metrics the learning-curve plot shows.
      meta: recipe data the runner never reads (seed labels, figures, ...).

    Example:
      >>> from jaxreg.models import DropoutMLP
      >>> spec = Spec("mine", DropoutMLP(), hparams={"dropout1": 0.2, "dropout2": 0.5})
      >>> [v.name for v in spec.variants], spec.optimizer.kind
      (['default'], 'sgd')
    """

    name: str
    model: Any
    torch_model: Callable[[], Any] | None = None
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    loss: str = "cross_entropy"
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    penalties: tuple[Penalty, ...] = ()
    activity: tuple[Activity, ...] = ()
    data: Data | Callable[[], Any] = dataclasses.field(default_factory=Data)
    hparams: Mapping[str, float] = dataclasses.field(default_factory=dict)
    variants: tuple[Variant, ...] = (Variant(DEFAULT_VARIANT),)
    seeds: tuple[int, ...] = (0,)
    epochs: int = 10
    batch_size: int | None = 256
    dtype: str = "float32"
    max_norm: float | None = None
    eval_every: int = 1
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    plots: tuple[str, ...] = ("train_loss", "train_acc", "test_acc")
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Spec.name={self.name!r}: expected a non-empty string")
        _check_choice("Spec.loss", self.loss, LOSSES)
        _check_choice("Spec.dtype", self.dtype, DTYPES)
        if not isinstance(self.optimizer, Optimizer):
            raise ValueError(f"Spec.optimizer={self.optimizer!r}: expected a spec.Optimizer")
        for field, cls in (("penalties", Penalty), ("activity", Activity), ("variants", Variant)):
            items = tuple(getattr(self, field))
            bad = [item for item in items if not isinstance(item, cls)]
            if bad:
                raise ValueError(f"Spec.{field}: {bad[0]!r} is not a spec.{cls.__name__}")
            object.__setattr__(self, field, items)
        if len(self.penalties) > 1:
            raise ValueError(
                f"Spec.penalties: {[p.kind for p in self.penalties]}: at most one weight penalty "
                "(the engine adds one penalty term per run, with one traced strength)"
            )
        if not self.variants:
            raise ValueError("Spec.variants: expected at least one Variant")
        labels = [v.name for v in self.variants]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Spec.variants: duplicate names in {labels}")
        if not isinstance(self.data, Data) and not callable(self.data):
            raise ValueError(f"Spec.data={self.data!r}: expected a spec.Data or a callable")
        if self.torch_model is not None and not callable(self.torch_model):
            raise ValueError(f"Spec.torch_model={self.torch_model!r}: expected a callable")
        clash = sorted(set(self.hparams) & set(LIBRARY_HPARAMS))
        if clash:
            raise ValueError(
                f"Spec.hparams: {clash} are the runner's own hyperparameters (set them through "
                f"optimizer / penalties / max_norm); model attributes only"
            )
        seeds = tuple(self.seeds)
        if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
            raise ValueError(f"Spec.seeds={self.seeds!r}: expected a non-empty tuple of ints")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Spec.epochs={self.epochs!r}: expected an int >= 1")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ValueError(f"Spec.batch_size={self.batch_size!r}: expected None or an int >= 1")
        for field in ("model_kwargs", "hparams", "options", "meta"):
            object.__setattr__(self, field, _frozen_mapping(getattr(self, field)))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "plots", tuple(self.plots))

    def variant(self, name: str | None = None) -> Variant:
        """The variant named ``name`` (None: the first).

        Raises:
          ValueError: no such variant (the message lists them).
        """
        if name is None:
            return self.variants[0]
        for v in self.variants:
            if v.name == name:
                return v
        raise ValueError(
            f"variant {name!r} is not one of spec {self.name!r}'s: "
            f"{', '.join(v.name for v in self.variants)}"
        )

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields changed (``dataclasses.replace``), validated again."""
        return dataclasses.replace(self, **changes)

    def traced_hparams(self, variant: str | Variant | None = None) -> dict[str, float]:
        """Every traced hyperparameter of ``variant`` with its value.

        ``lr`` and ``weight_decay`` (the optimizer's), the penalties' and activity penalties'
        strengths, ``max_norm`` when set, the model's declared ``hparams``; then the variant's
        overrides. A variant naming a hyperparameter the spec does not have is an error.

        Example:
          >>> Spec("s", None, hparams={"p": 0.1}).traced_hparams()
          {'lr': 0.1, 'weight_decay': 0.0, 'p': 0.1}
        """
        v = variant if isinstance(variant, Variant) else self.variant(variant)
        values: dict[str, float] = {
            "lr": self.optimizer.lr,
            "weight_decay": self.optimizer.weight_decay,
        }
        for p in self.penalties:
            values[p.hparam] = p.strength
        for a in self.activity:
            values[a.hparam] = a.strength
        if self.max_norm is not None:
            values["max_norm"] = self.max_norm
        values.update(self.hparams)
        unknown = sorted(set(v.hparams) - set(values))
        if unknown:
            raise ValueError(
                f"variant {v.name!r}: hyperparameters {unknown} are not the spec's; it has "
                f"{', '.join(values)}"
            )
        values.update(v.hparams)
        return values


def linen_model(model: Any, model_kwargs: Mapping[str, Any] | None = None) -> Any:
    """The Linen module the engine trains: ``model`` itself, or an NNX model wrapped.

    An NNX module class (or any factory taking the constructor keywords and ``rngs=``) becomes
    ``flax.nnx.bridge.ToLinen(model, kwargs=model_kwargs)``: its parameters are created from
    the engine's init key, its ``nnx.Rngs`` get the engine's per-step ``dropout`` key, and its
    declared hyperparameters are constructor keywords (set traced at every call).

    Raises:
      ValueError: ``model`` is neither a Linen module nor callable.

    Example:
      >>> import flax.linen as nn
      >>> linen_model(nn.Dense(3)).features
      3
    """
    import flax.linen as nn

    if isinstance(model, nn.Module):
        return model
    from flax import nnx

    if isinstance(model, nnx.Module):
        raise ValueError(
            f"model={type(model).__name__}(...): an NNX module INSTANCE owns its parameters; "
            "pass its class (or a factory taking rngs=) so each seed initializes its own"
        )
    if not callable(model):
        raise ValueError(
            f"model={model!r}: expected a flax.linen.Module, or an NNX module class / factory"
        )
    from flax.core import FrozenDict
    from flax.nnx import bridge

    return bridge.ToLinen(model, kwargs=FrozenDict(dict(model_kwargs or {})))


def plain(value: Any) -> Any:
    """A spec (or any part of one) as JSON-able data, for ``config.json``.

    Dataclasses become dicts of their fields, models and callables their ``repr`` or qualified
    name, masks their fields.

    Example:
      >>> plain(Optimizer("adamw", lr=1e-3))["decay_mask"]
      {'base': 'weights_only', 'include': ['.*'], 'exclude': []}
    """
    if _is_module(value):
        return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if callable(value):
        func = getattr(value, "func", value)  # functools.partial: name the function it wraps
        name = getattr(func, "__qualname__", None) or repr(func)
        keywords = getattr(value, "keywords", None)
        return f"{name}(**{dict(keywords)!r})" if keywords else name
    return repr(value)


def _is_module(value: Any) -> bool:
    import flax.linen as nn

    return isinstance(value, nn.Module)

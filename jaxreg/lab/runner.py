"""The one runner: a :class:`jaxreg.lab.spec.Spec` trained in JAX and in PyTorch.

The JAX side is the engine (:func:`jaxreg.lab.engine.make_train` on the
:class:`jaxreg.lab.config.TrainConfig` that :func:`train_config` builds from the spec). The torch
side is DERIVED from the same spec, never written per experiment (:mod:`jaxreg.lab.torch_side`:
the twin loaded with the JAX initialization, the ``torch.optim`` optimizer with param groups
from the decay mask, the penalty terms), and trained by the one torch loop
(:func:`jaxreg.torch_ref.engine.train_classifier`, which a matched run feeds the shared streams).

Results are plain data: one :class:`Run` per (variant, framework, seed) with its per-epoch
history, its per-step losses (``step_loss``, ``[epochs, steps]``, the data loss of each step
before its update) and its final parameters, gathered in one :class:`Results` store.

Example (the weight-decay experiment, both frameworks, 2 epochs)::

    from jaxreg.lab import runner
    from jaxreg.lab.recipes import load_config
    results = runner.run(load_config("weight-decay"), epochs=2)
    results.histories("l2-penalty", "torch")[0]["test_acc"]

PyTorch equivalent: a hand-written training script per model, twice (one per framework).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxreg.lab import spec as spec_mod
from jaxreg.lab.spec import Spec, Variant
from jaxreg.lab.torch_side import (  # the torch side's derivation, re-exported here
    torch_activity,
    torch_optimizer,
    torch_penalty,
    torch_selection,
    torch_twin,
)

FRAMEWORKS = ("jax", "torch")


@dataclasses.dataclass
class Run:
    """One trained (variant, framework, seed): plain data.

    Attributes:
      variant: the variant's name.
      framework: ``"jax"`` or ``"torch"``.
      seed: the seed (JAX key ``jax.random.key(seed)``; torch's generator and global RNG).
      dtype: ``"float32"`` or ``"float64"``.
      matched: whether the run consumed shared streams.
      history: ``{metric: [value per epoch]}`` (``jaxreg.lab.config.EPOCH_METRICS`` and, for
        torch, ``epoch_time``).
      step_loss: ``[epochs, steps]`` float64 array of each step's data loss before its update,
        or None when the run did not record it.
      step_objective: the same for the objective (loss plus penalties).
      params: the final parameters (JAX: a pytree of NumPy arrays; torch: a ``state_dict`` of
        NumPy arrays), or None.
      wall_s: seconds training took (compilation excluded), None when not timed.
      compile_s: JAX compilation seconds (None for torch).
      extra: what else the side returned (the JAX ``TrainResult``; the torch twin), not data.
    """

    variant: str
    framework: str
    seed: int
    dtype: str
    matched: bool
    history: dict[str, list[float]]
    step_loss: np.ndarray | None = None
    step_objective: np.ndarray | None = None
    params: Any = None
    wall_s: float | None = None
    compile_s: float | None = None
    extra: Any = dataclasses.field(default=None, repr=False, compare=False)


class Results:
    """The one store of a spec's runs: add, select, read histories.

    Example:
      >>> r = Results()
      >>> r.add(Run("a", "jax", 0, "float32", False, {"train_loss": [1.0]}))
      >>> r.histories("a", "jax")
      [{'train_loss': [1.0]}]
    """

    def __init__(self, runs: Iterable[Run] = ()):
        self.runs: list[Run] = list(runs)

    def add(self, run: Run) -> None:
        """Stores one run."""
        self.runs.append(run)

    def extend(self, runs: Iterable[Run]) -> None:
        """Stores several runs."""
        self.runs.extend(runs)

    def select(
        self,
        variant: str | None = None,
        framework: str | None = None,
        *,
        seed: int | None = None,
    ) -> list[Run]:
        """The runs matching every given field, in the order they were added."""
        return [
            r
            for r in self.runs
            if (variant is None or r.variant == variant)
            and (framework is None or r.framework == framework)
            and (seed is None or r.seed == seed)
        ]

    def histories(self, variant: str, framework: str) -> list[dict]:
        """Per-seed histories of one (variant, framework)."""
        return [r.history for r in self.select(variant, framework)]

    def variants(self) -> list[str]:
        """The variants present, in order of first appearance."""
        return list(dict.fromkeys(r.variant for r in self.runs))

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)


# ----- the JAX side ----------------------------------------------------------------------------


def train_config(
    spec: Spec,
    variant: str | Variant | None = None,
    *,
    epochs: int | None = None,
    dtype: str | None = None,
    **options: Any,
):
    """The engine's :class:`jaxreg.lab.config.TrainConfig` of one variant of ``spec``.

    Args:
      spec: the experiment.
      variant: a variant (or its name); None: the first.
      epochs: overrides ``spec.epochs``.
      dtype: overrides ``spec.dtype``.
      **options: further ``TrainConfig`` fields overriding ``spec.options`` (e.g.
        ``eval_dropout_active=True``).

    Returns:
      A ``TrainConfig``.

    Raises:
      ValueError: an invalid ``TrainConfig`` field.

    Example:
      >>> from jaxreg.lab.recipes import load_config
      >>> train_config(load_config("weight-decay")).penalty
      'l2_mean'
    """
    from jaxreg.lab.config import TrainConfig

    v = variant if isinstance(variant, Variant) else spec.variant(variant)
    model = spec_mod.linen_model(v.model if v.model is not None else spec.model, spec.model_kwargs)
    fields: dict[str, Any] = {
        "model": model,
        "loss": spec.loss,
        "optimizer": spec.optimizer.kind,
        "lr": spec.optimizer.lr,
        "momentum": spec.optimizer.momentum,
        "betas": spec.optimizer.betas,
        "eps": spec.optimizer.eps,
        "batch_size": spec.batch_size,
        "epochs": int(epochs or spec.epochs),
        "decay_mask": spec.optimizer.decay_mask,
        "activity": tuple((a.kind, a.index) for a in spec.activity),
        "eval_every": spec.eval_every,
        "max_norm": spec.max_norm,
        "dtype": dtype or spec.dtype,
        "model_hparams": tuple(spec.hparams) if spec.hparams else None,
    }
    if spec.penalties:
        penalty = spec.penalties[0]
        fields.update(penalty=penalty.kind, penalty_mask=penalty.mask)
    fields.update(spec.options)
    fields.update(options)
    return TrainConfig(**fields)


class JaxRunner:
    """Runs engine trainings ahead-of-time compiled, timing compilation and run apart.

    A compiled function is cached per (``Train``, initial-state structure), so variants that
    differ only in traced hyperparameters (weight-decay's three runs) compile once.
    """

    def __init__(self):
        self._cache: dict[Any, Any] = {}

    def run(self, train, key, hparams=None, init_state=None):
        """Returns ``(TrainResult, run seconds, compile seconds)`` of ``train(key, hparams)``."""
        import jax

        from jaxreg.lab import timing

        hp = train.normalize_hparams(hparams)
        args = (train.data, key, hp, init_state)
        cache_key = (id(train), jax.tree.structure(init_state))
        compile_s = 0.0
        if cache_key not in self._cache:
            self._cache[cache_key], compile_s = timing.compile_and_time(train.pure, *args)
        result, wall = timing.timed_call(self._cache[cache_key], *args)
        return result, wall, compile_s

    def run_seeds(self, train, seeds, hparams=None):
        """One compiled program over ``seeds``: ``(per-seed TrainResults, run s, compile s)``.

        ``jax.vmap(train.pure)`` over the seeds' keys (data and hyperparameters shared), as
        ``jaxreg sweep`` does; one seed is the plain :meth:`run`, so a single-seed run is
        unchanged by the multi-seed path.
        """
        import jax
        import jax.numpy as jnp

        from jaxreg.lab import timing

        if len(seeds) == 1:
            result, wall, compile_s = self.run(train, jax.random.key(seeds[0]), hparams)
            return [result], wall, compile_s
        hp = train.normalize_hparams(hparams)
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
        args = (train.data, keys, hp, None)
        cache_key = (id(train), "seeds", len(seeds))
        compile_s = 0.0
        if cache_key not in self._cache:
            batched = jax.vmap(train.pure, in_axes=(None, 0, None, None))
            self._cache[cache_key], compile_s = timing.compile_and_time(batched, *args)
        stacked, wall = timing.timed_call(self._cache[cache_key], *args)
        results = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(len(seeds))]
        return results, wall, compile_s


def history(result) -> dict[str, list[float]]:
    """Per-epoch metrics of a ``TrainResult`` as lists (scalars and per-step arrays dropped)."""
    out = {}
    for name, value in result.metrics.items():
        value = np.asarray(value)
        if value.ndim == 1:
            out[name] = value.astype(float).tolist()
    return out


def _steps(metrics: Mapping[str, Any], name: str) -> np.ndarray | None:
    value = metrics.get(name)
    return None if value is None else np.asarray(value, np.float64)


# ----- the data --------------------------------------------------------------------------------


@dataclasses.dataclass
class Datasets:
    """The arrays of a run: the JAX side's and the torch side's (another layout, same data)."""

    jax: Any
    torch: Any


def load_data(
    spec: Spec,
    *,
    data_dir: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Datasets:
    """The spec's data for both sides (command-line limits override the spec's).

    Args:
      spec: the experiment.
      data_dir: the Fashion-MNIST folder, overriding ``spec.data.data_dir``.
      train_size: the first N training examples, overriding the spec's.
      test_size: the first N test examples, overriding the spec's.

    Returns:
      :class:`Datasets`: a dataset per side (the same object when the layouts agree).
    """
    from jaxreg.lab import data as data_mod

    if callable(spec.data) and not isinstance(spec.data, spec_mod.Data):
        dataset = spec.data()
        return Datasets(dataset, dataset)
    d = spec.data

    def load(layout):
        kwargs = {"layout": layout} if layout != "flat" else {}
        return data_mod.load_fashion_mnist(
            data_dir if data_dir is not None else d.data_dir,
            train_size=train_size if train_size is not None else d.train_size,
            test_size=test_size if test_size is not None else d.test_size,
            validation=d.validation,
            **kwargs,
        )

    jax_data = load(d.layout)
    torch_layout = d.torch_layout or d.layout
    return Datasets(jax_data, jax_data if torch_layout == d.layout else load(torch_layout))


def split(dataset: Any, name: str) -> tuple[Any, Any] | None:
    """``(x, y)`` of split ``name`` (``"train"``, ``"test"``, ``"val"``) of any dataset form.

    A :class:`jaxreg.lab.data.FashionMNIST`-like named tuple, a dict with ``x_<name>`` /
    ``y_<name>``, or a plain ``(x_train, y_train, x_test, y_test)`` tuple; None when the split
    is absent.

    Example:
      >>> split({"x_train": [1], "y_train": [0]}, "train"), split({}, "test")
      (([1], [0]), None)
    """
    if isinstance(dataset, Mapping):
        x, y = dataset.get("x_" + name), dataset.get("y_" + name)
    elif isinstance(dataset, tuple) and not hasattr(dataset, "_fields"):
        pairs = {"train": (0, 1), "test": (2, 3)}.get(name)
        x = y = None
        if pairs is not None and len(dataset) > pairs[1]:
            x, y = dataset[pairs[0]], dataset[pairs[1]]
    else:
        x, y = getattr(dataset, "x_" + name, None), getattr(dataset, "y_" + name, None)
    return None if x is None else (x, y)


# ----- the torch side, derived from the spec ---------------------------------------------------


class Runner:
    """Trains the variants of one spec in both frameworks on one data set.

    Args:
      spec: the experiment.
      data: :class:`Datasets` (default: :func:`load_data` of the spec).
      epochs: overrides the spec's.
      dtype: overrides the spec's.
      progress: a tqdm-like object updated once per trained epoch, or None.
      options: ``TrainConfig`` fields for every variant (e.g. ``eval_dropout_active``).
    """

    def __init__(
        self,
        spec: Spec,
        data: Datasets | None = None,
        *,
        epochs: int | None = None,
        dtype: str | None = None,
        progress: Any = None,
        **options: Any,
    ):
        self.spec = spec
        self.data = data if data is not None else load_data(spec)
        self.epochs = int(epochs or spec.epochs)
        self.dtype = dtype or spec.dtype
        self.progress = progress
        self.options = options
        self.jax_runner = JaxRunner()
        self._trains: dict[Any, Any] = {}

    def variant(self, variant: str | Variant | None) -> Variant:
        return variant if isinstance(variant, Variant) else self.spec.variant(variant)

    def hparams(self, variant: str | Variant | None) -> dict[str, float]:
        """The variant's traced hyperparameters (:meth:`Spec.traced_hparams`)."""
        return self.spec.traced_hparams(self.variant(variant))

    def train(self, variant: str | Variant | None = None):
        """The engine's ``Train`` of a variant (one per distinct TrainConfig)."""
        from jaxreg.lab import engine

        v = self.variant(variant)
        config = train_config(self.spec, v, epochs=self.epochs, dtype=self.dtype, **self.options)
        key = repr(config)
        if key not in self._trains:
            self._trains[key] = engine.make_train(config, self.data.jax)
        return self._trains[key]

    def _tick(self, epochs: int) -> None:
        if self.progress is not None:
            self.progress.update(epochs)

    def run_jax(
        self,
        variant: str | Variant | None = None,
        seeds: Sequence[int] | None = None,
        *,
        init_state: Any = None,
        key_seed: int | None = None,
    ) -> list[Run]:
        """Trains a variant in JAX: one run per seed (vmapped over seeds in one program).

        Args:
          variant: a variant or its name.
          seeds: the seeds (default: the spec's).
          init_state: continue from this state or result (one seed: ``key_seed``'s key).
          key_seed: the seed of the key when continuing (default: the first seed).

        Returns:
          A list of :class:`Run` (``extra`` holds the ``TrainResult``).
        """
        import jax

        v = self.variant(variant)
        seeds = list(seeds if seeds is not None else self.spec.seeds)
        train = self.train(v)
        hp = self.hparams(v)
        if init_state is not None:
            seed = seeds[0] if key_seed is None else key_seed
            result, wall, compile_s = self.jax_runner.run(
                train, jax.random.key(seed), hp, init_state
            )
            results, seeds = [result], [seed]
        else:
            results, wall, compile_s = self.jax_runner.run_seeds(train, seeds, hp)
        self._tick(self.epochs * len(results))
        runs = []
        for seed, result in zip(seeds, results, strict=True):
            runs.append(
                Run(
                    v.name,
                    "jax",
                    seed,
                    train.config.dtype,
                    False,
                    history(result),
                    _steps(result.metrics, "step_loss"),
                    _steps(result.metrics, "step_objective"),
                    jax.device_get(result.params),
                    wall,
                    compile_s,
                    extra=result,
                )
            )
        return runs

    def run_torch(
        self,
        variant: str | Variant | None = None,
        seeds: Sequence[int] | None = None,
        *,
        matched: bool = False,
        streams: Callable[[Any, int, Any], Any] | None = None,
        nets: dict | None = None,
        seed_offset: int = 0,
        on_epoch: Callable[[Any, int, dict], None] | None = None,
    ) -> list[Run]:
        """Trains a variant in torch, derived from the spec: one run per seed, in turn.

        Each seed's twin starts from that seed's JAX initialization. With ``matched``, the
        batches and every random draw follow the JAX run's
        (:class:`jaxreg.lab.matched.MatchedStreams`).

        Args:
          variant: a variant or its name.
          seeds: the seeds (default: the spec's).
          matched: share the JAX run's streams.
          streams: ``streams(train, seed, hparams) -> MatchedStreams`` replacing the default
            (a continued run's streams start later).
          nets: a dict to keep each seed's twin in and continue it on a later call (a seed
            quirk: ``--faithful`` weight decay trains one network through its variants).
          seed_offset: added to the torch seed (generator and global RNG).
          on_epoch: ``on_epoch(net, epoch, metrics)`` after every epoch (e.g. to record the
            twin's predictions).

        Returns:
          A list of :class:`Run`, one per seed.
        """
        import jax

        v = self.variant(variant)
        seeds = list(seeds if seeds is not None else self.spec.seeds)
        train = self.train(v)
        hp = self.hparams(v)
        spec = self.spec
        runs = []
        for seed in seeds:
            key = jax.random.key(seed)
            shared = None
            if matched:
                if streams is not None:
                    shared = streams(train, seed, hp)
                else:
                    from jaxreg.lab import matched as matched_mod

                    shared = matched_mod.MatchedStreams(train, key, hp)
            params = train.init(key).params
            start = time.perf_counter()
            if nets is not None and seed in nets:
                net = nets[seed]
            else:
                net = torch_twin(spec, v, params, self.dtype)
                if nets is not None:
                    nets[seed] = net
            hook = None
            if on_epoch is not None:

                def hook(epoch, metrics, net=net):
                    on_epoch(net, epoch, metrics)

            hist = self._torch_train(net, hp, params, seed + seed_offset, shared, train, hook)
            wall = time.perf_counter() - start
            step, step_objective = hist.pop("step_loss"), hist.pop("step_objective")
            runs.append(
                Run(
                    v.name,
                    "torch",
                    seed,
                    self.dtype,
                    shared is not None,
                    hist,
                    np.asarray(step, np.float64),
                    np.asarray(step_objective, np.float64),
                    {k: t.detach().cpu().numpy() for k, t in net.state_dict().items()},
                    wall,
                    None,
                    extra=net,
                )
            )
            self._tick(self.epochs)
        return runs

    def _torch_train(self, net, hp, params, seed, streams, train, on_epoch=None):
        import torch

        from jaxreg.torch_ref import engine as torch_engine

        spec, cfg = self.spec, train.config
        x_train, y_train = split(self.data.torch, "train")
        test = split(self.data.torch, "test")
        weight_names = torch_selection(net, spec.optimizer.decay_mask, params)
        return torch_engine.train_classifier(
            net,
            torch_optimizer(spec, net, hp, params),
            (x_train, y_train),
            test,
            epochs=self.epochs,
            batch_size=spec.batch_size or len(x_train),
            seed=seed,
            penalty=torch_penalty(spec, net, hp, params),
            eval_dropout=cfg.eval_dropout_active,
            drop_last=cfg.drop_last,
            matched=streams,
            dtype=torch.float64 if self.dtype == "float64" else torch.float32,
            loss=spec.loss,
            weight_names=weight_names,
            activity=torch_activity(spec, hp),
            shuffle=cfg.shuffle,
            eval_every=cfg.eval_every,
            on_epoch=on_epoch,
        )


def run_jax(spec: Spec, variant: str | None = None, seeds: Sequence[int] | None = None, **kw):
    """The JAX runs of one variant: ``Runner(spec, **kw).run_jax(variant, seeds)``.

    ``kw``: :class:`Runner`'s keywords (``data``, ``epochs``, ``dtype``, ``progress``, and
    ``TrainConfig`` fields).
    """
    return Runner(spec, **kw).run_jax(variant, seeds)


def run_torch(
    spec: Spec,
    variant: str | None = None,
    seeds: Sequence[int] | None = None,
    *,
    matched: bool = False,
    **kw,
):
    """The torch runs of one variant: ``Runner(spec, **kw).run_torch(variant, seeds, matched=)``.

    With ``matched``, the streams are those of the JAX run the spec describes (its engine
    ``Train`` is built, not trained).
    """
    return Runner(spec, **kw).run_torch(variant, seeds, matched=matched)


def run(
    spec: Spec,
    frameworks: Sequence[str] = FRAMEWORKS,
    *,
    matched: bool = False,
    dtype: str | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    variants: Sequence[str] | None = None,
    data: Datasets | None = None,
    progress: Any = None,
) -> Results:
    """Trains every variant of ``spec`` in each framework: the one entry point.

    Args:
      spec: the experiment (``get_config()`` of an experiment file).
      frameworks: any of ``"jax"``, ``"torch"``.
      matched: the torch runs consume the JAX runs' batch orders and random draws.
      dtype: overrides the spec's (``"float64"`` needs 64-bit JAX enabled first).
      seeds: overrides the spec's.
      epochs: overrides the spec's.
      variants: the variant names to run (default: all).
      data: preloaded :class:`Datasets`.
      progress: a tqdm-like object (one update per trained epoch).

    Returns:
      :class:`Results` with one :class:`Run` per (variant, framework, seed).

    Raises:
      ValueError: an unknown framework or variant, or ``matched`` without both frameworks'
        models.
    """
    bad = [f for f in frameworks if f not in FRAMEWORKS]
    if bad:
        raise ValueError(f"frameworks: {bad} unknown; allowed values are {FRAMEWORKS}")
    runner = Runner(spec, data, epochs=epochs, dtype=dtype, progress=progress)
    results = Results()
    chosen = [spec.variant(name) for name in variants] if variants else list(spec.variants)
    for v in chosen:
        if "jax" in frameworks:
            for r in runner.run_jax(v, seeds):
                r.matched = matched
                results.add(r)
        if "torch" in frameworks:
            for r in runner.run_torch(v, seeds, matched=matched):
                results.add(r)
    return results


def input_shape(spec: Spec) -> tuple[int, ...]:
    """The shape of one input example of ``spec`` (without the batch axis).

    Example:
      >>> from jaxreg.lab.spec import Data
      >>> input_shape(Spec("s", None, data=Data(layout="nhwc")))
      (28, 28, 1)
    """
    if isinstance(spec.data, spec_mod.Data):
        return {"flat": (784,), "nhwc": (28, 28, 1), "nchw": (1, 28, 28)}[spec.data.layout]
    x, _ = split(spec.data(), "train")
    return tuple(np.shape(x)[1:])


def seed_bytes(spec: Spec, dtype: str = "float32", test_size: int | None = None) -> int:
    """About how many bytes one seed of a vmapped JAX run of ``spec`` keeps live.

    Parameters, gradients and optimizer state (4 copies), a batch's inputs and activations (the
    sum of the layers' widths) and an evaluation chunk's activations: the estimate behind
    ``--seeds N``'s memory check.

    Example:
      >>> from jaxreg.lab.recipes import load_config
      >>> seed_bytes(load_config("weight-decay")) > 4 * 784 * 256
      True
    """
    import jax
    import jax.numpy as jnp

    from jaxreg.lab.config import call_kwargs

    model = spec_mod.linen_model(spec.variants[0].model or spec.model, spec.model_kwargs)
    shape = input_shape(spec)
    kwargs = {"deterministic": True} if "deterministic" in call_kwargs(model) else {}
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    shapes = jax.eval_shape(lambda: model.init(keys, jnp.zeros((1, *shape)), **kwargs))
    leaves = jax.tree.leaves(shapes)
    n_params = sum(leaf.size for leaf in leaves)
    widths = sum(leaf.shape[-1] for leaf in leaves if leaf.ndim >= 2) or 1
    inputs = int(np.prod(shape))
    batch = spec.batch_size or 1
    evaluated = min(2000, test_size or 10000)
    floats = 4 * n_params + 4 * batch * (widths + inputs) + 2 * evaluated * widths
    return floats * (8 if dtype == "float64" else 4)


# The older private name (callers outside this module: use split).
_split = split

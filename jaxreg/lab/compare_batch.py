"""One batch through a Flax model and its torch twin: outputs, loss and every gradient compared.

:func:`check_batch` loads the same weights into both models (:mod:`jaxreg.convert`), runs one
batch forward and backward on each side, dropout off and on (the masks the Flax forward draws,
replayed in torch: :mod:`jaxreg.lab.draws`, :mod:`jaxreg.torch_ref.replay`), in float32 and
float64, and compares the outputs, the loss, every parameter gradient and the gradient of the
input, each with its tolerance and the reason for it (:data:`TOLERANCES`). When a tensor differs
it names the first layer whose output differs (:mod:`jaxreg.lab.compare_layers`).

Errors are ``max |jax - torch|`` and that divided by ``max |torch|`` (the infinity-norm relative
error, as in the parity suite): an element-wise relative error would blow up at every entry that
happens to sit near zero.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.lab import compare_layers as layers

DTYPES = ("float32", "float64")
LOSSES = ("cross_entropy", "nll", "mse", "bce")


class Tolerance(NamedTuple):
    """A relative tolerance (``max abs / max |torch|``) and the reason for its size."""

    value: float
    why: str


TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "float32": {
        "outputs": Tolerance(
            1e-5,
            "float32 rounds each operation at ~6e-8; XLA and ATen sum the convolutions' and "
            "matmuls' products in different orders (x @ kernel against x @ W.T), so outputs "
            "and loss agree to ~1e-7..1e-6 on any CPU, never near 1e-5",
        ),
        "gradients": Tolerance(
            1e-4,
            "a float32 gradient is a batch sum of backward products whose terms cancel: a "
            "tensor's rounding error is relative to the sum of its terms' sizes, which can "
            "exceed its own largest entry by a factor of ~10-100 (observed <= 1e-6 of the max)",
        ),
    },
    "float64": {
        "outputs": Tolerance(
            1e-10,
            "float64 rounds at ~1e-16 per operation; sums of up to ~1e5 terms reduced in "
            "different orders stay below 1e-12: anything above 1e-10 is a different computation",
        ),
        "gradients": Tolerance(
            1e-10,
            "float64 as for the outputs: the same computation agrees to ~1e-13",
        ),
    },
}
"""Per dtype and tensor family, the tolerance of :func:`check_batch` and its reason."""


class MismatchError(AssertionError):
    """Raised by :meth:`BatchReport.raise_for_mismatch`; the message is the whole report."""


class TensorCheck(NamedTuple):
    """One compared tensor of one case (dtype, dropout)."""

    dtype: str
    dropout: bool
    tensor: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance


@dataclasses.dataclass
class BatchReport:
    """What :func:`check_batch` found: one row per tensor and case, the first differing layers.

    Attributes:
        rows: every compared tensor (:class:`TensorCheck`), by case.
        first_differences: ``(dtype, dropout) -> LayerDiff`` for each case with a mismatch whose
            first differing layer was found (None when no layer output differs beyond the
            tolerance though a gradient does: the backward pass alone differs).
        draws: ``(dtype, dropout) -> number of random draws shared`` for the dropout-on cases.
    """

    rows: list[TensorCheck]
    first_differences: dict[tuple[str, bool], layers.LayerDiff | None]
    draws: dict[tuple[str, bool], int]

    @property
    def ok(self) -> bool:
        """True when every tensor of every case is within its tolerance."""
        return all(row.ok for row in self.rows)

    def max_rel(self, dtype: str, tensor: str = "outputs", dropout: bool | None = None) -> float:
        """The largest relative error of ``tensor`` (``"outputs"``, ``"loss"``, ``"input"``,
        ``"gradients"`` for all parameter gradients, or one parameter's path) in ``dtype``."""
        rows = [
            r
            for r in self.rows
            if r.dtype == dtype
            and (dropout is None or r.dropout == dropout)
            and (r.tensor == tensor or tensor == "gradients" and r.tensor.startswith("grad "))
        ]
        if not rows:
            raise ValueError(f"tensor={tensor!r}, dtype={dtype!r}: no such row in the report")
        return max(r.max_rel for r in rows)

    def raise_for_mismatch(self) -> BatchReport:
        """Raises :class:`MismatchError` (with the report) unless :attr:`ok`; returns self."""
        if not self.ok:
            raise MismatchError(str(self))
        return self

    def __str__(self) -> str:
        lines = ["one-batch check, JAX against torch (rel = max abs / max |torch|)"]
        header = f"{'dtype':8} {'dropout':7} {'tensor':34} {'shape':16} {'max abs':>9} "
        header += f"{'max rel':>9} {'tol':>7}  ok"
        lines.append(header)
        for r in self.rows:
            shape = "x".join(map(str, r.shape)) or "scalar"
            lines.append(
                f"{r.dtype:8} {'on' if r.dropout else 'off':7} {r.tensor[:34]:34} {shape:16} "
                f"{r.max_abs:9.2e} {r.max_rel:9.2e} {r.tolerance:7.0e}  {'yes' if r.ok else 'NO'}"
            )
        for (dtype, _), n in sorted(self.draws.items()):
            lines.append(
                f"{dtype}, dropout on: {n} random draws captured in JAX, replayed in torch"
            )
        for (dtype, dropout), diff in sorted(self.first_differences.items()):
            case = f"{dtype}, dropout {'on' if dropout else 'off'}"
            if diff is None:
                lines.append(f"{case}: every layer output agrees; only the backward pass differs")
            else:
                lines.append(f"{case}: {diff}")
        for dtype in sorted({r.dtype for r in self.rows}):
            for family, tol in TOLERANCES[dtype].items():
                lines.append(f"tolerance {dtype} {family} {tol.value:g}: {tol.why}")
        lines.append("result: " + ("every tensor within its tolerance" if self.ok else "MISMATCH"))
        return "\n".join(lines)


# ---- the two sides -------------------------------------------------------------------------------
def _is_nnx(model: Any) -> bool:
    from flax import nnx

    return isinstance(model, nnx.Module)


def _mode_kwargs(model: Any, train: bool) -> dict[str, Any]:
    params = inspect.signature(type(model).__call__).parameters
    if "deterministic" in params:
        return {"deterministic": not train}
    if "train" in params:
        return {"train": train}
    if train:
        raise ValueError(
            f"dropout=True: {type(model).__name__}.__call__ takes neither `deterministic` nor "
            "`train`, so dropout cannot be switched on; pass dropout=(False,)"
        )
    return {}


def _jax_loss(kind: str) -> Callable:
    from jaxreg.lab import objective

    # The engine's own per-example losses, so the check and the runner train the same thing.
    return lambda out, y: jnp.mean(objective.example_loss(kind, out, y)[0])


def _torch_loss(kind: str) -> Callable:
    import torch.nn.functional as F

    def loss(out, y):
        if kind == "cross_entropy":
            return F.cross_entropy(out, y)
        if kind == "nll":
            return F.nll_loss(out, y)
        target = y.reshape(out.shape).to(out.dtype)
        return F.mse_loss(out, target) if kind == "mse" else F.binary_cross_entropy(out, target)

    return loss


def _check_loss(loss: Any) -> tuple[Callable, Callable]:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: allowed values are {LOSSES} or a (jax, torch) pair")
        return _jax_loss(loss), _torch_loss(loss)
    if isinstance(loss, tuple) and len(loss) == 2 and all(map(callable, loss)):
        return loss
    raise ValueError(
        f"loss={loss!r}: allowed values are {LOSSES} or a (jax_fn, torch_fn) pair of callables "
        "loss(outputs, labels) -> scalar"
    )


class _FlaxSide:
    """The Flax model as pure functions of ``(params, x)``, Linen or NNX alike."""

    def __init__(self, model: Any, variables: Any):
        self.model = model
        self.nnx = _is_nnx(model)
        if self.nnx:
            from flax import nnx

            graphdef, params, rest = nnx.split(model, nnx.Param, ...)
            self._graphdef, self._rest, self._rest_given = graphdef, rest, rest
            self.params = nnx.to_pure_dict(params)
            self._template = params
            if variables is not None:
                self.params = _inner(variables)
        else:
            if variables is None:
                raise ValueError(
                    "variables_or_params=None: a Linen model needs its variables (model.init) "
                    "or its params; only an NNX model holds its own weights"
                )
            self.params = _inner(variables)

    def set_dtype(self, dtype: str) -> None:
        """Casts an NNX model's non-parameter floats (traced rates) to ``dtype``.

        A rate built as a float32 ``Hyperparameter`` (0.3 -> 0.30000001192...) would scale a
        float64 run's survivors by another 1 / keep than torch's double ``p``: a scalar is
        recovered from its shortest decimal form, the number the model was built with.
        """
        if not self.nnx:
            return

        def cast(value):
            value = jnp.asarray(value)
            if not jnp.issubdtype(value.dtype, jnp.floating):
                return value
            if value.ndim == 0 and value.dtype == jnp.float32:
                return jnp.asarray(float(str(np.float32(value))), dtype)
            return value.astype(dtype)

        self._rest = jax.tree.map(cast, self._rest_given)

    def _merge(self, params):
        from flax import nnx

        # Fresh copies: merging the same Variables inside a jax trace would mutate (the rng
        # counts) objects created outside it, and every call starts from the same rng state.
        state = jax.tree.map(lambda x: x, self._template)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self._graphdef, state, jax.tree.map(lambda x: x, self._rest))

    def call(self, params, x, train: bool, key):
        """The model's output; ``key`` seeds the dropout stream (Linen) when ``train``."""
        if self.nnx:
            model = self._merge(params)
            model.train() if train else model.eval()
            return model(x)
        kwargs = _mode_kwargs(self.model, train)
        rngs = {"dropout": key} if train else {}
        return self.model.apply({"params": params}, x, rngs=rngs, **kwargs)

    def draws(self, params, x, key) -> list:
        from jaxreg.lab import draws

        if self.nnx:
            model = self._merge(params)
            model.train()
            return draws.capture_draws_nnx(model, x)
        kwargs = _mode_kwargs(self.model, True)
        found: list = []

        def values(params, x, key):
            found[:] = draws.capture_draws(
                self.model.apply, {"params": params}, x, rngs={"dropout": key}, **kwargs
            )
            return [d.value for d in found]

        # One compiled capture instead of one compilation per eager operation (the draws are
        # the same: same keys, paths and call counts).
        drawn = jax.jit(values)(params, x, key)
        return [d._replace(value=np.asarray(v)) for d, v in zip(found, drawn, strict=True)]

    def record(self, params, x, train: bool, key) -> list[layers.Record]:
        if self.nnx:
            model = self._merge(params)
            model.train() if train else model.eval()
            return layers.record_nnx(model, lambda m: m(x))[1]
        kwargs = _mode_kwargs(self.model, train)
        rngs = {"dropout": key} if train else {}
        apply = self.model.apply
        return layers.record_linen(apply, {"params": params}, x, rngs=rngs, **kwargs)[1]


def _inner(variables: Any) -> Any:
    if isinstance(variables, dict) and set(variables) == {"params"}:
        return variables["params"]
    if hasattr(variables, "keys") and "params" in variables:
        return variables["params"]
    return variables


def _torch_call(model, x, draws):
    if draws is None:
        return model(x)
    from jaxreg.torch_ref.replay import DrawReplay, replaying

    replay = DrawReplay()
    replay.set_step(draws)
    with replaying(replay, strict=True):
        out = model(x)
    replay.finish_step()
    return out


def _flat(tree: Any) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): np.asarray(v)
        for path, v in leaves
    }


def _by_module(params: Any) -> dict[str, Any]:
    """Flax params as ``{module: {leaf: value}}`` with nested module paths joined by ``_``.

    :mod:`jaxreg.convert` maps torch's dotted module paths (``blocks.0.fc1``) to one Flax module
    name (``blocks_0_fc1``); a nested Flax model (``blocks_0/fc1``) is brought to that form here
    and back by :func:`_nest`.
    """
    out: dict[str, Any] = {}
    for path, value in _flat(params).items():
        *module, leaf = path.split("/")
        if module:
            out.setdefault("_".join(module), {})[leaf] = value
        else:
            out[leaf] = value
    return out


def _nest(by_module: dict[str, Any], like: Any) -> Any:
    """The values of :func:`_by_module`'s form in the structure of ``like``."""

    def pick(path, _):
        *module, leaf = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        return by_module["_".join(module)][leaf] if module else by_module[leaf]

    return jax.tree_util.tree_map_with_path(pick, like)


def _grads_to_flax(torch_model, params) -> Any:
    from jaxreg.convert import torch_to_flax

    grads = {}
    for name, p in torch_model.named_parameters():
        if p.grad is None:
            raise ValueError(
                f"torch parameter {name!r} got no gradient: it is not used by the forward pass"
            )
        grads[name] = p.grad
    return _nest(torch_to_flax(grads, template=_by_module(params)), params)


# ---- the check -----------------------------------------------------------------------------------
def check_batch(
    flax_model: Any,
    variables_or_params: Any,
    torch_model: Any,
    x: Any,
    y: Any,
    *,
    loss: str | tuple[Callable, Callable] = "cross_entropy",
    dtypes: Sequence[str] = DTYPES,
    dropout: Sequence[bool] = (False, True),
    key: Any = None,
    to_torch: Callable[[np.ndarray], np.ndarray] | None = None,
) -> BatchReport:
    """Checks one batch through a Flax model and its torch twin: outputs, loss, every gradient.

    Both sides start from the Flax weights (``variables_or_params``, converted for torch by
    :func:`jaxreg.convert.flax_to_torch` against the twin's parameter names and shapes; an NNX
    model holds its own). For each dtype and dropout setting, the outputs, the loss, the
    gradient of every parameter and the gradient of the input are compared
    (:data:`TOLERANCES`). With dropout on, every random draw of the Flax forward is captured
    and replayed in torch, strictly: a torch random op that is not replayed raises
    ``UnsharedDrawError`` naming it. On a mismatch the report names the first layer whose
    output differs and what its input says about the cause.

    PyTorch equivalent: none in torch itself; it is what ``torch.testing.assert_close`` on the
    outputs and every ``.grad`` would check by hand, after copying the weights over.

    Args:
        flax_model: a Flax Linen module (its ``__call__`` taking ``deterministic`` or ``train``
            for the dropout-on case) or an NNX module (``.train()`` / ``.eval()``).
        variables_or_params: the Linen variables (``model.init(...)``) or params; for an NNX
            model None (its own weights) or params to use instead.
        torch_model: the torch twin (an ``nn.Module``); it is copied, never modified.
        x: one input batch as the Flax model takes it (NumPy or JAX array).
        y: the labels (class indices for ``"cross_entropy"``, targets for ``"mse"``).
        loss: ``"cross_entropy"`` (``F.cross_entropy``), ``"nll"``, ``"mse"``, ``"bce"`` (the
            engine's kinds, means over the batch), or a pair ``(jax_loss, torch_loss)`` of
            ``loss(outputs, y) -> scalar``.
        dtypes: any of ``"float32"``, ``"float64"`` (float64 runs under ``jax.enable_x64``).
        dropout: the settings to check: False (evaluation mode), True (training mode, draws
            shared).
        key: the JAX key of the dropout-on forward (default ``jax.random.key(0)``).
        to_torch: maps the Flax input batch to the torch one (e.g. NHWC to NCHW:
            ``lambda x: x.transpose(0, 3, 1, 2)``); None: the same array.

    Returns:
        A :class:`BatchReport`: ``print(report)`` for the table, ``report.ok``,
        ``report.raise_for_mismatch()``.

    Raises:
        ValueError: a bad ``dtypes``, ``dropout`` or ``loss`` (naming the allowed values), or
            weights that do not convert (naming the parameter).
        jaxreg.lab.draws.UnsharedDrawError: a random op on either side that cannot be shared.

    Example:
        >>> report = check_batch(model, variables, twin, x, y)  # doctest: +SKIP
        >>> report.raise_for_mismatch()  # doctest: +SKIP
    """
    import torch

    jax_loss, torch_loss = _check_loss(loss)
    dtypes = tuple(dtypes)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(f"dtypes={dtypes!r}: allowed values are {DTYPES} (at least one)")
    dropout = tuple(dropout)
    if not dropout or any(not isinstance(d, bool) for d in dropout):
        raise ValueError(f"dropout={dropout!r}: allowed values are False and True (at least one)")
    to_torch = to_torch or (lambda a: a)
    key = jax.random.key(0) if key is None else key
    side = _FlaxSide(flax_model, variables_or_params)
    template = {n: p for n, p in torch_model.named_parameters()}
    from jaxreg.convert import flax_to_torch

    state = flax_to_torch(_by_module(side.params), template=template)
    rows: list[TensorCheck] = []
    firsts: dict[tuple[str, bool], layers.LayerDiff | None] = {}
    shared: dict[tuple[str, bool], int] = {}
    for dtype in dtypes:
        tdtype = getattr(torch, dtype)
        twin = copy.deepcopy(torch_model).to(tdtype)
        with torch.no_grad():
            for name, p in twin.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(state[name], dtype)))
        with jax.enable_x64(dtype == "float64"):
            side.set_dtype(dtype)
            params = jax.tree.map(lambda a, d=dtype: jnp.asarray(a, d), side.params)
            xj = jnp.asarray(np.asarray(x), dtype)
            yj = jnp.asarray(np.asarray(y))
            if loss in ("mse", "bce"):
                yj = yj.astype(dtype)
            for train in dropout:
                draws = side.draws(params, xj, key) if train else None

                def objective(p, xi, train=train, yj=yj):
                    out = side.call(p, xi, train, key)
                    return jax_loss(out, yj), out

                grad_fn = jax.jit(jax.value_and_grad(objective, (0, 1), has_aux=True))
                (lj, out_j), (gp, gx) = grad_fn(params, xj)
                xt = torch.from_numpy(np.array(to_torch(np.asarray(x)), dtype)).requires_grad_()
                yt = torch.from_numpy(np.array(y))
                yt = yt.to(tdtype) if loss in ("mse", "bce") else yt.long()
                twin.train(train)
                twin.zero_grad()
                out_t = _torch_call(twin, xt, draws)
                lt = torch_loss(out_t, yt)
                lt.backward()
                if train:
                    shared[(dtype, train)] = len(draws)
                gt = _grads_to_flax(twin, jax.tree.map(np.asarray, side.params))
                case = []
                tol_out = TOLERANCES[dtype]["outputs"].value
                tol_grad = TOLERANCES[dtype]["gradients"].value

                def add(name, ours, ref, tol, case=case, dtype=dtype, train=train):
                    ours, ref = np.asarray(ours), np.asarray(ref)
                    max_abs, max_rel = layers.error(ours, ref)
                    case.append(TensorCheck(dtype, train, name, ours.shape, max_abs, max_rel, tol))

                add("outputs", out_j, out_t.detach().numpy(), tol_out)
                add("loss", lj, lt.detach().numpy(), tol_out)
                flat_t = _flat(gt)
                for path, g in _flat(gp).items():
                    add(f"grad {path}", g, flat_t[path], tol_grad)
                add("input", to_torch(np.asarray(gx)), xt.grad.numpy(), tol_grad)
                rows.extend(case)
                if not all(r.ok for r in case):
                    flax_recs = side.record(params, xj, train, key)
                    twin.zero_grad()
                    with torch.no_grad():
                        _, torch_recs = layers.record_torch(
                            twin, lambda m, xt=xt, draws=draws: _torch_call(m, xt.detach(), draws)
                        )
                    firsts[(dtype, train)] = layers.first_difference(flax_recs, torch_recs, tol_out)
    return BatchReport(rows, firsts, shared)


# ---- conversion with a probe batch ---------------------------------------------------------------
class ConversionError(ValueError):
    """Converted weights load (same names and shapes) but the two forwards differ on the probe."""

    def __init__(self, message: str, difference: layers.LayerDiff | None):
        super().__init__(message)
        self.difference = difference


def check_conversion(
    flax_model: Any,
    torch_model: Any,
    probe: Any,
    *,
    variables: Any = None,
    to_torch: Callable[[np.ndarray], np.ndarray] | None = None,
    dtype: str = "float64",
) -> dict[str, Any]:
    """Converts a torch model's weights to Flax and proves them on a probe batch.

    :func:`jaxreg.convert.torch_to_flax` checks names and shapes; a model whose shapes agree but
    whose layout does not (a channels-last Flax model that flattens NHWC where torch flattens
    NCHW) converts without complaint and computes something else. This runs both forwards
    (evaluation mode, ``dtype``) on ``probe`` and, when the outputs differ beyond the
    one-batch tolerance (:data:`TOLERANCES`), raises naming the first layer whose output differs.

    PyTorch equivalent: ``flax_model.load_state_dict(torch_model.state_dict())`` followed by
    ``torch.testing.assert_close`` on one batch, with the culprit layer named.

    Args:
        flax_model: the Flax Linen module (or NNX module, whose weights are replaced).
        torch_model: the torch twin whose weights are converted (not modified).
        probe: an input batch as the Flax model takes it.
        variables: Linen variables to take the shapes from (default: ``flax_model.init`` on
            ``probe`` with key 0, in evaluation mode).
        to_torch: maps the probe to torch's input layout (None: the same array).
        dtype: ``"float64"`` (default: any difference is a real one) or ``"float32"``.

    Returns:
        The Flax params (NumPy leaves; ``{"params": ...}`` when ``variables`` was wrapped or
        defaulted).

    Raises:
        ConversionError: the outputs differ; the message and ``.difference`` name the layer.
        ValueError: a key or shape that does not convert (:func:`jaxreg.convert.torch_to_flax`).

    Example:
        >>> params = check_conversion(CNN(), TorchCNN(), x[:8])  # doctest: +SKIP
    """
    import torch

    from jaxreg.convert import torch_to_flax

    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: allowed values are {DTYPES}")
    to_torch = to_torch or (lambda a: a)
    probe = np.asarray(probe)
    nnx_model = _is_nnx(flax_model)
    if nnx_model:
        side = _FlaxSide(flax_model, None)
        template = side.params
    else:
        if variables is None:
            kwargs = _mode_kwargs(flax_model, False)
            variables = flax_model.init(jax.random.key(0), jnp.asarray(probe), **kwargs)
        template = variables
    state = {n: p for n, p in torch_model.named_parameters()}
    inner = _inner(template)
    params = _nest(torch_to_flax(state, template=_by_module(inner)), inner)
    converted = params if inner is template else {"params": params}
    side = _FlaxSide(flax_model, params)
    twin = copy.deepcopy(torch_model).to(getattr(torch, dtype)).eval()
    tol = TOLERANCES[dtype]["outputs"].value
    with jax.enable_x64(dtype == "float64"):
        cast = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
        xj = jnp.asarray(probe, dtype)
        out_j = np.asarray(side.call(cast, xj, False, None))
        xt = torch.from_numpy(np.array(to_torch(probe), dtype))
        with torch.no_grad():
            out_t, torch_recs = layers.record_torch(twin, lambda m: m(xt))
        max_abs, max_rel = layers.error(out_j, out_t.numpy())
        if max_rel > tol:
            diff = layers.first_difference(side.record(cast, xj, False, None), torch_recs, tol)
            where = str(diff) if diff is not None else "no layer output differs before the last"
            raise ConversionError(
                f"check_conversion: the weights convert (names and shapes agree) but the "
                f"{dtype} outputs on the probe differ: max abs {max_abs:.3g}, max rel "
                f"{max_rel:.3g} > {tol:g}. {where}",
                diff,
            )
    return converted

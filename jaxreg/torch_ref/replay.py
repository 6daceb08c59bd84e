"""Replaying JAX's random draws in a torch forward pass (the torch half of matched runs).

A matched run draws its random values once, with explicit JAX keys
(:func:`jaxreg.lab.draws.capture_draws`, :class:`jaxreg.lab.matched.MatchedStreams`), and both
frameworks use them: JAX by drawing them, torch by replaying them here. Inside
``with replaying(replay):`` every random op of the forward pass takes the next draw of the step,
in call order, and computes with ATen's own arithmetic on it:

==========================================  =============================  ====================
torch op                                     JAX draw kind                  arithmetic
==========================================  =============================  ====================
``F.dropout`` / ``nn.Dropout``               ``dropout``                    ``x * (m / keep)``
``F.dropout1d/2d/3d`` / ``nn.Dropout1d/2d/   ``spatial_dropout`` ``(N, C)``  feature noise
3d``                                                                         ``(N, C, 1, ...)``
``F.alpha_dropout`` / ``nn.AlphaDropout``    ``alpha_dropout``              ``x * (m a) + b``
``F.feature_alpha_dropout``                  ``feature_alpha_dropout``      the same, per channel
torchvision ``stochastic_depth`` (``row``)   ``drop_path`` ``(N,)``         ``x * (m / keep)``
d2l ``dropout_layer``                        ``dropout``                    ``m * X / keep``
``jaxreg.torch_ref.noise`` functions         their kinds                    see that module
==========================================  =============================  ====================

Accounting is per site: a replayed call must match the next JAX draw by kind and shape, and
:meth:`DrawReplay.finish_step` refuses draws left over. So a site that one side has and the other
lacks fails, and so does a site that BOTH sides skip (the JAX capture knows every site, so its
draw is left unconsumed). Strict by default: any other torch random op in the forward pass
(``torch.rand``, ``randn``, ``bernoulli``, ``Tensor.normal_``, ...) raises
:class:`~jaxreg.lab.draws.UnsharedDrawError` naming the op and the torch module it ran in.

Degenerate rates: ATen draws nothing at ``p = 0`` (identity) and ``p = 1`` (zeros), while a
jaxreg layer at a traced rate always draws. There the torch op takes the next draw if it has
the op's kind and shape (and checks that it keeps everything, resp. nothing), else none.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from jaxreg._src.draw_record import MASK_KINDS, Draw, UnsharedDrawError

__all__ = [
    "DrawReplay",
    "MaskReplay",
    "UnsharedDrawError",
    "active_replay",
    "apply_mask",
    "epoch_steps",
    "replaying",
]

# SELU's lambda * alpha as ATen hard-codes it (aten/src/ATen/native/Dropout.cpp).
_ALPHA = 1.7580993408473766

_ACTIVE: contextvars.ContextVar[DrawReplay | None] = contextvars.ContextVar(
    "jaxreg_draw_replay", default=None
)


class _ModuleStack:
    """The torch modules being called, to name the site of a replayed or refused op."""

    def __init__(self) -> None:
        self.stack: list[torch.nn.Module] = []

    def pre(self, module, _args) -> None:
        self.stack.append(module)

    def post(self, module, _args, _out) -> None:
        if self.stack and self.stack[-1] is module:
            self.stack.pop()

    def name(self) -> str:
        if not self.stack:
            return "the forward pass (outside any nn.Module)"
        parts = [type(self.stack[0]).__name__]
        for parent, child in zip(self.stack, self.stack[1:], strict=False):
            found = next((k for k, m in parent._modules.items() if m is child), None)
            parts.append(found if found is not None else type(child).__name__)
        return ".".join(parts)


class DrawReplay:
    """The JAX draws of one training step, handed out to torch's random ops in order.

    Give it a step's draws with :meth:`set_step` (a list of :class:`jaxreg.lab.draws.Draw`,
    e.g. ``next(streams.step_draws(epoch))``), run the forward pass inside
    :func:`replaying`, then call :meth:`finish_step`, which refuses draws left over. Bare
    arrays are accepted too, as keep masks of an unknown kind (the older ``MaskReplay`` use):
    they match any mask op by shape, the leading (batch) axis may be longer than the call's
    (JAX's padding rows, cut) and a size-1 axis in the call takes index 0 of the mask's.

    Example:
        >>> replay = DrawReplay()
        >>> replay.set_step([Draw("Dropout_0", "dropout", (1, 2), np.array([[True, False]]), 0)])
        >>> with replaying(replay):
        ...     y = F.dropout(torch.ones(1, 2), p=0.5, training=True)
        >>> y.tolist(), replay.finish_step()
        ([[2.0, 0.0]], None)
    """

    def __init__(self) -> None:
        self._draws: list[Draw] | None = None
        self._legacy: list[bool] = []
        self._next = 0
        self.calls = 0
        self._stack: _ModuleStack | None = None

    def set_step(self, draws: Sequence[Any]) -> None:
        """Sets the draws of the next forward pass, in call order (Draws or bare masks)."""
        items, legacy = [], []
        for i, d in enumerate(draws):
            if isinstance(d, Draw):
                items.append(d)
                legacy.append(False)
            else:
                value = np.asarray(d)
                items.append(Draw(f"mask {i + 1}", "mask", value.shape, value, 0))
                legacy.append(True)
        self._draws, self._legacy, self._next = items, legacy, 0

    @property
    def pending(self) -> list[Draw]:
        """The draws of the step not consumed yet."""
        return [] if self._draws is None else self._draws[self._next :]

    def where(self) -> str:
        """The torch module being called (its path from the outermost one)."""
        return self._stack.name() if self._stack is not None else "the forward pass"

    def _matches(self, i: int, kinds: Sequence[str], shape: tuple) -> bool:
        d = self._draws[i]
        if self._legacy[i]:
            is_mask = np.asarray(d.value).dtype == np.bool_
            return (is_mask and set(kinds) & MASK_KINDS) and _legacy_fits(d.value, shape)
        if d.kind not in kinds:
            return False
        if tuple(d.shape) == tuple(shape):
            return True
        return d.kind in _SHARED_KINDS and _shared_fits(d.value, shape)

    def draw(
        self, op: str, kinds: Sequence[str], shape: Sequence[int], *, optional: bool = False
    ) -> Draw | None:
        """The next draw of the step for ``op``, which needs one of ``kinds`` of ``shape``.

        Args:
            op: the torch op asking (for messages), e.g. ``"F.dropout2d"``.
            kinds: the JAX draw kinds the op can replay.
            shape: the draw's shape as the op needs it (JAX's layout).
            optional: take the draw only if it matches (a degenerate rate, see the module).

        Returns:
            The draw (its value cut to ``shape`` for bare masks), or None when ``optional``
            and the next draw does not match.

        Raises:
            UnsharedDrawError: if no draws were set, none is left, or the next one does not
                match (and the draw is not optional).
        """
        shape = tuple(int(s) for s in shape)
        where = self.where()
        if self._draws is None:
            if optional:
                return None
            raise UnsharedDrawError(
                f"{op} draws at torch {where} (shape {shape}), but no JAX draws were set for "
                "this step: call replay.set_step(draws) before the forward pass"
            )
        n = len(self._draws)
        if self._next >= n or not self._matches(self._next, kinds, shape):
            if optional:
                return None
            if self._next >= n:
                raise UnsharedDrawError(
                    f"{op} at torch {where} (draw shape {shape}) has no JAX draw left: the "
                    f"step's {n} JAX draws are all used, so the torch model has a random site "
                    "the JAX model does not"
                )
            d = self._draws[self._next]
            raise UnsharedDrawError(
                f"{op} at torch {where} needs a {'/'.join(kinds)} draw of shape {shape}, but "
                f"the next JAX draw ({self._next + 1} of {n}) is site {d.site!r}: {d.kind} of "
                f"shape {tuple(d.shape)}. The two models' random sites differ (one side lacks "
                "a site, or has it in another order, layout or kind)"
            )
        i = self._next
        d = self._draws[i]
        self._next += 1
        self.calls += 1
        if self._legacy[i] or tuple(d.shape) != shape:
            value = _legacy_cut(d.value, shape)
            d = d._replace(value=value, shape=value.shape)
        return d

    def degenerate(self, op: str, kinds: Sequence[str], shape: Sequence[int], p: float) -> None:
        """An op at rate ``p`` 0 or 1, where ATen draws nothing: takes a matching JAX draw.

        A jaxreg layer at a traced rate draws even at 0 or 1; its draw keeps everything (0) or
        nothing (1). The next draw is taken if it has one of ``kinds`` and ``shape``, and then
        checked to be that draw; otherwise none is taken.

        Raises:
            UnsharedDrawError: if the draw taken keeps some (rate 1) or drops some (rate 0):
                the two models' rates differ at that site.
        """
        d = self.draw(op, kinds, shape, optional=True)
        if d is None:
            return
        v = np.asarray(d.value)
        if (p == 0.0 and not bool(np.all(v))) or (p == 1.0 and bool(np.any(v))):
            raise UnsharedDrawError(
                f"{op} with p={p} at torch {self.where()} takes JAX site {d.site!r}, whose draw "
                f"is not that of rate {p}: the two models' rates differ at this site"
            )

    def take(
        self,
        shape: Sequence[int],
        dtype: torch.dtype,
        device: Any,
        kind: str | Sequence[str] | None = None,
        op: str = "a hand-written dropout",
    ) -> torch.Tensor:
        """The next keep mask as a ``dtype`` tensor of ``shape`` (1 = keep, 0 = drop).

        For a torch twin that applies a mask itself (cs231n's ``H * (rand < p)``). ``kind``
        names the JAX draw kinds it replays (default: ``dropout`` or ``vanilla_dropout``).
        """
        kinds = (
            ("dropout", "vanilla_dropout") if kind is None else (kind,) if isinstance(kind, str)
            else tuple(kind)
        )  # fmt: skip
        d = self.draw(op, kinds, shape)
        return _tensor(d.value, dtype, device)

    def finish_step(self) -> None:
        """Checks that the forward pass used every draw of the step, then forgets them.

        Raises:
            UnsharedDrawError: naming every JAX site whose draw torch did not take.
        """
        left = self.pending
        self._draws = None
        if left:
            sites = ", ".join(f"{d.site!r} ({d.kind}, shape {tuple(d.shape)})" for d in left)
            raise UnsharedDrawError(
                f"{len(left)} JAX draw(s) of this step were not replayed by torch: {sites}. "
                "The torch model skips a random site the JAX model has (or draws it with an "
                "op the replay does not know); a site skipped by both sides is caught here"
            )


# The older name: a DrawReplay handed bare masks behaves as MaskReplay did.
MaskReplay = DrawReplay


# Kinds whose mask a torch twin may draw once per broadcast group (``F.dropout`` on an
# ``(N, 1, F)`` tensor for jaxreg's ``Dropout(broadcast_dims=(1,))``).
_SHARED_KINDS = frozenset({"dropout", "vanilla_dropout"})


def _shared_fits(mask: Any, shape: tuple) -> bool:
    """A call of size 1 on axes where the draw is larger replays it only if the draw is
    constant along them (a mask shared over that axis): index 0 then holds every value."""
    mask = np.asarray(mask)
    if mask.ndim != len(shape):
        return False
    for axis, (m, s) in enumerate(zip(mask.shape, shape, strict=True)):
        if m == s:
            continue
        if s != 1 or not np.all(mask == np.take(mask, [0], axis=axis)):
            return False
    return True


def _legacy_fits(mask: Any, shape: tuple) -> bool:
    mask = np.asarray(mask)
    if mask.ndim != len(shape):
        return False
    for d, (m, s) in enumerate(zip(mask.shape, shape, strict=True)):
        if not (m == s or (d == 0 and m > s) or s == 1):
            return False
    return True


def _legacy_cut(mask: Any, shape: tuple) -> np.ndarray:
    # Rows beyond the batch are JAX's padding; a size-1 axis asked for where the mask has more
    # is a torch twin drawing one value per broadcast group: it takes index 0 of that axis, so
    # a JAX mask that is not constant along it makes the runs differ instead of passing.
    mask = np.asarray(mask)
    index = tuple(
        slice(0, n) if d == 0 else slice(0, 1) if n == 1 else slice(None)
        for d, n in enumerate(shape)
    )
    return mask[index]


def _tensor(value: Any, dtype: torch.dtype, device: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(np.asarray(value), copy=True)).to(device=device, dtype=dtype)


def active_replay() -> DrawReplay | None:
    """The :class:`DrawReplay` of the enclosing :func:`replaying` block, if any."""
    return _ACTIVE.get()


def apply_mask(x: torch.Tensor, keep_mask: torch.Tensor, rate: float) -> torch.Tensor:
    """``x * (mask / keep)``, ATen's inverted-dropout arithmetic; zeros when ``rate == 1``."""
    keep = 1.0 - float(rate)
    if keep == 0.0:
        return x * 0.0
    return x * (keep_mask / keep)


def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _zeros_times(x: torch.Tensor, inplace: bool) -> torch.Tensor:
    # ATen's p == 1: multiply<inplace>(input, at::zeros({}, input.options())).
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return x.mul_(zero) if inplace else x * zero


def _inverted(x, d: Draw, p: float, noise_shape, inplace: bool) -> torch.Tensor:
    # ATen: noise.bernoulli_(1 - p); noise.div_(1 - p); multiply<inplace>(input, noise).
    noise = _tensor(d.value, x.dtype, x.device).reshape(noise_shape)
    noise.div_(1 - p)
    return x.mul_(noise) if inplace else x * noise


def _alpha(x, d: Draw, p: float, noise_shape, inplace: bool) -> torch.Tensor:
    # ATen's alpha branch of _dropout_impl, line for line.
    noise = _tensor(d.value, x.dtype, x.device).reshape(noise_shape)
    a = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1) * (1 - p))
    b = noise.add(-1).mul_(_ALPHA * a).add_(_ALPHA * a * p)
    noise.mul_(a)
    return (x.mul_(noise) if inplace else x * noise).add_(b)


def _feature_shapes(x: torch.Tensor, op: str, unbatched: bool) -> tuple[tuple, tuple]:
    """(the JAX draw's shape, torch's feature-noise shape) of a channels-first input."""
    if unbatched:
        return (x.shape[0],), (x.shape[0],) + (1,) * (x.dim() - 1)
    if x.dim() < 2:
        raise RuntimeError(f"{op}: feature dropout needs an input of rank >= 2, got {x.dim()}")
    return (x.shape[0], x.shape[1]), (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)


def _bound(args, kwargs, names, defaults):
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    return [bound.get(n, dv) for n, dv in zip(names, defaults, strict=True)]


def _replay_dropout_family(replay: DrawReplay, func, args, kwargs):
    """F.dropout, dropout1d/2d/3d, alpha_dropout, feature_alpha_dropout with the JAX draws."""
    alpha = func in (F.alpha_dropout, F.feature_alpha_dropout)
    names = ("input", "p", "training", "inplace")
    x, p, training, inplace = _bound(args, kwargs, names, (None, 0.5, not alpha, False))
    op = f"F.{func.__name__}"
    _check_p(p)
    if func is F.dropout1d and x.dim() not in (2, 3):
        return func(*args, **kwargs)  # torch's own error
    if not training or x.numel() == 0:
        return x
    if func in (F.dropout, F.alpha_dropout):
        kind, draw_shape, noise_shape = (
            ("alpha_dropout" if alpha else "dropout"),
            tuple(x.shape),
            tuple(x.shape),
        )
    else:
        unbatched = (func is F.dropout1d and x.dim() == 2) or (func is F.dropout3d and x.dim() == 4)
        draw_shape, noise_shape = _feature_shapes(x, op, unbatched)
        kind = "feature_alpha_dropout" if alpha else "spatial_dropout"
    if p == 0.0:
        replay.degenerate(op, (kind,), draw_shape, p)
        return x
    if p == 1.0:
        replay.degenerate(op, (kind,), draw_shape, p)
        return _zeros_times(x, inplace)
    d = replay.draw(op, (kind,), draw_shape)
    return (_alpha if alpha else _inverted)(x, d, p, noise_shape, inplace)


_REPLAYED = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
             F.feature_alpha_dropout)  # fmt: skip


def _random_ops() -> dict[Any, str]:
    """The torch ops that draw random numbers: object -> the name an error shows."""
    ops: dict[Any, str] = {}
    for name in ("bernoulli", "rand", "rand_like", "randn", "randn_like", "randint",
                 "randint_like", "randperm", "normal", "poisson", "multinomial", "binomial",
                 "native_dropout", "_standard_gamma", "_sample_dirichlet"):  # fmt: skip
        if hasattr(torch, name):
            ops[getattr(torch, name)] = f"torch.{name}"
    for name in ("bernoulli", "bernoulli_", "normal_", "uniform_", "exponential_",
                 "geometric_", "cauchy_", "log_normal_", "random_", "multinomial"):  # fmt: skip
        if hasattr(torch.Tensor, name):
            ops[getattr(torch.Tensor, name)] = f"Tensor.{name}"
    for name in ("gumbel_softmax", "fractional_max_pool2d", "fractional_max_pool3d"):
        ops[getattr(F, name)] = f"F.{name}"
    return ops


# Ops that are random only in training (their ``training``/``train`` argument, by position).
_TRAINING_OPS = {
    torch.dropout: ("torch.dropout", 2, "train"),
    torch.feature_dropout: ("torch.feature_dropout", 2, "train"),
    torch.alpha_dropout: ("torch.alpha_dropout", 2, "train"),
    torch.feature_alpha_dropout: ("torch.feature_alpha_dropout", 2, "train"),
    torch.rrelu: ("torch.rrelu", 3, "training"),
    F.rrelu: ("F.rrelu", 3, "training"),
    F.multi_head_attention_forward: ("F.multi_head_attention_forward", None, "training"),
}


class _ReplayMode(TorchFunctionMode):
    def __init__(self, replay: DrawReplay, strict: bool):
        super().__init__()
        self.replay, self.strict = replay, strict
        self.random = _random_ops()

    def _refuse(self, name: str) -> None:
        raise UnsharedDrawError(
            f"{name} in the torch forward pass at {self.replay.where()}: a random op that the "
            "matched comparison does not replay, so torch would draw its own values where "
            "JAX's are shared. Use a replayed op (F.dropout, F.dropout1d/2d/3d, "
            "F.alpha_dropout, F.feature_alpha_dropout, torchvision's stochastic_depth, "
            "jaxreg.torch_ref.noise), or pass strict=False to replaying() to allow it"
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _REPLAYED:
            return _replay_dropout_family(self.replay, func, args, kwargs)
        if self.strict:
            name = self.random.get(func)
            if name is not None:
                self._refuse(name)
            if func in _TRAINING_OPS:
                name, pos, key = _TRAINING_OPS[func]
                training = kwargs.get(key, args[pos] if pos is not None and len(args) > pos
                                      else True)  # fmt: skip
                if training and _dropout_p(func, args, kwargs) != 0.0:
                    self._refuse(name)
            if func is F.scaled_dot_product_attention:
                if kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0):
                    self._refuse("F.scaled_dot_product_attention(dropout_p > 0)")
        return func(*args, **kwargs)


def _dropout_p(func, args, kwargs) -> float | None:
    if func is F.multi_head_attention_forward:
        return kwargs.get("dropout_p", args[13] if len(args) > 13 else None)
    if func in (torch.rrelu, F.rrelu):
        return None
    return kwargs.get("p", args[1] if len(args) > 1 else None)


@contextlib.contextmanager
def _torchvision_stochastic_depth(replay: DrawReplay) -> Iterator[None]:
    """Replays torchvision's ``stochastic_depth`` (and so ``StochasticDepth``) if imported.

    torchvision's function draws with ``Tensor.bernoulli_`` inside a plain Python function,
    which the mode cannot tell from any other ``bernoulli_``: its module global is replaced
    for the block (``StochasticDepth.forward`` calls it by that name). A reference taken
    before (``from torchvision.ops import stochastic_depth``) still draws, and strict mode
    refuses its ``bernoulli_``.
    """
    module = sys.modules.get("torchvision.ops.stochastic_depth")
    if module is None or not hasattr(module, "stochastic_depth"):
        yield
        return
    original = module.stochastic_depth

    def stochastic_depth(input, p, mode, training=True):  # noqa: A002 (torchvision's names)
        if p < 0.0 or p > 1.0:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("batch", "row"):
            raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
        op = "torchvision.ops.stochastic_depth"
        if not training:
            return input
        if mode == "batch":
            raise UnsharedDrawError(
                f"{op}(mode='batch') at torch {replay.where()} draws one value for the whole "
                "batch; jaxreg's DropPath draws one per example (mode='row')"
            )
        if p == 0.0:
            replay.degenerate(op, ("drop_path",), (input.shape[0],), p)
            return input
        d = replay.draw(op, ("drop_path",), (input.shape[0],))
        # torchvision: noise = empty(size).bernoulli_(survival_rate); noise.div_(survival_rate)
        # when survival_rate > 0; input * noise.
        survival_rate = 1.0 - p
        size = [input.shape[0]] + [1] * (input.ndim - 1)
        noise = _tensor(d.value, input.dtype, input.device).reshape(size)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return input * noise

    package = sys.modules.get("torchvision.ops")
    module.stochastic_depth = stochastic_depth
    patched_package = package is not None and getattr(package, "stochastic_depth", None) is original
    if patched_package:
        package.stochastic_depth = stochastic_depth
    try:
        yield
    finally:
        module.stochastic_depth = original
        if patched_package:
            package.stochastic_depth = original


def epoch_steps(matched: Any, epoch: int) -> Iterator[Any]:
    """The per-step draws of a matched run's ``epoch``, for :meth:`DrawReplay.set_step`.

    ``matched`` gives every draw of a step with its site, kind and shape (``step_draws``,
    matched per site), or, for older streams, the bare keep masks (``step_masks``, matched by
    shape).
    """
    steps = getattr(matched, "step_draws", None) or matched.step_masks
    return steps(epoch)


@contextlib.contextmanager
def replaying(replay: DrawReplay, strict: bool = True) -> Iterator[DrawReplay]:
    """Within the block, torch's random ops take their values from ``replay``'s JAX draws.

    Args:
        replay: the :class:`DrawReplay` whose step draws are handed out.
        strict: if True (default), a random torch op that is not replayed raises
            :class:`~jaxreg.lab.draws.UnsharedDrawError` naming it; if False it draws its own
            values (an unmatched site: the comparison is then not matched there).

    Yields:
        ``replay``.

    Example:
        >>> replay = DrawReplay()
        >>> replay.set_step([])
        >>> with replaying(replay):
        ...     torch.rand(2)
        Traceback (most recent call last):
        ...
        jaxreg.lab.draws.UnsharedDrawError: torch.rand in the torch forward pass at ...
    """
    stack = _ModuleStack()
    hooks = [
        torch.nn.modules.module.register_module_forward_pre_hook(stack.pre),
        torch.nn.modules.module.register_module_forward_hook(stack.post, always_call=True),
    ]
    previous = replay._stack
    replay._stack = stack
    token = _ACTIVE.set(replay)
    try:
        with _torchvision_stochastic_depth(replay), _ReplayMode(replay, strict):
            yield replay
    finally:
        _ACTIVE.reset(token)
        replay._stack = previous
        for h in hooks:
            h.remove()

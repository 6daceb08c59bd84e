"""Every random draw of a JAX forward pass, captured so that a torch twin can replay it.

A matched JAX-torch comparison shares the random draws: JAX draws them with explicit keys and
torch replays them (``jaxreg.torch_ref.replay``). Sharing SOME of them is worse than sharing
none, because the comparison then looks matched and is not; so the capture here covers every
stochastic layer jaxreg ships, in Linen and in NNX, and Flax's own ``Dropout``, and it refuses
(:class:`UnsharedDrawError`, naming the module path) a random draw made by anything else.

How a draw is found: the layer is called with the training step's real key stream, module
path and call count, but on a neutral input, so that its output IS the draw: ones for the
multiplicative kinds (a keep mask comes out as ``1 / keep`` or 0, Gaussian dropout as its
factor), zeros for additive Gaussian noise. DropConnect's draw is its kernel mask, recovered
from the key the layer would use. Each call becomes one :class:`Draw`:

============================  ==============================  ==============================
kind                          layers (Linen / NNX)            value (shape)
============================  ==============================  ==============================
``dropout``                   ``Dropout``, ``nn.Dropout``     keep mask (input's shape)
``vanilla_dropout``           ``VanillaDropout``              keep mask (input's shape)
``spatial_dropout``           ``SpatialDropout``,             keep mask ``(N, C)``; ``(C,)``
                              ``Dropout1d/2d/3d``             for an unbatched input
``alpha_dropout``             ``AlphaDropout``                keep mask (input's shape)
``feature_alpha_dropout``     ``FeatureAlphaDropout``         keep mask ``(N, C)``
``drop_path``                 ``DropPath``                    keep mask ``(N,)``
``drop_connect``              ``DropConnectDense`` (Linen)    kernel keep mask ``(in, out)``
``gaussian_dropout``          ``GaussianDropout``             factor ``1 + s * eps`` (input's)
``gaussian_noise``            ``GaussianNoise``               added noise (input's shape)
============================  ==============================  ==============================

Channels are last on the JAX side (``(N, ..., C)``); torch's channels-first feature noise
``(N, C, 1, ...)`` is the same ``(N, C)`` draw, which is why spatial draws are stored reduced.

A layer that draws no key (evaluation mode, a concrete rate of 0, Flax's ``Dropout`` at rate
1) records no draw; a traced rate always draws (its value is unknown at trace time).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.core import scope as flax_scope
from flax.nnx import bridge

import jaxreg
import jaxreg.nn as jnn
import jaxreg.nnx as jnnx
from jaxreg._src.draw_record import BATCH_KINDS, KINDS, MASK_KINDS, Draw, UnsharedDrawError

__all__ = [
    "BATCH_KINDS",
    "KINDS",
    "MASK_KINDS",
    "Draw",
    "UnsharedDrawError",
    "capture_draws",
    "capture_draws_nnx",
    "keep_rows",
    "reorder_rows",
]


# --- the known layers -----------------------------------------------------------------------

# How a layer's draw comes out of its neutral output: (kind, input, reduce).
#   input: "ones" or "zeros"; reduce: "mask" (out != 0), "positive" (out > 0: alpha dropout's
#   kept value a (1 + alpha p) is positive, the dropped one alpha a (p - 1) negative, and rate
#   1 gives 0), "values" (the output itself); features/rows reduce a mask to (N, C) / (N,).
_LINEN = [
    (jnn.Dropout, "dropout", "ones", "mask", None),
    (nn.Dropout, "dropout", "ones", "mask", None),
    (jnn.VanillaDropout, "vanilla_dropout", "ones", "mask", None),
    (jnn.Dropout1d, "spatial_dropout", "ones", "mask", 1),
    (jnn.Dropout2d, "spatial_dropout", "ones", "mask", 2),
    (jnn.Dropout3d, "spatial_dropout", "ones", "mask", 3),
    (jnn.SpatialDropout, "spatial_dropout", "ones", "mask", 0),
    (jnn.AlphaDropout, "alpha_dropout", "ones", "positive", None),
    (jnn.FeatureAlphaDropout, "feature_alpha_dropout", "ones", "positive", 0),
    (jnn.DropPath, "drop_path", "ones", "mask", "rows"),
    (jnn.GaussianDropout, "gaussian_dropout", "ones", "values", None),
    (jnn.GaussianNoise, "gaussian_noise", "zeros", "values", None),
]
_NNX = [
    (jnnx.Dropout, "dropout", "ones", "mask", None),
    (nnx.Dropout, "dropout", "ones", "mask", None),
    (jnnx.VanillaDropout, "vanilla_dropout", "ones", "mask", None),
    (jnnx.Dropout1d, "spatial_dropout", "ones", "mask", 1),
    (jnnx.Dropout2d, "spatial_dropout", "ones", "mask", 2),
    (jnnx.Dropout3d, "spatial_dropout", "ones", "mask", 3),
    (jnnx.SpatialDropout, "spatial_dropout", "ones", "mask", 0),
    (jnnx.AlphaDropout, "alpha_dropout", "ones", "positive", None),
    (jnnx.FeatureAlphaDropout, "feature_alpha_dropout", "ones", "positive", 0),
    (jnnx.DropPath, "drop_path", "ones", "mask", "rows"),
    (jnnx.GaussianDropout, "gaussian_dropout", "ones", "values", None),
    (jnnx.GaussianNoise, "gaussian_noise", "zeros", "values", None),
]


def _spec(table, module) -> tuple | None:
    # The most derived known class first would matter only for known subclasses of known
    # classes; there are none, so the first match is the match.
    for cls, *spec in table:
        if isinstance(module, cls):
            return tuple(spec)
    return None


def _neutral(x: Any, fill: str) -> jax.Array:
    x = jnp.asarray(x)
    return jnp.ones_like(x) if fill == "ones" else jnp.zeros_like(x)


def _value(out: jax.Array, reduce: str, shape_rule: Any) -> jax.Array:
    """The draw read off the layer's output on the neutral input."""
    if reduce == "mask":
        value = out != 0
    elif reduce == "positive":
        value = out > 0
    else:
        value = out
    if shape_rule == "rows":
        # One draw per example: the first element of every row.
        return value.reshape(value.shape[0], -1)[:, 0] if value.ndim > 1 else value
    if shape_rule is not None:
        # Channels last: (N, ..., C) -> (N, C); an unbatched Dropout{k}d input of rank k + 1
        # -> (C,). Every spatial position holds the same draw; index 0 reads it.
        if shape_rule and value.ndim == shape_rule + 1:
            return value[(0,) * (value.ndim - 1)]
        if value.ndim > 2:
            return value[(slice(None),) + (0,) * (value.ndim - 2)]
    return value


class _Recorder:
    """The draws of one capture, and the bookkeeping of who is drawing a key.

    ``frames`` is a stack: ``["known", n]`` while a known layer is called (``n`` keys drawn),
    ``["source", 0]`` while a Linen-NNX bridge (``nnx.bridge.ToLinen``) turns Linen rng
    streams into an ``nnx.Rngs`` and builds its NNX module (keys for streams and initializers,
    not draws), ``["forward", 0]`` while an NNX model is called.
    """

    def __init__(self) -> None:
        self.draws: list[Draw] = []
        self.calls: dict[str, int] = {}
        self.frames: list[list] = []
        self.paths: dict[int, tuple] = {}
        self.nodes: dict[tuple, Any] = {}
        self.forking = 0
        self.linen: list[Any] = []  # the Linen modules being called, outermost first

    def add(self, site: str, kind: str, value: jax.Array) -> None:
        call = self.calls.get(site, 0)
        self.calls[site] = call + 1
        self.draws.append(Draw(site, kind, tuple(value.shape), value, call))

    @contextlib.contextmanager
    def frame(self, kind: str) -> Iterator[list]:
        entry = [kind, 0]
        self.frames.append(entry)
        try:
            yield entry
        finally:
            self.frames.pop()

    def known_layer(self):
        return self.frame("known")

    def key_drawn(self, where: Callable[[], str], stream: str) -> None:
        """A key was drawn: counted for the known layer being called, else refused.

        A Linen key drawn by a bridge (``source``) feeds an ``nnx.Rngs``; an NNX key drawn
        while the bridge builds its module initializes it; neither is a draw of the forward
        pass.
        """
        top = self.frames[-1][0] if self.frames else None
        if top == "known":
            self.frames[-1][1] += 1
            return
        if top == "source" or self.forking:
            return
        raise UnsharedDrawError(
            f"{where()} draws a random key from the {stream!r} stream, but it is not a random "
            "layer the matched comparison knows how to share (jaxreg's dropout and noise "
            "layers, flax's Dropout): its draw would differ between JAX and torch. Use one "
            "of the known layers (see jaxreg.lab.draws), or compare without matched draws."
        )

    def register(self, root: Any, prefix: tuple = ()) -> None:
        """Names the nodes of the NNX graph ``root`` (paths under ``prefix``)."""
        for path, node in nnx.iter_graph(root):
            full = prefix + tuple(path)
            self.paths.setdefault(id(node), full)
            self.nodes.setdefault(full, node)


# The capture patches classes (flax's Scope.make_rng, nnx.RngStream, the known NNX layers) for
# its duration: one capture at a time.
_PATCH_LOCK = threading.RLock()


def _site(path: Sequence[str], module: Any) -> str:
    return "/".join(str(p) for p in path) if path else type(module).__name__


# --- Linen ----------------------------------------------------------------------------------


def _concrete(value: Any) -> float | None:
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _call_arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _linen_drop_connect(rec: _Recorder, module, site: str, next_fun, args, kwargs):
    """DropConnectDense: its kernel mask, drawn from the key the layer would draw."""
    inputs = args[0]
    deterministic = _call_arg(args, kwargs, 1, "deterministic")
    rng = _call_arg(args, kwargs, 2, "rng")
    rate = kwargs.get("rate")
    rate = module.rate if rate is None else rate
    mode = nn.merge_param("deterministic", module.deterministic, deterministic)
    if mode or _concrete(rate) == 0.0:
        return next_fun(*args, **kwargs)
    with rec.known_layer():
        key = rng if rng is not None else module.make_rng(module.rng_collection)
    kernel = module.get_variable("params", "kernel")
    shape = (jnp.shape(inputs)[-1], module.features)
    dtype = kernel.dtype if kernel is not None else jnp.asarray(inputs).dtype
    # jaxreg.drop_connect(w, rate, key) keeps w's elements by a mask that depends on the key,
    # the rate and w's shape only: on ones it shows the mask the layer applies to its kernel.
    mask = jaxreg.drop_connect(jnp.ones(shape, dtype), rate, key=key) != 0
    rec.add(site, "drop_connect", mask)
    rest = {k: v for k, v in kwargs.items() if k not in ("deterministic", "rng")}
    return next_fun(inputs, deterministic, key, **rest)


def _linen_interceptor(rec: _Recorder):
    def interceptor(next_fun, args, kwargs, context):
        rec.linen.append(context.module)
        try:
            return _intercepted(next_fun, args, kwargs, context)
        finally:
            rec.linen.pop()

    def _intercepted(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not args:
            return next_fun(*args, **kwargs)
        if isinstance(module, bridge.ToLinen):
            # An NNX model inside Linen: its keys come from Linen streams (a "source"), its
            # NNX module is named under the bridge's path when it is called.
            with rec.frame("source"), _forward_of(rec, module.nnx_class, tuple(module.scope.path)):
                return next_fun(*args, **kwargs)
        if isinstance(module, jnn.DropConnectDense):
            site = _site(module.scope.path, module)
            return _linen_drop_connect(rec, module, site, next_fun, args, kwargs)
        spec = _spec(_LINEN, module)
        if spec is None:
            return next_fun(*args, **kwargs)
        kind, fill, reduce, shape_rule = spec
        neutral = _neutral(args[0], fill)
        with rec.known_layer() as frame:
            out = next_fun(neutral, *args[1:], **kwargs)
        rng = _call_arg(args, kwargs, 2, "rng")
        if frame[1] or (rng is not None and out is not neutral):
            rec.add(_site(module.scope.path, module), kind, _value(out, reduce, shape_rule))
        return out

    return interceptor


def _linen_site(rec: _Recorder, scope: Any) -> str:
    # The top-level module's path is empty: it is named by its class, found among the modules
    # being called.
    owner = next((m for m in reversed(rec.linen) if m.scope is scope), None)
    return _site(scope.path, owner if owner is not None else scope)


@contextlib.contextmanager
def _patched_scope_make_rng(rec: _Recorder) -> Iterator[None]:
    original = flax_scope.Scope.make_rng

    def make_rng(self, name: str = "params"):
        rec.key_drawn(lambda: f"module {_linen_site(rec, self)!r}", name)
        return original(self, name)

    flax_scope.Scope.make_rng = make_rng
    try:
        yield
    finally:
        flax_scope.Scope.make_rng = original


def capture_draws(apply_fn: Callable, *args, **kwargs) -> list[Draw]:
    """Every random draw that ``apply_fn(*args, **kwargs)`` makes, in call order.

    ``apply_fn`` is a Flax Linen ``apply`` (or anything that calls Linen modules), run in
    training mode with its usual rng streams; the draws are the ones that call makes (same keys,
    module paths, call counts). Works under ``jax.jit`` and ``jax.vmap`` (the values are then
    traced). PyTorch equivalent: none; the torch side replays these draws with
    ``jaxreg.torch_ref.replay.replaying``.

    Args:
        apply_fn: the function to run, e.g. ``model.apply``.
        *args: its positional arguments.
        **kwargs: its keyword arguments (``rngs={"dropout": key}``, ``deterministic=False``).

    Returns:
        One :class:`Draw` per random layer call that drew a key; ``[]`` for a model without
        random layers or in evaluation mode.

    Raises:
        UnsharedDrawError: if a module other than the known layers draws a key (``make_rng``
            outside them), naming its module path.

    Example:
        >>> import jaxreg.models as M
        >>> model = M.DropoutMLP()
        >>> params = model.init(jax.random.key(0), jnp.ones((4, 784)))
        >>> draws = capture_draws(model.apply, params, jnp.ones((4, 784)),
        ...                       deterministic=False, rngs={"dropout": jax.random.key(1)})
        >>> [(d.site, d.kind, d.shape) for d in draws]
        [('Dropout_0', 'dropout', (4, 256)), ('Dropout_1', 'dropout', (4, 256))]
    """
    rec = _Recorder()
    with (
        _PATCH_LOCK,
        _patched_scope_make_rng(rec),
        _patched_nnx(rec),
        nn.intercept_methods(_linen_interceptor(rec)),
    ):
        apply_fn(*args, **kwargs)
    return rec.draws


# --- NNX ------------------------------------------------------------------------------------


def _graph_roots(fn: Callable, args: tuple, kwargs: dict) -> list[Any]:
    """The NNX graph nodes ``fn`` can reach visibly: itself, its ``self``, closure, arguments."""
    candidates = [fn, getattr(fn, "__self__", None), *args, *kwargs.values()]
    for cell in getattr(fn, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            candidates.append(cell.cell_contents)
    roots, seen = [], set()
    for c in candidates:
        if isinstance(c, (nnx.Module, nnx.Rngs, nnx.RngStream)) and id(c) not in seen:
            seen.add(id(c))
            roots.append(c)
    return roots


def _owner(rec: _Recorder, stream: Any) -> str:
    path = rec.paths.get(id(stream))
    if path is None:
        return f"an nnx.RngStream ({stream.tag!r}) the model does not hold"
    # The stream's owner is the deepest module on its path that is not an Rngs container.
    for k in range(len(path), -1, -1):
        node = rec.nodes.get(path[:k])
        if isinstance(node, nnx.Module) and not isinstance(node, (nnx.Rngs, nnx.RngStream)):
            return f"module {_site(path[:k], node)!r}"
    return f"module {'/'.join(map(str, path))!r}"


@contextlib.contextmanager
def _class_patch(cls: type, name: str, value: Any) -> Iterator[None]:
    """Sets ``cls.<name>`` for the block; a class that inherited it gets no attribute after."""
    own = cls.__dict__.get(name)
    setattr(cls, name, value)
    try:
        yield
    finally:
        if own is None:
            delattr(cls, name)
        else:
            setattr(cls, name, own)


@contextlib.contextmanager
def _forward_of(rec: _Recorder, cls: Any, prefix: tuple) -> Iterator[None]:
    """While ``cls`` instances are called: their graph is named, their keys are draws."""
    if not isinstance(cls, type):
        yield
        return
    original = cls.__call__

    def __call__(self, *args, **kwargs):
        rec.register(self, prefix)
        with rec.frame("forward"):
            return original(self, *args, **kwargs)

    with _class_patch(cls, "__call__", __call__):
        yield


@contextlib.contextmanager
def _patched_nnx(rec: _Recorder) -> Iterator[None]:
    """Known NNX layers record their draws; any other key drawn in a forward pass raises."""
    stream_call, stream_fork, stream_split = (
        nnx.RngStream.__call__, nnx.RngStream.fork, nnx.RngStream.split
    )  # fmt: skip

    def stream(self):
        rec.key_drawn(lambda: _owner(rec, self), self.tag)
        return stream_call(self)

    def forking(method):
        # Forking or splitting a stream makes new streams, not a draw of the forward pass.
        def wrapper(self, *args, **kwargs):
            rec.forking += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                rec.forking -= 1

        return wrapper

    def wrap(cls, kind, fill, reduce, shape_rule):
        original = cls.__call__

        def __call__(self, inputs, *args, **kwargs):
            neutral = _neutral(inputs, fill)
            with rec.known_layer() as frame:
                out = original(self, neutral, *args, **kwargs)
            explicit = isinstance(kwargs.get("rngs"), jax.Array)
            if frame[1] or (explicit and out is not neutral):
                path = rec.paths.get(id(self))
                site = _site(path, self) if path is not None else f"<{type(self).__name__}>"
                rec.add(site, kind, _value(out, reduce, shape_rule))
            return out

        return _class_patch(cls, "__call__", __call__)

    with contextlib.ExitStack() as stack:
        for cls, *spec in _NNX:
            stack.enter_context(wrap(cls, *spec))
        stack.enter_context(_class_patch(nnx.RngStream, "__call__", stream))
        stack.enter_context(_class_patch(nnx.RngStream, "fork", forking(stream_fork)))
        stack.enter_context(_class_patch(nnx.RngStream, "split", forking(stream_split)))
        yield


def capture_draws_nnx(fn: Callable, *args, **kwargs) -> list[Draw]:
    """Every random draw that ``fn(*args, **kwargs)`` makes through NNX modules, in call order.

    ``fn`` calls an NNX model in training mode (the model itself, a bound method, or a function
    of it). The draws are those the call makes from the model's ``nnx.Rngs`` streams, and the
    call leaves no trace: the model's state (rng counts, batch statistics) is restored after it,
    so the next real call draws exactly these. Module paths are found from the NNX graphs ``fn``
    visibly holds (itself, its ``self``, its closure, its arguments); call it outside
    ``nnx.jit`` (inside, the modules are copies and are named ``<ClassName>``). PyTorch
    equivalent: none; the torch side replays them with ``jaxreg.torch_ref.replay.replaying``.

    Args:
        fn: the function to run.
        *args: its positional arguments.
        **kwargs: its keyword arguments.

    Returns:
        One :class:`Draw` per random layer call that drew a key; ``[]`` when none did.

    Raises:
        UnsharedDrawError: if a module other than the known layers draws from an
            ``nnx.RngStream`` during the call, naming the module that holds the stream.

    Example:
        >>> model = jaxreg.nnx.DropoutMLP(8, 6, 6, 3, rngs=nnx.Rngs(0))
        >>> [(d.site, d.shape) for d in capture_draws_nnx(model, jnp.ones((2, 8)))]
        [('drop1', (2, 6)), ('drop2', (2, 6))]
    """
    roots = _graph_roots(fn, args, kwargs)
    rec = _Recorder()
    for root in roots:
        rec.register(root)
    # nnx.state's leaves are the live variables: keep their current arrays as a pure dict.
    saved = [(root, nnx.to_pure_dict(nnx.state(root))) for root in roots]
    try:
        with _PATCH_LOCK, _patched_nnx(rec), rec.frame("forward"):
            fn(*args, **kwargs)
    finally:
        for root, pure in saved:
            state = nnx.state(root)
            nnx.replace_by_pure_dict(state, pure)
            nnx.update(root, state)
    return rec.draws


# --- helpers for the replaying side ---------------------------------------------------------


def keep_rows(draws: Sequence[Draw], rows: int, batch: int) -> list[Draw]:
    """The draws of a partial batch: the first ``rows`` of every batch-leading draw.

    The engine pads its last partial batch to ``batch`` rows at the end; a torch loop sees only
    the real rows. A draw is cut when its kind has a batch axis (:data:`BATCH_KINDS`), its
    leading axis has ``batch`` entries, and (spatial and feature kinds) it is batched ``(N,
    C)``.

    Args:
        draws: the step's draws.
        rows: the real rows of the batch.
        batch: the engine's batch size.

    Returns:
        The draws, cut.
    """
    out = []
    for d in draws:
        cut = d.kind in BATCH_KINDS and len(d.shape) >= 1 and d.shape[0] == batch
        if d.kind in ("spatial_dropout", "feature_alpha_dropout") and len(d.shape) != 2:
            cut = False
        if cut and rows != batch:
            value = d.value[:rows]
            d = d._replace(value=value, shape=tuple(np.shape(value)))
        out.append(d)
    return out


def reorder_rows(draws: Sequence[Draw], perm: np.ndarray, batch: int) -> list[Draw]:
    """The draws of a batch whose rows were permuted by ``perm`` (``x[perm]``).

    Batch-leading draws (as :func:`keep_rows` tells them) are cut to ``len(perm)`` rows and
    permuted; the others (DropConnect's kernel mask, unbatched spatial masks) are shared by the
    whole batch and stay as they are.
    """
    perm = np.asarray(perm)
    out = []
    for d in keep_rows(draws, len(perm), batch):
        if d.kind in BATCH_KINDS and len(d.shape) >= 1 and d.shape[0] == len(perm):
            if not (d.kind in ("spatial_dropout", "feature_alpha_dropout") and len(d.shape) != 2):
                d = d._replace(value=np.asarray(d.value)[perm])
        out.append(d)
    return out

"""Which layer differs first: every module's output in both frameworks, matched and compared.

A wrong logit says that the two models differ, not where. Here each side's forward pass is run
once with every module's input and output recorded in the order the calls complete: Flax Linen
through ``flax.linen.intercept_methods`` (the calls ``capture_intermediates`` would sow, with
their inputs and in execution order), Flax NNX through a temporary wrapper of the submodules'
``__call__``, torch through forward hooks (``register_forward_hook``). The records are then
matched and compared in Flax's execution order, and the first one whose output differs beyond
the tolerance is named, with what its input says about the cause: an input that holds torch's
values in another order is a flatten-order (NHWC vs NCHW) or transposition slip, an input that
agrees means the layer itself differs.

Matching: a Flax module and a torch module with the same name under :mod:`jaxreg.convert`'s rule
(``blocks_0/conv1`` is torch's ``blocks.0.conv1``) are paired; any other Flax module is paired
with the closest-valued torch output of a compatible shape that completes after the previously
paired one. Shapes are compatible when equal or when torch's is Flax's channels-last shape in
channels-first order (``N, C, H, W`` against ``N, H, W, C``; torch's value is then compared
transposed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np


class Record(NamedTuple):
    """One module call: its path (Flax ``"/"``-joined, torch dotted), class, input, output."""

    path: str
    kind: str
    input: np.ndarray | None
    output: np.ndarray


class LayerDiff(NamedTuple):
    """The first Flax module whose output differs from its torch counterpart's.

    Attributes:
        flax_path: the Flax module path (``"/"``-joined).
        torch_path: the torch module of the same name (:func:`flax_name`).
        kind: the Flax module's class name.
        shape: the Flax output's shape.
        max_abs: ``max |flax - torch|`` over the output (inf when the shapes differ).
        max_rel: ``max_abs / max |torch|``.
        tolerance: the relative tolerance it exceeds.
        cause: what the layer's input says about the cause, in words.
        previous: the last Flax module before it whose output agreed, or None.
    """

    flax_path: str
    torch_path: str
    kind: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    tolerance: float
    cause: str
    previous: str | None

    def __str__(self) -> str:
        where = f"torch {self.torch_path!r}"
        after = f", after {self.previous!r} agreed" if self.previous else ""
        return (
            f"first differing layer: Flax {self.flax_path!r} ({self.kind}, output "
            f"{self.shape}) vs {where}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g} "
            f"> {self.tolerance:g}{after}. {self.cause}"
        )


def _array(value: Any) -> np.ndarray | None:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.asarray(value)
    return None


def _first_array(args: Any) -> np.ndarray | None:
    for a in args:
        array = _array(a)
        if array is not None:
            return array
    return None


def record_linen(apply_fn: Callable, *args, **kwargs) -> tuple[Any, list[Record]]:
    """Runs ``apply_fn(*args, **kwargs)`` recording every Linen module's ``__call__``.

    Returns:
        ``(output, records)``, records in the order the calls complete (children before their
        parent, the root last).
    """
    import flax.linen as nn

    records: list[Record] = []

    def interceptor(next_fun, call_args, call_kwargs, context):
        out = next_fun(*call_args, **call_kwargs)
        output = _array(out)
        if context.method_name == "__call__" and output is not None:
            path = "/".join(context.module.path)
            kind = type(context.module).__name__
            records.append(Record(path, kind, _first_array(call_args), output))
        return out

    with nn.intercept_methods(interceptor):
        out = apply_fn(*args, **kwargs)
    return out, records


@contextlib.contextmanager
def _nnx_recording(model: Any, records: list[Record]) -> Iterator[None]:
    from flax import nnx

    paths = {id(m): "/".join(map(str, p)) for p, m in nnx.iter_modules(model)}
    classes = {type(m) for _, m in nnx.iter_modules(model)}
    active: set[int] = set()
    saved = {cls: cls.__dict__.get("__call__") for cls in classes}

    def wrap(original):
        def __call__(self, *args, **kwargs):
            # A class and its base may both be wrapped; only the outermost call records.
            if id(self) in active or id(self) not in paths:
                return original(self, *args, **kwargs)
            active.add(id(self))
            try:
                out = original(self, *args, **kwargs)
            finally:
                active.discard(id(self))
            output = _array(out)
            if output is not None:
                kind = type(self).__name__
                records.append(Record(paths[id(self)], kind, _first_array(args), output))
            return out

        return __call__

    try:
        for cls in classes:
            cls.__call__ = wrap(cls.__call__)
        yield
    finally:
        for cls, original in saved.items():
            if original is None:
                if "__call__" in cls.__dict__:
                    delattr(cls, "__call__")
            else:
                cls.__call__ = original


def record_nnx(model: Any, call: Callable[[Any], Any]) -> tuple[Any, list[Record]]:
    """Runs ``call(model)`` (eagerly) recording every submodule call of the NNX ``model``."""
    records: list[Record] = []
    with _nnx_recording(model, records):
        out = call(model)
    return out, records


def record_torch(module: Any, call: Callable[[Any], Any]) -> tuple[Any, list[Record]]:
    """Runs ``call(module)`` recording every torch submodule's input and output (forward hooks)."""
    records: list[Record] = []
    handles = []

    def hook(name):
        def fn(mod, args, out):
            output = _array(out)
            if output is not None:
                records.append(Record(name, type(mod).__name__, _first_array(args), output))

        return fn

    for name, mod in module.named_modules():
        handles.append(mod.register_forward_hook(hook(name)))
    try:
        out = call(module)
    finally:
        for h in handles:
            h.remove()
    return out, records


def flax_name(path: str) -> str:
    """The flat name a module path has on both sides (:mod:`jaxreg.convert`'s rule).

    ``"blocks_0/conv1"`` (Flax) and ``"blocks.0.conv1"`` (torch) both give ``"blocks_0_conv1"``;
    a top-level Sequential index ``"0"`` gives ``"layers_0"``.
    """
    if not path:
        return ""
    if "/" in path or "." not in path and not path[0].isdigit():
        return path.replace("/", "_")
    parts = path.split(".")
    name = "_".join(parts)
    return "layers_" + name if parts[0].isdigit() else name


def _views(flax_shape: tuple[int, ...], torch_value: np.ndarray) -> list[np.ndarray]:
    views = []
    if torch_value.shape == flax_shape:
        views.append(torch_value)
    if torch_value.ndim >= 3:
        channels_last = np.moveaxis(torch_value, 1, -1)
        if channels_last.shape == flax_shape:
            views.append(channels_last)
    return views


def error(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """``(max |ours - ref|, that / max |ref|)``; NaN anywhere is an infinite error."""
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf"), float("inf")
    if ours.size == 0:
        return 0.0, 0.0
    diff = np.abs(ours - ref)
    if not (np.all(np.isfinite(diff))):
        return float("inf"), float("inf")
    max_abs = float(diff.max())
    scale = float(np.abs(ref).max())
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def _best(flax_out: np.ndarray, torch_out: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    best = None
    for view in _views(flax_out.shape, torch_out):
        max_abs, max_rel = error(flax_out, view)
        if best is None or max_rel < best[1]:
            best = (max_abs, max_rel, view)
    return best


def _cause(flax_rec: Record, torch_rec: Record, tol: float) -> str:
    if flax_rec.input is None or torch_rec.input is None:
        return "Its input could not be compared."
    a, b = flax_rec.input, torch_rec.input
    for view in _views(a.shape, b):
        if error(a, view)[1] <= tol:
            return (
                "Its input agrees, so the layer itself computes differently (its converted "
                "weights, its activation, padding or stride, or a dropout rate)."
            )
    if a.size == b.size:
        flat_a = np.sort(np.asarray(a, np.float64).reshape(len(a), -1), axis=1)
        flat_b = np.sort(np.asarray(b, np.float64).reshape(len(b), -1), axis=1)
        if error(flat_a, flat_b)[1] <= tol:
            return (
                "Its input holds torch's values in another order: a flatten order (Flax "
                "flattens NHWC, torch NCHW) or a transposition. Flatten channels-last "
                "activations in torch's order with jaxreg.nn.TorchFlatten / flatten_nchw."
            )
    return (
        "Its input differs as well, but not by a reordering: an operation between the previous "
        "module and this one that is not a module (an activation, a reshape, pooling written "
        "as a function) differs."
    )


def first_difference(
    flax_records: list[Record], torch_records: list[Record], tol: float
) -> LayerDiff | None:
    """The first Flax module (in execution order) whose output differs from torch's.

    A Flax module with a torch namesake is always judged. One without (an auto-named
    ``Dropout_0``, a ``TorchFlatten``) is paired with a later torch output only when one agrees
    with it, and otherwise passed over: torch may compute it as a function, not a module, and a
    difference there shows in the next judged module's input.

    Args:
        flax_records: from :func:`record_linen` or :func:`record_nnx`.
        torch_records: from :func:`record_torch`.
        tol: relative tolerance (``max abs / max |torch|``).

    Returns:
        A :class:`LayerDiff`, or None when every judged module agrees (the root modules, whose
        outputs the caller compares itself, are skipped).
    """
    by_name: dict[str, list[int]] = {}
    for j, rec in enumerate(torch_records):
        if rec.path:
            by_name.setdefault(flax_name(rec.path), []).append(j)
    used: set[int] = set()
    last, previous = -1, None
    passed_over: list[str] = []
    for rec in flax_records:
        if not rec.path:
            continue
        named = [j for j in by_name.get(flax_name(rec.path), []) if j not in used]
        if named:
            best = _best(rec.output, torch_records[named[0]].output)
            torch_rec = torch_records[named[0]]
            if best is None or best[1] > tol:
                max_abs, max_rel = (float("inf"),) * 2 if best is None else best[:2]
                cause = _cause(rec, torch_rec, tol)
                if passed_over and not cause.startswith("Its input agrees"):
                    cause += (
                        f" Flax modules since {previous!r} without a torch counterpart: "
                        f"{', '.join(passed_over)}."
                    )
                return LayerDiff(
                    rec.path, torch_rec.path, rec.kind, rec.output.shape, max_abs, max_rel, tol,
                    cause, previous,
                )  # fmt: skip
            j = named[0]
        else:
            later = range(last + 1, len(torch_records))
            scored = []
            for k in later:
                if k in used or not torch_records[k].path:
                    continue
                best = _best(rec.output, torch_records[k].output)
                if best is not None and best[1] <= tol:
                    scored.append((best[1], k))
            if not scored:
                passed_over.append(rec.path)
                continue
            j = min(scored)[1]
        used.add(j)
        last = max(last, j)
        previous, passed_over = rec.path, []
    return None

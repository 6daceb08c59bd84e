"""The implementation of :mod:`jaxreg.masks` (documented there)."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

__all__ = ["path_mask", "path_to_str", "resolve_mask", "weights_only"]

Mask = Any  # None | pytree of bools | Callable[[params], pytree of bools]

_ALLOWED = (
    "None, a pytree of bools with the params' structure (or a prefix of it), or a callable "
    "on the whole params tree returning one (optax's convention: mask=jaxreg.weights_only, "
    "mask=jaxreg.path_mask(r'/kernel$'))"
)

# Leaf names that never decay: biases and the affine parameters of normalization layers
# (Flax LayerNorm/BatchNorm "scale"/"bias", Haiku "offset"; torch's and Equinox's norm layers
# call their scale "weight", which is 1-D and left out by the ndim rule).
_NO_DECAY_NAMES = frozenset({"bias", "scale", "offset", "gamma", "beta"})
# Raw-parameter bias names of the seeds' scratch models: b, b1, b2, ...
_BIAS_NAME = re.compile(r"^b\d*$")


def path_to_str(keypath: Iterable[Any]) -> str:
    """Joins a JAX key path into the "/"-separated string that path masks match.

    Dict keys, attribute names and sequence indices all become plain components, so a
    Flax ``params`` tree gives ``"params/Dense_0/kernel"``, an Equinox module
    ``"layers/0/weight"`` and a list ``"layers/0"``.
    PyTorch equivalent: the dotted names of ``model.named_parameters()`` (seed 004's
    param groups select parameters by name).

    Args:
      keypath: a key path as produced by ``jax.tree_util.tree_flatten_with_path``.

    Returns:
      The path string; ``""`` for the root.

    Example:
      >>> import jax
      >>> [path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1, 2]})[0]]
      ['a/0', 'a/1']
    """
    parts = []
    for key in keypath:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    return "/".join(parts)


def _nnx_variable_type() -> type | None:
    # Only an imported flax.nnx can have put Variables in a tree: no import needed to check.
    nnx = sys.modules.get("flax.nnx")
    return getattr(nnx, "Variable", None)


def _flags_by_path(fn: Callable[[str, Any], bool], tree: Any) -> Any:
    """``fn(path, leaf)`` per leaf, as a bool tree with ``tree``'s full structure.

    An NNX ``Variable`` is one leaf whose path omits its ``value`` attribute, so NNX paths read
    like Linen's (``"lin1/kernel"``); its flag fills the Variable node, keeping the structure.
    """
    variable = _nnx_variable_type()
    is_leaf = None if variable is None else (lambda x: isinstance(x, variable))

    def one(keypath: Any, leaf: Any) -> Any:
        flag = fn(path_to_str(keypath), leaf)
        return jax.tree.map(lambda _: flag, leaf)

    return jax.tree_util.tree_map_with_path(one, tree, is_leaf=is_leaf)


def _as_static_bool(value: Any, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"mask leaf at {where!r} is a traced value; masks must be static Python bools "
            "(they choose which leaves are penalized at trace time)"
        )
    arr = np.asarray(value) if hasattr(value, "dtype") else None
    if arr is not None and arr.shape == () and arr.dtype == np.bool_:
        return bool(arr)
    raise ValueError(
        f"mask leaf at {where!r} must be a bool (True = penalized/decayed), got {value!r}"
    )


def _is_mask_function(mask: Any) -> bool:
    """A plain callable; a callable pytree with leaves (an Equinox module of bools) is a tree."""
    if not callable(mask) or isinstance(mask, jax.tree_util.Partial):
        return callable(mask)
    leaves = jax.tree.leaves(mask)
    return not leaves or (len(leaves) == 1 and leaves[0] is mask)


def _short(treedef: Any, limit: int = 300) -> str:
    text = str(treedef)
    return text if len(text) <= limit else text[:limit] + "..."


def _resolve_tree(mask: Any, tree: Any, origin: str) -> Any:
    try:
        return jax.tree_util.tree_map_with_path(
            lambda keypath, flag, subtree: jax.tree.map(
                lambda _: _as_static_bool(flag, path_to_str(keypath)), subtree
            ),
            mask,
            tree,
        )
    except (TypeError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith("mask leaf"):
            raise
        raise ValueError(
            f"{origin} does not match the structure of the tree it masks; mask must be "
            f"{_ALLOWED}.\n  mask: {_short(jax.tree.structure(mask))}\n  tree: "
            f"{_short(jax.tree.structure(tree))}"
        ) from err


def _call_mask(fn: Callable[[Any], Any], tree: Any) -> Any:
    hint = (
        "a callable mask is called with the whole params tree and must return a pytree of "
        "bools (optax's convention); a predicate on '/'-joined path strings goes through "
        "jaxreg.path_mask(fn)"
    )
    try:
        inspect.signature(fn).bind(tree)
    except TypeError as err:
        raise TypeError(
            f"mask: {fn!r} cannot be called with one argument, the params tree ({err}); {hint}"
        ) from err
    except ValueError:
        pass  # no signature to inspect (some builtins): let the call decide
    try:
        out = fn(tree)
    except (AttributeError, TypeError, KeyError, IndexError) as err:
        raise TypeError(
            f"mask: calling {fn!r} on the params tree raised {type(err).__name__}: {err}; {hint}"
        ) from err
    if isinstance(out, (str, bytes)) or _is_mask_function(out):
        raise TypeError(f"mask: {fn!r} returned {out!r}, not a pytree of bools; {hint}")
    leaves = jax.tree.leaves(out)
    # A lone bool for a many-leaf tree is what a path predicate returns when handed a dict
    # (`"kernel" in params` is False): silently masking everything or nothing would hide it.
    if len(leaves) == 1 and leaves[0] is out and len(jax.tree.leaves(tree)) > 1:
        raise ValueError(
            f"mask: {fn!r} returned the single value {out!r} for a tree of "
            f"{len(jax.tree.leaves(tree))} leaves; {hint}"
        )
    return _resolve_tree(out, tree, f"the tree returned by the callable mask {fn!r}")


def resolve_mask(mask: Mask, tree: Any) -> Any:
    """Turns any accepted mask form into a pytree of Python bools matching ``tree``.

    Every ``mask=`` argument in jaxreg goes through here. The forms are optax's:
    ``optax.masked(inner, mask)`` accepts the same ``mask`` values. PyTorch equivalent:
    choosing which tensors go into which optimizer param group (seed 004 decays ``W1`` and
    ``W2`` only).

    Args:
      mask: ``None`` (every leaf), a pytree of bools with the structure of ``tree`` or a
        prefix of it, or a callable ``fn(tree) -> pytree of bools`` (e.g.
        :func:`weights_only`, or :func:`path_mask`'s result).
      tree: the pytree the mask applies to (parameters, gradients or activations).

    Returns:
      A pytree with the structure of ``tree`` whose leaves are Python bools.

    Raises:
      TypeError: if ``mask`` is a string, or a callable that cannot take the tree (such
        as a predicate on path strings, or one of ``(path, leaf)``) or returns something
        that is not a pytree.
      ValueError: if a bool-tree mask (given, or returned by a callable) does not match
        ``tree``'s structure, or a mask leaf is not a static bool.

    Example:
      >>> resolve_mask(path_mask(r"w$"), {"w": 1.0, "b": 0.0})
      {'b': False, 'w': True}
      >>> resolve_mask({"w": True, "b": False}, {"w": 1.0, "b": 0.0})
      {'b': False, 'w': True}
    """
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    if isinstance(mask, (str, bytes)):
        raise TypeError(f"mask must be {_ALLOWED}; got the string {mask!r}")
    if _is_mask_function(mask):
        return _call_mask(mask, tree)
    return _resolve_tree(mask, tree, "mask")


def weights_only(params: Any) -> Any:
    """The standard weight-decay mask: weights decay, biases and norm parameters don't.

    A leaf decays when it is not named like a bias or a normalization parameter (``bias``,
    ``b``, ``b1``, ``scale``, ``offset``, ``gamma``, ``beta``) and it is a ``kernel`` or at
    least 2-D. Per framework that selects:

    * Flax Linen: every ``kernel`` (``Dense``, ``Conv``, ...); not ``bias``, not
      ``LayerNorm``/``BatchNorm`` ``scale``;
    * Flax NNX (``nnx.state(model, nnx.Param)``, Variables or pure): every ``kernel``;
      not ``bias`` nor ``scale``;
    * Equinox (``eqx.filter(model, eqx.is_array)``): every ``weight`` of ``Linear``,
      ``Conv``, ``Embedding`` (2-D and up); not ``bias``, not the 1-D ``weight`` of
      ``LayerNorm``/``GroupNorm``;
    * raw trees: seed 004's ``W1``/``W2`` (not ``b1``/``b2``), embeddings; no 1-D vector.

    It is a mask in optax's convention (a function of the params tree), so pass it as it
    is, ``mask=weights_only``, or called, ``mask=weights_only(params)``. PyTorch
    equivalent: seed 004's param groups ``[{"params": [W1, W2], "weight_decay": wd},
    {"params": [b1, b2]}]``.

    Args:
      params: the parameter pytree (arrays or anything with ``ndim``, e.g.
        ``jax.ShapeDtypeStruct``).

    Returns:
      A pytree of Python bools with the structure of ``params``.

    Raises:
      TypeError: if given a path string instead of a pytree.

    Example:
      >>> import jax.numpy as jnp
      >>> weights_only({"W1": jnp.ones((3, 2)), "b1": jnp.zeros(2)})
      {'W1': True, 'b1': False}
    """
    if isinstance(params, str):
        raise TypeError(
            f"weights_only expects the params pytree, got the string {params!r}; it is a mask "
            "on the whole tree: pass mask=weights_only"
        )

    def decays(path: str, leaf: Any) -> bool:
        name = path.rsplit("/", 1)[-1]
        if name in _NO_DECAY_NAMES or _BIAS_NAME.match(name):
            return False
        ndim = leaf.ndim if hasattr(leaf, "ndim") else np.ndim(leaf)
        return name == "kernel" or ndim >= 2

    return _flags_by_path(decays, params)


PathPattern = str | Callable[[str], bool]


def _compile_patterns(
    patterns: PathPattern | Iterable[PathPattern], name: str
) -> list[Callable[[str], bool]]:
    if isinstance(patterns, str) or callable(patterns):
        patterns = (patterns,)
    try:
        patterns = list(patterns)
    except TypeError as err:
        raise TypeError(
            f"path_mask: {name} must be a regex string, a predicate fn(path: str) -> bool, or "
            f"a sequence of them, got {patterns!r}"
        ) from err
    compiled = []
    for pattern in patterns:
        if callable(pattern):
            compiled.append(_checked_predicate(pattern, name))
        elif isinstance(pattern, str):
            try:
                compiled.append(re.compile(pattern).search)
            except re.error as err:
                raise ValueError(
                    f"path_mask: {name} has an invalid regex {pattern!r}: {err}"
                ) from err
        else:
            raise TypeError(
                f"path_mask: {name} must be regex strings or predicates fn(path: str) -> bool, "
                f"got {pattern!r}"
            )
    return compiled


def _checked_predicate(fn: Callable[[str], Any], name: str) -> Callable[[str], bool]:
    def predicate(path: str) -> bool:
        flag = fn(path)
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(
                f"path_mask: the {name} predicate {fn!r} must return a bool for each path "
                f"string, got {type(flag).__name__} for {path!r}"
            )
        return bool(flag)

    return predicate


def path_mask(
    include: PathPattern | Iterable[PathPattern] = ".*",
    exclude: PathPattern | Iterable[PathPattern] = (),
) -> Callable[[Any], Any]:
    """A mask selecting leaves by their "/"-joined key paths (see :func:`path_to_str`).

    A leaf is selected when some ``include`` pattern matches its path and no ``exclude``
    pattern does; a pattern is a regex (matched with ``re.search``, the style of big_vision's
    ``".*/kernel$"`` decay masks) or a predicate ``fn(path: str) -> bool``. The result is a
    mask in optax's convention, a function of the params tree, for any ``mask=`` argument
    in jaxreg or optax (``optax.masked``, ``optax.add_decayed_weights``). Paths are Linen's
    ``"Dense_0/kernel"``, NNX's ``"linear/kernel"`` (no ``value``), Equinox's
    ``"layers/0/weight"``. PyTorch equivalent: building optimizer param groups from
    ``named_parameters()`` names. Seeds: 004 (decay on ``W1``, ``W2`` only).

    Args:
      include: one regex or predicate, or several; default: every leaf.
      exclude: one regex or predicate, or several, applied after ``include``.

    Returns:
      A callable ``mask(params)`` returning a pytree of Python bools with the structure of
      ``params``.

    Raises:
      TypeError: if a pattern is neither a string nor a callable.
      ValueError: if a regex is invalid (at construction), or a predicate returns a
        non-bool (when the mask is applied).

    Example:
      >>> mask = path_mask(r"/kernel$")
      >>> mask({"Dense_0": {"kernel": 1.0, "bias": 0.0}})
      {'Dense_0': {'bias': False, 'kernel': True}}
      >>> path_mask(lambda path: path.startswith("W"))({"W1": 1.0, "b1": 0.0})
      {'W1': True, 'b1': False}
    """
    inc = _compile_patterns(include, "include")
    exc = _compile_patterns(exclude, "exclude")

    def selected(path: str, _: Any) -> bool:
        return any(p(path) for p in inc) and not any(p(path) for p in exc)

    def mask(params: Any) -> Any:
        if isinstance(params, str):
            raise TypeError(
                f"a path_mask is applied to the params pytree, got the string {params!r}"
            )
        return _flags_by_path(selected, params)

    return mask

"""Masks: which leaves of a parameter pytree a penalty or a decay applies to.

A mask is one of

* ``None``: every leaf;
* a pytree of Python bools with the structure of the parameters (or a prefix of it, so
  ``{"params": {"Dense_0": True, "Dense_1": False}}`` covers every leaf under each
  module), ``True`` meaning penalized / decayed;
* a predicate ``fn(path: str) -> bool`` called with each leaf's "/"-joined key path, e.g.
  ``"params/Dense_0/kernel"`` or ``"lin1/kernel"`` (see :func:`path_to_str`).

Masks are static: they are resolved at trace time into Python bools, so a masked
penalty compiles to a sum over the selected leaves only and never costs a recompile.
A mask plays the role of PyTorch's optimizer param groups, e.g. seed 004's
``SGD([{"params": [W1, W2], "weight_decay": 0.01}, {"params": [b1, b2]}])``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

__all__ = ["path_mask", "path_to_str", "resolve_mask", "weights_only"]

Mask = Any  # None | pytree of bools | Callable[[str], bool]

# Leaf names that never decay: biases and the affine parameters of normalization layers
# (Flax LayerNorm/BatchNorm "scale"/"bias", Haiku "offset", torch "weight"/"bias" of a
# norm layer are 1-D and caught by the ndim rule).
_NO_DECAY_NAMES = frozenset({"bias", "scale", "offset", "gamma", "beta"})
# Raw-parameter bias names of the seeds' scratch models: b, b1, b2, ...
_BIAS_NAME = re.compile(r"^b\d*$")
_WEIGHT_NAMES = frozenset({"kernel", "weight"})


def path_to_str(keypath: Iterable[Any]) -> str:
    """Joins a JAX key path into the "/"-separated string that mask predicates receive.

    Dict keys, attribute names and sequence indices all become plain components, so a
    Flax ``params`` tree gives ``"params/Dense_0/kernel"`` and a list gives ``"layers/0"``.
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


def _is_predicate(mask: Any) -> bool:
    if not callable(mask):
        return False
    leaves = jax.tree.leaves(mask)
    if len(leaves) == 1 and leaves[0] is mask:
        return True
    # A callable pytree of bools (an Equinox module used as a filter) is a bool-tree mask.
    return not all(isinstance(leaf, (bool, np.bool_)) for leaf in leaves)


def resolve_mask(mask: Mask, tree: Any) -> Any:
    """Turns any accepted mask form into a pytree of Python bools matching ``tree``.

    Every ``mask=`` argument in jaxreg goes through here. PyTorch equivalent: choosing which
    tensors go into which optimizer param group (seed 004 decays ``W1`` and ``W2`` only).

    Args:
      mask: ``None`` (every leaf), a pytree of bools with the structure of ``tree`` or a
        prefix of it, or a predicate ``fn(path: str) -> bool`` on each leaf's
        "/"-joined key path.
      tree: the pytree the mask applies to (parameters, gradients or activations).

    Returns:
      A pytree with the structure of ``tree`` whose leaves are Python bools.

    Raises:
      ValueError: if a bool-tree mask does not match ``tree``'s structure, a mask leaf is
        not a bool, or a predicate returns something other than a bool.

    Example:
      >>> resolve_mask(lambda p: p.endswith("w"), {"w": 1.0, "b": 0.0})
      {'b': False, 'w': True}
    """
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    if _is_predicate(mask):
        leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
        flags = []
        for keypath, _ in leaves_with_path:
            path = path_to_str(keypath)
            flag = mask(path)
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(
                    f"mask predicate must return a bool for each path string, got "
                    f"{type(flag).__name__} for path {path!r}; a function of the whole "
                    "params tree (such as jaxreg.weights_only) must be called first: "
                    "mask=weights_only(params)"
                )
            flags.append(bool(flag))
        return jax.tree_util.tree_unflatten(treedef, flags)
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
        mask_def = jax.tree.structure(mask)
        tree_def = jax.tree.structure(tree)
        raise ValueError(
            "mask structure does not match the tree it masks: the mask must be None, a "
            "predicate on path strings, or a pytree of bools with the tree's structure (or "
            f"a prefix of it).\n  mask: {_short(mask_def)}\n  tree: {_short(tree_def)}"
        ) from err


def _short(treedef: Any, limit: int = 300) -> str:
    text = str(treedef)
    return text if len(text) <= limit else text[:limit] + "..."


def _leaf_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def weights_only(params: Any) -> Any:
    """The standard weight-decay mask: weights decay, biases and norm parameters don't.

    A leaf is decayed when its name is ``kernel`` or ``weight``, or when it is at least
    2-D and is not named like a bias or a normalization parameter (``bias``, ``b``,
    ``b1``, ``scale``, ``offset``, ``gamma``, ``beta``). That covers Flax ``Dense``/``Conv``
    kernels, raw weight matrices such as seed 004's ``W1``/``W2`` and embeddings, and
    excludes every bias, 1-D vector and LayerNorm/BatchNorm scale and offset. PyTorch
    equivalent: seed 004's param groups ``[{"params": [W1, W2], "weight_decay": wd},
    {"params": [b1, b2]}]``.

    Args:
      params: the parameter pytree (arrays or anything with ``ndim``, e.g.
        ``jax.ShapeDtypeStruct``).

    Returns:
      A pytree of Python bools with the structure of ``params``.

    Raises:
      ValueError: if given a path string instead of a pytree (``mask=weights_only`` must
        be written ``mask=weights_only(params)``).

    Example:
      >>> import jax.numpy as jnp
      >>> weights_only({"W1": jnp.ones((3, 2)), "b1": jnp.zeros(2)})
      {'W1': True, 'b1': False}
    """
    if isinstance(params, str):
        raise ValueError(
            f"weights_only expects the params pytree, got the string {params!r}; pass "
            "mask=weights_only(params), not mask=weights_only"
        )

    def decays(keypath: Any, leaf: Any) -> bool:
        name = _leaf_name(path_to_str(keypath))
        if name in _NO_DECAY_NAMES or _BIAS_NAME.match(name):
            return False
        if name in _WEIGHT_NAMES:
            return True
        ndim = leaf.ndim if hasattr(leaf, "ndim") else np.ndim(leaf)
        return ndim >= 2

    return jax.tree_util.tree_map_with_path(decays, params)


def _compile_patterns(patterns: str | Iterable[str] | None, name: str) -> list[re.Pattern]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = (patterns,)
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"{name} must be regex strings, got {pattern!r}")
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise ValueError(f"{name} has an invalid regex {pattern!r}: {err}") from err
    return compiled


def path_mask(
    params: Any,
    include: str | Iterable[str] = (".*",),
    exclude: str | Iterable[str] = (),
) -> Any:
    """A mask from regular expressions on the leaves' "/"-joined paths.

    A leaf is selected when some ``include`` pattern matches its path (``re.search``) and
    no ``exclude`` pattern does; the style of big_vision's ``".*/kernel$"`` decay masks.
    PyTorch equivalent: building optimizer param groups from ``named_parameters()`` names.
    Seeds: 004 (decay on ``W1``, ``W2`` only).

    Args:
      params: the parameter pytree.
      include: one regex or several; default: every leaf.
      exclude: one regex or several, applied after ``include``.

    Returns:
      A pytree of Python bools with the structure of ``params``.

    Raises:
      ValueError: if a pattern is not a string or not a valid regex.

    Example:
      >>> path_mask({"Dense_0": {"kernel": 1.0, "bias": 0.0}}, include=r"/kernel$")
      {'Dense_0': {'bias': False, 'kernel': True}}
    """
    if isinstance(params, str):
        raise ValueError(
            f"path_mask expects the params pytree, got the string {params!r}; pass "
            "mask=path_mask(params, include=...)"
        )
    inc = _compile_patterns(include, "include")
    exc = _compile_patterns(exclude, "exclude")

    def selected(keypath: Any, _: Any) -> bool:
        path = path_to_str(keypath)
        return any(p.search(path) for p in inc) and not any(p.search(path) for p in exc)

    return jax.tree_util.tree_map_with_path(selected, params)

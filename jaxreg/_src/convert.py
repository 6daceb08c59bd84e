"""The implementation of :mod:`jaxreg.convert` (documented there)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flax_key", "flax_to_torch", "torch_key", "torch_to_flax"]

_SEQ_PREFIX = "layers_"


def _to_numpy(value: Any) -> np.ndarray:
    # torch tensors (possibly on a GPU, possibly requiring grad) without importing torch.
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.array(value, copy=True)


def _module_name(parts: list[str]) -> str:
    name = "_".join(parts)
    return _SEQ_PREFIX + name if parts[0].isdigit() else name


def flax_key(torch_key: str, ndim: int) -> tuple[str, ...]:
    """The Flax parameter path of one torch ``state_dict`` key.

    Args:
        torch_key: e.g. ``"features.0.weight"``, ``"0.bias"``, ``"W1"``.
        ndim: number of dimensions of the tensor (decides ``kernel`` vs ``scale``).

    Returns:
        The path as a tuple, e.g. ``("features_0", "kernel")``, ``("layers_0", "bias")``,
        ``("W1",)``.

    Example:
        >>> flax_key("classifier.6.weight", 2)
        ('classifier_6', 'kernel')
    """
    parts = torch_key.split(".")
    if len(parts) == 1:
        return (torch_key,)
    module, leaf = parts[:-1], parts[-1]
    if leaf == "weight":
        leaf = "scale" if ndim == 1 else "kernel"
    return (_module_name(module), leaf)


def torch_key(path: tuple[str, ...] | str) -> str:
    """The torch ``state_dict`` key of a Flax parameter path (inverse of :func:`flax_key`).

    A module name ``layers_N...`` maps back to a top-level Sequential index; ``_<digits>``
    segments become ``.<digits>``. Names in which ``_`` separates words (``my_fc``) cannot be told
    apart from a flattened dotted path; pass a ``template`` to :func:`flax_to_torch` for those.

    Args:
        path: a tuple like ``("features_0", "kernel")`` or a ``"/"``-joined string.

    Returns:
        e.g. ``"features.0.weight"``.

    Example:
        >>> torch_key(("layers_4", "kernel"))
        '4.weight'
    """
    if isinstance(path, str):
        path = tuple(path.split("/"))
    if len(path) == 1:
        return path[0]
    if len(path) != 2:
        raise ValueError(
            f"path={'/'.join(path)!r}: expected a root parameter or <module>/<leaf>; "
            "nested modules need a template"
        )
    module, leaf = path
    if module.startswith(_SEQ_PREFIX) and module[len(_SEQ_PREFIX) :].split("_")[0].isdigit():
        module = module[len(_SEQ_PREFIX) :]
    module = re.sub(r"_(\d+)(?=_|$)", r".\1", module)
    leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    return f"{module}.{leaf}"


def _to_flax_value(key: str, value: np.ndarray) -> np.ndarray:
    if "." in key and key.rsplit(".", 1)[1] == "weight":
        if value.ndim == 2:
            return np.ascontiguousarray(value.T)
        if value.ndim == 4:
            return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
        if value.ndim != 1:
            raise ValueError(
                f"state_dict[{key!r}]: a weight with shape {value.shape} is neither Linear (2-D), "
                "Conv2d (4-D OIHW) nor a norm scale (1-D)"
            )
    return value


def _to_torch_value(leaf: str, value: np.ndarray) -> np.ndarray:
    if leaf == "kernel":
        if value.ndim == 2:
            return np.ascontiguousarray(value.T)
        if value.ndim == 4:
            return np.ascontiguousarray(value.transpose(3, 2, 0, 1))
        raise ValueError(
            f"kernel with shape {value.shape}: only Dense (2-D) and Conv2d (4-D HWIO) convert"
        )
    return value


def _unwrap(tree: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    if set(tree) == {"params"} and isinstance(tree["params"], Mapping):
        return tree["params"], True
    return tree, False


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            flat.update(_flatten(v, (*prefix, str(k))))
        else:
            flat[(*prefix, str(k))] = v
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, v in flat.items():
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return tree


def _joined(path: tuple[str, ...]) -> tuple[str, ...]:
    # A nested Flax module path (blocks_0/fc1/kernel) as the one module name that a torch
    # dotted path becomes (blocks.0.fc1 -> blocks_0_fc1): how nested models are matched.
    return path if len(path) <= 2 else ("_".join(path[:-1]), path[-1])


def torch_to_flax(state_dict: Mapping[str, Any], template: Any = None) -> dict[str, Any]:
    """Converts a torch ``state_dict`` to a Flax parameter tree (NumPy leaves).

    PyTorch side: ``model.state_dict()`` of a twin from :mod:`jaxreg.torch_ref.models` (or any
    model of Linear/Conv2d/raw parameters). Used by the parity suite for every seed (000-004) so
    that JAX and torch start from the same weights.

    Args:
        state_dict: mapping from torch keys to torch tensors or arrays.
        template: optional Flax params (e.g. ``model.init(...)``, with or without the top-level
            ``"params"``, or its ``jax.eval_shape``) to check against: every template leaf must be
            produced with the template's shape, and no key may be left over. The result has the
            template's structure: a nested module ``blocks_0/fc1`` takes torch's
            ``blocks.0.fc1.*``. It is wrapped in ``{"params": ...}`` when the template is.

    Names and shapes are all this checks: a channels-last Flax model that flattens NHWC where
    torch flattens NCHW converts without complaint and computes something else.
    ``jaxreg.lab.compare.check_conversion`` runs both forwards on a probe batch and names the
    first layer whose output differs.

    Returns:
        A nested dict of NumPy arrays, e.g. ``{"fc1": {"kernel": ..., "bias": ...}}``.

    Raises:
        ValueError: naming the key, for an unconvertible weight, a key missing from the
            state_dict, an unexpected key, or a shape mismatch (both shapes given).

    Example:
        >>> import numpy as np
        >>> torch_to_flax({"0.weight": np.zeros((3, 2))})["layers_0"]["kernel"].shape
        (2, 3)
    """
    flat: dict[tuple[str, ...], np.ndarray] = {}
    origin: dict[tuple[str, ...], str] = {}
    for key, value in state_dict.items():
        array = _to_numpy(value)
        path = flax_key(key, array.ndim)
        if path in flat:
            raise ValueError(
                f"state_dict keys {origin[path]!r} and {key!r} both map to {'/'.join(path)!r}"
            )
        flat[path] = _to_flax_value(key, array)
        origin[path] = key
    if template is None:
        return _unflatten(flat)
    inner, wrapped = _unwrap(template)
    nested = _flatten(inner)
    expected = {_joined(p): leaf for p, leaf in nested.items()}
    if len(expected) != len(nested):
        raise ValueError("template: two nested module paths join to the same module name")
    for path, leaf in expected.items():
        name = "/".join(path)
        if path not in flat:
            wanted = repr(torch_key(path)) if len(path) <= 2 else "a state_dict entry"
            raise ValueError(
                f"missing key: Flax parameter {name!r} (shape {tuple(leaf.shape)}) expects "
                f"{wanted} (not found)"
            )
        if tuple(flat[path].shape) != tuple(leaf.shape):
            raise ValueError(
                f"shape mismatch for state_dict key {origin[path]!r} -> {name!r}: torch shape "
                f"{tuple(state_dict[origin[path]].shape)} gives Flax shape "
                f"{tuple(flat[path].shape)}, template expects {tuple(leaf.shape)}"
            )
    extra = sorted(p for p in flat if p not in expected)
    if extra:
        raise ValueError(
            f"unexpected key(s) {[origin[p] for p in extra]}: their Flax paths "
            f"{['/'.join(p) for p in extra]} are not in the template"
        )
    params = _unflatten({p: flat[_joined(p)] for p in nested})
    return {"params": params} if wrapped else params


def flax_to_torch(params: Mapping[str, Any], template: Mapping[str, Any] | None = None) -> dict:
    """Converts a Flax parameter tree to a torch-style ``state_dict`` of NumPy arrays.

    Inverse of :func:`torch_to_flax`: ``flax_to_torch(torch_to_flax(sd))`` equals ``sd`` bit for
    bit. Load the result into a torch twin with
    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``.

    Args:
        params: Flax params, with or without the top-level ``"params"``.
        template: optional torch ``state_dict`` (or any mapping with its keys and shaped values):
            keys are then matched through :func:`flax_key` (needed for module names containing
            ``_`` and for nested modules: ``blocks_0/fc1`` gives ``blocks.0.fc1.*``), and a
            missing or unexpected key or a wrong shape raises.

    Returns:
        A dict from torch keys to NumPy arrays.

    Raises:
        ValueError: naming the key, for a missing/unexpected key or a shape mismatch.

    Example:
        >>> import numpy as np
        >>> flax_to_torch({"params": {"layers_0": {"kernel": np.zeros((2, 3))}}})["0.weight"].shape
        (3, 2)
    """
    inner, _ = _unwrap(params)
    flat = {path: _to_numpy(v) for path, v in _flatten(inner).items()}
    if template is None:
        return {torch_key(path): _to_torch_value(path[-1], v) for path, v in flat.items()}
    flat = {_joined(path): v for path, v in flat.items()}
    out: dict[str, np.ndarray] = {}
    for key, ref in template.items():
        path = flax_key(key, len(ref.shape))
        if path not in flat:
            raise ValueError(
                f"missing key: state_dict key {key!r} (shape {tuple(ref.shape)}) expects Flax "
                f"parameter {'/'.join(path)!r} (not found)"
            )
        value = _to_torch_value(path[-1], flat.pop(path))
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"shape mismatch for Flax parameter {'/'.join(path)!r} -> state_dict key {key!r}: "
                f"gives torch shape {tuple(value.shape)}, template expects {tuple(ref.shape)}"
            )
        out[key] = value
    if flat:
        raise ValueError(
            f"unexpected Flax parameter(s) {sorted('/'.join(p) for p in flat)}: no matching key "
            "in the template state_dict"
        )
    return out

"""Data placement: what the engine accepts, checked, cast and put on the device once.

:func:`as_arrays` reads the splits of a data set object, dict or tuple; :func:`device_arrays`
casts them (float32 inputs; int32 labels for classification) and pads each evaluation split to
whole evaluation chunks, with a mask that drops the padded rows, so that evaluation has one static
shape. The engine passes the result to its compiled function as an argument, never as a constant.

PyTorch equivalent: ``TensorDataset`` + ``DataLoader(batch_size=eval_batch_size)`` (whose last
short batch is what the padding and mask stand for).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_arrays(data: Any) -> dict[str, np.ndarray]:
    """The splits of what :func:`jaxreg.lab.engine.make_train` accepts, checked.

    Args:
      data: a :class:`jaxreg.lab.data.FashionMNIST`-like object (``x_train`` ... attributes), a
        dict with those keys, or a tuple ``(x_train, y_train[, x_test, y_test[, x_val, y_val]])``.

    Returns:
      ``{"x_train", "y_train"}`` plus ``x_/y_test`` and ``x_/y_val`` where given.

    Raises:
      ValueError: a missing training split, an x without its y, unequal lengths, an empty split.

    Example:
      >>> sorted(as_arrays((np.zeros((3, 2)), np.zeros(3))))
      ['x_train', 'y_train']
    """
    names = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
    if isinstance(data, Mapping):
        got = {k: data.get(k) for k in names}
    elif hasattr(data, "x_train"):
        got = {k: getattr(data, k, None) for k in names}
    elif isinstance(data, tuple | list) and len(data) in (2, 4, 6):
        got = dict(zip(names, data, strict=False))
    else:
        raise ValueError(
            f"data={type(data).__name__}: expected an object with x_train/y_train[/x_test/y_test"
            "/x_val/y_val] attributes or keys, or a tuple (x_train, y_train[, x_test, y_test])"
        )
    out = {}
    for split in ("train", "test", "val"):
        x, y = got.get("x_" + split), got.get("y_" + split)
        if (x is None) != (y is None):
            raise ValueError(f"data: x_{split} and y_{split} must both be given or both be None")
        if x is None:
            continue
        if len(x) != len(y):
            raise ValueError(f"data: len(x_{split})={len(x)} != len(y_{split})={len(y)}")
        if len(x) == 0:
            raise ValueError(f"data: the {split} split is empty")
        out["x_" + split], out["y_" + split] = x, y
    if "x_train" not in out:
        raise ValueError("data: x_train and y_train are required")
    return out


def label_dtype(config) -> type:
    """int32 class labels for ``cross_entropy``/``nll``, float32 targets otherwise."""
    return np.int32 if config.loss in ("cross_entropy", "nll") else np.dtype(config.dtype)


def device_arrays(arrays: dict[str, np.ndarray], config) -> dict[str, jax.Array]:
    """Casts and pads the splits of :func:`as_arrays` for a :class:`TrainConfig`, on the device.

    Args:
      arrays: the output of :func:`as_arrays`.
      config: the run's config (``loss``, ``eval_batch_size``, ``track_activation_variance``,
        ``probe_size``).

    Returns:
      ``x_train, y_train``; per evaluation split ``x_, y_`` padded to a multiple of the eval
      chunk and ``m_`` (1.0 real row, 0.0 padding); ``x_probe`` when activation variance is
      tracked.

    Example:
      >>> from jaxreg.lab.config import TrainConfig
      >>> from jaxreg.models import WeightDecayMLP
      >>> cfg = TrainConfig(model=WeightDecayMLP(), eval_batch_size=4)
      >>> x, y = np.zeros((6, 784)), np.zeros(6)
      >>> out = device_arrays(as_arrays((x, y, x, y)), cfg)
      >>> out["x_test"].shape, out["m_test"].tolist()
      ((8, 784), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    """
    labels = label_dtype(config)
    dtype = np.dtype(config.dtype)
    out = {
        "x_train": jnp.asarray(np.asarray(arrays["x_train"], dtype)),
        "y_train": jnp.asarray(np.asarray(arrays["y_train"], labels)),
    }
    for split in sorted(s for s in ("test", "val") if "x_" + s in arrays):
        x = np.asarray(arrays["x_" + split], dtype)
        y = np.asarray(arrays["y_" + split], labels)
        eb = min(config.eval_batch_size, len(x))
        pad = (-len(x)) % eb
        # Padding to whole eval batches keeps one static shape; the mask drops the pad rows.
        out["x_" + split] = jnp.asarray(np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]))
        out["y_" + split] = jnp.asarray(np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)]))
        out["m_" + split] = jnp.asarray(np.arange(len(x) + pad) < len(x), dtype)
    if config.track_activation_variance:
        probe = arrays.get("x_test", arrays["x_train"])
        out["x_probe"] = jnp.asarray(np.asarray(probe[: config.probe_size], dtype))
    return out

"""The implementation of :mod:`jaxreg.numpy_ref` (documented there)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NumpyDropout", "cs231n_params", "predict", "train_forward"]

_VARIANTS = ("vanilla", "inverted")


def _check_keep_prob(keep_prob: float, *, allow_zero: bool) -> float:
    keep_prob = float(keep_prob)
    low_ok = keep_prob >= 0.0 if allow_zero else keep_prob > 0.0
    if not (low_ok and keep_prob <= 1.0):
        allowed = "[0, 1]" if allow_zero else "(0, 1] (the seed divides by it)"
        raise ValueError(f"keep_prob must be in {allowed}, got {keep_prob!r}.")
    return keep_prob


def _check_variant(variant: str) -> None:
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}.")


class NumpyDropout:
    """Seed 000's NumPy ``Dropout`` layer: inverted dropout with a KEEP probability.

    ``forward`` draws ``mask = binomial(1, keep_prob, X.shape) / keep_prob`` and returns
    ``X * mask``; ``backward(dout)`` returns ``(dout * mask, [])`` (no parameters). The scaled
    mask is kept in ``self.mask``, as in the seed.

    PyTorch equivalent: ``nn.Dropout(p=1 - keep_prob)`` in training mode; in jaxreg,
    ``jaxreg.dropout(x, rate=1 - keep_prob, key=...)``.

    Args:
        keep_prob: probability of keeping an element, in ``(0, 1]`` (the seed's ``prob``).

    Example:
        >>> import numpy as np
        >>> layer = NumpyDropout(keep_prob=0.5)
        >>> out = layer.forward(np.ones((2, 3)), np.random.default_rng(0))
        >>> bool(np.all((out == 0) | (out == 2.0)))
        True
        >>> dx, params = layer.backward(np.ones((2, 3)))
        >>> bool(np.array_equal(dx, out)), params
        (True, [])
    """

    def __init__(self, keep_prob: float = 0.5):
        self.keep_prob = _check_keep_prob(keep_prob, allow_zero=False)
        self.params: list[Any] = []
        self.mask: np.ndarray | None = None

    def forward(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Training-mode forward pass; stores the scaled mask for ``backward``.

        Args:
            X: input array.
            rng: the generator the mask is drawn from (the seed used ``np.random``).

        Returns:
            ``X * mask``, shaped like ``X``.
        """
        self.mask = rng.binomial(1, self.keep_prob, size=X.shape) / self.keep_prob
        out = X * self.mask
        return out.reshape(X.shape)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """Gradient of ``forward``'s output with respect to ``X``.

        Args:
            dout: upstream gradient, shaped like the last ``forward`` input.

        Returns:
            ``(dout * mask, [])``: the input gradient and the (empty) parameter gradients.

        Raises:
            ValueError: if ``forward`` has not been called.
        """
        if self.mask is None:
            raise ValueError("NumpyDropout.backward called before forward: there is no mask.")
        dX = dout * self.mask
        return dX, []


def cs231n_params(
    rng: np.random.Generator, sizes: tuple[int, int, int, int] = (4, 8, 8, 3), scale: float = 0.1
) -> dict[str, np.ndarray]:
    """Random parameters for seed 002's cs231n 3-layer network (column convention).

    Args:
        rng: generator for the Gaussian weights and biases.
        sizes: ``(d_in, h1, h2, d_out)``.
        scale: standard deviation of every entry.

    Returns:
        ``{"W1": (h1, d_in), "b1": (h1, 1), "W2": (h2, h1), "b2": (h2, 1), "W3": (d_out, h2),
        "b3": (d_out, 1)}``.

    Example:
        >>> cs231n_params(np.random.default_rng(0), (2, 5, 4, 1))["W2"].shape
        (4, 5)
    """
    d_in, h1, h2, d_out = sizes
    shapes = {"W1": (h1, d_in), "b1": (h1, 1), "W2": (h2, h1), "b2": (h2, 1)}
    shapes.update({"W3": (d_out, h2), "b3": (d_out, 1)})
    return {name: scale * rng.standard_normal(shape) for name, shape in shapes.items()}


def train_forward(
    params: dict[str, np.ndarray],
    X: np.ndarray,
    keep_prob: float,
    rng: np.random.Generator,
    *,
    variant: str = "inverted",
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Seed 002's cs231n ``train_step`` forward pass with dropout after each hidden ReLU.

    ``"vanilla"``: ``H *= rand(*H.shape) < p`` (no scaling, so ``predict`` must scale by ``p``).
    ``"inverted"``: ``H *= (rand(*H.shape) < p) / p`` (``predict`` is unchanged). cs231n and
    seed 002 recommend the inverted form.

    PyTorch equivalent: ``nn.Dropout(1 - keep_prob)`` after each hidden ReLU (inverted form).

    Args:
        params: ``W1 b1 W2 b2 W3 b3`` in the column convention (see :func:`cs231n_params`).
        X: input, ``(d_in, batch)``.
        keep_prob: probability of keeping a unit (the seed's ``p``), in ``(0, 1]``.
        rng: generator for the two masks (the seed used ``np.random.rand``).
        variant: ``"vanilla"`` or ``"inverted"``.

    Returns:
        ``(out, (U1, U2))``: the scores ``(d_out, batch)`` and the two boolean KEEP masks, so a
        test can replay them with ``jaxreg.dropout_with_mask`` or ``jaxreg.vanilla_dropout``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> out, (U1, U2) = train_forward(cs231n_params(rng), np.ones((4, 2)), 0.5, rng)
        >>> out.shape, U1.dtype
        ((3, 2), dtype('bool'))
    """
    _check_variant(variant)
    p = _check_keep_prob(keep_prob, allow_zero=variant == "vanilla")
    H1 = np.maximum(0, np.dot(params["W1"], X) + params["b1"])
    U1 = rng.random(H1.shape) < p
    H1 = H1 * (U1 / p if variant == "inverted" else U1)
    H2 = np.maximum(0, np.dot(params["W2"], H1) + params["b2"])
    U2 = rng.random(H2.shape) < p
    H2 = H2 * (U2 / p if variant == "inverted" else U2)
    out = np.dot(params["W3"], H2) + params["b3"]
    return out, (U1, U2)


def predict(
    params: dict[str, np.ndarray],
    X: np.ndarray,
    keep_prob: float | None = None,
    *,
    variant: str = "inverted",
) -> np.ndarray:
    """Seed 002's cs231n ``predict``: test-time forward pass, no randomness.

    ``"vanilla"`` multiplies each hidden activation by ``p`` (its training-time expectation);
    ``"inverted"`` ignores ``keep_prob`` because training already divided by it.

    PyTorch equivalent: the same network after ``model.eval()`` (inverted form).

    Args:
        params: ``W1 b1 W2 b2 W3 b3`` in the column convention.
        X: input, ``(d_in, batch)``.
        keep_prob: the seed's ``p``; required by ``"vanilla"``, ignored by ``"inverted"``.
        variant: ``"vanilla"`` or ``"inverted"``.

    Returns:
        The scores, ``(d_out, batch)``.

    Raises:
        ValueError: for an unknown ``variant``, or ``"vanilla"`` without a ``keep_prob`` in
            ``[0, 1]``.

    Example:
        >>> params = cs231n_params(np.random.default_rng(0))
        >>> predict(params, np.ones((4, 2)), 0.5, variant="vanilla").shape
        (3, 2)
    """
    _check_variant(variant)
    p = 1.0
    if variant == "vanilla":
        if keep_prob is None:
            raise ValueError("predict(variant='vanilla') needs keep_prob (the seed's p).")
        p = _check_keep_prob(keep_prob, allow_zero=True)
    H1 = np.maximum(0, np.dot(params["W1"], X) + params["b1"]) * p
    H2 = np.maximum(0, np.dot(params["W2"], H1) + params["b2"]) * p
    return np.dot(params["W3"], H2) + params["b3"]

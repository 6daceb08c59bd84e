"""Seed 003's MLP with its regularizer chosen by name: one architecture, five noise techniques.

:class:`NoiseMLP` is the 784-256-256-10 network of seeds 003/004 (``Linear ReLU [noise] Linear
ReLU [noise] Linear``) in which the noise between the layers is a static choice and its strength
a call-time, possibly traced, scalar. Every technique perturbs what the layer after a hidden
layer sees: dropout, Gaussian dropout and Gaussian noise act on the hidden activations (where
seed 003 puts its dropout); DropConnect drops the weights of ``lin2`` and ``lin3``, the two
layers that read those activations (Wan et al.'s weight-level counterpart of the same dropout).
The parameters are named ``lin1, lin2, lin3`` whatever the technique and start from torch's
default ``nn.Linear`` initialization, so one seed gives every technique the same initial
weights (a matched comparison). Exported as ``jaxreg.models.NoiseMLP``.

PyTorch equivalent: d2l's ``Net`` (seeds 003/004) with its ``dropout_layer`` replaced by
``x * (1 + sqrt(p / (1 - p)) * torch.randn_like(x))`` (Gaussian dropout),
``x + s * torch.randn_like(x)`` (Gaussian noise) or ``F.linear(x, F.dropout(W, p), b)``
(DropConnect).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxreg._src._toolkit import check_mode, concrete_float, reject_non_number
from jaxreg._src.init import Dense, torch_bias_init, torch_kernel_init
from jaxreg._src.nn import Dropout
from jaxreg._src.nn_noise import DropConnectDense, GaussianDropout, GaussianNoise

__all__ = ["NOISE_TECHNIQUES", "NoiseMLP"]

NOISE_TECHNIQUES = ("none", "dropout", "dropconnect", "gaussian_dropout", "gaussian_noise")
"""The values of :attr:`NoiseMLP.technique`."""

# Which strengths each technique accepts: the drop probabilities of the dropout family, a
# standard deviation for additive noise (Gaussian dropout's variance diverges at rate 1).
_RANGES = {
    "none": ("any value (ignored)", lambda s: True),
    "dropout": ("[0, 1]", lambda s: 0.0 <= s <= 1.0),
    "dropconnect": ("[0, 1]", lambda s: 0.0 <= s <= 1.0),
    "gaussian_dropout": ("[0, 1)", lambda s: 0.0 <= s < 1.0),
    "gaussian_noise": ("[0, inf)", lambda s: 0.0 <= s < np.inf),
}


class NoiseMLP(nn.Module):
    """Seeds 003/004's 784-256-256-10 MLP with a named noise technique between its layers.

    ``technique`` (static: it changes the program) is one of :data:`NOISE_TECHNIQUES`:

    * ``"none"``: ``Linear ReLU Linear ReLU Linear``; ``strength`` is ignored.
    * ``"dropout"``: inverted dropout of rate ``strength`` after both hidden ReLUs (seed 003 with
      one rate for both layers).
    * ``"dropconnect"``: ``lin2`` and ``lin3`` are :class:`jaxreg.nn.DropConnectDense` with rate
      ``strength`` (one kernel mask per step, shared by the batch).
    * ``"gaussian_dropout"``: multiplicative ``N(1, strength / (1 - strength))`` noise after both
      hidden ReLUs (:func:`jaxreg.gaussian_dropout`).
    * ``"gaussian_noise"``: additive ``N(0, strength**2)`` noise after both hidden ReLUs
      (:func:`jaxreg.gaussian_noise`).

    Every technique is off when ``deterministic=True`` (DropConnect then uses the mean kernel).
    Parameters are ``lin1``, ``lin2``, ``lin3`` (``kernel`` ``(in, out)``, ``bias``) for every
    technique, with torch's default ``nn.Linear`` initialization.

    PyTorch equivalent: d2l's ``Net`` (``jaxreg.torch_ref.models.DropoutMLP``) with the noise of
    the module docstring in place of ``dropout_layer``; Keras ``GaussianDropout`` /
    ``GaussianNoise`` layers.

    Attributes:
        technique: one of :data:`NOISE_TECHNIQUES`.
        strength: the default strength when the call gives none (a drop rate, or a standard
            deviation for ``"gaussian_noise"``).
        num_inputs: flattened input size.
        num_hiddens1: first hidden width.
        num_hiddens2: second hidden width.
        num_outputs: classes.
        param_dtype: parameter dtype at initialization.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> m = NoiseMLP(technique="gaussian_dropout")
        >>> p = m.init(jax.random.key(0), jnp.ones((2, 784)))
        >>> y = m.apply(p, jnp.ones((2, 784)), deterministic=False, strength=jnp.float32(0.3),
        ...             rngs={"dropout": jax.random.key(1)})
        >>> y.shape
        (2, 10)

    References:
        Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting",
        JMLR 2014 (dropout, Gaussian dropout, section 10); Wan et al., "Regularization of Neural
        Networks using DropConnect", ICML 2013; d2l.ai chapter 4.6 (seeds 003/004).
    """

    # The strength a sweep may trace: see ``jaxreg.lab.config.declared_hparams``.
    traced_hparams = ("strength",)

    technique: str = "dropout"
    strength: float = 0.5
    num_inputs: int = 784
    num_hiddens1: int = 256
    num_hiddens2: int = 256
    num_outputs: int = 10
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool = True, strength: Any = None
    ) -> jax.Array:
        """Applies the MLP.

        Args:
            x: inputs, any shape whose trailing size flattens to ``num_inputs``.
            deterministic: turn the noise off (evaluation).
            strength: overrides the attribute; a traced scalar is allowed, so one compiled
                function serves a whole sweep over strengths.

        Returns:
            Logits of shape ``(N, num_outputs)``.

        Raises:
            ValueError: an unknown ``technique``, or a concrete ``strength`` outside the
                technique's range (named with the allowed values).
        """
        if self.technique not in NOISE_TECHNIQUES:
            raise ValueError(f"technique={self.technique!r}: allowed values are {NOISE_TECHNIQUES}")
        s = self.strength if strength is None else strength
        _check_strength(self.technique, s)
        tech, det = self.technique, check_mode(deterministic, "deterministic", "NoiseMLP")
        kw = {"param_dtype": self.param_dtype}
        x = x.reshape((-1, self.num_inputs))
        x = nn.relu(Dense(self.num_hiddens1, name="lin1", **kw)(x))
        x = self._noise(x, s, det)
        if tech == "dropconnect":
            x = nn.relu(self._dropconnect(self.num_hiddens2, "lin2", x, s, det))
            return self._dropconnect(self.num_outputs, "lin3", x, s, det)
        x = nn.relu(Dense(self.num_hiddens2, name="lin2", **kw)(x))
        x = self._noise(x, s, det)
        return Dense(self.num_outputs, name="lin3", **kw)(x)

    def _noise(self, x: jax.Array, s: Any, det: bool) -> jax.Array:
        if self.technique == "dropout":
            return Dropout(rate=0.5)(x, deterministic=det, rate=s)
        if self.technique == "gaussian_dropout":
            return GaussianDropout(rate=0.5)(x, deterministic=det, rate=s)
        if self.technique == "gaussian_noise":
            return GaussianNoise(stddev=0.1)(x, deterministic=det, stddev=s)
        return x

    def _dropconnect(self, features: int, name: str, x: jax.Array, s: Any, det: bool):
        # Flax bias initializers never see fan_in; torch's bias bound needs it, so it is bound
        # here from the input width (what jaxreg.init.Dense does at call time).
        layer = DropConnectDense(
            features,
            kernel_init=lambda k, shape, dtype=jnp.float32: torch_kernel_init(
                k, shape, self.param_dtype
            ),
            bias_init=lambda k, shape, dtype=jnp.float32: torch_bias_init(x.shape[-1])(
                k, shape, self.param_dtype
            ),
            name=name,
        )
        return layer(x, deterministic=det, rate=s)


def _check_strength(technique: str, strength: Any) -> None:
    reject_non_number(strength, "strength", None, "a number")
    if np.ndim(strength) != 0:
        raise ValueError(
            f"strength must be a scalar, got shape {np.shape(strength)}; to sweep several "
            "values use jax.vmap over a scalar strength"
        )
    value = concrete_float(strength)
    allowed, ok = _RANGES[technique]
    if value is not None and not (np.isfinite(value) and ok(value)) and technique != "none":
        raise ValueError(
            f"strength={value!r} for technique={technique!r}: allowed values are {allowed}"
        )

"""jaxreg's noise layers as torch functions, replayable in a matched run.

torch has no op for Gaussian noise or dropout, DropConnect, vanilla (cs231n) dropout, and drop
path needs torchvision; a torch twin of a jaxreg model writes them by hand, with
``torch.randn_like`` and friends, which a matched comparison cannot share. These functions draw
with torch as usual, and inside :func:`jaxreg.torch_ref.replay.replaying` take JAX's draw
instead (the values for the Gaussian kinds, the keep mask for the others), computing with the
same arithmetic as jaxreg's functions so that a float64 replay agrees to the last bit:

* :func:`gaussian_noise`: ``x + noise`` (jaxreg: ``x + stddev * normal``, ``noise`` that
  product);
* :func:`gaussian_dropout`: ``x * factor`` (jaxreg: ``x * (1 + s * normal)``);
* :func:`drop_connect_linear`: ``F.linear(x, W * (mask / keep), b)`` (ATen's dropout on the
  weight);
* :func:`drop_path`: torchvision's ``stochastic_depth(x, p, "row")`` arithmetic;
* :func:`vanilla_dropout`: ``x * mask`` in training, ``x * keep_prob`` at evaluation.

Example:
    >>> x = torch.ones(2, 3)
    >>> bool(torch.equal(gaussian_noise(x, 0.1, training=False), x))
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from jaxreg.torch_ref.replay import UnsharedDrawError, _tensor, active_replay

__all__ = [
    "drop_connect_linear",
    "drop_path",
    "gaussian_dropout",
    "gaussian_noise",
    "vanilla_dropout",
]


def _check_rate(rate: float, name: str, upper_open: bool = False) -> float:
    rate = float(rate)
    ok = 0.0 <= rate < 1.0 if upper_open else 0.0 <= rate <= 1.0
    if not ok:
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must be in {bound}, got {rate!r}")
    return rate


def gaussian_noise(
    x: torch.Tensor,
    stddev: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Additive Gaussian noise ``x + stddev * randn_like(x)`` in training; ``x`` otherwise.

    jaxreg equivalent: :func:`jaxreg.gaussian_noise` / ``jaxreg.nn.GaussianNoise``. Inside
    ``replaying`` the noise added is JAX's (a ``gaussian_noise`` draw of ``x``'s shape).

    Args:
        x: input tensor.
        stddev: finite standard deviation ``>= 0``.
        training: add noise if True.
        generator: optional ``torch.Generator`` for the noise outside a replay.

    Returns:
        A tensor like ``x``.

    Raises:
        ValueError: if ``stddev`` is negative, infinite or NaN.
    """
    stddev = float(stddev)
    if not 0.0 <= stddev < math.inf:
        raise ValueError(f"stddev must be in [0, inf) (finite), got {stddev!r}")
    if not training:
        return x
    replay = active_replay()
    op = "jaxreg.torch_ref.noise.gaussian_noise"
    if replay is not None:
        if stddev == 0.0:
            d = replay.draw(op, ("gaussian_noise",), x.shape, optional=True)
            if d is not None and bool(np.any(np.asarray(d.value) != 0)):
                raise UnsharedDrawError(
                    f"{op} with stddev=0 takes JAX site {d.site!r}, whose noise is not zero: "
                    "the two models' standard deviations differ at this site"
                )
            return x
        d = replay.draw(op, ("gaussian_noise",), x.shape)
        return x + _tensor(d.value, x.dtype, x.device)
    if stddev == 0.0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + stddev * noise


def gaussian_dropout(
    x: torch.Tensor,
    rate: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian dropout ``x * (1 + sqrt(rate / (1 - rate)) * randn_like(x))`` in training.

    jaxreg equivalent: :func:`jaxreg.gaussian_dropout` / ``jaxreg.nn.GaussianDropout``; Keras
    ``GaussianDropout``. Inside ``replaying`` the factor is JAX's (a ``gaussian_dropout``
    draw of ``x``'s shape).

    Args:
        x: input tensor.
        rate: in ``[0, 1)``.
        training: apply the noise if True.
        generator: optional ``torch.Generator`` outside a replay.

    Returns:
        A tensor like ``x``.

    Raises:
        ValueError: if ``rate`` is outside ``[0, 1)``.
    """
    rate = _check_rate(rate, "rate", upper_open=True)
    if not training:
        return x
    replay = active_replay()
    op = "jaxreg.torch_ref.noise.gaussian_dropout"
    if replay is not None:
        d = replay.draw(op, ("gaussian_dropout",), x.shape, optional=rate == 0.0)
        if d is None:
            return x
        return x * _tensor(d.value, x.dtype, x.device)
    if rate == 0.0:
        return x
    std = math.sqrt(rate / (1.0 - rate))
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x * (1 + std * eps)


def drop_path(x: torch.Tensor, rate: float, training: bool = True) -> torch.Tensor:
    """Stochastic depth, one draw per example: torchvision's ``stochastic_depth(x, p, "row")``.

    The same arithmetic as torchvision (``noise.bernoulli_(keep); noise.div_(keep)`` when
    ``keep > 0``; ``x * noise``), without needing torchvision. jaxreg equivalent:
    :func:`jaxreg.drop_path` / ``jaxreg.nn.DropPath``. Inside ``replaying`` the keep mask is
    JAX's (a ``drop_path`` draw of shape ``(N,)``).

    Args:
        x: input tensor, batch first.
        rate: drop probability in ``[0, 1]``.
        training: apply it if True.

    Returns:
        A tensor like ``x``.
    """
    rate = _check_rate(rate, "rate")
    if not training or rate == 0.0:
        replay = active_replay()
        if training and replay is not None:
            replay.degenerate("jaxreg.torch_ref.noise.drop_path", ("drop_path",), x.shape[:1], 0.0)
        return x
    keep = 1.0 - rate
    size = [x.shape[0]] + [1] * (x.dim() - 1)
    replay = active_replay()
    if replay is not None:
        d = replay.draw("jaxreg.torch_ref.noise.drop_path", ("drop_path",), x.shape[:1])
        noise = _tensor(d.value, x.dtype, x.device).reshape(size)
    else:
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
    if keep > 0.0:
        noise.div_(keep)
    return x * noise


def drop_connect_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rate: float,
    training: bool = True,
) -> torch.Tensor:
    """A linear layer whose weight is dropped out in training (DropConnect, one mask per call).

    ``F.linear(x, F.dropout(weight, rate, training), bias)``: the twin of
    ``jaxreg.nn.DropConnectDense`` (whose ``kernel`` is ``weight.T``). Inside ``replaying``
    the mask is JAX's (a ``drop_connect`` draw of the kernel's shape ``(in, out)``,
    transposed here), applied with ATen's dropout arithmetic ``W * (mask / keep)``.

    Args:
        x: ``(..., in)``.
        weight: ``(out, in)``, torch's layout.
        bias: ``(out,)`` or None.
        rate: drop probability of each weight, in ``[0, 1]``.
        training: drop weights if True.

    Returns:
        ``(..., out)``.
    """
    rate = _check_rate(rate, "rate")
    replay = active_replay()
    if not training:
        return F.linear(x, weight, bias)
    if replay is None:
        return F.linear(x, F.dropout(weight, rate, True), bias)
    op = "jaxreg.torch_ref.noise.drop_connect_linear"
    shape = (weight.shape[1], weight.shape[0])
    if rate == 0.0:
        replay.degenerate(op, ("drop_connect",), shape, 0.0)
        return F.linear(x, weight, bias)
    d = replay.draw(op, ("drop_connect",), shape)
    if rate == 1.0:
        dropped = weight * torch.zeros((), dtype=weight.dtype, device=weight.device)
    else:
        noise = _tensor(d.value, weight.dtype, weight.device).T
        dropped = weight * noise.div_(1 - rate)
    return F.linear(x, dropped, bias)


def vanilla_dropout(
    x: torch.Tensor,
    keep_prob: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """cs231n's vanilla dropout: ``x * (rand < keep_prob)`` in training, ``x * keep_prob`` at test.

    jaxreg equivalent: :func:`jaxreg.vanilla_dropout` / ``jaxreg.nn.VanillaDropout``. Inside
    ``replaying`` the keep mask is JAX's (a ``vanilla_dropout`` draw of ``x``'s shape).

    Args:
        x: input tensor.
        keep_prob: KEEP probability in ``[0, 1]``.
        training: drop units if True, else scale by ``keep_prob``.
        generator: optional ``torch.Generator`` outside a replay.

    Returns:
        A tensor like ``x``.
    """
    keep_prob = _check_rate(keep_prob, "keep_prob")
    if not training:
        return x * keep_prob
    replay = active_replay()
    if replay is not None:
        d = replay.draw("jaxreg.torch_ref.noise.vanilla_dropout", ("vanilla_dropout",), x.shape)
        mask = _tensor(d.value, x.dtype, x.device)
    else:
        mask = (torch.rand(x.shape, generator=generator, device=x.device) < keep_prob).to(x.dtype)
    return x * mask

"""The torch side of a :class:`jaxreg.lab.spec.Spec`, derived, never written per experiment.

The twin from ``spec.torch_model`` loaded with the JAX initialization (:mod:`jaxreg.convert`),
the ``torch.optim`` optimizer with param groups from the optimizer's decay mask (a
:class:`~jaxreg.lab.spec.Mask` resolved on the JAX parameters and mapped onto the twin's
parameter names), and the penalty terms of :class:`~jaxreg.lab.spec.Penalty` /
:class:`~jaxreg.lab.spec.Activity`. :class:`jaxreg.lab.runner.Runner` hands them to the one torch
loop (:func:`jaxreg.torch_ref.engine.train_classifier`). Torch is imported inside the functions,
so importing this module (and the runner) needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jaxreg.lab import spec as spec_mod
from jaxreg.lab.spec import Spec, Variant

__all__ = ["torch_activity", "torch_optimizer", "torch_penalty", "torch_selection", "torch_twin"]


def _flat_mask(mask: spec_mod.Mask, params: Any) -> dict[str, bool]:
    import jax

    from jaxreg import masks

    resolved = mask.resolve(params)
    flat = jax.tree_util.tree_flatten_with_path(resolved)[0]
    return {masks.path_to_str(path): bool(flag) for path, flag in flat}


def torch_selection(net: Any, mask: spec_mod.Mask, params: Any) -> list[str]:
    """The torch parameter names of ``net`` that ``mask`` selects on the JAX ``params``.

    Each torch name maps to its Flax path through :func:`jaxreg.convert.flax_key` (the
    conversion's naming rule), so the torch side decays / penalizes exactly the tensors the
    JAX side does.

    Raises:
      ValueError: a torch parameter with no Flax counterpart (naming it).
    """
    from jaxreg import convert

    flags = _flat_mask(mask, params)
    selected = []
    for name, p in net.named_parameters():
        path = "/".join(convert.flax_key(name, p.ndim))
        if path not in flags:
            raise ValueError(
                f"torch parameter {name!r} maps to Flax path {path!r}, which the JAX model does "
                f"not have (its parameters: {', '.join(sorted(flags))})"
            )
        if flags[path]:
            selected.append(name)
    return selected


def torch_optimizer(spec: Spec, net: Any, hparams: Mapping[str, float], params: Any):
    """``torch.optim.SGD`` / ``Adam`` / ``AdamW`` over ``net`` as ``spec.optimizer`` says.

    Weight decay ``hparams["weight_decay"]`` applies to the tensors the decay mask selects (one
    param group), none to the others (a second group), as seed 004's param groups; with no
    decay, or every tensor decayed, one group.
    """
    import torch

    opt = spec.optimizer
    wd = float(hparams["weight_decay"])
    lr = float(hparams["lr"])
    named = dict(net.named_parameters())
    decay = set(torch_selection(net, opt.decay_mask, params)) if wd else set(named)
    if decay == set(named):
        groups: Any = [{"params": list(named.values()), "weight_decay": wd}]
    else:
        groups = [
            {"params": [p for n, p in named.items() if n in decay], "weight_decay": wd},
            {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0},
        ]
    if opt.kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=opt.momentum)
    make = torch.optim.Adam if opt.kind == "adam" else torch.optim.AdamW
    return make(groups, lr=lr, betas=opt.betas, eps=opt.eps)


def torch_penalty(
    spec: Spec, net: Any, hparams: Mapping[str, float], params: Any
) -> Callable[[Any], Any] | None:
    """The weight penalty term of ``spec`` for the torch twin (None when its strength is 0).

    ``strength * sum(term(p) for p in selected)`` in ``named_parameters`` order, with the
    seeds' formulas: ``l1`` ``p.abs().sum()``, ``l2`` ``(p**2).sum() / 2``, ``l2_mean`` seed
    004's ``(p**2).mean() / 2``, ``l2_norm`` seed 000's ``torch.sqrt((p**2).sum())``.
    """
    if not spec.penalties:
        return None
    from jaxreg.torch_ref import penalties as torch_penalties

    penalty = spec.penalties[0]
    strength = float(hparams[penalty.hparam])
    if not strength:
        # No term at all (not 0 * term): the objective is then exactly the data loss.
        return None
    names = torch_selection(net, penalty.mask, params)
    term = torch_penalties.TERMS[penalty.kind]

    def total(model):
        tensors = dict(model.named_parameters())
        return strength * sum(term(tensors[n]) for n in names)

    return total


def torch_activity(spec: Spec, hparams: Mapping[str, float]) -> Callable[[Any], Any] | None:
    """The activation penalties of ``spec`` on the twin's extra outputs (None without any):
    ``outputs -> [strength * term(outputs[index]), ...]``, which the torch loop adds to the
    objective one by one."""
    if not spec.activity:
        return None
    from jaxreg.torch_ref import penalties as torch_penalties

    terms = [
        (a.index, float(hparams[a.hparam]), torch_penalties.ACTIVITY_TERMS[a.kind])
        for a in spec.activity
    ]

    def each(outputs):
        return [strength * term(outputs[index]) for index, strength, term in terms]

    return each


def torch_twin(spec: Spec, variant: Variant, params: Any, dtype: str):
    """The variant's torch model, loaded with the JAX ``params`` and cast to ``dtype``."""
    import torch

    from jaxreg import convert
    from jaxreg.torch_ref import engine as torch_engine

    factory = variant.torch_model or spec.torch_model
    if factory is None:
        raise ValueError(
            f"spec {spec.name!r}, variant {variant.name!r}: no torch_model, so no torch side "
            "(set Spec.torch_model to a zero-argument factory of the torch twin)"
        )
    net = factory()
    torch_engine.load_params(net, convert.flax_to_torch(params))
    return net.to(torch.float64 if dtype == "float64" else torch.float32)


# ----- the runner ------------------------------------------------------------------------------

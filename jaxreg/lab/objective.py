"""What a training step minimizes and what an epoch reports, built from a :class:`TrainConfig`.

The engine (:mod:`jaxreg.lab.engine`) owns the loop; this module owns the arithmetic inside it:
the model call with its dropout rates and key, the per-example data loss, the weight and activity
penalties of the library (:mod:`jaxreg.penalties`), the optax optimizer (:mod:`jaxreg.optim`,
torch's update rules) and the parameter metrics. Every function is pure and traceable; the
hyperparameters arrive as the normalized dict of :func:`jaxreg.lab.config.normalize_hparams`.

PyTorch equivalent: the loss, penalty and ``torch.optim`` lines of d2l's ``train_epoch_ch3``
(seed 004) and of :mod:`jaxreg.torch_ref.engine`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxreg import masks, optim, penalties
from jaxreg.constraints import max_norm
from jaxreg.lab.config import WEIGHTS_ONLY, TrainConfig, call_kwargs, with_hparams


def resolve(mask: Any, params: Any) -> Any:
    """A config's mask (``"weights_only"``, None, a bool tree or a callable) -> a bool tree.

    Example:
      >>> resolve("weights_only", {"w": jnp.ones((2, 2)), "b": jnp.ones(2)})
      {'b': False, 'w': True}
    """
    if isinstance(mask, str):
        if mask != WEIGHTS_ONLY:
            raise ValueError(f"mask={mask!r}: allowed strings are ({WEIGHTS_ONLY!r},)")
        return masks.weights_only(params)
    return masks.resolve_mask(mask, params)


def masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean of ``values`` over the rows whose weight is 1 (padded rows weigh 0)."""
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def example_loss(kind: str, out: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example loss and per-example correctness (NaN for regression).

    Args:
      kind: one of :data:`jaxreg.lab.config.LOSSES`.
      out: the model's first output (logits, log-probabilities or probabilities).
      y: integer labels, or targets for ``mse``/``bce``.

    Returns:
      ``(loss, correct)``, each of shape ``[batch]``.

    Example:
      >>> loss, correct = example_loss("cross_entropy", jnp.array([[0.0, 9.0]]), jnp.array([1]))
      >>> float(correct[0])
      1.0
    """
    if kind in ("cross_entropy", "nll"):
        y = y.astype(jnp.int32)
        if kind == "cross_entropy":
            loss = optax.softmax_cross_entropy_with_integer_labels(out, y)
        else:
            loss = -jnp.take_along_axis(out, y[:, None], axis=1)[:, 0]
        correct = (jnp.argmax(out, axis=-1) == y).astype(jnp.float32)
        return loss, correct
    y = y.reshape(out.shape).astype(out.dtype)
    axes = tuple(range(1, out.ndim))
    if kind == "mse":
        return jnp.mean((out - y) ** 2, axis=axes), jnp.full(out.shape[:1], jnp.nan)
    # nn.BCELoss clamps each log term at -100 so a saturated probability gives a finite loss.
    log_p = jnp.maximum(jnp.log(out), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-out), -100.0)
    loss = -jnp.mean(y * log_p + (1.0 - y) * log_1mp, axis=axes)
    correct = jnp.mean(((out > 0.5) == (y > 0.5)).astype(jnp.float32), axis=axes)
    return loss, correct


def global_norm(tree: Any, mask: Any = None) -> jax.Array:
    """Euclidean norm over all (or the masked) leaves, accumulated in float32 (float64 leaves:
    in float64, so a float64 run's norms are float64 figures like torch's)."""
    leaves = jax.tree.leaves(tree)
    flags = jax.tree.leaves(mask) if mask is not None else [True] * len(leaves)
    terms = [
        jnp.sum(jnp.square(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))))
        for leaf, f in zip(leaves, flags, strict=True)
        if f
    ]
    return jnp.sqrt(sum(terms)) if terms else jnp.float32(0.0)


def zero_fraction(tree: Any) -> jax.Array:
    """The fraction of parameter entries exactly zero (what an L1 proximal step produces)."""
    leaves = jax.tree.leaves(tree)
    zeros = sum(jnp.sum(leaf == 0) for leaf in leaves)
    return zeros / sum(leaf.size for leaf in leaves)


def apply_model(cfg: TrainConfig, params, x, hp, *, train: bool, key, capture: bool = False):
    """Calls the model in training or evaluation mode, its declared hyperparameters set from ``hp``.

    The model's traced hyperparameters (:meth:`TrainConfig.declared_hparams`, e.g. the dropout
    rates of :class:`jaxreg.models.DropoutMLP`) that ``hp`` holds become the model's attributes
    for this call (``model.clone(dropout1=...)``); the others keep the model's own values.
    With ``capture``, also returns the hidden activations: relu of every Dense output but the
    last (the logits), for ``act_var``.
    """
    model = with_hparams(cfg.model, {k: hp[k] for k in cfg.declared_hparams() if k in hp})
    kwargs: dict[str, Any] = {}
    if "deterministic" in call_kwargs(cfg.model):
        kwargs["deterministic"] = not train
    if capture:
        out, state = model.apply(
            {"params": params},
            x,
            rngs={"dropout": key},
            capture_intermediates=lambda mdl, name: name == "__call__" and hasattr(mdl, "features"),
            mutable=["intermediates"],
            **kwargs,
        )
        acts = jax.tree.leaves({k: v for k, v in state["intermediates"].items() if k != "__call__"})
        return out, acts[:-1]
    return model.apply({"params": params}, x, rngs={"dropout": key}, **kwargs)


def optimizer(cfg: TrainConfig, hp, params) -> optax.GradientTransformation:
    """The run's optax optimizer: torch's SGD / Adam / AdamW, decay masked by ``decay_mask``.

    With ``cfg.max_norm`` set, :func:`jaxreg.max_norm` (bound ``hp["max_norm"]``) follows the
    step on the weights only: a constraint acts on the weights the step produced, so it comes
    last in the chain (torch: ``torch.renorm`` after ``opt.step()``).
    """
    mask = resolve(cfg.decay_mask, params)
    if cfg.optimizer == "sgd":
        opt = optim.torch_sgd(
            hp["lr"], momentum=cfg.momentum, weight_decay=hp["weight_decay"], mask=mask
        )
    else:
        make = optim.torch_adam if cfg.optimizer == "adam" else optim.torch_adamw
        opt = make(
            hp["lr"], betas=cfg.betas, eps=cfg.eps, weight_decay=hp["weight_decay"], mask=mask
        )
    if cfg.max_norm is None:
        return opt
    return optax.chain(opt, max_norm(hp["max_norm"], mask=masks.weights_only(params)))


def weight_penalty(cfg: TrainConfig, params, hp) -> jax.Array:
    """``hp["l1"]`` or ``hp["l2"]`` times the config's penalty over the masked parameters."""
    if cfg.penalty == "none":
        return jnp.float32(0.0)
    mask = resolve(cfg.penalty_mask, params)
    if cfg.penalty == "l1":
        return hp["l1"] * penalties.l1_penalty(params, mask=mask)
    if cfg.penalty == "l2_norm":
        return hp["l2"] * penalties.l2_norm_penalty(params, mask=mask)
    reduction = "mean" if cfg.penalty == "l2_mean" else "sum"
    return hp["l2"] * penalties.l2_penalty(params, mask=mask, reduction=reduction)


def activity_penalty(cfg: TrainConfig, outputs, hp, row_mask) -> jax.Array:
    """Seed 001's penalties on the model's extra outputs (``cfg.activity``)."""
    total = jnp.float32(0.0)
    for kind, index in cfg.activity:
        # Padded rows are zeroed so they add nothing to a sum or a norm.
        act = outputs[index] * row_mask.reshape((-1,) + (1,) * (outputs[index].ndim - 1))
        if kind == "l1":
            total = total + hp["act_l1"] * penalties.l1_penalty(act)
        elif kind == "l2_norm":
            total = total + hp["act_l2"] * penalties.l2_norm_penalty(act)
        else:
            total = total + hp["act_l2"] * penalties.l2_penalty(act)
    return total


def batch_objective(cfg: TrainConfig, params, xb, yb, row_mask, hp, key):
    """The training objective of one minibatch and its aux ``(data loss, accuracy)``.

    ``objective = mean data loss + weight penalty + activity penalty``, padded rows masked out;
    differentiate it with ``jax.value_and_grad(..., has_aux=True)``.
    """
    outputs = apply_model(cfg, params, xb, hp, train=True, key=key)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    loss_i, correct_i = example_loss(cfg.loss, outputs[0], yb)
    loss = masked_mean(loss_i, row_mask)
    reg = weight_penalty(cfg, params, hp) + activity_penalty(cfg, outputs, hp, row_mask)
    return loss + reg, (loss, masked_mean(correct_i, row_mask))


def param_metrics(cfg: TrainConfig, params) -> dict[str, jax.Array]:
    """``param_norm``, ``weight_norm`` (decay-masked) and ``zero_fraction`` of the parameters."""
    return {
        "param_norm": global_norm(params),
        "weight_norm": global_norm(params, resolve(cfg.decay_mask, params)),
        "zero_fraction": zero_fraction(params),
    }


def evaluate(cfg: TrainConfig, splits, data, params, hp, key) -> dict[str, jax.Array]:
    """``test_*`` / ``val_*`` loss and accuracy (and ``act_var*``) of ``params``.

    Args:
      cfg: the run's config (``eval_dropout_active``: evaluate in training mode, seed 004).
      splits: which of ``"test"``, ``"val"`` the data hold.
      data: the engine's device data: ``x_/y_/m_`` per split padded to whole eval chunks, ``m_``
        the real-row mask; ``x_probe`` for ``act_var``.
      params: the parameters to evaluate.
      hp: normalized hyperparameters (dropout rates).
      key: the evaluation key (chunk ``i`` uses ``fold_in(key, i)``).

    Returns:
      Scalars per metric name; ``test_loss``/``test_acc`` are NaN without a test split.
    """
    out = {}
    for split in ("test", "val"):
        if split not in splits:
            if split == "test":
                out["test_loss"] = out["test_acc"] = jnp.float32(jnp.nan)
            continue
        x, y, m = data["x_" + split], data["y_" + split], data["m_" + split]
        eb = min(cfg.eval_batch_size, x.shape[0])

        def chunk(i, x=x, y=y, m=m, eb=eb):
            sl = jax.lax.dynamic_slice_in_dim
            xb, yb, mb = sl(x, i * eb, eb), sl(y, i * eb, eb), sl(m, i * eb, eb)
            k = jax.random.fold_in(key, i)
            outputs = apply_model(cfg, params, xb, hp, train=cfg.eval_dropout_active, key=k)
            logits = outputs[0] if isinstance(outputs, tuple) else outputs
            loss_i, correct_i = example_loss(cfg.loss, logits, yb)
            return jnp.sum(loss_i * mb), jnp.sum(correct_i * mb)

        loss_sum, correct_sum = jax.lax.map(chunk, jnp.arange(x.shape[0] // eb))
        count = jnp.sum(m)
        out[split + "_loss"] = jnp.sum(loss_sum) / count
        out[split + "_acc"] = jnp.sum(correct_sum) / count
    if cfg.track_activation_variance:
        # Per hidden layer: mean over units of the across-example variance of relu(output).
        for suffix, train in (("", False), ("_train", True)):
            _, acts = apply_model(
                cfg, params, data["x_probe"], hp, train=train, key=key, capture=True
            )
            out["act_var" + suffix] = jnp.stack(
                [jnp.mean(jnp.var(nn.relu(a), axis=0)) for a in acts]
            )
    return out

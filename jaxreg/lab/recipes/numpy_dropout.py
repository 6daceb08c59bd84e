"""numpy-dropout (seeds 000/002): the NumPy references against jaxreg and torch, same masks.

Each reference draws its masks from a NumPy generator; the JAX side replays those keep masks
through ``jaxreg.dropout_with_mask`` / ``jaxreg.vanilla_dropout`` and the torch side through the
same formulas written with torch ops (autograd for the backward pass). Everything runs in
float64 (JAX under a scoped ``jax.enable_x64``), so 0 means bit-identical.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jaxreg import numpy_ref
from jaxreg.lab.recipes._common import Context, Outcome

METRIC = "max |diff| vs NumPy"


def _cases(keep: float, shape, cs, rng: np.random.Generator) -> dict[str, Any]:
    """Runs the NumPy references once; returns their inputs, masks and outputs."""
    x = rng.standard_normal(shape)
    layer = numpy_ref.NumpyDropout(keep)
    fwd = layer.forward(x, rng)
    dout = rng.standard_normal(shape)
    bwd, _ = layer.backward(dout)
    dims, batch = cs["dims"], cs["batch"]
    params = numpy_ref.cs231n_params(rng, tuple(dims))
    X = rng.standard_normal((dims[0], batch))
    out = {"x": x, "mask": layer.mask != 0, "dout": dout, "fwd": fwd, "bwd": bwd}
    out.update({"params": params, "X": X})
    for variant in ("vanilla", "inverted"):
        train, masks = numpy_ref.train_forward(params, X, keep, rng, variant=variant)
        out[f"{variant}_train"], out[f"{variant}_masks"] = train, masks
        out[f"{variant}_predict"] = numpy_ref.predict(params, X, keep, variant=variant)
    return out


def _jax_side(case: dict[str, Any], keep: float) -> dict[str, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from jaxreg.dropout import dropout_with_mask, vanilla_dropout

    rate = 1.0 - keep
    # cs231n vanilla: training keeps unscaled units, prediction scales by keep_prob;
    # inverted: training scales by 1/keep_prob, prediction is the plain network.
    train_drop = {
        "vanilla": lambda h, m: h * m.astype(h.dtype),
        "inverted": lambda h, m: dropout_with_mask(h, m, rate),
    }
    test_scale = {
        "vanilla": lambda h: vanilla_dropout(h, keep, deterministic=True),
        "inverted": lambda h: h,
    }
    with jax.enable_x64(True):
        x, mask = jnp.asarray(case["x"]), jnp.asarray(case["mask"])
        fwd, vjp = jax.vjp(lambda v: dropout_with_mask(v, mask, rate), x)
        (bwd,) = vjp(jnp.asarray(case["dout"]))
        p = {k: jnp.asarray(v) for k, v in case["params"].items()}
        X = jnp.asarray(case["X"])
        res = {"fwd": fwd, "bwd": bwd}
        for variant in ("vanilla", "inverted"):
            drop, scale = train_drop[variant], test_scale[variant]
            u1, u2 = (jnp.asarray(m) for m in case[f"{variant}_masks"])
            h1 = drop(jax.nn.relu(p["W1"] @ X + p["b1"]), u1)
            h2 = drop(jax.nn.relu(p["W2"] @ h1 + p["b2"]), u2)
            res[f"{variant}_train"] = p["W3"] @ h2 + p["b3"]
            h1 = scale(jax.nn.relu(p["W1"] @ X + p["b1"]))
            h2 = scale(jax.nn.relu(p["W2"] @ h1 + p["b2"]))
            res[f"{variant}_predict"] = p["W3"] @ h2 + p["b3"]
        return {k: np.asarray(v) for k, v in res.items()}


def _torch_side(case: dict[str, Any], keep: float) -> dict[str, np.ndarray]:
    import torch

    x = torch.tensor(case["x"], requires_grad=True)
    # Seed 000's layer in torch ops: mask = binomial / prob, forward x * mask.
    scaled = torch.tensor(case["mask"], dtype=torch.float64) / keep
    fwd = x * scaled
    fwd.backward(torch.tensor(case["dout"]))
    res = {"fwd": fwd.detach(), "bwd": x.grad}
    p = {k: torch.tensor(v) for k, v in case["params"].items()}
    X = torch.tensor(case["X"])
    for variant in ("vanilla", "inverted"):
        u1, u2 = (torch.tensor(m, dtype=torch.float64) for m in case[f"{variant}_masks"])
        if variant == "inverted":
            u1, u2 = u1 / keep, u2 / keep
        scale = keep if variant == "vanilla" else 1.0
        h1 = torch.relu(p["W1"] @ X + p["b1"]) * u1
        h2 = torch.relu(p["W2"] @ h1 + p["b2"]) * u2
        res[f"{variant}_train"] = p["W3"] @ h2 + p["b3"]
        h1 = torch.relu(p["W1"] @ X + p["b1"]) * scale
        h2 = torch.relu(p["W2"] @ h1 + p["b2"]) * scale
        res[f"{variant}_predict"] = p["W3"] @ h2 + p["b3"]
    return {k: v.detach().numpy() for k, v in res.items()}


_ROWS = {
    "fwd": "seed 000 Dropout.forward",
    "bwd": "seed 000 Dropout.backward",
    "vanilla_train": "seed 002 vanilla train_step",
    "vanilla_predict": "seed 002 vanilla predict (x keep_prob)",
    "inverted_train": "seed 002 inverted train_step",
    "inverted_predict": "seed 002 inverted predict",
}


def run(ctx: Context) -> Outcome:
    """Compares the NumPy references with jaxreg (JAX) and the torch formulas on shared masks."""
    cfg = ctx.config
    keep = float(cfg["keep_prob"])
    trials = int(ctx.options.epochs or cfg["trials"])
    sides = {"jax": _jax_side, "torch": _torch_side}
    worst = {fw: dict.fromkeys(_ROWS, 0.0) for fw in ctx.frameworks}
    kept = []
    wall = dict.fromkeys(ctx.frameworks, 0.0)
    rng = np.random.default_rng(ctx.options.seed)
    for _ in range(trials):
        case = _cases(keep, tuple(cfg["shape"]), cfg["cs231n"], rng)
        kept.append(case["mask"].mean())
        for fw in ctx.frameworks:
            start = time.perf_counter()
            got = sides[fw](case, keep)
            wall[fw] += time.perf_counter() - start
            for key in _ROWS:
                diff = float(np.max(np.abs(got[key] - case[key])))
                worst[fw][key] = max(worst[fw][key], diff)
    for key, label in _ROWS.items():
        for fw in ctx.frameworks:
            ctx.result(
                variant=label,
                framework=fw,
                metric=METRIC,
                test=worst[fw][key],
                wall_s=wall[fw],
                seed_figure=cfg["seed_figure"],
            )
    for fw in ctx.frameworks:
        ctx.recorder.add_history("all", fw, {f"max_diff_{k}": [worst[fw][k]] for k in _ROWS})
    notes = [
        f"{trials} trials of a {tuple(cfg['shape'])} input and a cs231n net with sizes "
        f"{tuple(cfg['cs231n']['dims'])}, keep_prob = {keep} (jaxreg rate = {1 - keep}); "
        f"observed keep fraction {np.mean(kept):.4f}. Both seeds' `p` is a KEEP probability; "
        "jaxreg's `rate` is the DROP probability.",
        "The column `final test` holds the largest absolute difference from the NumPy "
        "reference over all trials (float64): 0 means bit-identical.",
    ]
    return Outcome(notes=notes)

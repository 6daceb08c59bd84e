"""torch.optim's SGD, Adam and AdamW as optax GradientTransformations, step for step.

Each optimizer returns updates that are ADDED to the parameters
(``optax.apply_updates``) and follows PyTorch 2.x's single-tensor CPU implementation
(``torch/optim/sgd.py``, ``adam.py``) operation by operation. Plain SGD is bit-identical
to torch in float32; with momentum or Adam, float32 runs agree to ~1e-7 of the
parameters' scale per step (XLA and torch fuse different multiply-adds into FMAs, and
torch's float32 ``sqrt`` is not correctly rounded), float64 runs to ~1e-12.
Differences from the optax optimizers that a PyTorch user would trip over:

* ``torch_sgd``'s momentum buffer starts as the first gradient itself, so dampening
  (which ``optax.sgd`` does not have) only applies from step 2 on: a zero-initialized
  buffer would make the first step ``(1 - dampening) * g``. Nesterov uses
  ``g + momentum * buf``.
* ``weight_decay`` of ``torch_sgd``/``torch_adam`` is coupled (added to the gradient
  before the momentum / Adam moments); ``torch_adamw``'s is decoupled and multiplied by
  the learning rate (``p *= 1 - lr * wd``), and defaults to 1e-2.
* ``mask`` plays torch's param groups: leaves outside the mask get ``weight_decay=0``
  (seed 004: ``SGD([{"params": [W1, W2], "weight_decay": 0.01}, {"params": [b1, b2]}])``
  is ``torch_sgd(0.1, weight_decay=0.01, mask=weights_only(params))``).

``lr`` and ``weight_decay`` may be Python floats, traced jnp scalars (vmapped sweeps, no
recompilation) or optax schedules ``count -> value`` (count = steps taken so far, like a
``torch.optim.lr_scheduler`` stepped once per optimizer step); ``momentum``,
``dampening``, ``betas`` and ``eps`` may be floats or traced scalars. The flags that change
the algorithm (``nesterov``, ``maximize``, ``amsgrad``, ``decoupled_weight_decay``) are
static Python bools: they change the computation (and, for ``amsgrad``, the state).

Every keyword of torch 2.13's ``SGD``, ``Adam`` and ``AdamW`` is taken, in torch's order.
The implementation switches ``foreach``, ``fused``, ``capturable`` and ``differentiable``
are accepted and ignored: they choose among torch's kernels (a per-tensor loop, a
multi-tensor loop, a fused CUDA kernel), allow CUDA-graph capture, or let autograd run
through ``step()``; the math is the same (up to rounding, in torch too). Here one jitted
XLA computation plays all those roles, and JAX differentiates through any update. The
combinations torch refuses (``fused`` with ``differentiable``; ``fused`` and ``foreach``
both True) are refused with torch's message. jaxreg follows the single-tensor path,
torch's default for CPU tensors.
"""

from jaxreg._src.adam import TorchAdamState, torch_adam, torch_adamw
from jaxreg._src.sgd import TorchSGDState, torch_sgd

__all__ = ["TorchAdamState", "TorchSGDState", "torch_adam", "torch_adamw", "torch_sgd"]

"""The CNN workload (issue 17): a small conv net on real Fashion-MNIST in every framework.

The model (NHWC in JAX, NCHW in torch)::

    conv3x3-32 + ReLU, maxpool 2, spatial dropout 0.1,
    conv3x3-64 + ReLU, maxpool 2, dense 3136->128 + ReLU, dropout 0.5, dense 10

trained with AdamW (lr 1e-3, decoupled weight decay 1e-2 on every parameter, torch's default),
batch 64, mean cross-entropy, on the first ``workload.cnn_steps * 64`` training images (epochs of
``cnn_steps`` full batches, a fresh permutation each epoch), float32 at the highest matmul
precision. Every row starts from the same weights (the ``cnn_init`` row: the Flax model's
initialization under key 0, converted with :mod:`jaxreg.convert` for torch; the first dense
layer's input axis is permuted from NHWC's (h, w, c) flattening to NCHW's (c, h, w)).

Rows (each in its own process, ``benchmarks.run``): jaxreg's engine with ``TrainConfig(loop=...)``
"auto" (the default), "scan" and "stepped"; a Python loop over the engine's jitted ``Train.step``;
torch eager with 1 and with 2 threads; ``torch.compile``; Keras 3 on JAX (``model.fit``); Flax
NNX (``nnx.jit`` step); and ``cnn_profile``, which times the step inside and outside a
``lax.scan`` (XLA on CPU runs convolutions in a while loop several times slower:
jax-ml/jax#12868).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import time
import traceback
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxreg.lab import timing

BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-2
EPS = 1e-8
BETAS = (0.9, 0.999)
SPATIAL_RATE = 0.1
DENSE_RATE = 0.5
CHANNELS = (32, 64)
HIDDEN = 128
CLASSES = 10
SIDE = 28
INIT_KEY = 0
INIT_FILE = "cnn_init.npz"

# Executed matmul/convolution FLOPs per example, forward + backward: every layer's forward and
# weight gradient, and the input gradient of every layer but the first (nobody needs dL/dx).
_CONV1 = 2 * SIDE * SIDE * 9 * 1 * CHANNELS[0]
_CONV2 = 2 * (SIDE // 2) ** 2 * 9 * CHANNELS[0] * CHANNELS[1]
FLAT = (SIDE // 4) ** 2 * CHANNELS[1]
_FC1 = 2 * FLAT * HIDDEN
_FC2 = 2 * HIDDEN * CLASSES
FLOPS_PER_EXAMPLE = 2 * _CONV1 + 3 * (_CONV2 + _FC1 + _FC2)
MODEL = (
    f"CNN: conv3x3-{CHANNELS[0]} ReLU, maxpool 2, spatial dropout {SPATIAL_RATE}, "
    f"conv3x3-{CHANNELS[1]} ReLU, maxpool 2, dense {FLAT}-{HIDDEN} ReLU, dropout {DENSE_RATE}, "
    f"dense {CLASSES}; AdamW lr {LEARNING_RATE} weight decay {WEIGHT_DECAY}, batch {BATCH_SIZE}"
)


POOLS = ("jaxreg", "flax")


class SmallCNN(nn.Module):
    """The benchmark's conv net in Flax Linen (channels last), with jaxreg's spatial dropout.

    PyTorch equivalent: :func:`torch_model` (``nn.Conv2d``, ``nn.Dropout2d``, channels first).

    Attributes:
      spatial_rate: drop probability of whole feature maps after the first pooling.
      dense_rate: drop probability after the hidden dense layer.
      pool: ``"jaxreg"``: ``jaxreg.nn.max_pool2d`` (torch's ``MaxPool2d(2)``, an elementwise
        backward pass); ``"flax"``: ``flax.linen.max_pool`` (XLA's ``reduce_window``, whose
        ``select_and_scatter`` gradient is slow on CPU; the profile row times both).
    """

    spatial_rate: float = SPATIAL_RATE
    dense_rate: float = DENSE_RATE
    pool: str = "jaxreg"

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        from jaxreg.nn import Dropout, SpatialDropout, max_pool2d

        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}: allowed values are {POOLS}")

        def pool(x):
            if self.pool == "flax":
                return nn.max_pool(x, (2, 2), strides=(2, 2))
            return max_pool2d(x, 2)

        x = x.reshape(x.shape[0], SIDE, SIDE, 1)
        x = nn.relu(nn.Conv(CHANNELS[0], (3, 3), padding="SAME", name="conv1")(x))
        x = pool(x)
        x = SpatialDropout(self.spatial_rate)(x, deterministic)
        x = nn.relu(nn.Conv(CHANNELS[1], (3, 3), padding="SAME", name="conv2")(x))
        x = pool(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(HIDDEN, name="fc1")(x))
        x = Dropout(self.dense_rate)(x, deterministic)
        return nn.Dense(CLASSES, name="fc2")(x)


# ---- shared pieces ----------------------------------------------------------------------------
def _setup() -> None:
    jax.config.update("jax_default_matmul_precision", "highest")


def _data(workload: common.Workload):
    """The first ``cnn_steps * 64`` training images (flat, float32 in [0, 1]) and a test slice."""
    from jaxreg.lab.data import load_fashion_mnist

    ds = load_fashion_mnist(
        workload.data_dir,
        train_size=workload.cnn_steps * BATCH_SIZE,
        test_size=workload.cnn_test_size,
    )
    return (
        np.asarray(ds.x_train, np.float32),
        np.asarray(ds.y_train, np.int32),
        np.asarray(ds.x_test, np.float32),
        np.asarray(ds.y_test, np.int32),
    )


def flax_params() -> dict[str, Any]:
    """The shared initial weights: the engine's own ``Train.init(jax.random.key(INIT_KEY))``.

    The engine rows then start from them by construction (``fit(key)`` initializes the same
    way); every other row loads them from the ``cnn_init`` row's file.
    """
    x = np.zeros((BATCH_SIZE, SIDE * SIDE), np.float32)
    y = np.zeros(BATCH_SIZE, np.int32)
    train = make_train(common.Workload(), 1, "scan", (x, y, x[:1], y[:1]))
    return jax.tree.map(np.asarray, train.init(jax.random.key(INIT_KEY), HPARAMS).params)


def to_torch_state(params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Flax ``SmallCNN`` params -> the torch twin's ``state_dict`` arrays.

    :func:`jaxreg.convert.flax_to_torch` converts the layouts (HWIO -> OIHW, kernel -> weight.T);
    the first dense layer's inputs are then reordered: Flax flattens (h, w, c), torch (c, h, w).
    """
    from jaxreg.convert import flax_to_torch

    state = {k: np.asarray(v) for k, v in flax_to_torch(params).items()}
    side = SIDE // 4
    w = state["fc1.weight"].reshape(HIDDEN, side, side, CHANNELS[1])
    state["fc1.weight"] = np.ascontiguousarray(w.transpose(0, 3, 1, 2).reshape(HIDDEN, FLAT))
    return state


def init_row(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Writes the shared initial weights beside ``init_path`` (Flax and torch layouts)."""
    path = _init_file(init_path)
    params = flax_params()
    flat = {f"flax/{k}/{leaf}": v for k, layer in params.items() for leaf, v in layer.items()}
    torch_state = {f"torch/{k}": v for k, v in to_torch_state(params).items()}
    np.savez(path, **flat, **torch_state)
    return {"params": sorted(flat) + sorted(torch_state), "path": str(path)}


def _init_file(init_path: str) -> Path:
    return Path(init_path).with_name(INIT_FILE)


def _shared(init_path: str, layout: str) -> dict[str, Any]:
    """The ``cnn_init`` row's weights in ``layout`` "flax" (nested dict) or "torch" (flat)."""
    path = _init_file(init_path)
    if not path.exists():
        init_row(common.Workload(), init_path)
    with np.load(path) as saved:
        arrays = {k[len(layout) + 1 :]: saved[k] for k in saved.files if k.startswith(layout)}
    if layout == "torch":
        return arrays
    nested: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        module, leaf = key.split("/")
        nested.setdefault(module, {})[leaf] = value
    return nested


def _check_shared(train, init_path: str):
    """``train.init(key)``, after checking it is the ``cnn_init`` row's weights (the engine
    rows start from their own initialization, which those weights are by construction)."""
    state = train.init(jax.random.key(INIT_KEY), HPARAMS)
    shared = _shared(init_path, "flax")
    for module, leaves in shared.items():
        for leaf, value in leaves.items():
            if not np.array_equal(np.asarray(state.params[module][leaf]), value):
                raise RuntimeError(f"{module}/{leaf}: the engine's init is not the shared init")
    return state


def _versions(*packages: str) -> dict[str, str | None]:
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def _result(warm, timed, steps, losses, test_acc, rss, **extra) -> dict[str, Any]:
    median = common.summarize(timed)["median_s"]
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": warm[0] - median if warm else None,
        "compile_note": "first epoch minus the median epoch (compilation happens in it)",
        "steps_per_epoch": steps,
        "samples_per_epoch": steps * BATCH_SIZE,
        "flops_per_example": FLOPS_PER_EXAMPLE,
        "train_loss_per_epoch": losses,
        "train_loss_last_epoch": losses[-1] if losses else None,
        "test_acc": test_acc,
        "peak_mem_mb": rss.delta / 2**20,
        "mem_method": "RSS delta (peak during training minus before; /proc sampled every 10 ms)",
        **extra,
    }


def _batches(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = n // BATCH_SIZE
    return rng.permutation(n)[: steps * BATCH_SIZE].reshape(steps, BATCH_SIZE)


# ---- jaxreg's engine --------------------------------------------------------------------------
def make_train(workload: common.Workload, epochs: int, loop: str = "auto", data=None):
    """The engine for the CNN recipe: AdamW decaying every parameter (torch's default)."""
    from jaxreg.lab.engine import TrainConfig, make_train

    x_train, y_train, x_test, y_test = data if data is not None else _data(workload)
    config = TrainConfig(
        model=SmallCNN(),
        optimizer="adamw",
        lr=LEARNING_RATE,
        betas=BETAS,
        eps=EPS,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        drop_last=True,
        decay_mask=None,
        # Evaluate after the last epoch only (``_engine`` does not time it): the timed epochs
        # train, as every other row's do.
        eval_every=epochs,
        loop=loop,
    )
    data = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return make_train(config, data)


HPARAMS = {"weight_decay": WEIGHT_DECAY}


def _resolved_loop(train, requested: str) -> str:
    """The loop form the engine runs: ``Train.loop`` where the engine records it; an engine
    without it has one form only, the whole-epoch scan."""
    return getattr(train, "loop", "scan")


def _engine(workload: common.Workload, init_path: str, loop: str) -> dict:
    """``Train.fit`` with ``TrainConfig(loop=loop)``: one call per epoch, timed between the
    ``on_epoch`` callbacks (each reads the epoch's metrics back, the sync).

    Where the engine runs the scan form, the epochs are ``workload.cnn_scan_steps`` steps (the
    first images of the same data) and the epoch time is scaled to ``cnn_steps``: XLA on CPU runs
    the scanned convolutions so slowly (``cnn_profile``) that full epochs would not fit the
    benchmark's 15 minutes. The row says so (``steps_measured``, ``extrapolated``).
    """
    _setup()
    # One more epoch than the row times: the engine evaluates after its last epoch (the test
    # accuracy the row reports), and no other row evaluates inside its timed epochs.
    epochs = workload.cnn_warmup_epochs + workload.cnn_epochs + 1
    data = _data(workload)
    train = make_train(workload, epochs, loop, data)
    used = _resolved_loop(train, loop)
    scale = 1.0
    if used == "scan" and workload.cnn_scan_steps < train.steps_per_epoch:
        n = workload.cnn_scan_steps * BATCH_SIZE
        train = make_train(workload, epochs, loop, (data[0][:n], data[1][:n], *data[2:]))
        scale = workload.cnn_steps / train.steps_per_epoch
    _check_shared(train, init_path)
    marks: list[float] = []
    losses: list[float] = []

    def on_epoch(epoch: int, metrics: dict) -> None:
        marks.append(time.perf_counter())
        losses.append(metrics["train_loss"])

    with common.PeakRSS() as rss:
        marks.append(time.perf_counter())
        result = train.fit(jax.random.key(INIT_KEY), HPARAMS, on_epoch=on_epoch)
    times = (np.diff(marks) * scale).tolist()[:-1]  # the last epoch evaluates: untimed
    warm = times[: workload.cnn_warmup_epochs]
    out = _result(
        warm,
        times[workload.cnn_warmup_epochs :],
        train.steps_per_epoch,
        losses,
        float(result.metrics["test_acc"][-1]),
        rss,
        loop_requested=loop,
        loop_used=used,
        framework=f"jaxreg engine (jax {jax.__version__})",
        method=(
            f"make_train(TrainConfig(loop={loop!r}, ...)).fit(key, on_epoch=clock); one more "
            "epoch than timed, the last, untimed, with the test evaluation (so its test "
            "accuracy is one epoch further than the other rows')"
        ),
    )
    if scale != 1.0:
        out.update(
            steps_measured=train.steps_per_epoch,
            steps_per_epoch=workload.cnn_steps,
            samples_per_epoch=workload.cnn_steps * BATCH_SIZE,
            extrapolated=True,
            note=(
                f"scan form: epochs of {train.steps_per_epoch} steps timed, times scaled to "
                f"{workload.cnn_steps} steps (full scan epochs would not fit the time budget)"
            ),
        )
    return out


def engine_auto(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The engine with its default loop (``TrainConfig(loop="auto")``)."""
    return _engine(workload, init_path, "auto")


def engine_scan(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The engine with ``loop="scan"``: each epoch one compiled ``lax.scan`` over its steps."""
    return _engine(workload, init_path, "scan")


def engine_stepped(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """The engine with ``loop="stepped"``: a Python loop over its jitted step."""
    return _engine(workload, init_path, "stepped")


def step_loop(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """A Python loop over ``jax.jit(Train.step)`` (the minibatch gathered inside the call)."""
    _setup()
    data = _data(workload)
    train = make_train(workload, 1, "scan", data)
    key = jax.random.key(INIT_KEY)
    hp = train.normalize_hparams(HPARAMS)
    state = _check_shared(train, init_path)
    x_all, y_all = train.data["x_train"], train.data["y_train"]

    def step(state, x_all, y_all, order, i, key, hp):
        idx = jax.lax.dynamic_index_in_dim(order, i, keepdims=False)
        return train.step(state, (x_all[idx], y_all[idx]), key, hp)

    epoch_order = jax.jit(lambda key, epoch: train.batch_order(key, epoch)[0])
    compiled, compile_s = timing.compile_and_time(
        jax.jit(step, donate_argnums=(0,)), state, x_all, y_all, epoch_order(key, 0), 0, key, hp
    )
    steps = train.steps_per_epoch
    holder, losses = {"state": state}, []

    def run_epoch(epoch: int) -> None:
        order = epoch_order(key, epoch)
        s, total = holder["state"], jnp.float32(0)
        for i in range(steps):
            s, out = compiled(s, x_all, y_all, order, i, key, hp)
            total = total + out["loss"]
        holder["state"] = jax.block_until_ready(s)
        losses.append(float(total) / steps)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.cnn_warmup_epochs, workload.cnn_epochs)
    predict = jax.jit(lambda p, x: SmallCNN().apply({"params": p}, x))
    logits = predict(holder["state"].params, data[2])
    acc = float(jnp.mean(jnp.argmax(logits, -1) == data[3]))
    return {
        **_result(warm, timed, steps, losses, acc, rss, framework=f"jax {jax.__version__}"),
        "compile_s": compile_s,
        "compile_note": "AOT lower + compile of the step (jaxreg.lab.timing.compile_and_time)",
        "method": "jax.jit(Train.step) per minibatch from a Python loop, batch gathered inside",
    }


# ---- the JAX peers ----------------------------------------------------------------------------
def build_keras(shared: dict[str, Any] | None = None):
    """The Keras 3 ``Sequential`` twin (``SpatialDropout2D``), with ``shared`` Flax weights."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((SIDE * SIDE,)),
            layers.Reshape((SIDE, SIDE, 1)),
            layers.Conv2D(CHANNELS[0], 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.SpatialDropout2D(SPATIAL_RATE),
            layers.Conv2D(CHANNELS[1], 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(HIDDEN, activation="relu"),
            layers.Dropout(DENSE_RATE),
            layers.Dense(CLASSES),
        ]
    )
    if shared is not None:
        # Keras' Conv2D kernel is HWIO and Dense's (in, out), as Flax's; Flatten is NHWC's.
        names = ("conv1", "conv2", "fc1", "fc2")
        model.set_weights([shared[m][leaf] for m in names for leaf in ("kernel", "bias")])
    return model


def keras_fit(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Keras 3 on JAX: ``compile`` with AdamW, one ``fit`` call over all epochs."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r}")
    _setup()
    x_train, y_train, x_test, y_test = _data(workload)
    model = build_keras(_shared(init_path, "flax"))
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY,
            beta_1=BETAS[0],
            beta_2=BETAS[1],
            epsilon=EPS,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    marks: list[float] = []
    losses: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(float(logs["loss"]))  # reading the loss waits for the last step
            marks.append(time.perf_counter())

    with common.PeakRSS() as rss:
        marks.append(time.perf_counter())
        model.fit(
            x_train,
            y_train,
            batch_size=BATCH_SIZE,
            epochs=workload.cnn_warmup_epochs + workload.cnn_epochs,
            shuffle=True,
            verbose=0,
            callbacks=[EpochClock()],
        )
    times = np.diff(marks).tolist()
    logits = model.predict(x_test, batch_size=1000, verbose=0)
    return _result(
        times[: workload.cnn_warmup_epochs],
        times[workload.cnn_warmup_epochs :],
        len(x_train) // BATCH_SIZE,
        losses,
        float(np.mean(np.argmax(logits, -1) == y_test)),
        rss,
        framework=f"keras {keras.__version__} (backend {keras.backend.backend()})",
        method="model.fit(epochs=N, shuffle=True) with an on_epoch_end clock",
        settings=_versions("jax", "keras"),
    )


def build_nnx(shared: dict[str, Any] | None = None):
    """The Flax NNX twin (``nnx.Conv``, ``nnx.Dropout(broadcast_dims=(1, 2))`` for the spatial
    dropout, NNX having no Dropout2d), with ``shared`` weights if given."""
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.conv1 = nnx.Conv(1, CHANNELS[0], (3, 3), padding="SAME", rngs=rngs)
            self.spatial = nnx.Dropout(SPATIAL_RATE, broadcast_dims=(1, 2), rngs=rngs)
            self.conv2 = nnx.Conv(CHANNELS[0], CHANNELS[1], (3, 3), padding="SAME", rngs=rngs)
            self.fc1 = nnx.Linear(FLAT, HIDDEN, rngs=rngs)
            self.drop = nnx.Dropout(DENSE_RATE, rngs=rngs)
            self.fc2 = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(-1, SIDE, SIDE, 1)
            x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))
            x = self.spatial(x)
            x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))
            x = x.reshape(x.shape[0], -1)
            x = self.drop(nnx.relu(self.fc1(x)))
            return self.fc2(x)

    model = CNN(nnx.Rngs(params=0, dropout=1))
    if shared is not None:
        for name in ("conv1", "conv2", "fc1", "fc2"):
            layer = getattr(model, name)
            layer.kernel[...] = jnp.asarray(shared[name]["kernel"])
            layer.bias[...] = jnp.asarray(shared[name]["bias"])
    return model


def nnx_jit(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Flax NNX as its MNIST tutorial: ``nnx.jit`` train step, Python loop over minibatches."""
    import optax
    from flax import nnx

    _setup()
    x_train, y_train, x_test, y_test = _data(workload)
    model = build_nnx(_shared(init_path, "flax"))
    tx = optax.adamw(LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def predict(model, x):
        return model(x).argmax(-1)

    rng = np.random.default_rng(0)
    losses: list[float] = []
    steps = len(x_train) // BATCH_SIZE

    def run_epoch(_: int) -> None:
        model.train()
        total = jnp.float32(0)
        for index in _batches(rng, len(x_train)):
            total = total + train_step(model, optimizer, x_train[index], y_train[index])
        losses.append(float(total) / steps)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.cnn_warmup_epochs, workload.cnn_epochs)
    model.eval()
    acc = float(np.mean(np.asarray(predict(model, x_test)) == y_test))
    return _result(
        warm,
        timed,
        steps,
        losses,
        acc,
        rss,
        framework=f"flax.nnx {importlib.metadata.version('flax')}",
        method="nnx.jit(train_step)(model, optimizer, x, y) per NumPy minibatch",
        settings=_versions("jax", "flax", "optax"),
    )


# ---- PyTorch ----------------------------------------------------------------------------------
def torch_model(shared: dict[str, np.ndarray] | None = None):
    """The torch twin (``nn.Conv2d``, ``nn.Dropout2d``, NCHW), with ``shared`` weights."""
    import torch
    import torch.nn.functional as F

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, CHANNELS[0], 3, padding=1)
            self.spatial = torch.nn.Dropout2d(SPATIAL_RATE)
            self.conv2 = torch.nn.Conv2d(CHANNELS[0], CHANNELS[1], 3, padding=1)
            self.fc1 = torch.nn.Linear(FLAT, HIDDEN)
            self.drop = torch.nn.Dropout(DENSE_RATE)
            self.fc2 = torch.nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            x = x.view(-1, 1, SIDE, SIDE)
            x = self.spatial(F.max_pool2d(F.relu(self.conv1(x)), 2))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = self.drop(F.relu(self.fc1(torch.flatten(x, 1))))
            return self.fc2(x)

    torch.manual_seed(0)
    model = CNN()
    if shared is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in shared.items()})
    return model


def _torch_row(workload: common.Workload, init_path: str, threads: int, compile_step: bool):
    import torch
    import torch.nn.functional as F

    from jaxreg.torch_ref import engine as torch_engine

    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")
    x_train, y_train, x_test, y_test = (torch.tensor(a) for a in _data(workload))
    y_train, y_test = y_train.long(), y_test.long()
    model = torch_model(_shared(init_path, "torch"))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY
    )

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    if compile_step:
        step = torch.compile(step)
    generator = torch.Generator().manual_seed(0)
    n, steps = len(x_train), len(x_train) // BATCH_SIZE
    losses: list[float] = []

    def run_epoch(_: int) -> None:
        model.train()
        total = torch.zeros(())
        for index in torch_engine.shuffled_batches(n, BATCH_SIZE, generator, drop_last=True):
            total += step(x_train[index], y_train[index])
        losses.append(float(total) / steps)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.cnn_warmup_epochs, workload.cnn_epochs)
    _, acc = torch_engine.evaluate(model, x_test, y_test)
    out = _result(
        warm,
        timed,
        steps,
        losses,
        acc,
        rss,
        framework=f"torch {torch.__version__}",
        threads=torch.get_num_threads(),
        method=("torch.compile(step)" if compile_step else "eager step")
        + " over in-memory tensors, index batches from torch_ref.engine.shuffled_batches",
    )
    if not compile_step:
        out["compile_s"] = 0.0
    return out


def torch_eager_1thread(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch eager on CPU with one intra-op thread (``torch.set_num_threads(1)``)."""
    return _torch_row(workload, init_path, 1, compile_step=False)


def torch_eager(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Torch eager on CPU with every core (``torch.set_num_threads(os.cpu_count())``)."""
    return _torch_row(workload, init_path, os.cpu_count() or 1, compile_step=False)


def torch_compiled(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """``torch.compile`` of the whole step, every core; a compiler failure is a result."""
    try:
        return _torch_row(workload, init_path, os.cpu_count() or 1, compile_step=True)
    except Exception as exc:  # noqa: BLE001 - any compiler failure is a result here
        return {
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": traceback.format_exc()[-4000:],
        }


# ---- the profile ------------------------------------------------------------------------------
def profile(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Where the CNN step's time goes, and what a ``lax.scan`` around it costs.

    Per step (ms), best of a few: the engine's ``Train.step`` jitted and called from Python vs
    the same step inside one ``lax.scan`` (``cnn_scan_steps`` steps: it is slow); the step
    without dropout (dropout's share); the second convolution's forward and backward alone
    (the step's largest op), outside and inside a scan: XLA's CPU backend runs convolutions in
    a while loop far slower than outside one (jax-ml/jax#12868).
    """
    _setup()
    data = _data(workload)
    train = make_train(workload, 1, "scan", data)
    hp = train.normalize_hparams(HPARAMS)
    key = jax.random.key(INIT_KEY)
    state = _check_shared(train, init_path)
    steps = max(min(workload.cnn_profile_steps, train.steps_per_epoch), 1)
    scan_steps = max(min(workload.cnn_scan_steps, steps), 1)
    order = train.batch_order(key, 0)[0]
    x_all, y_all = train.data["x_train"], train.data["y_train"]
    from jaxreg.lab.engine import make_train as engine_make_train

    arrays = {"x_train": data[0], "y_train": data[1]}
    quiet = dataclasses.replace(train.config, model=SmallCNN(spatial_rate=0.0, dense_rate=0.0))
    train_quiet = engine_make_train(quiet, arrays)
    flax_pool = dataclasses.replace(train.config, model=SmallCNN(pool="flax"))
    train_flax_pool = engine_make_train(flax_pool, arrays)

    def jitted(tr) -> float:
        """Seconds per step of ``jit(tr.step)`` called ``steps`` times from Python."""

        def one(s, i):
            return tr.step(s, (x_all[order[i]], y_all[order[i]]), key, hp)[0]

        step, _ = timing.compile_and_time(jax.jit(one), state, 0)

        def run(s):
            for i in range(steps):
                s = step(s, i)
            return s

        return min(timing.time_calls(run, state, repeats=3)) / steps

    def scanned(tr) -> float:
        """Seconds per step of the same step inside one compiled ``lax.scan``."""

        def run(s):
            def body(s, i):
                return tr.step(s, (x_all[order[i]], y_all[order[i]]), key, hp)[0], None

            return jax.lax.scan(body, s, jnp.arange(scan_steps))[0]

        compiled, _ = timing.compile_and_time(jax.jit(run), state)
        return min(timing.time_calls(compiled, state, repeats=2)) / scan_steps

    def conv(x, w):
        """The model's 3x3 convolution (``nn.Conv(padding="SAME")``, channels last)."""
        return jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    # The second convolution alone, forward and backward (what the step spends most in).
    x2 = jax.random.normal(jax.random.key(1), (BATCH_SIZE, SIDE // 2, SIDE // 2, CHANNELS[0]))
    w2 = jnp.asarray(state.params["conv2"]["kernel"])

    def conv_grad(w, x):
        return jax.grad(lambda w, x: jnp.sum(conv(x, w) ** 2), argnums=(0, 1))(w, x)

    conv_step, _ = timing.compile_and_time(
        jax.jit(lambda w, x: w - 1e-9 * conv_grad(w, x)[0]), w2, x2
    )

    def conv_loop(w):
        for _ in range(steps):
            w = conv_step(w, x2)
        return w

    def conv_scan(w, x):
        def body(w, _):
            return w - 1e-9 * conv_grad(w, x)[0], None

        return jax.lax.scan(body, w, None, length=scan_steps)[0]

    conv_scanned, _ = timing.compile_and_time(jax.jit(conv_scan), w2, x2)

    # Both convolutions' forward and backward as the step runs them (the first needs no input
    # gradient): XLA's convolution kernels, the part of the step that torch's oneDNN beats.
    x1 = jax.random.normal(jax.random.key(2), (BATCH_SIZE, SIDE, SIDE, 1))
    w1 = jnp.asarray(state.params["conv1"]["kernel"])

    def convs(w1, w2, x1, x2):
        def f(w1, w2, x2):
            return jnp.sum(conv(x1, w1) ** 2) + jnp.sum(conv(x2, w2) ** 2)

        g1, g2, gx = jax.grad(f, argnums=(0, 1, 2))(w1, w2, x2)
        return w1 - 1e-9 * g1, w2 - 1e-9 * g2, x2 - 1e-9 * gx

    convs_step, _ = timing.compile_and_time(jax.jit(convs), w1, w2, x1, x2)

    def convs_loop(w1, w2, x2):
        for _ in range(steps):
            w1, w2, x2 = convs_step(w1, w2, x1, x2)
        return w2

    parts = {
        "step_jit": jitted(train),
        "step_jit_flax_max_pool": jitted(train_flax_pool),
        "convs_fwd_bwd_jit": min(timing.time_calls(convs_loop, w1, w2, x2, repeats=3)) / steps,
        "step_scan": scanned(train),
        "step_jit_without_dropout": jitted(train_quiet),
        "conv2_fwd_bwd_jit": min(timing.time_calls(conv_loop, w2, repeats=3)) / steps,
        "conv2_fwd_bwd_scan": min(timing.time_calls(conv_scanned, w2, x2, repeats=2)) / scan_steps,
    }
    parts_ms = {k: v * 1e3 for k, v in parts.items()}
    return {
        "parts_ms": parts_ms,
        "scan_over_jit": parts["step_scan"] / parts["step_jit"],
        "conv_scan_over_jit": parts["conv2_fwd_bwd_scan"] / parts["conv2_fwd_bwd_jit"],
        "dropout_share": 1 - parts["step_jit_without_dropout"] / parts["step_jit"],
        "step_gflops_jit": FLOPS_PER_EXAMPLE * BATCH_SIZE / parts["step_jit"] / 1e9,
        "steps_per_measure": steps,
        "scan_steps_per_measure": scan_steps,
        "method": (
            f"jitted parts: {steps} calls from Python, best of 3; scanned parts: one compiled "
            f"lax.scan of {scan_steps} steps, best of 2; all compiled ahead of time"
        ),
    }

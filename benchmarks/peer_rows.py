"""The JAX peers: the same MLP trained with Keras 3 (JAX backend), Flax NNX and Equinox.

Each row is the idiomatic code of that library's own documentation, neither tuned nor
handicapped: Keras ``model.fit`` on NumPy arrays; Flax NNX's MNIST tutorial (``nnx.Optimizer``,
an ``nnx.jit`` train step called from a Python loop over NumPy minibatches); Equinox's tutorials
(a model over one example, ``jax.vmap`` over the batch with one dropout key per example,
``eqx.filter_jit``, ``eqx.filter_value_and_grad``, optax). Equal conditions with the other rows:
784-256-256-10 with ReLU and dropout 0.2 / 0.5, plain SGD lr 0.5, batch 256, mean
cross-entropy, the real Fashion-MNIST arrays, the initial weights of the ``init`` row, float32 at
the highest matmul precision, full batches only (``steps * 256`` examples per epoch; Keras is
given those first ``steps * 256`` examples, since ``fit`` has no ``drop_last``).

Row functions have the signature of ``benchmarks.jax_rows`` (``(workload, init_path,
device)`` -> dict) and run in their own process (``benchmarks.run``). Keras and Equinox are the
``bench`` extra (``pip install -e .[bench]``); a missing one fails only its own row.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

# The torch parameter names the ``init`` row writes (``jaxreg.convert.flax_to_torch``).
_TORCH_NAMES = ("lin1", "lin2", "lin3")


def _setup() -> None:
    jax.config.update("jax_default_matmul_precision", "highest")


def _data(workload: common.Workload):
    from jaxreg.lab.data import load_fashion_mnist

    ds = load_fashion_mnist(
        workload.data_dir, train_size=workload.train_size, test_size=workload.test_size
    )
    return (
        np.asarray(ds.x_train, np.float32),
        np.asarray(ds.y_train, np.int32),
        np.asarray(ds.x_test, np.float32),
        np.asarray(ds.y_test, np.int32),
    )


def _shared_init(init_path: str | None) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``(kernel (in, out), bias)`` per layer from the ``init`` row's file, or None without it."""
    if not init_path or not Path(init_path).exists():
        return None
    with np.load(init_path) as state:
        return [
            (state[f"{name}.weight"].T.astype(np.float32), state[f"{name}.bias"].astype(np.float32))
            for name in _TORCH_NAMES
        ]


def _versions(*packages: str) -> dict[str, str | None]:
    versions = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _memory(rss: common.PeakRSS) -> dict[str, Any]:
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {
            "peak_mem_mb": stats["peak_bytes_in_use"] / 2**20,
            "mem_method": "jax device memory_stats()['peak_bytes_in_use']",
        }
    return {
        "peak_mem_mb": rss.delta / 2**20,
        "mem_method": "RSS delta (peak during training minus before; /proc sampled every 10 ms)",
    }


def _result(warm, timed, steps, losses, test_acc, rss, framework, method) -> dict[str, Any]:
    median = common.summarize(timed)["median_s"]
    return {
        "epoch": common.summarize(timed),
        "epoch_times_s": timed,
        "warmup_times_s": warm,
        "compile_s": warm[0] - median if warm else None,
        "compile_note": "first epoch minus the median epoch (the step compiles in the first)",
        "steps_per_epoch": steps,
        "samples_per_epoch": steps * common.BATCH_SIZE,
        "train_loss_last_epoch": losses[-1],
        "train_loss_per_epoch": losses,
        "test_acc": test_acc,
        "device": str(jax.devices()[0]),
        "framework": framework,
        "method": method,
        "settings": {**_versions("jax", "flax", "keras", "equinox", "optax")},
        **_memory(rss),
    }


def _epoch_batches(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = common.steps_per_epoch(n)
    return rng.permutation(n)[: steps * common.BATCH_SIZE].reshape(steps, common.BATCH_SIZE)


def build_keras(shared: list | None = None):
    """The Keras ``Sequential`` twin, with ``shared`` initial weights if given."""
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    keras.utils.set_random_seed(0)
    (n_in, h1), (_, h2), (_, n_out) = common.LAYERS
    model = keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(h1, activation="relu"),
            keras.layers.Dropout(common.DROPOUT[0]),
            keras.layers.Dense(h2, activation="relu"),
            keras.layers.Dropout(common.DROPOUT[1]),
            keras.layers.Dense(n_out),
        ]
    )
    if shared is not None:
        model.set_weights([a for layer in shared for a in layer])
    return model


def keras_fit(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Keras 3 on JAX: ``Sequential`` + ``compile`` + one ``fit`` call over all epochs."""
    # Keras picks its backend once, at import; the row runs in a process of its own.
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r}")
    _setup()
    x_train, y_train, x_test, y_test = _data(workload)
    steps = common.steps_per_epoch(len(x_train))
    x_fit, y_fit = x_train[: steps * common.BATCH_SIZE], y_train[: steps * common.BATCH_SIZE]
    model = build_keras(_shared_init(init_path))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=common.LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    marks: list[float] = []
    losses: list[float] = []

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # Reading the epoch's loss waits for its last step.
            losses.append(float(logs["loss"]))
            marks.append(time.perf_counter())

    epochs = workload.warmup_epochs + workload.epochs
    with common.PeakRSS() as rss:
        marks.append(time.perf_counter())
        model.fit(
            x_fit,
            y_fit,
            batch_size=common.BATCH_SIZE,
            epochs=epochs,
            shuffle=True,
            verbose=0,
            callbacks=[EpochClock()],
        )
    times = np.diff(marks).tolist()
    logits = model.predict(x_test, batch_size=1000, verbose=0)
    test_acc = float(np.mean(np.argmax(logits, -1) == y_test))
    return _result(
        times[: workload.warmup_epochs],
        times[workload.warmup_epochs :],
        steps,
        losses,
        test_acc,
        rss,
        f"keras {keras.__version__} (backend {keras.backend.backend()})",
        "model.fit(epochs=N, shuffle=True) with an on_epoch_end clock; compiled train step, "
        "one dispatch per batch (steps_per_execution=1, the default)",
    )


def build_nnx(shared: list | None = None):
    """The Flax NNX twin (``nnx.Linear``, ``nnx.Dropout``), with ``shared`` weights if given."""
    from flax import nnx

    (n_in, h1), (_, h2), (_, n_out) = common.LAYERS

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.lin1 = nnx.Linear(n_in, h1, rngs=rngs)
            self.drop1 = nnx.Dropout(common.DROPOUT[0], rngs=rngs)
            self.lin2 = nnx.Linear(h1, h2, rngs=rngs)
            self.drop2 = nnx.Dropout(common.DROPOUT[1], rngs=rngs)
            self.lin3 = nnx.Linear(h2, n_out, rngs=rngs)

        def __call__(self, x):
            x = self.drop1(nnx.relu(self.lin1(x)))
            x = self.drop2(nnx.relu(self.lin2(x)))
            return self.lin3(x)

    model = MLP(nnx.Rngs(params=0, dropout=1))
    if shared is not None:
        for layer, (kernel, bias) in zip((model.lin1, model.lin2, model.lin3), shared, strict=True):
            layer.kernel[...] = jnp.asarray(kernel)
            layer.bias[...] = jnp.asarray(bias)
    return model


def nnx_jit(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Flax NNX as its MNIST tutorial: ``nnx.jit`` train step, Python loop over minibatches."""
    import optax
    from flax import nnx

    _setup()
    x_train, y_train, x_test, y_test = _data(workload)
    model = build_nnx(_shared_init(init_path))
    optimizer = nnx.Optimizer(model, optax.sgd(common.LEARNING_RATE), wrt=nnx.Param)

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

    def run_epoch(_: int) -> None:
        model.train()
        total = jnp.float32(0)
        for index in _epoch_batches(rng, len(x_train)):
            total = total + train_step(model, optimizer, x_train[index], y_train[index])
        losses.append(float(total) / common.steps_per_epoch(len(x_train)))

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    model.eval()
    test_acc = float(np.mean(np.asarray(predict(model, x_test)) == y_test))
    return _result(
        warm,
        timed,
        common.steps_per_epoch(len(x_train)),
        losses,
        test_acc,
        rss,
        f"flax.nnx {importlib.metadata.version('flax')}",
        "nnx.jit(train_step)(model, optimizer, x, y) per minibatch, NumPy minibatches from a "
        "per-epoch permutation; losses summed on the device and read once per epoch",
    )


def build_equinox(shared: list | None = None):
    """The Equinox twin (a model of one example), with ``shared`` weights if given."""
    import equinox as eqx

    (n_in, h1), (_, h2), (_, n_out) = common.LAYERS

    class MLP(eqx.Module):
        lin1: eqx.nn.Linear
        lin2: eqx.nn.Linear
        lin3: eqx.nn.Linear
        drop1: eqx.nn.Dropout
        drop2: eqx.nn.Dropout

        def __init__(self, key):
            k1, k2, k3 = jax.random.split(key, 3)
            self.lin1 = eqx.nn.Linear(n_in, h1, key=k1)
            self.lin2 = eqx.nn.Linear(h1, h2, key=k2)
            self.lin3 = eqx.nn.Linear(h2, n_out, key=k3)
            self.drop1 = eqx.nn.Dropout(common.DROPOUT[0])
            self.drop2 = eqx.nn.Dropout(common.DROPOUT[1])

        def __call__(self, x, *, key=None, inference=False):
            k1, k2 = (None, None) if key is None else jax.random.split(key)
            x = self.drop1(jax.nn.relu(self.lin1(x)), key=k1, inference=inference)
            x = self.drop2(jax.nn.relu(self.lin2(x)), key=k2, inference=inference)
            return self.lin3(x)

    model = MLP(jax.random.key(0))
    if shared is not None:

        def linears(m):
            return [leaf for lin in (m.lin1, m.lin2, m.lin3) for leaf in (lin.weight, lin.bias)]

        # Equinox stores a Linear's weight as (out, in), as torch does.
        arrays = [jnp.asarray(a) for kernel, bias in shared for a in (kernel.T, bias)]
        model = eqx.tree_at(linears, model, arrays)
    return model


def equinox_filter_jit(workload: common.Workload, init_path: str, device: str = "auto") -> dict:
    """Equinox as its tutorials: per-example model, ``jax.vmap`` over the batch, filter_jit."""
    import equinox as eqx
    import optax

    _setup()
    x_train, y_train, x_test, y_test = _data(workload)
    model = build_equinox(_shared_init(init_path))
    optim = optax.sgd(common.LEARNING_RATE)
    opt_state = optim.init(eqx.filter(model, eqx.is_array))

    def loss_fn(model, x, y, key):
        keys = jax.random.split(key, x.shape[0])
        logits = jax.vmap(model)(x, key=keys)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @eqx.filter_jit
    def make_step(model, opt_state, x, y, key):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y, key)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    @eqx.filter_jit
    def predict(model, x):
        return jax.vmap(lambda e: model(e, inference=True))(x).argmax(-1)

    rng = np.random.default_rng(0)
    state = {"model": model, "opt_state": opt_state, "key": jax.random.key(1)}
    losses: list[float] = []

    def run_epoch(_: int) -> None:
        m, o, key = state["model"], state["opt_state"], state["key"]
        total = jnp.float32(0)
        for index in _epoch_batches(rng, len(x_train)):
            key, step_key = jax.random.split(key)
            m, o, loss = make_step(m, o, x_train[index], y_train[index], step_key)
            total = total + loss
        losses.append(float(total) / common.steps_per_epoch(len(x_train)))
        state.update(model=m, opt_state=o, key=key)

    with common.PeakRSS() as rss:
        warm, timed = common.time_epochs(run_epoch, workload.warmup_epochs, workload.epochs)
    test_acc = float(np.mean(np.asarray(predict(state["model"], x_test)) == y_test))
    return _result(
        warm,
        timed,
        common.steps_per_epoch(len(x_train)),
        losses,
        test_acc,
        rss,
        f"equinox {importlib.metadata.version('equinox')}",
        "eqx.filter_jit(make_step) per minibatch, jax.vmap(model) over the batch with one "
        "dropout key per example, optax.sgd; NumPy minibatches from a per-epoch permutation",
    )

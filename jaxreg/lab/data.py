"""Data sets of the seeds: Fashion-MNIST from its IDX files and seed 002's regression points.

Fashion-MNIST is read from the four standard IDX files (gzip-compressed or not) that
``torchvision.datasets.FashionMNIST`` downloads and that Debian's ``dataset-fashion-mnist``
package installs; nothing is downloaded at run time. Pixels are scaled like
``torchvision.transforms.ToTensor()`` (uint8 / 255 as float32) and returned flat (N, 784), which
is what every seed model's ``x.reshape(-1, 784)`` / ``nn.Flatten()`` sees, or as images: ``NHWC``
(N, 28, 28, 1) for Flax convolutions, ``NCHW`` (N, 1, 28, 28) for torch's. The arrays are the
caller's own (writable, sharing no memory with the in-process cache or with another call).
"""

from __future__ import annotations

import gzip
import numbers
import os
import threading
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package puts the IDX files."""

DATA_DIR_ENV = "JAXREG_DATA_DIR"
"""Environment variable consulted when ``data_dir`` is None, before :data:`DEFAULT_DATA_DIR`."""

CLASS_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
"""Label names in seed 004's ``get_labels`` order."""

_INSTALL_HINT = (
    "install the data with `sudo apt-get install dataset-fashion-mnist` (files land in "
    f"{DEFAULT_DATA_DIR}), or pass --data-dir / data_dir=DIR naming a folder that holds the four "
    "IDX files (or torchvision's FashionMNIST/raw layout), or set $" + DATA_DIR_ENV
)

LAYOUTS = ("flat", "nhwc", "nchw")
"""Image layouts of :func:`load_fashion_mnist`: (N, 784), (N, 28, 28, 1), (N, 1, 28, 28)."""

FASHION_MNIST_SIZES = {"train": 60000, "test": 10000}
"""Examples in each Fashion-MNIST split (before a validation split is held out of training)."""

# stem -> (IDX magic number, item dims, item count)
_SPLITS = {
    "train_images": ("train-images-idx3-ubyte", 0x0803, (28, 28), 60000),
    "train_labels": ("train-labels-idx1-ubyte", 0x0801, (), 60000),
    "test_images": ("t10k-images-idx3-ubyte", 0x0803, (28, 28), 10000),
    "test_labels": ("t10k-labels-idx1-ubyte", 0x0801, (), 10000),
}


class FashionMNIST(NamedTuple):
    """Fashion-MNIST as NumPy arrays.

    ``x_*`` are float32 in [0, 1], (N, 784) or images in the layout asked for; ``y_*`` are int32
    (N,) class indices in 0..9. ``x_val`` / ``y_val`` are None when no validation split was asked
    for.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


class RegressionData(NamedTuple):
    """Seed 002's 1-D regression points: float32 arrays of shape (n_samples, 1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class DataError(ValueError):
    """A data file exists but is not the IDX file it should be (the message says why)."""


_CACHE: dict[tuple, tuple[np.ndarray, ...]] = {}
_CACHE_LOCK = threading.Lock()


def _candidates(data_dir: Path, stem: str) -> list[Path]:
    dirs = [data_dir, data_dir / "raw", data_dir / "FashionMNIST" / "raw"]
    return [d / name for d in dirs for name in (stem + ".gz", stem)]


def _find(data_dir: Path, stem: str) -> Path:
    for path in _candidates(data_dir, stem):
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in _candidates(data_dir, stem))
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found under {data_dir} (tried: {tried}); "
        + _INSTALL_HINT
    )


def _read_bytes(path: Path) -> bytes:
    # Decide by content, not by name: torchvision's raw folder may hold either form.
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"\x1f\x8b":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: corrupt gzip stream ({err}); expected a gzip-compressed IDX file. "
            "Re-install it: " + _INSTALL_HINT
        ) from err


def _parse_idx(path: Path, raw: bytes, magic: int, dims: tuple[int, ...], count: int) -> np.ndarray:
    ndim = len(dims) + 1
    header_len = 4 + 4 * ndim
    what = f"an IDX file with magic 0x{magic:08x}, shape ({count}, {', '.join(map(str, dims))})"
    what = what.replace(", )", ")")
    if len(raw) < header_len:
        raise DataError(
            f"{path}: {len(raw)} bytes, shorter than the {header_len}-byte IDX header; expected "
            f"{what}. Re-install it: " + _INSTALL_HINT
        )
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(
            f"{path}: magic number 0x{got_magic:08x}, expected 0x{magic:08x} ({what}). "
            "Is this the right file? " + _INSTALL_HINT
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != (count, *dims):
        raise DataError(
            f"{path}: header says shape {shape}, expected {(count, *dims)} ({what}). "
            "Re-install it: " + _INSTALL_HINT
        )
    n_payload = int(np.prod(shape))
    if len(raw) - header_len != n_payload:
        raise DataError(
            f"{path}: {len(raw) - header_len} bytes of data after the header, expected "
            f"{n_payload} ({what}); the file is truncated or padded. Re-install it: "
            + _INSTALL_HINT
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def _load_raw(data_dir: Path) -> tuple[np.ndarray, ...]:
    """The four IDX arrays as decoded (uint8 images (N, 28, 28), int32 labels), read-only and
    cached: callers convert (and so copy) what they hand out."""
    paths = {key: _find(data_dir, spec[0]) for key, spec in _SPLITS.items()}
    # The cache key includes size and mtime so a replaced file is re-read.
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values())
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    out = []
    for name, (_, magic, dims, count) in _SPLITS.items():
        arr = _parse_idx(paths[name], _read_bytes(paths[name]), magic, dims, count)
        if not dims:
            if arr.max(initial=0) > 9:
                raise DataError(
                    f"{paths[name]}: label {int(arr.max())} outside the 10 classes 0..9. "
                    "Re-install it: " + _INSTALL_HINT
                )
            arr = arr.astype(np.int32)
        arr.setflags(write=False)
        out.append(arr)
    result = tuple(out)
    with _CACHE_LOCK:
        _CACHE[key] = result
    return result


def _images(raw: np.ndarray, layout: str) -> np.ndarray:
    # ToTensor(): uint8 / 255 in float32; the division makes a fresh, writable array.
    x = raw.astype(np.float32) / np.float32(255.0)
    if layout == "flat":
        return x.reshape(len(x), -1)
    if layout == "nhwc":
        return x[..., None]
    return x[:, None]


_SPLIT_WORD = {"train_size": "training", "test_size": "test"}


def _check_layout(layout: object) -> str:
    if not isinstance(layout, str) or layout.lower() not in LAYOUTS:
        raise ValueError(
            f"layout={layout!r}: allowed values are {LAYOUTS} (flat (N, 784), NHWC (N, 28, 28, 1) "
            "for Flax convolutions, NCHW (N, 1, 28, 28) for torch's)"
        )
    return layout.lower()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder the IDX files are read from: ``data_dir``, else $JAXREG_DATA_DIR, else Debian's.

    Args:
      data_dir: a folder, or None.

    Returns:
      A ``Path``.

    Example:
      >>> str(resolve_data_dir("/tmp/fm"))
      '/tmp/fm'
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    validation: int | float = 0,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    layout: str = "flat",
) -> FashionMNIST:
    """Fashion-MNIST as float32 arrays, like seed 004's ``load_data`` with ``ToTensor()``.

    PyTorch equivalent: ``torchvision.datasets.FashionMNIST(root, train=..., transform=ToTensor())``
    (seeds 003 and 004): ``layout="nchw"`` is its (N, 1, 28, 28) batch, ``"flat"`` each image
    flattened to 784 values the way the seed models' ``x.reshape(-1, 784)`` do, ``"nhwc"`` the
    channels-last (N, 28, 28, 1) that ``flax.linen.Conv`` expects. The decoded IDX files are
    cached in-process, so a second call costs no disk access; every call returns new, writable
    arrays that the caller may modify.

    Args:
      data_dir: folder holding ``train-images-idx3-ubyte[.gz]`` and the other three IDX files,
        directly, under ``raw/`` or under torchvision's ``FashionMNIST/raw/``. None:
        $JAXREG_DATA_DIR or ``/usr/share/datasets/fashion-mnist`` (``dataset-fashion-mnist``).
      validation: examples held out of the training set as a validation split: an int count, or a
        float fraction in (0, 1). 0: no split.
      seed: seeds the NumPy permutation that picks the validation examples (deterministic).
      train_size: keep only the first ``train_size`` training examples (after the split); for quick
        runs and tests.
      test_size: keep only the first ``test_size`` test examples.
      layout: ``"flat"`` (N, 784), ``"nhwc"`` (N, 28, 28, 1) or ``"nchw"`` (N, 1, 28, 28)
        (case-insensitive).

    Returns:
      A :class:`FashionMNIST` tuple ``(x_train, y_train, x_test, y_test, x_val, y_val)``.

    Raises:
      FileNotFoundError: a file is missing (the message lists the paths tried and how to install).
      DataError: a file is corrupt (bad magic number, dimensions, count, truncated).
      ValueError: a bad ``validation`` or ``layout``; a ``train_size`` or ``test_size`` that is
        not a positive int or exceeds the examples there are (never silently cut).

    Example:
      >>> ds = load_fashion_mnist(validation=5000, seed=0)  # doctest: +SKIP
      >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.dtype  # doctest: +SKIP
      ((55000, 784), (5000, 784), dtype('float32'))
    """
    layout = _check_layout(layout)
    x_train, y_train, x_test, y_test = _load_raw(resolve_data_dir(data_dir))
    n = x_train.shape[0]
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise ValueError(
            f"validation={validation!r}: expected an int count in [0, {n}) or a float in [0, 1)"
        )
    if not isinstance(validation, numbers.Integral):
        if not 0.0 <= validation < 1.0:
            raise ValueError(f"validation={validation!r}: a fraction must be in [0, 1)")
        n_val = int(round(validation * n))
    else:
        n_val = int(validation)
    if not 0 <= n_val < n:
        raise ValueError(f"validation={validation!r}: expected a count in [0, {n})")
    available = {"train_size": n - n_val, "test_size": len(x_test)}
    for name, size in (("train_size", train_size), ("test_size", test_size)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
            raise ValueError(f"{name}={size!r}: expected a positive int or None")
        if size > available[name]:
            held = f" ({n_val} held out for validation)" if name == "train_size" and n_val else ""
            raise ValueError(
                f"{name}={size}: Fashion-MNIST has {available[name]} {_SPLIT_WORD[name]} "
                f"examples{held}; ask for at most that many"
            )
    x_val = y_val = None
    if n_val:
        perm = np.random.default_rng(seed).permutation(n)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        x_val, y_val = _images(x_train[val_idx], layout), y_train[val_idx]
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    x_train, y_train = _images(x_train[:train_size], layout), y_train[:train_size].copy()
    x_test, y_test = _images(x_test[:test_size], layout), y_test[:test_size].copy()
    return FashionMNIST(x_train, y_train, x_test, y_test, x_val, y_val)


def clear_cache() -> None:
    """Forget the decoded Fashion-MNIST arrays held by :func:`load_fashion_mnist`.

    Example:
      >>> clear_cache()
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def regression_data(
    seed: int = 1, *, n_samples: int = 20, noise: float = 0.3, dtype=np.float32
) -> RegressionData:
    """Seed 002's over-fitting data: ``x = linspace(-1, 1, n)``, ``y = x + noise * N(0, 1)``.

    PyTorch equivalent (seed 002)::

        torch.manual_seed(1)
        x = torch.unsqueeze(torch.linspace(-1, 1, 20), 1)
        y = x + 0.3 * torch.normal(torch.zeros(20, 1), torch.ones(20, 1))
        test_x = torch.unsqueeze(torch.linspace(-1, 1, 20), 1)
        test_y = test_x + 0.3 * torch.normal(torch.zeros(20, 1), torch.ones(20, 1))

    The noise comes from NumPy's ``default_rng(seed)`` (train noise drawn first, then test noise,
    as in the seed) rather than from torch's generator, whose stream JAX cannot reproduce: the
    points are plain arrays, so the JAX and the PyTorch side train on identical data.

    Args:
      seed: NumPy seed (the seed uses ``torch.manual_seed(1)``; 1 is kept as the default).
      n_samples: points in each of the train and test sets (seed: 20).
      noise: standard deviation multiplier of the Gaussian noise (seed: 0.3).
      dtype: floating dtype of the arrays.

    Returns:
      A :class:`RegressionData` ``(x_train, y_train, x_test, y_test)``, each (n_samples, 1).

    Example:
      >>> d = regression_data(seed=1)
      >>> d.x_train.shape, float(d.x_train[0, 0]), float(d.x_train[-1, 0])
      ((20, 1), -1.0, 1.0)
    """
    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples={n_samples!r}: expected an int >= 2")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise={noise!r}: expected a finite float >= 0")
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, n_samples, dtype=np.float64)[:, None]
    y = x + noise * rng.standard_normal((n_samples, 1))
    x_test = x.copy()
    y_test = x_test + noise * rng.standard_normal((n_samples, 1))
    return RegressionData(*(np.asarray(a, dtype=dtype) for a in (x, y, x_test, y_test)))


def synthetic_classification(
    n_train: int = 2048,
    n_test: int = 512,
    *,
    num_features: int = 784,
    num_classes: int = 10,
    noise: float = 0.6,
    validation: int = 0,
    seed: int = 0,
) -> FashionMNIST:
    """A small Fashion-MNIST-shaped stand-in: Gaussian blobs in [0, 1], for tests and demos.

    Not a seed data set: it lets sweeps and the engine run end to end in seconds, and on machines
    without the Fashion-MNIST package. Each class has a random mean image in [0, 1]; examples are
    that mean plus ``noise * N(0, 1)``, clipped to [0, 1] like pixels. PyTorch equivalent: none
    (``torch.utils.data.TensorDataset`` over such arrays).

    Args:
      n_train: training examples.
      n_test: test examples.
      num_features: features per example (784 = a flattened 28x28 image).
      num_classes: classes (labels 0..num_classes-1, balanced up to rounding).
      noise: noise standard deviation; larger is harder.
      validation: extra examples drawn for a validation split (0: none).
      seed: NumPy seed.

    Returns:
      A :class:`FashionMNIST` tuple with float32 ``x_*`` and int32 ``y_*``.

    Example:
      >>> ds = synthetic_classification(64, 16, seed=0)
      >>> ds.x_train.shape, ds.y_test.dtype.name
      ((64, 784), 'int32')
    """
    for name, value in (("n_train", n_train), ("n_test", n_test), ("num_features", num_features)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive int")
    if not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r}: expected an int >= 2")
    if not isinstance(validation, numbers.Integral) or validation < 0:
        raise ValueError(f"validation={validation!r}: expected an int >= 0")
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.0, 1.0, (num_classes, num_features))

    def draw(n):
        y = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
        x = means[y] + noise * rng.standard_normal((n, num_features))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    x_val, y_val = draw(validation) if validation else (None, None)
    return FashionMNIST(x_train, y_train, x_test, y_test, x_val, y_val)

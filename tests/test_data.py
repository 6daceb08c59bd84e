"""Tests for jaxreg.lab.data: IDX parsing and validation, splits, cache, seed 002's points."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from jaxreg.lab import data

REAL_DIR = Path(data.DEFAULT_DATA_DIR)


def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _images(n, rng):
    # Mostly zeros so gzip is fast; the first bytes make every row unique and the last is random.
    imgs = np.zeros((n, 28, 28), np.uint8)
    idx = np.arange(n)
    imgs[:, 0, 0], imgs[:, 0, 1], imgs[:, 0, 2] = idx % 256, (idx // 256) % 256, idx // 65536
    imgs[:, 27, 27] = rng.integers(0, 256, n)
    return imgs


def _write_fake(folder: Path, n_train=60000, n_test=10000, *, gz=True, rng_seed=0, overrides=None):
    """Writes four IDX files; ``overrides`` maps a stem to raw bytes that replace it."""
    rng = np.random.default_rng(rng_seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (_images(n_train, rng), 0x0803),
        "train-labels-idx1-ubyte": (rng.integers(0, 10, (n_train,), dtype=np.uint8), 0x0801),
        "t10k-images-idx3-ubyte": (_images(n_test, rng), 0x0803),
        "t10k-labels-idx1-ubyte": (rng.integers(0, 10, (n_test,), dtype=np.uint8), 0x0801),
    }
    for stem, (arr, magic) in arrays.items():
        raw = (overrides or {}).get(stem, _idx_bytes(arr, magic))
        if gz:
            with gzip.open(folder / (stem + ".gz"), "wb", compresslevel=1) as f:
                f.write(raw)
        else:
            (folder / stem).write_bytes(raw)
    return {k: v[0] for k, v in arrays.items()}


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmnist")
    arrays = _write_fake(folder)
    return folder, arrays


def test_valid_gz_files_decode_like_totensor(fake_dir):
    folder, arrays = fake_dir
    ds = data.load_fashion_mnist(folder)
    assert ds.x_train.shape == (60000, 784) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.x_test.shape == (10000, 784)
    expected = arrays["train-images-idx3-ubyte"][:5].reshape(5, -1).astype(np.float32) / 255
    np.testing.assert_array_equal(ds.x_train[:5], expected)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.x_val is None and ds.y_val is None
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_uncompressed_torchvision_layout(tmp_path):
    arrays = _write_fake(tmp_path / "FashionMNIST" / "raw", gz=False, rng_seed=3)
    ds = data.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])


def test_calls_return_the_callers_own_writable_arrays(fake_dir, monkeypatch):
    folder, _ = fake_dir
    a = data.load_fashion_mnist(folder, validation=10, train_size=100)
    # The second call reads nothing from disk (the decoded files are cached) ...
    monkeypatch.setattr(data, "_read_bytes", lambda path: pytest.fail(f"read {path} again"))
    b = data.load_fashion_mnist(folder, validation=10, train_size=100)
    # ... and neither call's arrays share memory with the other's or with the cache.
    for x, y in zip(a, b, strict=True):
        assert x.flags.writeable and not np.shares_memory(x, y)
        x[...] = 7
    # Writing into a's arrays changed nothing that a later call returns.
    c = data.load_fashion_mnist(folder, validation=10, train_size=100)
    for x, y in zip(b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        assert not np.all(y == 7)


@pytest.mark.parametrize(
    "layout, shape",
    [("flat", (784,)), ("nhwc", (28, 28, 1)), ("NCHW", (1, 28, 28)), ("nchw", (1, 28, 28))],
)
def test_layouts_hold_the_same_pixels(fake_dir, layout, shape):
    folder, arrays = fake_dir
    ds = data.load_fashion_mnist(folder, validation=5, train_size=7, test_size=3, layout=layout)
    assert ds.x_train.shape == (7, *shape) and ds.x_test.shape == (3, *shape)
    assert ds.x_val.shape == (5, *shape) and ds.x_train.flags.writeable
    images = arrays["train-images-idx3-ubyte"]
    flat = data.load_fashion_mnist(folder, validation=5, train_size=7, test_size=3)
    # Same pixels in the asked order: NHWC / NCHW are the 28 x 28 image with a channel axis.
    as_images = ds.x_train.reshape(7, 28, 28) if layout != "flat" else ds.x_train.reshape(7, 784)
    np.testing.assert_array_equal(as_images.reshape(7, -1), flat.x_train)
    assert flat.x_train.shape == (7, 784) and images.shape[1:] == (28, 28)


@pytest.mark.parametrize("bad", ["NHCW", "", None, 3, "chw"])
def test_bad_layout_names_parameter_and_allowed_values(fake_dir, bad):
    with pytest.raises(ValueError, match=r"layout=.*allowed values are \('flat', 'nhwc', 'nchw'\)"):
        data.load_fashion_mnist(fake_dir[0], layout=bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train_size": 60001}, "train_size=60001: Fashion-MNIST has 60000 training examples"),
        ({"train_size": 59001, "validation": 1000}, "59000 training examples \\(1000 held out"),
        ({"test_size": 10001}, "test_size=10001: Fashion-MNIST has 10000 test examples"),
        ({"train_size": True}, "train_size=True: expected a positive int"),
        ({"test_size": 0}, "test_size=0: expected a positive int"),
    ],
)
def test_sizes_beyond_the_data_are_errors_not_silent_cuts(fake_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_fashion_mnist(fake_dir[0], **kwargs)


def test_validation_split_is_deterministic_and_disjoint(fake_dir):
    folder, arrays = fake_dir
    a = data.load_fashion_mnist(folder, validation=1000, seed=7)
    b = data.load_fashion_mnist(folder, validation=1000, seed=7)
    c = data.load_fashion_mnist(folder, validation=1000, seed=8)
    assert a.x_val.shape == (1000, 784) and a.x_train.shape == (59000, 784)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)
    # Every original example lands in exactly one of the two parts.
    full = arrays["train-images-idx3-ubyte"].reshape(60000, -1)
    rows = {r.tobytes() for r in full}
    got = np.concatenate([a.x_train, a.x_val]) * 255
    got_rows = {np.rint(r).astype(np.uint8).tobytes() for r in got}
    assert got_rows == rows
    frac = data.load_fashion_mnist(folder, validation=0.1, train_size=100, test_size=10)
    assert frac.x_val.shape[0] == 6000 and frac.x_train.shape[0] == 100
    assert frac.x_test.shape[0] == 10


@pytest.mark.parametrize("bad", [-1, 60000, 1.5, "10", True])
def test_bad_validation_names_parameter(fake_dir, bad):
    with pytest.raises(ValueError, match="validation"):
        data.load_fashion_mnist(fake_dir[0], validation=bad)


def test_missing_file_names_file_and_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*apt-get install"):
        data.load_fashion_mnist(tmp_path)


def _corrupt_case(tmp_path, stem, raw):
    _write_fake(tmp_path, gz=False, overrides={stem: raw})
    with pytest.raises(data.DataError) as info:
        data.load_fashion_mnist(tmp_path)
    return str(info.value)


def test_bad_magic(tmp_path):
    raw = _idx_bytes(np.zeros((10000,), np.uint8), 0x0803)
    msg = _corrupt_case(tmp_path, "t10k-labels-idx1-ubyte", raw)
    assert "t10k-labels-idx1-ubyte" in msg and "magic" in msg and "0x00000801" in msg


def test_truncated_payload(tmp_path):
    raw = _idx_bytes(np.zeros((10000,), np.uint8), 0x0801)[:-7]
    msg = _corrupt_case(tmp_path, "t10k-labels-idx1-ubyte", raw)
    assert "truncated" in msg and "10000" in msg


def test_truncated_header(tmp_path):
    msg = _corrupt_case(tmp_path, "train-labels-idx1-ubyte", b"\x00\x00\x08")
    assert "header" in msg and "train-labels-idx1-ubyte" in msg


def test_wrong_count(tmp_path):
    raw = _idx_bytes(np.zeros((9999,), np.uint8), 0x0801)
    msg = _corrupt_case(tmp_path, "t10k-labels-idx1-ubyte", raw)
    assert "(9999,)" in msg and "(10000,)" in msg


def test_wrong_dims(tmp_path):
    raw = _idx_bytes(np.zeros((10000, 28, 27), np.uint8), 0x0803)
    msg = _corrupt_case(tmp_path, "t10k-images-idx3-ubyte", raw)
    assert "(10000, 28, 27)" in msg


def test_label_out_of_range(tmp_path):
    raw = _idx_bytes(np.full((10000,), 11, np.uint8), 0x0801)
    msg = _corrupt_case(tmp_path, "t10k-labels-idx1-ubyte", raw)
    assert "label 11" in msg


def test_corrupt_gzip_stream(tmp_path):
    _write_fake(tmp_path, rng_seed=1)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz.*gzip"):
        data.load_fashion_mnist(tmp_path)


def test_env_var_data_dir(fake_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(fake_dir[0]))
    assert data.resolve_data_dir(None) == fake_dir[0]


@pytest.mark.skipif(
    not (REAL_DIR / "train-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed"
)
def test_real_files():
    ds = data.load_fashion_mnist(validation=5000, seed=0)
    assert ds.x_train.shape == (55000, 784) and ds.x_val.shape == (5000, 784)
    assert ds.x_test.shape == (10000, 784)
    images = data.load_fashion_mnist(test_size=16, train_size=16, layout="nchw")
    assert images.x_test.shape == (16, 1, 28, 28) and images.x_test.flags.writeable
    np.testing.assert_array_equal(images.x_test.reshape(16, 784), ds.x_test[:16])
    # Fashion-MNIST is balanced: 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 1000))
    assert abs(float(ds.x_train.mean()) - 0.286) < 0.005


def test_regression_data_recipe():
    d = data.regression_data(seed=1)
    assert all(a.shape == (20, 1) and a.dtype == np.float32 for a in d)
    np.testing.assert_allclose(d.x_train[:, 0], np.linspace(-1, 1, 20), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(d.x_train, d.x_test)
    rng = np.random.default_rng(1)
    noise_train, noise_test = rng.standard_normal((20, 1)), rng.standard_normal((20, 1))
    np.testing.assert_allclose(d.y_train, d.x_train + 0.3 * noise_train, atol=1e-6)
    np.testing.assert_allclose(d.y_test, d.x_test + 0.3 * noise_test, atol=1e-6)
    assert not np.array_equal(d.y_train, data.regression_data(seed=2).y_train)
    with pytest.raises(ValueError, match="n_samples"):
        data.regression_data(n_samples=1)
    with pytest.raises(ValueError, match="noise"):
        data.regression_data(noise=-1.0)


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys, jaxreg.lab.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_synthetic_classification():
    a = data.synthetic_classification(100, 30, num_features=12, validation=10, seed=3)
    b = data.synthetic_classification(100, 30, num_features=12, validation=10, seed=3)
    assert a.x_train.shape == (100, 12) and a.x_val.shape == (10, 12)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1
    assert set(np.unique(a.y_train)) == set(range(10))
    with pytest.raises(ValueError, match="num_classes"):
        data.synthetic_classification(num_classes=1)

"""The torch side's thread count: argument, $JAXREG_TORCH_THREADS, $OMP_NUM_THREADS, the cores."""

import os

import pytest

torch = pytest.importorskip("torch")

from jaxreg.torch_ref.tensors import THREADS_ENV, configure_threads  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({THREADS_ENV: "2", "OMP_NUM_THREADS": "1"}, 2),  # jaxreg's own variable wins
        ({"OMP_NUM_THREADS": "1"}, 1),  # a test harness's per-worker setting is respected
        ({}, len(os.sched_getaffinity(0))),  # otherwise every core the process may use
    ],
)
def test_configure_threads_rule(monkeypatch, env, expected):
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert configure_threads() == expected == torch.get_num_threads()


def test_configure_threads_argument_wins(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    assert configure_threads(1) == 1 == torch.get_num_threads()


@pytest.mark.parametrize("name", [THREADS_ENV, "OMP_NUM_THREADS"])
def test_configure_threads_bad_variable_names_it(monkeypatch, name):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv(name, "two")
    with pytest.raises(ValueError, match=rf"\${name}='two': expected a positive integer"):
        configure_threads()


def test_configure_threads_rejects_zero():
    with pytest.raises(ValueError, match="num_threads=0"):
        configure_threads(0)

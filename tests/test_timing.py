"""jaxreg.lab.timing: ahead-of-time compile timing, blocked call timing, the compilation cache."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from jaxreg.lab import timing


def test_compile_and_time_returns_the_compiled_function_of_plain_and_jitted_fns():
    compiled, seconds = timing.compile_and_time(lambda x, y: x @ y, jnp.ones((2, 3)), jnp.ones(3))
    assert compiled(jnp.ones((2, 3)), 2 * jnp.ones(3)).tolist() == [6.0, 6.0]
    assert seconds > 0
    # An already-jitted function keeps its own options (here: a static argument).
    jitted = jax.jit(lambda x, n: x * n, static_argnums=1)
    compiled, _ = timing.compile_and_time(jitted, jnp.ones(2), 3)
    assert compiled(jnp.full(2, 2.0)).tolist() == [6.0, 6.0]


def test_compile_and_time_accepts_shape_structs():
    spec = jax.ShapeDtypeStruct((4,), jnp.float32)
    compiled, _ = timing.compile_and_time(jnp.cumsum, spec)
    assert compiled(jnp.ones(4)).tolist() == [1.0, 2.0, 3.0, 4.0]


class _Lazy:
    """Stands in for an asynchronously dispatched array: blocking on it is recorded."""

    def __init__(self, log):
        self.log = log

    def block_until_ready(self):
        self.log.append("blocked")
        return self


def test_timed_call_blocks_on_the_outputs_only_when_asked():
    log = []
    out, seconds = timing.timed_call(lambda: _Lazy(log))
    assert log == ["blocked"] and isinstance(out, _Lazy) and seconds >= 0
    timing.timed_call(lambda: _Lazy(log), block=False)
    assert log == ["blocked"]


def test_time_calls_runs_warmup_untimed_then_repeats_timed():
    calls = []
    times = timing.time_calls(lambda x: calls.append(x), 7, repeats=3, warmup=2)
    assert calls == [7] * 5
    assert len(times) == 3 and all(t >= 0 for t in times)


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"repeats": 0}, "repeats"), ({"warmup": -1}, "warmup")]
)
def test_time_calls_rejects_bad_counts_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        timing.time_calls(lambda: None, **kwargs)


def test_default_cache_dir_is_per_user_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(timing.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert timing.default_cache_dir() == tmp_path / "xdg" / "jaxreg" / "jax"
    monkeypatch.setenv(timing.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert timing.default_cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda t: t / "f", "is a file, not a folder"),
        (lambda t: t / "f" / "cache", "cannot be created"),
    ],
)
def test_unusable_cache_folder_warns_and_compiles_without_it(monkeypatch, tmp_path, make, why):
    monkeypatch.delenv(timing.NO_CACHE_ENV, raising=False)
    (tmp_path / "f").write_text("not a folder")
    previous = jax.config.jax_compilation_cache_dir
    try:
        with pytest.warns(timing.CacheWarning, match=why) as caught:
            assert timing.enable_compilation_cache(make(tmp_path)) is None
        assert str(make(tmp_path)) in str(caught[0].message)
        assert not jax.config.jax_enable_compilation_cache
        compiled, _ = timing.compile_and_time(lambda x: x + 1, jnp.ones(2))
        assert compiled(jnp.ones(2)).tolist() == [2.0, 2.0]
    finally:
        timing.disable_compilation_cache()
        jax.config.update("jax_compilation_cache_dir", previous)


@pytest.mark.parametrize(("value", "off"), [("1", True), ("yes", True), ("0", False), ("", False)])
def test_environment_turns_the_cache_off(monkeypatch, tmp_path, value, off):
    monkeypatch.setenv(timing.NO_CACHE_ENV, value)
    previous = jax.config.jax_compilation_cache_dir
    try:
        folder = timing.enable_compilation_cache(tmp_path / "cache")
        assert (folder is None) == off
        assert (tmp_path / "cache").is_dir() != off
    finally:
        timing.disable_compilation_cache()
        jax.config.update("jax_compilation_cache_dir", previous)


# A program as the engine compiles it: a small MLP training step. Printed: the cache events
# and the compile time.
_CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp
    from jaxreg.lab import timing

    folder = timing.enable_compilation_cache(sys.argv[1])

    def step(w, x, y):
        loss = lambda w: jnp.mean((jnp.tanh(x @ w[0]) @ w[1] - y) ** 2)
        return jax.tree.map(lambda p, g: p - 0.1 * g, w, jax.grad(loss)(w))

    w = (jnp.ones((8, 16)), jnp.ones((16, 1)))
    with timing.count_cache_events() as events:
        _, compile_s = timing.compile_and_time(step, w, jnp.ones((4, 8)), jnp.ones((4, 1)))
    print(json.dumps({"folder": str(folder), "compile_s": compile_s, **events}))
    """
)


def _compile_in_new_process(cache, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != timing.NO_CACHE_ENV}
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _entries(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_second_process_reads_the_program_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cold = _compile_in_new_process(cache)
    written = _entries(cache)
    assert cold["folder"] == str(cache)
    assert cold["requests"] >= 1 and cold["hits"] == 0 and cold["misses"] >= 1
    assert written, "the cold compilation wrote nothing to the cache folder"

    warm = _compile_in_new_process(cache)
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert _entries(cache) == written  # read back, not compiled and written again
    # Figures for the record (no assertion on time: the machine is shared).
    print(f"compile cold {cold['compile_s']:.3f} s, warm {warm['compile_s']:.3f} s")


def test_no_compile_cache_environment_leaves_the_folder_unused(tmp_path):
    cache = tmp_path / "cache"
    result = _compile_in_new_process(cache, {timing.NO_CACHE_ENV: "1"})
    assert result["folder"] == "None"
    assert result["hits"] == 0 and result["misses"] == 0
    assert not cache.exists()

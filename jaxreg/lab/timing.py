"""Compile-and-time: the one helper that recipes, sweeps and benchmarks time JAX code with.

Compilation is timed apart from execution by compiling ahead of time
(``jax.jit(fn).lower(*args).compile()``), and a call is timed up to
``jax.block_until_ready`` of its outputs, since JAX dispatches asynchronously and an unblocked
clock measures only the dispatch. The module also switches on JAX's persistent compilation
cache, so that a rerun of the same experiment in a new process reads its compiled programs
from disk instead of compiling them again.

PyTorch equivalent: ``torch.utils.benchmark.Timer`` (which synchronizes CUDA the same way) for
the timing; ``TORCHINDUCTOR_CACHE_DIR`` / Inductor's FX graph cache for the compilation cache.

References:
  JAX documentation, "Persistent compilation cache"
  (https://docs.jax.dev/en/latest/persistent_compilation_cache.html) and "Ahead-of-time
  lowering and compilation" (https://docs.jax.dev/en/latest/aot.html).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax

CACHE_DIR_ENV = "JAXREG_CACHE_DIR"
NO_CACHE_ENV = "JAXREG_NO_COMPILE_CACHE"

_CACHE_EVENTS = {
    "/jax/compilation_cache/compile_requests_use_cache": "requests",
    "/jax/compilation_cache/cache_hits": "hits",
    "/jax/compilation_cache/cache_misses": "misses",
}


def compile_and_time(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Compiles ``fn`` for ``args`` ahead of time and measures how long that took.

    Args:
      fn: a function, or one already wrapped in ``jax.jit`` (wrap it yourself to pass
        ``donate_argnums`` or ``static_argnums``).
      *args: example arguments (arrays or ``jax.ShapeDtypeStruct``) fixing shapes and dtypes.
      **kwargs: keyword arguments of ``fn``, lowered with it.

    Returns:
      ``(compiled, compile_s)``: the compiled executable, called with the same (non-static)
      arguments as ``fn``, and the seconds that tracing, lowering and compiling took (a cache
      hit of the persistent compilation cache makes this small).

    Example:
      >>> import jax.numpy as jnp
      >>> compiled, seconds = compile_and_time(lambda x: x * 2, jnp.ones(3))
      >>> compiled(jnp.ones(3)).tolist(), seconds > 0
      ([2.0, 2.0, 2.0], True)
    """
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    start = time.perf_counter()
    compiled = jitted.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - start


def timed_call(fn: Callable, *args: Any, block: bool = True, **kwargs: Any) -> tuple[Any, float]:
    """Calls ``fn(*args, **kwargs)`` once; returns its outputs and the seconds it took.

    Args:
      fn: any callable (a compiled executable, a jitted function, a Python loop of steps).
      *args: positional arguments of ``fn``.
      block: stop the clock only after ``jax.block_until_ready`` of the outputs; without it the
        clock measures the asynchronous dispatch only.
      **kwargs: keyword arguments of ``fn``.

    Returns:
      ``(outputs, seconds)``.

    Example:
      >>> import jax.numpy as jnp
      >>> out, seconds = timed_call(jnp.sum, jnp.arange(4.0))
      >>> float(out), seconds >= 0
      (6.0, True)
    """
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if block:
        out = jax.block_until_ready(out)
    return out, time.perf_counter() - start


def time_calls(
    fn: Callable, *args: Any, repeats: int = 5, warmup: int = 0, block: bool = True, **kwargs: Any
) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn(*args, **kwargs)``, after ``warmup`` untimed ones.

    Args:
      fn: any callable; it may close over state that it advances on each call (an epoch loop).
      *args: positional arguments of every call.
      repeats: timed calls, at least 1.
      warmup: untimed calls first (compilation, caches, allocator), at least 0.
      block: block on each call's outputs before its clock stops (see ``timed_call``).
      **kwargs: keyword arguments of every call.

    Returns:
      One duration per timed call, in call order; ``min`` of it is the usual "best of".

    Raises:
      ValueError: ``repeats`` < 1 or ``warmup`` < 0.

    Example:
      >>> import jax.numpy as jnp
      >>> times = time_calls(jnp.sum, jnp.arange(4.0), repeats=3, warmup=1)
      >>> len(times), min(times) >= 0
      (3, True)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    for _ in range(warmup):
        out = fn(*args, **kwargs)
        if block:
            jax.block_until_ready(out)
    return [timed_call(fn, *args, block=block, **kwargs)[1] for _ in range(repeats)]


def default_cache_dir() -> Path:
    """The per-user compilation cache folder.

    ``$JAXREG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/jaxreg/jax``, else
    ``~/.cache/jaxreg/jax``. Per user because JAX trusts its cache: whoever can write to the
    folder can make this process run their code.

    Returns:
      The folder (not created here).

    Example:
      >>> default_cache_dir().name
      'jax'
    """
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "jaxreg" / "jax"


def compile_cache_disabled_by_env() -> bool:
    """True when ``$JAXREG_NO_COMPILE_CACHE`` is set to anything but "", "0" or "false"."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", "0", "false")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process, small programs included.

    Every program compiled afterwards is written to ``path`` and read back by later processes
    that compile the same program with the same JAX version, flags and devices, so a second
    ``jaxreg run`` skips compilation. JAX's default thresholds (programs that compiled for at
    least 1 s, entries above a file-system dependent size) would leave jaxreg's models
    uncached on a CPU, so both are set to cache everything. Nothing happens when
    ``$JAXREG_NO_COMPILE_CACHE=1`` (the CLI's ``--no-compile-cache`` calls
    ``disable_compilation_cache`` instead).

    The cache is optional: a folder that is a file, cannot be created or is not writable gives
    one :class:`CacheWarning` naming the folder and why, and the process goes on without it.

    Args:
      path: the cache folder; None = ``default_cache_dir()``. Created if missing.

    Returns:
      The folder in use, or None when the environment turned the cache off or the folder is
      unusable (then the cache is off).

    Example:
      >>> import tempfile
      >>> folder = enable_compilation_cache(tempfile.mkdtemp())
      >>> folder is None or folder.is_dir()
      True
      >>> disable_compilation_cache()

    PyTorch equivalent: Inductor's on-disk FX graph cache (``TORCHINDUCTOR_CACHE_DIR``).
    """
    if compile_cache_disabled_by_env():
        return None
    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    problem = _cache_dir_problem(folder)
    if problem is not None:
        source = f" (${CACHE_DIR_ENV})" if path is None and os.environ.get(CACHE_DIR_ENV) else ""
        warnings.warn(
            f"compilation cache folder {folder}{source} {problem}: running without the cache",
            CacheWarning,
            stacklevel=2,
        )
        disable_compilation_cache()
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # -1: no minimum size and no file-system override of it.
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _reset_cache()
    return folder


class CacheWarning(UserWarning):
    """The persistent compilation cache folder is unusable; compilation goes on without it."""


def _cache_dir_problem(folder: Path) -> str | None:
    if folder.exists() and not folder.is_dir():
        return "is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot be created ({err.strerror or err})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def disable_compilation_cache() -> None:
    """Turns the persistent compilation cache off for this process (every program compiles).

    Example:
      >>> disable_compilation_cache()
      >>> import jax
      >>> jax.config.jax_enable_compilation_cache
      False
    """
    jax.config.update("jax_enable_compilation_cache", False)
    _reset_cache()


def _reset_cache() -> None:
    # JAX decides once per process whether the cache is used, at the first compilation: a
    # program compiled before this call would otherwise pin the decision taken then.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


@contextlib.contextmanager
def count_cache_events() -> Iterator[dict[str, float]]:
    """Counts the persistent compilation cache's lookups, hits and misses inside the block.

    Yields:
      A dict filled in as compilations happen: ``requests`` (compilations that consulted
      the cache), ``hits``, ``misses`` (programs compiled and written to the cache: JAX
      records its ``cache_misses`` event when it writes the entry) and ``saved_s`` (compile
      seconds that hits saved, as JAX reports them).

    Example:
      >>> import jax.numpy as jnp
      >>> with count_cache_events() as events:
      ...     _ = compile_and_time(lambda x: x + 1, jnp.ones(2))
      >>> sorted(events)
      ['hits', 'misses', 'requests', 'saved_s']
    """
    events = {"requests": 0, "hits": 0, "misses": 0, "saved_s": 0.0}

    def on_event(event: str, **_: Any) -> None:
        if event in _CACHE_EVENTS:
            events[_CACHE_EVENTS[event]] += 1

    def on_duration(event: str, seconds: float, **_: Any) -> None:
        if event == "/jax/compilation_cache/compile_time_saved_sec":
            events["saved_s"] += seconds

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_listener(on_event)
        jax.monitoring.unregister_event_duration_listener(on_duration)

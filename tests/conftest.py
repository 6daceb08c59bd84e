"""Test-session settings shared by every test module."""

import os

# In-process `jaxreg` CLI calls would otherwise turn on JAX's persistent compilation cache in
# the user's cache folder for the rest of the test worker; the cache has tests of its own
# (tests/test_timing.py), which set and clear this variable themselves.
os.environ.setdefault("JAXREG_NO_COMPILE_CACHE", "1")

"""Shared test setup (tests/ and parity_tests/): a test module's ``RNG`` is reseeded for every test.

A module-level ``RNG = np.random.default_rng(0)`` hands each test whatever state the tests
before it in the same worker left, and pytest-xdist decides which tests those are, so a test's
inputs (and whether a tight tolerance holds on them) would change from run to run. Reseeding from
the test's node id gives every test the same inputs on every run, whatever ran before it.
Module-level constants drawn at import (``X = RNG.normal(...)``) are unaffected.
"""

import zlib

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _per_test_rng(request):
    module = request.module
    if isinstance(getattr(module, "RNG", None), np.random.Generator):
        module.RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
    yield

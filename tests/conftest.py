import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

from probejax.io import enable_compile_cache

# Compiled programs are kept for this run only, in a fresh folder that the command-line
# tests (which enable the cache as users get it) and their subprocesses share; nothing
# is read from or written to the user's own cache.
_COMPILED = tempfile.mkdtemp(prefix="probejax-test-xla-")
os.environ["PROBEJAX_COMPILE_CACHE"] = _COMPILED
enable_compile_cache()


def pytest_unconfigure(config):
    shutil.rmtree(_COMPILED, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drop compiled programs between test modules: one process runs the whole suite,
    and hundreds of cached XLA executables (next to torch's state) made a late
    compilation crash the process on this 2-core machine; no test relies on a program
    compiled by another module (the recompilation tests count within one test)."""
    yield
    jax.clear_caches()


@pytest.fixture
def x64():
    """Run a test in float64, restoring the previous setting afterwards."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def planted_problem(seed: int, n: int, d: int, signal: float = 1.0, shift: float = 0.3):
    """Two classes separated along one random direction, with an offset mean."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((n, d)) + signal * np.outer(2 * y - 1, u) + shift
    return X, y

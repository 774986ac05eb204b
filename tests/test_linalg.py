"""The vmap-safe LAPACK wrappers: same numbers as jnp.linalg, and no thread-pool hang."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probejax.core._linalg import cholesky, eigh


def _spd(key, shape, n):
    A = jax.random.normal(key, (*shape, n, n))
    return A @ jnp.swapaxes(A, -1, -2) + n * jnp.eye(n)


def test_wrappers_match_jnp_under_nested_vmap():
    A = _spd(jax.random.key(0), (3, 4), 6)
    s, U = jax.jit(jax.vmap(jax.vmap(eigh)))(A)
    s_ref = jnp.linalg.eigvalsh(A)
    np.testing.assert_allclose(s, s_ref, rtol=1e-5)
    recon = jnp.einsum("...ik,...k,...jk->...ij", U, s, U)
    np.testing.assert_allclose(recon, A, rtol=1e-4, atol=1e-4)
    L = jax.vmap(jax.vmap(cholesky))(A)
    np.testing.assert_allclose(L, jnp.linalg.cholesky(A), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cholesky(A[0, 0]), jnp.linalg.cholesky(A[0, 0]), rtol=1e-6)


def test_vmapped_two_learner_simulation_does_not_hang():
    # jit(vmap over seeds (vmap over lam (simulate))) holds two batched eighs that may
    # run at once; with jnp.linalg.eigh this hung forever on a 2-core CPU.
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        import probejax as pj
        from probejax import theory as th
        m = pj.GaussianTeacherStudent("logistic", beta=4.0)
        lams = jnp.logspace(-3, 2, 11)
        keys = jax.random.split(jax.random.key(0), 8)
        f = jax.jit(jax.vmap(lambda k: jax.vmap(
            lambda l: th.simulate(m, 1.0, l, 500, k, solver=pj.solvers.LBFGS()))(lams)))
        jax.block_until_ready(f(keys))
        print("done")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout


def _lapack_threads(env: dict) -> tuple[list[int], list[int]]:
    """In a fresh interpreter with ``env`` added: import probejax and return the thread
    counts of SciPy's and of NumPy's bundled OpenBLAS."""
    code = textwrap.dedent(
        """
        import json, probejax, threadpoolctl
        from pathlib import Path
        info = threadpoolctl.threadpool_info()
        def threads(pkg):
            return [i["num_threads"] for i in info if i["internal_api"] == "openblas"
                    and Path(i["filepath"]).parent.name == pkg + ".libs"]
        print(json.dumps([threads("scipy"), threads("numpy")]))
        """
    )
    env = {**{k: v for k, v in os.environ.items() if "NUM_THREADS" not in k}, **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    scipy_threads, numpy_threads = json.loads(out.stdout.strip().splitlines()[-1])
    return scipy_threads, numpy_threads


def test_scipy_openblas_gets_one_thread_unless_the_user_chose():
    import threadpoolctl

    libs = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    if not any(Path(i["filepath"]).parent.name == "scipy.libs" for i in libs):
        pytest.skip("SciPy here does not bundle its own OpenBLAS")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: nothing to limit")
    scipy_threads, numpy_threads = _lapack_threads({})
    assert scipy_threads == [1]  # limited at import
    assert all(t > 1 for t in numpy_threads)  # NumPy's own BLAS is left alone
    assert _lapack_threads({"PROBEJAX_LAPACK_THREADS": "keep"})[0][0] > 1
    assert _lapack_threads({"OPENBLAS_NUM_THREADS": "2"})[0] == [2]


def test_small_batches_of_large_matrices_become_separate_calls_and_the_rest_a_map():
    from probejax.core import _linalg

    def program(batch, size):
        A = _spd(jax.random.key(1), (batch,), size)
        return str(jax.make_jaxpr(jax.vmap(cholesky))(A)), A

    big = _linalg.UNROLL_MIN_SIZE
    few, A = program(3, big)
    if _linalg.lapack_single_threaded():
        assert few.count("cholesky") >= 3 and "scan" not in few
    many, B = program(_linalg.UNROLL_MAX + 1, 4)
    assert "scan" in many
    tiny, C = program(3, big - 1)  # small matrices: no copies to compile
    assert "scan" in tiny and tiny.count("cholesky") == 1
    for M in (A, B, C):
        np.testing.assert_allclose(
            jax.vmap(cholesky)(M), jnp.linalg.cholesky(M), rtol=1e-4, atol=1e-4
        )

"""The vmap-safe LAPACK wrappers: same numbers as jnp.linalg, and no thread-pool hang."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

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
            lambda l: th.simulate(m, 1.0, l, 500, k, solver="lbfgs"))(lams)))
        jax.block_until_ready(f(keys))
        print("done")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout

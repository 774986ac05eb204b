"""LAPACK decompositions that stay safe under ``vmap`` on the CPU.

jaxlib (0.10) runs a *batched* CPU LAPACK call (``syevd``, ``potrf``) by splitting the
batch over XLA's intra-op thread pool and blocking the calling pool thread until the
pieces finish. When the program holds two such calls that can run at the same time
(two learners, two designs) and the pool has as few threads as a 2-core machine's,
both pool threads block waiting for work that no thread is left to run: the program
hangs forever (seen with ``jax.vmap`` over seeds of :func:`probejax.theory.simulate`).

The wrappers here are the plain decompositions for one matrix; their batching rule
makes every LAPACK call see one matrix, so that it runs inline on its thread and never
waits for another. A batch of up to ``UNROLL_MAX`` matrices of at least
``UNROLL_MIN_SIZE`` rows becomes that many separate calls, which XLA runs two or more at
a time on its pool (a GCS layer's 1000 Newton fits, one 143 x 143 Cholesky
factorisation per lane and step, gain from it); this
needs SciPy's OpenBLAS at one thread (below), else concurrent calls would each start a
thread per core. Otherwise the rule runs the batch as a sequential ``lax.map``: smaller
matrices gain nothing from the concurrency, and their copies cost compilation time,
multiplied when vmaps nest (Newton over a 100-point ridge grid on a 32-wide layer,
inside vmapped stability runs, compiles several times faster mapped; two separate
``lax.map`` halves run no faster than one). Larger batches
are mapped too. On a GPU the rule is not needed (cuSOLVER batches natively), so there
the batched call is kept.

The LAPACK that jaxlib calls on the CPU is SciPy's, linked to SciPy's own OpenBLAS,
which by default starts one thread per core for each call. Those calls already run on
a thread of XLA's pool, beside XLA's other workers: the two pools then share the cores,
and OpenBLAS's threads keep spinning for a while after each call, taking a core from the
XLA products that follow. :func:`limit_lapack_threads` (run at import) therefore gives
SciPy's OpenBLAS one thread (RAPTOR's protocol on the data of
``benchmarks/raptor_protocol.py`` is faster so). It leaves
NumPy's own BLAS alone, and does nothing where the user set ``OPENBLAS_NUM_THREADS``
(or ``OMP_NUM_THREADS``) or ``PROBEJAX_LAPACK_THREADS=keep``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

UNROLL_MAX = 128
UNROLL_MIN_SIZE = 96
# the environment variables by which a user sets OpenBLAS's threads (the first wins)
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def _sequential_rule(fn):
    def rule(axis_size, in_batched, A):
        (batched,) = in_batched
        if not batched:
            out = fn(A)
            return out, jax.tree.map(lambda _: False, out)
        if jax.default_backend() != "cpu":
            out = jax.vmap(fn)(A)
        elif (
            axis_size <= UNROLL_MAX and A.shape[-1] >= UNROLL_MIN_SIZE and lapack_single_threaded()
        ):
            # fn is the wrapped one: a nested vmap's batch is split the same way
            out = jax.tree.map(lambda *xs: jnp.stack(xs), *(fn(A[i]) for i in range(axis_size)))
        else:
            out = jax.lax.map(fn, A)
        return out, jax.tree.map(lambda _: True, out)

    return rule


@custom_vmap
def eigh(A):
    """``jnp.linalg.eigh`` of one symmetric matrix: ``(s, U)``, ascending ``s``."""
    return jnp.linalg.eigh(A)


@custom_vmap
def cholesky(A):
    """Lower Cholesky factor of one symmetric positive-definite matrix, read from its
    lower triangle (callers build ``A`` symmetric, so ``jnp.linalg.cholesky``'s default
    averaging of ``A`` with its transpose, a full extra pass over small matrices
    factorised by the thousand in GCS, is skipped)."""
    return jax.lax.linalg.cholesky(A, symmetrize_input=False)


eigh.def_vmap(_sequential_rule(eigh))
cholesky.def_vmap(_sequential_rule(cholesky))


def limit_lapack_threads() -> list[str]:
    """Give the OpenBLAS shipped inside SciPy (the LAPACK that jaxlib calls on the CPU)
    one thread (module docstring). **Returns** the library files limited (empty where
    none was found, ``threadpoolctl`` is missing, or the environment opts out)."""
    if os.environ.get("PROBEJAX_LAPACK_THREADS") == "keep" or any(
        v in os.environ for v in _THREAD_VARS
    ):
        return []
    try:
        import scipy
        import scipy.linalg.cython_lapack
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    root = Path(scipy.__file__).resolve().parent.parent
    # SciPy's wheels put the library beside the package (scipy.libs), conda's elsewhere:
    # only a library inside SciPy's own folders is touched, never NumPy's or the system's.
    ours = [
        lib
        for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers
        if Path(lib.filepath).resolve().parent.name in ("scipy.libs", ".dylibs")
        and Path(lib.filepath).resolve().is_relative_to(root)
    ]
    for lib in ours:
        lib.set_num_threads(1)
    return [lib.filepath for lib in ours]


def lapack_single_threaded() -> bool:
    """Whether SciPy's OpenBLAS runs one thread: limited at import, or by the user."""
    threads = next((os.environ[v] for v in _THREAD_VARS if v in os.environ), None)
    return bool(_LIMITED) or threads == "1"


_LIMITED = limit_lapack_threads()

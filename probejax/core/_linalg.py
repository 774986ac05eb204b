"""LAPACK decompositions that stay safe under ``vmap`` on the CPU.

jaxlib (0.10) runs a *batched* CPU LAPACK call (``syevd``, ``potrf``) by splitting the
batch over XLA's intra-op thread pool and blocking the calling pool thread until the
pieces finish. When the program holds two such calls that can run at the same time
(two learners, two designs) and the pool has as few threads as this 2-core machine,
both pool threads block waiting for work that no thread is left to run: the program
hangs forever (seen with ``jax.vmap`` over seeds of :func:`probejax.theory.simulate`).

The wrappers here are the plain decompositions for one matrix; their batching rule
runs the batch as a sequential ``lax.map``, so every LAPACK call sees one matrix and
runs inline. On a GPU the rule is not needed (cuSOLVER batches natively), so there the
batched call is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def _sequential_rule(fn):
    def rule(axis_size, in_batched, A):
        (batched,) = in_batched
        if not batched:
            out = fn(A)
            return out, jax.tree.map(lambda _: False, out)
        if jax.default_backend() != "cpu":
            out = jax.vmap(fn)(A)
        else:
            out = jax.lax.map(fn, A)  # fn is the wrapped one: nested vmaps stay sequential
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

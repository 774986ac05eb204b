r"""RAPTOR's directional stability of concept vectors under data resampling.

:math:`K` runs (default 20); run :math:`r` drops a random stratified 20% of the training
pool (train_sub + val of the base split; the test split is never touched), re-splits
the rest into train_sub/val, re-tunes :math:`\lambda` on the grid, refits and takes
the unit concept vector :math:`v_r`. Stability is

.. math::

    \mathrm{Robust} = \frac{2}{K(K-1)}\sum_{r<s} \lvert\langle v_r, v_s\rangle\rvert,

reported with the signed mean as well. The runs are one ``vmap`` of the protocol core
over PRNG keys, evaluated in chunks of ``chunk_size`` runs to bound memory.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import check_fraction
from ..core._metrics import pairwise_cosine_summary
from ..core._splits import stratified_partition
from ._raptor import (
    RAPTOR_C_GRID,
    RaptorConfig,
    RaptorResult,
    RaptorSplits,
    check_raptor_inputs,
    raptor_fit_split,
)


class StabilityResult(eqx.Module):
    """``runs``: the per-run :class:`RaptorResult` (leading axis K); ``vectors``: unit
    concept vectors ``(K, d)``; ``mean_abs_cos`` (RAPTOR's Robust) and
    ``mean_signed_cos`` over the K(K-1)/2 pairs."""

    runs: RaptorResult
    vectors: Float[Array, "K d"]
    mean_abs_cos: Float[Array, ""]
    mean_signed_cos: Float[Array, ""]


def resampled_splits(
    key: PRNGKeyArray, y, base: RaptorSplits, *, drop: float, val_fraction: float
) -> RaptorSplits:
    """One stability run's splits: drop ``drop`` of the pool, re-split the rest."""
    pool = np.concatenate([np.asarray(base.train_sub), np.asarray(base.val)])
    _, val, train_sub = stratified_partition(
        key, np.asarray(y)[pool], (drop, val_fraction), where="the stability pool"
    )
    pool = jnp.asarray(pool)
    return RaptorSplits(pool[train_sub], pool[val], base.test)


@eqx.filter_jit
def _runs(X, y, splits, lams, config, chunk_size):
    return jax.lax.map(
        lambda sp: raptor_fit_split(X, y, sp, lams, config), splits, batch_size=chunk_size
    )


def raptor_stability(
    X,
    y,
    key: PRNGKeyArray,
    *,
    n_runs: int = 20,
    drop: float = 0.2,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: RaptorSplits | None = None,
    chunk_size: int | None = 4,
) -> StabilityResult:
    """Directional stability of the RAPTOR concept vector (see module docstring).

    **Arguments:** ``X`` ``(n, d)``, ``y``, a PRNG ``key`` (split into the base split's
    key, unless ``splits`` is given, and one key per run), ``n_runs`` K >= 2, ``drop``
    fraction of the pool removed per run, ``Cs`` grid, ``config``, ``chunk_size`` runs
    evaluated at once (None: all).

    **Returns:** :class:`StabilityResult`.
    """
    if int(n_runs) < 2:
        raise ValueError(f"n_runs must be >= 2 to compare pairs of runs, got {n_runs}.")
    drop = check_fraction(drop, "drop")
    k_split, k_runs = jax.random.split(key)
    X, y, lams, base = check_raptor_inputs(X, y, Cs, splits, k_split, config)
    y_np = np.asarray(y)
    keys = jax.random.split(k_runs, int(n_runs))
    run_splits = jax.vmap(
        lambda k: resampled_splits(k, y_np, base, drop=drop, val_fraction=config.val_fraction)
    )(keys)
    runs = _runs(X, y, run_splits, lams, config, chunk_size)
    V = jax.vmap(lambda p: p.concept_vector())(runs.probe)
    mean_abs, mean_signed = pairwise_cosine_summary(V)
    return StabilityResult(runs, V, mean_abs, mean_signed)

r"""Directional stability of any estimator's concept vector under data resampling.

:math:`K` runs (default 20); run :math:`r` drops a random stratified 20% of the training
pool (train_sub + val of the base split; the test split is never touched), re-splits
the rest into train_sub/val, refits the estimator (re-tuning whatever it tunes) and
takes its unit concept vector :math:`v_r`. Stability is RAPTOR's

.. math::

    \mathrm{Robust} = \frac{2}{K(K-1)}\sum_{r<s} \lvert\langle v_r, v_s\rangle\rvert,

reported with the signed mean as well. The runs are one compiled ``lax.map`` of the
estimator's fit over the runs' splits and keys, ``chunk_size`` runs at a time.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels, check_fraction
from ..core._rows import Tokens, n_rows
from ..estimators._base import Estimator
from ..estimators._raptor import RAPTOR_C_GRID
from ._evaluate import Stability, fit_key, stability_runs
from ._raptor import RaptorConfig, RaptorResult, check_raptor_inputs, raptor_result
from ._splits import (
    Splits,
    check_splits,
    protocol_splits,
    resampled_runs,
    resampled_splits as resampled_splits,  # one run (kept importable here)
)


def run_splits_and_keys(
    key, y_pm1, base: Splits, n_runs: int, drop: float, val_fraction: float, groups=None
):
    """The K runs' splits (stacked) and estimator keys from a protocol key's run half
    (``groups``: grouped resampling, :func:`probejax.protocol.resampled_runs`)."""
    if int(n_runs) < 2:
        raise ValueError(f"n_runs must be >= 2 to compare pairs of runs, got {n_runs}.")
    drop = check_fraction(drop, "drop")
    keys = jax.random.split(key, int(n_runs))
    splits = resampled_runs(keys, y_pm1, base, drop=drop, val_fraction=val_fraction, groups=groups)
    return splits, jax.vmap(fit_key)(keys)


_runs_jit = eqx.filter_jit(stability_runs)


def stability(
    estimator: Estimator,
    X,
    y,
    key: PRNGKeyArray,
    *,
    n_runs: int = 20,
    drop: float = 0.2,
    splits: Splits | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    chunk_size: int | None = 4,
    groups=None,
) -> Stability:
    """Directional stability of ``estimator`` (module docstring).

    **Arguments:** ``estimator``; ``X`` ``(n, d)`` (or :class:`probejax.core.Tokens`
    for sequence probes), two-class ``y``; a PRNG ``key``
    (split into the base split's key, unless ``splits`` is given, and the runs' keys);
    ``n_runs`` K >= 2; ``drop`` fraction of the pool removed per run; ``test_fraction``,
    ``val_fraction`` of the splits; ``chunk_size`` runs evaluated at once (None: all);
    ``groups`` ``(n,)`` or ``(n, m)``: grouped base split and resampling (whole groups
    dropped, no group shared by train_sub, val and test; :mod:`probejax.protocol`).

    **Returns:** :class:`~probejax.protocol.Stability`.
    """
    X = X.check() if isinstance(X, Tokens) else as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, n_rows(X))
    k_split, k_runs = jax.random.split(key)
    if splits is None:
        splits = protocol_splits(
            k_split,
            np.asarray(y),
            test_fraction=test_fraction,
            val_fraction=val_fraction,
            groups=groups,
        )
    base = check_splits(splits, np.asarray(y), n_rows(X))
    run_splits, run_keys = run_splits_and_keys(k_runs, y, base, n_runs, drop, val_fraction, groups)
    return _runs_jit(estimator, X, y, run_splits, run_keys, chunk_size)


class StabilityResult(eqx.Module):
    """``runs``: the per-run :class:`RaptorResult` (leading axis K); ``vectors``: unit
    concept vectors ``(K, d)``; ``mean_abs_cos`` (RAPTOR's Robust) and
    ``mean_signed_cos`` over the K(K-1)/2 pairs."""

    runs: RaptorResult
    vectors: Float[Array, "K d"]
    mean_abs_cos: Float[Array, ""]
    mean_signed_cos: Float[Array, ""]


def raptor_stability(
    X,
    y,
    key: PRNGKeyArray,
    *,
    n_runs: int = 20,
    drop: float = 0.2,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: Splits | None = None,
    chunk_size: int | None = 4,
    groups=None,
) -> StabilityResult:
    """:func:`stability` of RAPTOR (``config.estimator(Cs)``), reporting each run as a
    :class:`RaptorResult` (the chosen C, validation curves and test metrics per run)."""
    X, y, lams, base = check_raptor_inputs(
        X, y, Cs, splits, jax.random.split(key)[0], config, groups
    )
    st = stability(
        config.estimator_at(lams),
        X,
        y,
        key,
        n_runs=n_runs,
        drop=drop,
        splits=base,
        val_fraction=config.val_fraction,
        chunk_size=chunk_size,
        groups=groups,
    )
    runs = jax.vmap(raptor_result)(st.runs)
    return StabilityResult(runs, st.vectors, st.mean_abs_cos, st.mean_signed_cos)

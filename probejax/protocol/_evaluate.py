r"""Fit any estimator on the protocol's splits and score it; stability of its concept
vector under resampling. Both traceable, written for one activation matrix, used by
:func:`probejax.compare`, :func:`probejax.stability` and every layer sweep.

Stability over :math:`K` runs with unit concept vectors :math:`v_r` is

.. math::

    \mathrm{Robust} = \frac{2}{K(K-1)}\sum_{r<s} \lvert\langle v_r, v_s\rangle\rvert,

RAPTOR's measure, reported with the signed mean as well.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._metrics import accuracy, auroc, log_loss, pairwise_cosine_summary
from ..core._probe import Probe
from ..core._rows import rows
from ..estimators._base import Estimator
from ._splits import Splits


class Evaluation(eqx.Module):
    """A fitted probe and its scores on the splits it was fitted with."""

    probe: Probe
    train_accuracy: Float[Array, ""]
    test_accuracy: Float[Array, ""]
    test_auroc: Float[Array, ""]
    test_log_loss: Float[Array, ""]


def evaluate(
    estimator: Estimator, X: Float[Array, "n d"], y: Float[Array, " n"], splits: Splits, key
) -> Evaluation:
    """``estimator.fit_with_validation`` on the splits; accuracy on train_sub, test
    accuracy, AUROC and log-loss (``y`` in +-1)."""
    probe = estimator.fit_with_validation(X, y, splits.train_sub, splits.val, key)
    s_tr = probe.decision_function(rows(X, splits.train_sub))
    s_te = probe.decision_function(rows(X, splits.test))
    y_te = y[splits.test]
    return Evaluation(
        probe,
        accuracy(y[splits.train_sub], s_tr),
        accuracy(y_te, s_te),
        auroc(y_te, s_te),
        log_loss(y_te, s_te),
    )


class Stability(eqx.Module):
    """``runs``: each run's :class:`Evaluation` (leading axis K: its probe and scores
    on the run's splits); ``vectors``: the unit concept vectors ``(K, d)``;
    ``mean_abs_cos`` (RAPTOR's Robust) and ``mean_signed_cos``."""

    runs: Evaluation
    vectors: Float[Array, "K d"]
    mean_abs_cos: Float[Array, ""]
    mean_signed_cos: Float[Array, ""]


def stability_runs(
    estimator: Estimator,
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    run_splits: Splits,
    run_keys: PRNGKeyArray,
    chunk_size: int | None = 4,
) -> Stability:
    """The estimator evaluated on each run's splits (leading axis K), ``chunk_size``
    runs at once, and the pairwise cosines of the runs' concept vectors."""
    runs = jax.lax.map(
        lambda args: evaluate(estimator, X, y, *args),
        (run_splits, run_keys),
        batch_size=chunk_size,
    )
    V = jax.vmap(lambda p: p.concept_vector())(runs.probe)
    mean_abs, mean_signed = pairwise_cosine_summary(V)
    return Stability(runs, V, mean_abs, mean_signed)


def fit_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key estimators get, from a protocol key (the split and the run keys come
    from ``jax.random.split(key)``)."""
    return jax.random.fold_in(key, 1)

r"""Fit any estimator on the protocol's splits and score it; stability of its concept
vector under resampling.

:func:`evaluate` and :func:`stability` are the public entry points for one activation
matrix: they check their inputs, draw the protocol's splits from a key (or take given
ones) and run one compiled program. :func:`evaluate_on` and :func:`stability_runs` are
the traceable cores they share with :func:`probejax.compare` and every layer sweep,
written for one activation matrix (vmap or ``lax.map`` them over layers, seeds, runs).

Stability over :math:`K` runs with unit concept vectors :math:`v_r` is

.. math::

    \mathrm{Robust} = \frac{2}{K(K-1)}\sum_{r<s} \lvert\langle v_r, v_s\rangle\rvert,

RAPTOR's measure, reported with the signed mean as well. Run :math:`r` drops a random
stratified ``drop`` share of the training pool (train_sub + val of the base split; the
test split is never touched), re-splits the rest into train_sub / val and refits the
estimator (re-tuning whatever it tunes).

Keys: ``jax.random.split(key)`` gives the base split's key and the stability runs' key;
estimators get ``fold_in(key, 1)`` (:func:`fit_key`). So ``evaluate``, ``stability``
and ``compare`` called with one key use one split.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels, check_fraction
from ..core._metrics import accuracy, auroc, log_loss, pairwise_cosine_summary
from ..core._probe import Probe, diagnostics
from ..core._rows import Tokens, n_rows, rows
from ..estimators._base import Estimator
from ._specs import SplitSpec, StabilitySpec
from ._splits import Splits, check_splits, protocol_splits, resampled_runs


class Evaluation(eqx.Module):
    """A fitted probe and its scores on the splits it was fitted with.

    ``probe`` is in raw activation coordinates (``probe.linear()`` is the
    :class:`~probejax.LinearProbe` it equals, ``None`` for a nonlinear probe);
    ``info`` holds what the estimator reports about its fit (for a tuned estimator such
    as RAPTOR: ``lam``, ``C = 1/lam``, ``index``, ``val_criterion``, ``val_accuracy``
    per grid point, ``path_converged``, ``refit_converged``); ``splits`` are the splits
    used (set by :func:`evaluate`; ``None`` from the traceable :func:`evaluate_on`,
    whose caller has them). Leading axes when vmapped.
    """

    probe: Probe
    train_accuracy: Float[Array, ""]
    test_accuracy: Float[Array, ""]
    test_auroc: Float[Array, ""]
    test_log_loss: Float[Array, ""]
    splits: Splits | None = None

    @property
    def info(self) -> dict[str, Array]:
        """The estimator's diagnostics (``{}`` when it reports none)."""
        return diagnostics(self.probe)


def evaluate_on(
    estimator: Estimator, X: Float[Array, "n d"], y: Float[Array, " n"], splits: Splits, key
) -> Evaluation:
    """``estimator.fit_with_validation`` on the splits; accuracy on train_sub, test
    accuracy, AUROC and log-loss (traceable; ``y`` in +-1)."""
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
    batch_size: int | None = 4,
) -> Stability:
    """The estimator evaluated on each run's splits (leading axis K), ``batch_size``
    runs at once, and the pairwise cosines of the runs' concept vectors (traceable)."""
    runs = jax.lax.map(
        lambda args: evaluate_on(estimator, X, y, *args),
        (run_splits, run_keys),
        batch_size=batch_size,
    )
    V = jax.vmap(lambda p: p.concept_vector())(runs.probe)
    mean_abs, mean_signed = pairwise_cosine_summary(V)
    return Stability(runs, V, mean_abs, mean_signed)


def fit_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key estimators get, from a protocol key (the split and the run keys come
    from ``jax.random.split(key)``)."""
    return jax.random.fold_in(key, 1)


def check_inputs(X, y):
    """``(X, y_pm1)``: ``X`` a finite float ``(n, d)`` matrix (or checked
    :class:`~probejax.core.Tokens`), ``y`` two-class labels of its rows as +-1."""
    X = X.check() if isinstance(X, Tokens) else as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, n_rows(X))
    return X, y


def base_splits(key, y_pm1, split: SplitSpec | Splits, groups, n: int) -> Splits:
    """The given :class:`Splits` (checked), or the protocol's drawn from the split half
    of ``key`` as ``split`` describes (with ``groups``: grouped)."""
    if isinstance(split, Splits):
        return check_splits(split, np.asarray(y_pm1), n)
    if not isinstance(split, SplitSpec):
        raise TypeError(
            f"split must be a probejax.SplitSpec or probejax.Splits, got {type(split).__name__}."
        )
    if key is None:
        raise ValueError(
            "give a PRNG key (key=jax.random.key(seed)) or fixed splits (split=Splits(...))."
        )
    k_split, _ = jax.random.split(key)
    return check_splits(
        protocol_splits(k_split, np.asarray(y_pm1), split, groups=groups), np.asarray(y_pm1), n
    )


def val_share(split: SplitSpec | Splits, base: Splits) -> float:
    """The validation share a stability run re-splits its pool with: the spec's, or
    for fixed splits their own ``len(val) / (len(train_sub) + len(val))``."""
    if isinstance(split, SplitSpec):
        return split.val_fraction
    n_val, n_tr = np.size(base.val), np.size(base.train_sub)
    return n_val / (n_val + n_tr)


def run_splits_and_keys(
    key, y_pm1, base: Splits, spec: StabilitySpec, val_fraction: float, groups=None
):
    """The ``spec.runs`` runs' splits (stacked) and estimator keys from the run half of
    a protocol ``key`` (``groups``: grouped resampling,
    :func:`probejax.protocol.resampled_runs`)."""
    _, k_runs = jax.random.split(key)
    drop = check_fraction(spec.drop, "drop")
    keys = jax.random.split(k_runs, spec.runs)
    splits = resampled_runs(keys, y_pm1, base, drop=drop, val_fraction=val_fraction, groups=groups)
    return splits, jax.vmap(fit_key)(keys)


_evaluate_jit = eqx.filter_jit(evaluate_on)
_runs_jit = eqx.filter_jit(stability_runs)


def evaluate(
    estimator: Estimator,
    X,
    y,
    key: PRNGKeyArray | None = None,
    *,
    split: SplitSpec | Splits = SplitSpec(),
    groups=None,
) -> Evaluation:
    """Fit ``estimator`` with validation on the protocol's splits and score it on test.

    **Arguments:**

    - ``estimator``: any :class:`~probejax.Estimator` (RAPTOR is
      ``probejax.estimators.raptor()``).
    - ``X``: activations ``(n, d)`` (or :class:`probejax.core.Tokens` for sequence
      probes); ``y``: two-class labels ``(n,)`` (0/1, +-1, or any two values).
    - ``key``: PRNG key; its split half draws the splits (unless ``split`` is a
      :class:`Splits`), ``fold_in(key, 1)`` goes to the estimator.
    - ``split``: a :class:`SplitSpec` (how to draw them; RAPTOR's stratified 64/16/20
      by default) or fixed :class:`Splits`.
    - ``groups``: ``(n,)`` or ``(n, m)`` group labels: the drawn splits keep groups
      whole and share none (held-out-group evaluation).

    **Returns:** :class:`Evaluation` (with its ``splits``).
    """
    X, y = check_inputs(X, y)
    splits = base_splits(key, y, split, groups, n_rows(X))
    ev = _evaluate_jit(estimator, X, y, splits, None if key is None else fit_key(key))
    return Evaluation(
        ev.probe, ev.train_accuracy, ev.test_accuracy, ev.test_auroc, ev.test_log_loss, splits
    )


def stability(
    estimator: Estimator,
    X,
    y,
    key: PRNGKeyArray,
    *,
    spec: StabilitySpec = StabilitySpec(),
    split: SplitSpec | Splits = SplitSpec(),
    groups=None,
) -> Stability:
    """Directional stability of ``estimator``'s concept vector (module docstring).

    **Arguments:** ``estimator``; ``X`` ``(n, d)`` (or :class:`probejax.core.Tokens`),
    two-class ``y``; a PRNG ``key`` (split into the base split's key, unless ``split``
    is a :class:`Splits`, and the runs' keys); ``spec``: a :class:`StabilitySpec`
    (``runs``, ``drop``, ``batch_size``); ``split``: how the base split is drawn (its
    ``val_fraction`` also re-splits each run's pool) or fixed :class:`Splits` (whose
    validation share then re-splits it);
    ``groups`` ``(n,)`` or ``(n, m)``: grouped base split and resampling (whole
    groups dropped, no group shared by train_sub, val and test).

    **Returns:** :class:`Stability`: each run's :class:`Evaluation` (leading axis K:
    the chosen ridge of a tuned estimator in ``runs.info``), the unit concept vectors
    and the mean ``|cos|`` and signed cosine over the K(K-1)/2 pairs.
    """
    X, y = check_inputs(X, y)
    base = base_splits(key, y, split, groups, n_rows(X))
    run_splits, run_keys = run_splits_and_keys(key, y, base, spec, val_share(split, base), groups)
    return _runs_jit(estimator, X, y, run_splits, run_keys, spec.batch_size)

r"""Classification metrics and direction comparisons (jit- and vmap-friendly).

Labels are +-1 (or 0/1: anything > 0 is the positive class); scores are real
decision values (probabilities work too, thresholds differ: see ``threshold``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import rankdata
from jaxtyping import Array, Float

from ._probe import unit


def accuracy(y, scores, threshold: float = 0.0) -> Float[Array, ""]:
    """Fraction with ``(scores > threshold) == (y > 0)``."""
    return jnp.mean((scores > threshold) == (y > 0))


def auroc(y, scores) -> Float[Array, ""]:
    r"""Area under the ROC curve by the Mann-Whitney statistic with mid-ranks for ties:
    :math:`\mathrm{AUC} = (R_+ - n_+(n_+ + 1)/2)/(n_+ n_-)`, :math:`R_+` the rank sum of the
    positives. NaN if a class is absent."""
    pos = y > 0
    n_pos = jnp.sum(pos)
    n_neg = y.shape[0] - n_pos
    ranks = rankdata(scores)
    r_pos = jnp.sum(jnp.where(pos, ranks, 0.0))
    return (r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def log_loss(y, scores) -> Float[Array, ""]:
    r"""Mean logistic loss of decision values, :math:`\frac1n\sum_i \log(1 + e^{-y_i s_i})`
    (the cross-entropy of :math:`p = \sigma(s)`, computed without forming ``p``)."""
    ypm = jnp.where(y > 0, 1.0, -1.0)
    return jnp.mean(jax.nn.softplus(-ypm * scores))


def cosine(u: Float[Array, "... d"], v: Float[Array, "... d"]) -> Float[Array, " ..."]:
    """Cosine between directions along the last axis (0 if either is zero)."""
    return jnp.sum(unit(u) * unit(v), axis=-1)


def pairwise_cosine_summary(V: Float[Array, "k d"]) -> tuple[Array, Array]:
    r"""Mean over pairs :math:`r < s` of :math:`|\cos(v_r, v_s)|` and of the signed cosine.

    **Returns:** ``(mean_abs, mean_signed)``; RAPTOR's directional stability is
    ``mean_abs``.
    """
    U = unit(V)
    C = U @ U.T
    k = V.shape[0]
    iu = jnp.triu_indices(k, 1)
    pairs = C[iu]
    return jnp.mean(jnp.abs(pairs)), jnp.mean(pairs)


def recall_at_fpr(y, scores, fpr: float) -> Float[Array, ""]:
    r"""Recall (true-positive rate) at a false-positive rate of at most ``fpr``: the
    threshold :math:`t` is the :math:`(k+1)`-th largest negative score with
    :math:`k = \lfloor \mathrm{fpr}\, n_- \rfloor`, so at most :math:`k` negatives score
    above it, and the recall is the share of positives scoring strictly above :math:`t`
    (ties at the threshold count against the probe). NaN if a class is absent."""
    pos = y > 0
    n_neg = y.shape[0] - jnp.sum(pos)
    neg_desc = -jnp.sort(-jnp.where(pos, -jnp.inf, scores))
    k = jnp.floor(fpr * n_neg).astype(jnp.int32)
    t = neg_desc[jnp.clip(k, 0, y.shape[0] - 1)]
    n_pos = jnp.sum(pos)
    recall = jnp.sum(pos & (scores > t)) / n_pos
    return jnp.where((n_pos > 0) & (n_neg > 0), recall, jnp.nan)


def brier(y, scores) -> Float[Array, ""]:
    r"""Brier score of the probabilities :math:`p = \sigma(s)` of decision values:
    :math:`\frac1n\sum_i (p_i - \mathbb 1[y_i > 0])^2` (0 is perfect, 0.25 a constant
    one half)."""
    return jnp.mean((jax.nn.sigmoid(scores) - (y > 0)) ** 2)


DETECTION_METRICS = {
    "accuracy": accuracy,
    "auroc": auroc,
    "recall_at_1pct_fpr": lambda y, s: recall_at_fpr(y, s, 0.01),
    "recall_at_5pct_fpr": lambda y, s: recall_at_fpr(y, s, 0.05),
    "brier": brier,
}


def detection_metrics(y, scores, key, *, resamples: int = 1000, level: float = 0.95) -> dict:
    r"""The detection metrics users report, each with a stratified bootstrap interval.

    Metrics: accuracy, AUROC, recall at 1% and 5% false-positive rate
    (:func:`recall_at_fpr`), Brier score (:func:`brier`). The interval is the
    percentile interval at ``level`` of ``resamples`` bootstrap resamples drawn within
    each class (the class counts stay those of ``y``, so every resample has both
    classes and AUROC is defined).

    **Arguments:**

    - ``y``: labels ``(n,)`` (+-1 or 0/1); ``scores``: decision values ``(n,)`` or
      ``(..., n)`` (e.g. one row per layer: every row is resampled with the same
      indices).
    - ``key``: PRNG key of the resamples.

    **Returns:** ``{metric: {"value": (...), "low": (...), "high": (...)}}`` as NumPy
    arrays of ``scores``' leading shape.
    """
    import numpy as np

    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}.")
    y = jnp.asarray(y)
    scores = jnp.asarray(scores)
    if scores.shape[-1] != y.shape[0]:
        raise ValueError(f"scores have {scores.shape[-1]} examples, labels {y.shape[0]}.")
    pos = np.flatnonzero(np.asarray(y) > 0)
    neg = np.flatnonzero(np.asarray(y) <= 0)
    kp, kn = jax.random.split(key)
    idx = jnp.concatenate(
        [
            jnp.asarray(pos)[jax.random.randint(kp, (resamples, pos.size), 0, max(pos.size, 1))],
            jnp.asarray(neg)[jax.random.randint(kn, (resamples, neg.size), 0, max(neg.size, 1))],
        ],
        axis=1,
    )
    flat = scores.reshape(-1, y.shape[0])
    q = jnp.asarray([(1 - level) / 2, (1 + level) / 2])
    out = {}
    for name, metric in DETECTION_METRICS.items():
        value = jax.vmap(lambda s, m=metric: m(y, s))(flat)
        # one row (layer) at a time, its resamples vmapped: memory stays that of one row
        boot = jax.lax.map(lambda s, m=metric: jax.vmap(lambda i: m(y[i], s[i]))(idx), flat)
        low, high = jnp.nanquantile(boot, q, axis=1)
        shape = scores.shape[:-1]
        out[name] = {
            "value": np.asarray(value).reshape(shape),
            "low": np.asarray(low).reshape(shape),
            "high": np.asarray(high).reshape(shape),
        }
    return out

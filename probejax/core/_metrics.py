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

r"""Split conformal prediction on top of any probe's class probabilities.

A *nonconformity score* :math:`s(x, y)` says how badly label :math:`y` fits :math:`x`
(large: badly). Given :math:`n` calibration pairs :math:`(x_i, y_i)` exchangeable with a
test pair :math:`(x, y)`, let :math:`s_i = s(x_i, y_i)` and

.. math::

    k = \bigl\lceil (n + 1)(1 - \alpha) \bigr\rceil, \qquad
    \hat q = s_{(k)} \quad\text{(the } k\text{-th smallest } s_i\text{, i.e. the empirical
    } k/n \text{ quantile)}, \qquad
    C(x) = \{\, y : s(x, y) \le \hat q \,\}.

Then :math:`P\{y \in C(x)\} \ge 1 - \alpha` over the calibration and test draws, for any
probe and any distribution (Vovk et al. 2005; Lei et al. 2018); when the scores have no
ties (continuous scores) also :math:`P\{y \in C(x)\} = k/(n+1) < 1 - \alpha + 1/(n+1)`.
:math:`\hat q` is finite only when :math:`k \le n`, i.e. :math:`n \ge (1-\alpha)/\alpha`
(19 points for :math:`\alpha = 0.05`); :func:`calibrate` refuses fewer.

**Class-conditional (Mondrian) conformal** takes one quantile per class :math:`c` from
the :math:`n_c` calibration points of that class,
:math:`\hat q_c = s_{(k_c)}` over :math:`\{i : y_i = c\}` with
:math:`k_c = \lceil (n_c + 1)(1-\alpha)\rceil`, and :math:`C(x) = \{y : s(x, y) \le \hat
q_y\}`; then :math:`P\{y \in C(x) \mid y = c\} \ge 1 - \alpha` for every class (Vovk
2012), which the marginal guarantee does not give for a rare or hard class.

Scores (:class:`LAC`, :class:`APS`):

- LAC, the least-ambiguous set-valued classifier (Sadinle, Lei & Wasserman 2019):
  :math:`s(x, y) = 1 - p_y(x)`; it gives the smallest sets on average among those with
  the coverage.
- APS, adaptive prediction sets (Romano, Sesia & Candès 2020):
  :math:`s(x, y) = \sum_{y' : p_{y'} > p_y} p_{y'} + u\,p_y`, the probability mass of the
  classes ranked above :math:`y` plus a share :math:`u` of its own; :math:`u = 1`
  (deterministic, sets a little larger) or :math:`u \sim U(0, 1)` drawn per example
  (randomised, exact coverage).

**Abstention** (:func:`abstention`): a set with exactly one class is a prediction; an
empty set (no class is plausible) or a set of several classes (the probe cannot tell
them apart) is an abstention.

Numerics: :math:`k` is computed as :math:`\lceil (n+1)(1-\alpha)(1 - 10^{-6})\rceil`, so
that the rounding of :math:`(n+1)(1-\alpha)` in float32 does not push an integer level
to the next order statistic.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._checks import float_dtype

ABSTAIN = -1
_LEVEL_RTOL = 1e-6


def _tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


class LAC(eqx.Module):
    r"""The least-ambiguous score :math:`s(x, y) = 1 - p_y(x)` (module docstring)."""

    def __call__(
        self, probs: Float[Array, "n K"], key: PRNGKeyArray | None = None
    ) -> Float[Array, "n K"]:
        return 1.0 - probs


class APS(eqx.Module):
    r"""Adaptive prediction sets, :math:`s(x, y) = \sum_{p_{y'} > p_y} p_{y'} + u\,p_y`
    (module docstring).

    - ``randomized``: draw :math:`u \sim U(0, 1)` per example from the ``key`` handed to
      the call (calibration and test need one key each); ``False``: :math:`u = 1`.
    """

    randomized: bool = eqx.field(static=True, default=False)

    def __call__(
        self, probs: Float[Array, "n K"], key: PRNGKeyArray | None = None
    ) -> Float[Array, "n K"]:
        above = jnp.sum(
            jnp.where(probs[:, None, :] > probs[:, :, None], probs[:, None, :], 0.0), -1
        )
        if not self.randomized:
            return above + probs
        if key is None:
            raise ValueError("APS(randomized=True) needs a PRNG key: pass key=.")
        u = jax.random.uniform(key, (probs.shape[0], 1), probs.dtype)
        return above + u * probs


def conformal_level(n: Int[Array, ""] | int, alpha: Float[Array, ""] | float) -> Int[Array, ""]:
    r""":math:`k = \lceil (n+1)(1-\alpha)\rceil`, the order statistic that
    :func:`conformal_quantile` takes (module docstring); traceable."""
    level = (jnp.asarray(n) + 1) * (1 - jnp.asarray(alpha)) * (1 - _LEVEL_RTOL)
    return jnp.ceil(level).astype(jnp.int32)


def conformal_quantile(
    scores: Float[Array, " n"],
    alpha: Float[Array, ""] | float,
    mask: Bool[Array, " n"] | None = None,
) -> Float[Array, ""]:
    r"""The conformal threshold :math:`\hat q = s_{(k)}`, :math:`k = \lceil (n+1)(1-\alpha)
    \rceil`, over the entries of ``scores`` where ``mask`` holds (all when None);
    :math:`+\infty` when :math:`k > n` (the full set keeps the guarantee). Pure and
    traceable: ``vmap`` over scores, masks or levels.

    **Arguments:**

    - ``scores``: ``(n,)`` calibration nonconformity scores of the true labels.
    - ``alpha``: miscoverage level in (0, 1).
    - ``mask``: ``(n,)`` bool, the points that count (a class's, for Mondrian conformal).

    **Returns:** the threshold, a scalar.
    """
    mask = jnp.ones(scores.shape, bool) if mask is None else mask
    n = jnp.sum(mask)
    k = conformal_level(n, alpha)
    ordered = jnp.sort(jnp.where(mask, scores, jnp.inf))
    value = ordered[jnp.clip(k - 1, 0, scores.shape[0] - 1)]
    return jnp.where((k >= 1) & (k <= n), value, jnp.inf)


def _min_points(alpha: float) -> int:
    n = max(int(np.floor((1 - alpha) / alpha)) - 1, 1)
    while int(conformal_level(n, alpha)) > n:
        n += 1
    return n


def as_probabilities(scores, where: str) -> Float[Array, "n K"]:
    """``(n, K)`` class probabilities; ``(n,)`` binary probabilities of class 1 become
    ``(n, 2)`` columns ``[1 - p, p]``. Values must be finite and in [0, 1]."""
    if not hasattr(scores, "shape"):
        scores = np.asarray(scores)
    if scores.ndim == 1:
        scores = jnp.stack([1 - jnp.asarray(scores), jnp.asarray(scores)], axis=1)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"{where}: scores must be (n,) binary probabilities or (n, K) class "
            f"probabilities with K >= 2, got shape {tuple(scores.shape)}."
        )
    if not _tracer(scores):
        s = np.asarray(scores)
        if not np.issubdtype(s.dtype, np.number):
            raise ValueError(f"{where}: scores must be numbers, got dtype {s.dtype}.")
        bad = ~np.isfinite(s) | (s < 0) | (s > 1)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: scores must be probabilities in [0, 1]; scores[{i}, {j}] = "
                f"{s[i, j]!r}. Pass a probe's probabilities (e.g. a softmax), not its logits."
            )
    return jnp.asarray(scores, float_dtype())


def _check_labels(labels, n: int, K: int, where: str) -> Int[Array, " n"]:
    if not hasattr(labels, "shape"):
        labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(
            f"{where}: labels must have shape ({n},) to match the scores, got {labels.shape}."
        )
    if not _tracer(labels):
        lab = np.asarray(labels)
        if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
            if not np.all(np.mod(lab, 1) == 0):
                raise ValueError(
                    f"{where}: labels must be integers 0..{K - 1}, got dtype {lab.dtype}."
                )
        out = (lab < 0) | (lab >= K)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"{where}: labels must be classes 0..{K - 1} (one per score column); "
                f"labels[{i}] = {lab[i].item()!r}."
            )
    return jnp.asarray(labels).astype(jnp.int32)


def _check_alpha(alpha, where: str):
    if _tracer(alpha):
        return alpha
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"{where}: alpha must lie strictly between 0 and 1, got {alpha!r}.")
    return a


class Conformal(eqx.Module):
    r"""A calibrated split-conformal predictor (module docstring).

    **Fields:**

    - ``threshold``: ``(K,)``, :math:`\hat q_y` for each label (all equal unless
      class-conditional); :math:`+\infty` keeps a label in every set.
    - ``alpha``: the miscoverage level.
    - ``counts``: ``(K,)`` calibration points per class.
    - ``score``: the nonconformity score (:class:`LAC`, :class:`APS`); static.
    - ``conditional``: whether the quantiles are per class (Mondrian); static.
    """

    threshold: Float[Array, " K"]
    alpha: Float[Array, ""]
    counts: Int[Array, " K"]
    score: eqx.Module = eqx.field(static=True)
    conditional: bool = eqx.field(static=True)

    def sets(self, scores, key: PRNGKeyArray | None = None) -> Bool[Array, "m K"]:
        """Prediction sets :math:`C(x) = \\{y : s(x, y) \\le \\hat q_y\\}`.

        **Arguments:** ``scores`` ``(m, K)`` probabilities (``(m,)`` if binary); ``key``
        for a randomised score.

        **Returns:** bool ``(m, K)``, True for the labels in each set.
        """
        probs = as_probabilities(scores, "Conformal.sets")
        K = self.threshold.shape[0]
        if probs.shape[1] != K:
            raise ValueError(
                f"Conformal.sets: calibrated for K = {K} classes, got scores with "
                f"{probs.shape[1]} columns."
            )
        return _sets(self.threshold, probs, key, self.score)

    def predict(self, scores, key: PRNGKeyArray | None = None) -> Int[Array, " m"]:
        """:func:`abstention` of :meth:`sets`: the class, or ``ABSTAIN`` (-1)."""
        return abstention(self.sets(scores, key))


def calibrate(
    scores,
    labels,
    alpha: float | Float[Array, ""],
    *,
    conditional: bool = False,
    score: eqx.Module = LAC(),
    key: PRNGKeyArray | None = None,
) -> Conformal:
    r"""Calibrate split conformal prediction on held-out probe outputs (module docstring).

    **Arguments:**

    - ``scores``: ``(n, K)`` class probabilities, or ``(n,)`` probabilities of class 1
      for a binary probe; points not used to fit the probe.
    - ``labels``: ``(n,)`` integer classes ``0..K-1``.
    - ``alpha``: miscoverage level in (0, 1); the sets cover with probability
      :math:`\ge 1 - \alpha`.
    - ``conditional``: one quantile per class (Mondrian; coverage per class).
    - ``score``: :class:`LAC` (default) or :class:`APS`.
    - ``key``: PRNG key for a randomised score.

    **Returns:** a :class:`Conformal`.

    **Raises:** ``ValueError`` for ``alpha`` outside (0, 1), badly shaped or
    out-of-range scores or labels, or fewer calibration points (per class when
    ``conditional``) than :math:`(1-\alpha)/\alpha`, naming what is short. Value checks
    are skipped under ``jit``/``vmap`` (a traced call with too few points gets
    :math:`\hat q = +\infty`).
    """
    probs = as_probabilities(scores, "calibrate")
    n, K = probs.shape
    y = _check_labels(labels, n, K, "calibrate")
    alpha = _check_alpha(alpha, "calibrate")
    counts = jnp.bincount(y, length=K).astype(jnp.int32)
    if not (_tracer(alpha) or _tracer(y)):
        need = _min_points(alpha)
        have = np.asarray(counts) if conditional else np.array([n])
        short = np.flatnonzero(have < need)
        if short.size:
            what = (
                f"class {int(short[0])} has {int(have[short[0]])}"
                if conditional
                else f"got n = {n}"
            )
            raise ValueError(
                f"calibrate: alpha = {alpha} needs at least {need} calibration points"
                f"{' per class' if conditional else ''} (n >= (1 - alpha)/alpha, so that "
                f"ceil((n+1)(1-alpha)) <= n); {what}. Use more calibration data or a larger alpha."
            )
    threshold = _thresholds(probs, y, alpha, key, score, bool(conditional))
    return Conformal(threshold, jnp.asarray(alpha, probs.dtype), counts, score, bool(conditional))


@functools.partial(jax.jit, static_argnames=("score", "conditional"))
def _thresholds(probs, y, alpha, key, score, conditional):
    K = probs.shape[1]
    s_true = jnp.take_along_axis(score(probs, key), y[:, None], axis=1)[:, 0]
    if conditional:
        onehot = y[:, None] == jnp.arange(K)
        return jax.vmap(lambda m: conformal_quantile(s_true, alpha, m), in_axes=1)(onehot)
    return jnp.full(K, conformal_quantile(s_true, alpha), s_true.dtype)


@functools.partial(jax.jit, static_argnames="score")
def _sets(threshold, probs, key, score):
    return score(probs, key) <= threshold


@jax.jit
def abstention(sets: Bool[Array, "n K"]) -> Int[Array, " n"]:
    """The decision a set makes: its class when it holds exactly one, else ``ABSTAIN``
    (-1) for an empty set (no class plausible) or several classes (undecided).

    **Arguments:** ``sets`` bool ``(n, K)`` from :meth:`Conformal.sets`.

    **Returns:** int32 ``(n,)``.
    """
    sets = jnp.asarray(sets, bool)
    single = jnp.sum(sets, axis=-1) == 1
    return jnp.where(single, jnp.argmax(sets, axis=-1), ABSTAIN).astype(jnp.int32)


class ConformalReport(NamedTuple):
    """How prediction sets did on labelled points (:func:`conformal_report`).

    - ``coverage``: share of sets holding the true label.
    - ``class_coverage``: ``(K,)``, the same among the points of each class (NaN for a
      class absent from the points).
    - ``abstention``: share of abstentions (empty or multi-class sets).
    - ``accuracy``: accuracy of the predictions made (NaN when all abstain).
    - ``set_size``: mean number of labels per set.
    - ``empty``: share of empty sets.
    """

    coverage: Float[Array, ""]
    class_coverage: Float[Array, " K"]
    abstention: Float[Array, ""]
    accuracy: Float[Array, ""]
    set_size: Float[Array, ""]
    empty: Float[Array, ""]


def conformal_report(sets: Bool[Array, "n K"], labels) -> ConformalReport:
    """Coverage, abstention rate, accuracy when not abstaining and set size of ``sets``
    against the true ``labels`` (traceable).

    **Arguments:** ``sets`` bool ``(n, K)``; ``labels`` ``(n,)`` classes ``0..K-1``.

    **Returns:** a :class:`ConformalReport`.
    """
    sets = jnp.asarray(sets, bool)
    if sets.ndim != 2:
        raise ValueError(f"conformal_report: sets must be (n, K), got shape {sets.shape}.")
    n, K = sets.shape
    return _report(sets, _check_labels(labels, n, K, "conformal_report"))


@jax.jit
def _report(sets, y):
    K = sets.shape[1]
    onehot = y[:, None] == jnp.arange(K)
    covered = jnp.any(sets & onehot, axis=1)
    per_class = jnp.sum(covered[:, None] & onehot, 0) / jnp.sum(onehot, 0)
    decided = abstention(sets)
    made = decided != ABSTAIN
    correct = jnp.sum(made & (decided == y))
    return ConformalReport(
        coverage=jnp.mean(covered),
        class_coverage=per_class,
        abstention=1.0 - jnp.mean(made),
        accuracy=jnp.where(jnp.any(made), correct / jnp.maximum(jnp.sum(made), 1), jnp.nan),
        set_size=jnp.mean(jnp.sum(sets, axis=1)),
        empty=jnp.mean(~jnp.any(sets, axis=1)),
    )

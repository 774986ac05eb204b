r"""How many directions carry a concept: the k-direction curve with a permutation-chosen
:math:`k^*`, and the random-direction baseline.

On the protocol's splits (fit on train_sub + val, the *train part*; score on test),
with the INLP directions :math:`u_1, \dots, u_{K}` of the base on the train part
(:func:`probejax.estimators.inlp_directions`, :math:`K` = ``k_max``):

- the **curve**: for :math:`k = 1..K`, the test accuracy and AUROC of the k-direction
  probe (:class:`probejax.estimators.KDirection`: the readout of :math:`u_1..u_k`);
- the **residual test** of step :math:`j`: the base fitted on the train part projected
  off :math:`u_1..u_{j-1}` (the data INLP's step :math:`j` sees, so its direction is
  :math:`u_j`), scored by test AUROC on the equally projected test part, against the
  same fit with the train labels permuted (:math:`P` permutations, the same residual
  data, the same test labels):

  .. math::

      p_j = \frac{1 + \#\{b : A^{(b)}_j \ge A_j\}}{P + 1},
      \qquad k^* = \max\{k : p_1, \dots, p_k < \alpha\}

  (:math:`k^* = 0` when :math:`p_1 \ge \alpha`). Each :math:`p_j` is a valid
  permutation p-value for "the residual after :math:`j - 1` directions carries no
  linear signal the base can find" given the earlier directions; stopping at the first
  non-significant step makes :math:`k^*` a sequential test, with no multiplicity
  correction beyond the ordering. With :math:`P` permutations the smallest p-value is
  :math:`1/(P + 1)`, so :math:`\alpha` must exceed it for :math:`k^* > 0` to be
  possible.

What :math:`k^*` counts: the steps after which *linearly decodable* signal is left, not
the directions that add accuracy. For Gaussian classes with a shared covariance and
signal in a subspace :math:`S` (class means differing in :math:`S`, the covariance block
diagonal in :math:`S` and its complement), every step before :math:`S` is spanned has
signal, but a base close to the Bayes direction :math:`\Sigma^{-1}\Delta\mu` already
carries all of it at :math:`k = 1`: the accuracy curve is flat while :math:`k^*` is
:math:`\dim S`. The curve rises only when the base's first direction is biased (a strong
ridge pulls it towards :math:`\Delta\mu`). And the test conditions on *estimated*
directions: the part of :math:`S` they miss (angle about
:math:`\sqrt{d/n_{\mathrm{train}}}`) leaves real residual signal, so with a large test
part or a strong signal :math:`k^*` can exceed :math:`\dim S`
(``tests/test_kdirection.py`` has a planted case and its measured rates).

The random-direction baseline scores :math:`N` random directions
(:class:`probejax.estimators.RandomDirection`) on the same splits: the null for the
test accuracy of "a probe direction".
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels
from ..core._metrics import accuracy, auroc
from ..estimators._base import Estimator
from ..estimators._kdirection import (
    RandomDirection,
    default_base,
    inlp_scan,
    project_out,
    readout,
)
from ._controls import permutation_p_value
from ._evaluate import evaluate_on
from ._splits import Splits, check_splits


class KDirectionCurve(eqx.Module):
    """The k-direction curve and the residual tests (module docstring).

    ``accuracy``, ``auroc``: test metrics of the k-direction probe, entry ``k - 1``
    for ``k`` directions, ``(k_max,)``; ``step_auroc``: test AUROC of the base on the
    residual of step ``j`` (entry ``j - 1``); ``null_auroc`` ``(k_max, P)``: the same
    with permuted train labels; ``p_values`` ``(k_max,)``; ``k_star``; ``directions``
    ``(k_max, d)``; ``retained``, ``converged``: INLP's per-step status
    (:func:`probejax.estimators.inlp_scan`).
    """

    accuracy: Float[Array, " k_max"]
    auroc: Float[Array, " k_max"]
    step_auroc: Float[Array, " k_max"]
    null_auroc: Float[Array, "k_max P"]
    p_values: Float[Array, " k_max"]
    k_star: Int[Array, ""]
    directions: Float[Array, "k_max d"]
    retained: Float[Array, " k_max"]
    converged: Array


def leading_significant(p_values: Float[Array, " k"], alpha) -> Int[Array, ""]:
    """The number of leading entries of ``p_values`` below ``alpha``."""
    return jnp.sum(jnp.cumprod(p_values < alpha)).astype(jnp.int32)


def k_direction_core(
    base: Estimator,
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    splits: Splits,
    key: PRNGKeyArray,
    readout_lam,
    alpha,
    k_max: int,
    permutations: int,
    batch_size: int | None,
) -> KDirectionCurve:
    """The traceable core of :func:`k_direction_curve` (no input checks, ``y`` in +-1)."""
    pool = jnp.concatenate([splits.train_sub, splits.val])
    X_tr, y_tr = X[pool], y[pool]
    X_te, y_te = X[splits.test], y[splits.test]
    k_inlp, k_perm = jax.random.split(key)
    W, retained, converged = inlp_scan(base, X_tr, y_tr, k_max, k_inlp)
    step_keys = jax.random.split(k_inlp, k_max)  # the keys inlp_scan gave its steps

    first_k = jnp.tril(jnp.ones((k_max, k_max), X.dtype))
    probes = jax.vmap(lambda m: readout(W * m[:, None], X_tr, y_tr, readout_lam)[0])(first_k)
    scores = jax.vmap(lambda p: p.decision_function(X_te))(probes)
    acc = jax.vmap(accuracy, in_axes=(None, 0))(y_te, scores)
    auc = jax.vmap(auroc, in_axes=(None, 0))(y_te, scores)

    perms = jax.vmap(lambda k: jax.random.permutation(k, y_tr.shape[0]))(
        jax.random.split(k_perm, permutations)
    )

    def residual_test(inputs):
        j, key_j = inputs
        earlier = W * (jnp.arange(k_max) < j)[:, None].astype(X.dtype)
        R_tr = project_out(X_tr, earlier)
        R_te = project_out(X_te, earlier)

        def test_auroc(labels):
            return auroc(y_te, base.fit(R_tr, labels, key_j).decision_function(R_te))

        null = jax.lax.map(
            lambda perm: test_auroc(y_tr[perm]), perms, batch_size=batch_size or permutations
        )
        return test_auroc(y_tr), null

    step_auroc, null = jax.lax.map(residual_test, (jnp.arange(k_max), step_keys))
    p_values = permutation_p_value(step_auroc, null)
    return KDirectionCurve(
        acc,
        auc,
        step_auroc,
        null,
        p_values,
        leading_significant(p_values, alpha),
        W,
        retained,
        converged,
    )


_core_jit = eqx.filter_jit(k_direction_core)


def k_direction_curve(
    X,
    y,
    splits: Splits,
    key: PRNGKeyArray,
    *,
    k_max: int = 8,
    permutations: int = 50,
    alpha: float = 0.05,
    base: Estimator | None = None,
    readout_lam: float = 1.0,
    batch_size: int | None = None,
) -> KDirectionCurve:
    r"""The k-direction curve and :math:`k^*` (module docstring).

    **Arguments:**

    - ``X``: activations ``(n, d)``; ``y``: two-class labels ``(n,)``.
    - ``splits``: the protocol's :class:`~probejax.protocol.Splits`; fits use
      train_sub + val, scores use test.
    - ``key``: split into INLP's step keys (each residual fit, observed or permuted,
      reuses its step's key) and the permutations' key.
    - ``k_max``: directions ``K`` (static); ``permutations``: ``P`` (static);
      ``alpha``: the level of each residual test (an array leaf: changing it does not
      recompile).
    - ``base``: the INLP base (default
      :func:`probejax.estimators._kdirection.default_base`); ``readout_lam``: the
      k-direction readout's ridge (as :class:`~probejax.estimators.KDirection`'s).
    - ``batch_size``: permuted fits run at once (``None``: all ``P``, one ``vmap``);
      smaller bounds memory at ``d`` in the thousands.

    **Returns:** :class:`KDirectionCurve`. One compiled program for fixed shapes: the
    ``K x P`` permuted fits are a ``lax.map`` over steps of a (chunked) ``vmap`` over
    permutations.
    """
    X = as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, X.shape[0])
    splits = check_splits(splits, np.asarray(y), X.shape[0])
    k_max, permutations = int(k_max), int(permutations)
    if k_max < 1 or k_max > X.shape[1]:
        raise ValueError(f"k_max must be in [1, d = {X.shape[1]}], got {k_max}.")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    base = default_base() if base is None else base
    return _core_jit(
        base,
        X,
        y,
        splits,
        key,
        jnp.asarray(readout_lam, X.dtype),
        jnp.asarray(alpha, X.dtype),
        k_max,
        permutations,
        batch_size,
    )


class RandomBaseline(eqx.Module):
    """Test metrics of ``random_directions`` random directions (``accuracy``, ``auroc``,
    ``(N,)``), their means and 95th percentiles."""

    accuracy: Float[Array, " N"]
    auroc: Float[Array, " N"]
    mean_accuracy: Float[Array, ""]
    mean_auroc: Float[Array, ""]
    q95_accuracy: Float[Array, ""]
    q95_auroc: Float[Array, ""]


def random_direction_core(X, y, splits: Splits, keys, standardize: bool) -> RandomBaseline:
    """The traceable core of :func:`random_direction_baseline`."""
    est = RandomDirection(standardize=standardize)
    ev = jax.vmap(lambda k: evaluate_on(est, X, y, splits, k))(keys)
    acc, auc = ev.test_accuracy, ev.test_auroc
    return RandomBaseline(
        acc,
        auc,
        jnp.mean(acc),
        jnp.mean(auc),
        jnp.quantile(acc, 0.95),
        jnp.quantile(auc, 0.95),
    )


_random_jit = eqx.filter_jit(random_direction_core)


def random_direction_baseline(
    X,
    y,
    splits: Splits,
    key: PRNGKeyArray,
    random_directions: int = 100,
    *,
    standardize: bool = True,
) -> RandomBaseline:
    """Test accuracy and AUROC of ``random_directions`` random directions
    (:class:`~probejax.estimators.RandomDirection`, one key each from ``key``), each
    Platt-scaled on train_sub + val and scored on test, all in one ``vmap``.

    **Returns:** :class:`RandomBaseline`.
    """
    X = as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, X.shape[0])
    splits = check_splits(splits, np.asarray(y), X.shape[0])
    if int(random_directions) < 1:
        raise ValueError(f"random_directions must be >= 1, got {random_directions}.")
    keys = jax.random.split(key, int(random_directions))
    return _random_jit(X, y, splits, keys, standardize)

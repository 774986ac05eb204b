r"""Recursive Feature Machine (RFM; Radhakrishnan et al., Science 2024), the kernel
baseline "xRFM" of RAPTOR (arXiv 2602.00158).

A Laplace kernel with a learned metric :math:`M` (positive semi-definite, :math:`d\times d`),

.. math::

    K_M(x, z) = \exp\bigl(-\lVert x - z\rVert_M / L\bigr), \qquad
    \lVert u\rVert_M = \sqrt{\max(0, u^\top M u)},

and kernel ridge regression on 0/1 labels :math:`Y` with the training points as centres
and no bias: :math:`\alpha = (K_M(X, X) + \mathrm{reg}\,I)^{-1} Y`,
:math:`f(x) = K_M(x, X)\,\alpha`, class 1 when :math:`f(x) \ge 1/2`. The probe's score is
:math:`f(x) - 1/2`. The metric is updated by the average gradient outer product (AGOP)
of :math:`f` over the training points,

.. math::

    \nabla f(z) = -\frac1L \sum_i \alpha_i \frac{K_M(z, x_i)}{\lVert z - x_i\rVert_M}
    M (z - x_i), \qquad
    G = \sum_j g_j g_j^\top, \quad M \leftarrow G / \max_{kl} |G_{kl}|,

with terms at distance below :math:`10^{-10}` dropped and, with ``center_grads``, the
mean gradient subtracted from every :math:`g_j = \nabla f(x_j)` first. Starting from
:math:`M = I`, ``iters`` rounds fit :math:`\alpha`, score it on the validation part
(accuracy) and update :math:`M`.

RAPTOR's protocol: standardise with the train part's statistics, run the rounds for every
``bandwidth`` :math:`L` and ``center_grads`` setting, and keep the candidate
(bandwidth, centring, round) with the best validation accuracy (exact ties to the first
in that order, bandwidth-major). The kernel centres stay the train part (there is no
refit on train + validation). The concept vector is the top eigenvector of the chosen
predictor's AGOP (from the smaller of :math:`G` and the gradients' Gram matrix), signed
so that the difference of the train class means projects positively onto it; in raw
coordinates it is divided by the feature scales and renormalised.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._metrics import accuracy
from ..core._probe import Diagnosed, Probe, unit
from ..core._scaler import Standardizer
from ._base import ValidatedEstimator

_HIGHEST = jax.lax.Precision.HIGHEST


def mahalanobis_distances(
    A: Float[Array, "n d"], B: Float[Array, "m d"], M: Float[Array, "d d"]
) -> Float[Array, "n m"]:
    r""":math:`\lVert a_i - b_j\rVert_M` from the expanded square (clipped at 0)."""
    AM = jnp.matmul(A, M, precision=_HIGHEST)
    BM = jnp.matmul(B, M, precision=_HIGHEST)
    sq = jnp.sum(AM * A, axis=1)[:, None] + jnp.sum(BM * B, axis=1)[None, :]
    sq = sq - 2 * jnp.matmul(AM, B.T, precision=_HIGHEST)
    return jnp.sqrt(jnp.maximum(sq, 0.0))


def laplace_kernel(
    A: Float[Array, "n d"], B: Float[Array, "m d"], M: Float[Array, "d d"], bandwidth
) -> Float[Array, "n m"]:
    r""":math:`K_M(a_i, b_j) = \exp(-\lVert a_i - b_j\rVert_M / L)`."""
    return jnp.exp(-mahalanobis_distances(A, B, M) / bandwidth)


def _round(X, y01, M, bandwidth, reg, center):
    """One RFM round: ``alpha`` for metric ``M``, the (centred) gradients at the training
    points and the normalised AGOP."""
    n = X.shape[0]
    dist = mahalanobis_distances(X, X, M) * (1 - jnp.eye(n, dtype=X.dtype))
    K = jnp.exp(-dist / bandwidth)
    alpha = jnp.linalg.solve(K + reg * jnp.eye(n, dtype=X.dtype), y01)
    far = dist >= 1e-10
    A = jnp.where(far, K / jnp.where(far, dist, 1.0), 0.0) * alpha[None, :]
    diff = jnp.sum(A, axis=1)[:, None] * X - jnp.matmul(A, X, precision=_HIGHEST)
    grads = -jnp.matmul(diff, M, precision=_HIGHEST) / bandwidth
    grads = grads - center * jnp.mean(grads, axis=0)
    G = jnp.matmul(grads.T, grads, precision=_HIGHEST)
    top = jnp.max(jnp.abs(G))
    return alpha, G / jnp.where(top > 0, top, 1.0), grads


def rfm_iterations(
    X: Float[Array, "n d"],
    y01: Float[Array, " n"],
    bandwidth: Float[Array, ""],
    reg: Float[Array, ""],
    center: Bool[Array, ""],
    iters: int,
) -> tuple[Float[Array, "iters n"], Float[Array, "iters d d"]]:
    """The RFM rounds on one training set, without validation (module docstring).

    **Arguments:**

    - ``X``: training points (the kernel centres), shape ``(n, d)``.
    - ``y01``: 0/1 labels, shape ``(n,)``.
    - ``bandwidth``, ``reg``: the kernel's :math:`L` and the ridge.
    - ``center``: subtract the mean gradient before the AGOP.
    - ``iters`` (static): number of rounds.

    **Returns:** ``(alphas, Ms)``: round ``t`` fits ``alphas[t]`` with metric ``Ms[t]``
    (``Ms[0] = I``, ``Ms[t + 1]`` the normalised AGOP of round ``t``).
    """
    dtype = X.dtype
    bandwidth, reg = jnp.asarray(bandwidth, dtype), jnp.asarray(reg, dtype)
    center = jnp.asarray(center, dtype)
    y01 = y01.astype(dtype)

    def step(M, _):
        alpha, M_next, _ = _round(X, y01, M, bandwidth, reg, center)
        return M_next, (alpha, M)

    _, (alphas, Ms) = jax.lax.scan(step, jnp.eye(X.shape[1], dtype=dtype), length=iters)
    return alphas, Ms


def top_agop_direction(
    grads: Float[Array, "n d"], X: Float[Array, "n d"], y: Float[Array, " n"]
) -> Float[Array, " d"]:
    r"""Unit top eigenvector of :math:`G = \sum_j g_j g_j^\top` (via the :math:`n\times n`
    Gram matrix when :math:`n < d`), signed so that :math:`(\mu_+ - \mu_-)^\top v \ge 0`."""
    n, d = grads.shape
    if n < d:
        _, U = jnp.linalg.eigh(jnp.matmul(grads, grads.T, precision=_HIGHEST))
        v = unit(jnp.matmul(U[:, -1], grads, precision=_HIGHEST))
    else:
        _, V = jnp.linalg.eigh(jnp.matmul(grads.T, grads, precision=_HIGHEST))
        v = V[:, -1]
    pos = (y > 0).astype(X.dtype)
    n_pos = jnp.maximum(jnp.sum(pos), 1.0)
    n_neg = jnp.maximum(n - jnp.sum(pos), 1.0)
    delta = pos @ X / n_pos - (1 - pos) @ X / n_neg
    return jnp.where(jnp.dot(v, delta) < 0, -v, v)


class RFMProbe(Probe):
    r"""A fitted RFM: :math:`s(x) = K_M(x, \text{centers})\,\alpha - 1/2`; the concept
    vector is ``direction`` (the top AGOP eigenvector)."""

    centers: Float[Array, "m d"]
    alpha: Float[Array, " m"]
    M: Float[Array, "d d"]
    bandwidth: Float[Array, ""]
    direction: Float[Array, " d"]

    def decision_function(self, X):
        return laplace_kernel(X, self.centers, self.M, self.bandwidth) @ self.alpha - 0.5

    def concept_vector(self):
        return self.direction


class RFM(ValidatedEstimator):
    """RFM tuned as RAPTOR tunes xRFM (module docstring): ``bandwidths`` and
    ``center_grads`` grids, ridge ``reg``, ``iters`` rounds each, features standardised
    on the train part (``standardize``), ``val_fraction`` held out when ``fit`` makes the
    split. The probe carries the chosen ``bandwidth``, ``center_grads``, ``iteration``
    (0-based round), its ``val_accuracy`` and ``val_accuracy_grid``
    ``(bandwidths, center_grads, iters)``."""

    bandwidths: tuple[float, ...] = eqx.field(default=(1.0, 10.0, 100.0), static=True)
    center_grads: tuple[bool, ...] = eqx.field(default=(True, False), static=True)
    reg: Float[Array, ""] = eqx.field(default=1e-3, converter=jnp.asarray)
    iters: int = eqx.field(default=10, static=True)
    standardize: bool = eqx.field(default=True, static=True)
    val_fraction: float = eqx.field(default=0.2, static=True)

    def __check_init__(self):
        if self.iters < 1 or not self.bandwidths or not self.center_grads:
            raise ValueError(
                "RFM needs iters >= 1 and non-empty bandwidths and center_grads, got "
                f"iters={self.iters}, bandwidths={self.bandwidths}, "
                f"center_grads={self.center_grads}."
            )

    def fit_with_validation(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        train: Int[Array, " n_tr"],
        val: Int[Array, " n_val"],
        key: PRNGKeyArray,
    ) -> Probe:
        dtype = X.dtype
        X_tr, X_val, y_tr, y_val = X[train], X[val], y[train], y[val]
        if self.standardize:
            scaler = Standardizer.fit(X_tr)
            X_tr, X_val = scaler.transform(X_tr), scaler.transform(X_val)
        n_tr, d = X_tr.shape
        y01 = (y_tr > 0).astype(dtype)
        reg = jnp.asarray(self.reg, dtype)
        n_b, n_c = len(self.bandwidths), len(self.center_grads)
        bws = jnp.repeat(jnp.asarray(self.bandwidths, dtype), n_c)
        centrings = jnp.tile(jnp.asarray(self.center_grads, dtype), n_b)

        def run(bandwidth, center):
            def step(carry, t):
                M, best = carry
                alpha, M_next, grads = _round(X_tr, y01, M, bandwidth, reg, center)
                f_val = laplace_kernel(X_val, X_tr, M, bandwidth) @ alpha - 0.5
                acc = accuracy(y_val, f_val)
                better = acc > best[0]
                best = jax.tree.map(
                    lambda new, old: jnp.where(better, new, old),
                    (acc, t, alpha, M, grads),
                    best,
                )
                return (M_next, best), acc

            best0 = (
                jnp.asarray(-1.0, dtype),
                jnp.asarray(0, jnp.int32),
                jnp.zeros(n_tr, dtype),
                jnp.zeros((d, d), dtype),
                jnp.zeros((n_tr, d), dtype),
            )
            init = (jnp.eye(d, dtype=dtype), best0)
            steps = jnp.arange(self.iters, dtype=jnp.int32)
            (_, best), accs = jax.lax.scan(step, init, steps)
            return best, accs

        best, accs = jax.vmap(run)(bws, centrings)
        index = jnp.argmax(best[0])
        acc, t, alpha, M, grads = jax.tree.map(lambda a: a[index], best)
        direction = top_agop_direction(grads, X_tr, y_tr)
        probe = RFMProbe(X_tr, alpha, M, bws[index], direction)
        if self.standardize:
            probe = probe.unstandardize(scaler)
        info = {
            "bandwidth": bws[index],
            "center_grads": centrings[index] > 0,
            "iteration": t,
            "val_accuracy": acc,
            "val_accuracy_grid": accs.reshape(n_b, n_c, self.iters),
        }
        return Diagnosed(probe, info)

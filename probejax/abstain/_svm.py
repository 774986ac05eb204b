r"""A linear support-vector machine with per-example margins and costs, solved in the dual
by sequential minimal optimisation (SMO).

The problem, for examples :math:`z_t \in \mathbb R^d` with labels :math:`y_t \in \{-1,
+1\}`, required margins :math:`m_t` and costs :math:`c_t \ge 0`, is

.. math::

    \min_{w, b}\; P(w, b) = \tfrac12 \lVert w\rVert^2
    + \sum_t c_t \max\bigl(0,\; m_t - y_t (w^\top z_t + b)\bigr),

with the intercept :math:`b` unpenalised. With :math:`m_t = 1` and :math:`c_t = C` this is
the standard soft-margin SVM (scikit-learn's ``SVC(kernel="linear", C=C)``; per-class
costs are its ``class_weight``); the multiple-instance problems of
:mod:`probejax.abstain._mil` are instances of it with other margins and costs. An
example of cost 0 is inert (padding).

Its dual is

.. math::

    \max_{\alpha}\; D(\alpha) = \sum_t m_t \alpha_t - \tfrac12 \lVert w(\alpha)\rVert^2,
    \qquad w(\alpha) = \sum_t \alpha_t y_t z_t,
    \qquad 0 \le \alpha_t \le c_t,\ \ \sum_t y_t \alpha_t = 0,

and :math:`D(\alpha) \le P(w, b)` for every feasible :math:`\alpha` and every
:math:`(w, b)`, with equality at the optimum. SMO (Platt 1998) in the form of libsvm
(Fan, Chen & Lin 2005): with :math:`G_t = y_t w^\top z_t - m_t` the gradient of
:math:`-D`, the sets :math:`I_{up} = \{t : \alpha_t < c_t, y_t = 1 \text{ or } \alpha_t >
0, y_t = -1\}` and :math:`I_{low} = \{t : \alpha_t < c_t, y_t = -1 \text{ or } \alpha_t >
0, y_t = 1\}`, and the KKT violation

.. math::

    \Delta(\alpha) = \max_{t \in I_{up}} (-y_t G_t) - \min_{t \in I_{low}} (-y_t G_t),

each step moves the pair :math:`(i, j)` chosen by second-order working-set selection
(:math:`i` the maximal violator in :math:`I_{up}`, :math:`j` the member of
:math:`I_{low}` with the largest guaranteed decrease :math:`b_{ij}^2/a_{ij}`,
:math:`a_{ij} = \lVert z_i - z_j\rVert^2`) to the optimum of :math:`D` along
:math:`y_i e_i - y_j e_j`, clipped to the box. It stops when :math:`\Delta(\alpha) \le`
``tol`` (libsvm's criterion and default 1e-3). :math:`b` is the mean of :math:`-y_t G_t`
over the free examples (:math:`0 < \alpha_t < c_t`), or the middle of the KKT interval
when none is free.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..solvers._logistic import Result

_TAU = 1e-12


class SVMSolution(eqx.Module):
    r"""A solved linear SVM (module docstring); a leading axis when vmapped.

    **Fields:**

    - ``w`` ``(d,)``, ``b``: the separator, score :math:`w^\top z + b`.
    - ``alpha`` ``(N,)``: the dual variables.
    - ``objective``: the primal :math:`P(w, b)`.
    - ``dual``: :math:`D(\alpha)` (:math:`\le P`; the gap bounds the suboptimality).
    - ``violation``: the KKT violation :math:`\Delta(\alpha)` at the end.
    - ``n_iter``: SMO steps taken.
    - ``converged``: ``violation <= tol``.
    - ``result``: a :class:`probejax.solvers.Result` code.
    """

    w: Float[Array, " d"]
    b: Float[Array, ""]
    alpha: Float[Array, " N"]
    objective: Float[Array, ""]
    dual: Float[Array, ""]
    violation: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    result: Int[Array, ""]


def svm_objective(
    w: Float[Array, " d"],
    b: Float[Array, ""],
    Z: Float[Array, "N d"],
    y: Float[Array, " N"],
    margin: Float[Array, " N"],
    cost: Float[Array, " N"],
) -> Float[Array, ""]:
    r"""The primal :math:`P(w, b)` of the module docstring."""
    slack = jnp.maximum(0.0, margin - y * (Z @ w + b))
    return 0.5 * jnp.sum(w * w) + jnp.sum(jnp.where(cost > 0, cost * slack, 0.0))


def _violators(alpha, y, cost, myG):
    up = ((y > 0) & (alpha < cost)) | ((y < 0) & (alpha > 0))
    low = ((y < 0) & (alpha < cost)) | ((y > 0) & (alpha > 0))
    hi = jnp.where(up, myG, -jnp.inf)
    lo = jnp.where(low, myG, jnp.inf)
    return up, low, hi, lo


@functools.partial(jax.jit, static_argnames="max_iter")
def _smo(Z, y, margin, cost, tol, max_iter):
    dt = Z.dtype
    sq = jnp.sum(Z * Z, axis=1)

    def violators(alpha, myG):
        return _violators(alpha, y, cost, myG)

    def cond(carry):
        alpha, _, myG, it = carry
        _, _, hi, lo = violators(alpha, myG)
        return (jnp.max(hi) - jnp.min(lo) > tol) & (it < max_iter)

    def body(carry):
        alpha, w, myG, it = carry
        _, low, hi, _ = violators(alpha, myG)
        i = jnp.argmax(hi)
        m = hi[i]
        zi = Z[i]
        a = sq[i] + sq - 2.0 * (Z @ zi)
        a = jnp.where(a > _TAU, a, _TAU)
        bb = m - myG
        gain = jnp.where(low & (myG < m), -(bb * bb) / a, jnp.inf)
        j = jnp.argmin(gain)
        room_i = jnp.where(y[i] > 0, cost[i] - alpha[i], alpha[i])
        room_j = jnp.where(y[j] > 0, alpha[j], cost[j] - alpha[j])
        step = jnp.maximum(jnp.minimum(bb[j] / a[j], jnp.minimum(room_i, room_j)), 0.0)
        edge_i = jnp.where(y[i] > 0, cost[i], 0.0)
        edge_j = jnp.where(y[j] > 0, 0.0, cost[j])
        new_i = jnp.where(step >= room_i, edge_i, alpha[i] + y[i] * step)
        new_j = jnp.where(step >= room_j, edge_j, alpha[j] - y[j] * step)
        alpha = alpha.at[i].set(new_i).at[j].set(new_j)
        w = w + step * (zi - Z[j])
        return alpha, w, y * margin - Z @ w, it + 1

    alpha0 = jnp.zeros(Z.shape[0], dt)
    w0 = jnp.zeros(Z.shape[1], dt)
    carry = (alpha0, w0, y * margin, jnp.asarray(0, jnp.int32))
    alpha, w, _, it = jax.lax.while_loop(cond, body, carry)
    w = Z.T @ (alpha * y)
    myG = y * margin - Z @ w
    _, _, hi, lo = violators(alpha, myG)
    m, M = jnp.max(hi), jnp.min(lo)
    free = (alpha > 0) & (alpha < cost)
    n_free = jnp.sum(free)
    middle = jnp.where(
        jnp.isfinite(m) & jnp.isfinite(M), 0.5 * (m + M), jnp.where(jnp.isfinite(m), m, M)
    )
    middle = jnp.where(jnp.isfinite(middle), middle, 0.0)
    b = jnp.where(n_free > 0, jnp.sum(jnp.where(free, myG, 0.0)) / jnp.maximum(n_free, 1), middle)
    violation = jnp.maximum(m - M, 0.0)
    primal = svm_objective(w, b, Z, y, margin, cost)
    dual = jnp.sum(margin * alpha) - 0.5 * jnp.sum(w * w)
    finite = jnp.isfinite(primal) & jnp.all(jnp.isfinite(w))
    converged = (violation <= tol) & finite
    result = jnp.where(
        ~finite, Result.NONFINITE, jnp.where(converged, Result.SUCCESS, Result.MAX_ITER)
    ).astype(jnp.int32)
    return SVMSolution(w, b, alpha, primal, dual, violation, it, converged, result)


def solve_svm(
    Z: Float[Array, "N d"],
    y: Float[Array, " N"],
    margin: Float[Array, " N"],
    cost: Float[Array, " N"],
    *,
    tol: float = 1e-3,
    max_iter: int = 100_000,
) -> SVMSolution:
    r"""Solve the linear SVM of the module docstring by SMO; traceable (``vmap`` over
    problems of one shape: the loop runs until the last one stops).

    **Arguments:**

    - ``Z``: ``(N, d)`` examples.
    - ``y``: ``(N,)`` labels in :math:`\{-1, +1\}`.
    - ``margin``: ``(N,)`` required margins :math:`m_t` (1 for a standard SVM).
    - ``cost``: ``(N,)`` costs :math:`c_t \ge 0` (``C`` for a standard SVM; 0: inert).
    - ``tol``: stop when the KKT violation :math:`\Delta(\alpha) \le` ``tol``.
    - ``max_iter``: SMO steps allowed (static).

    **Returns:** an :class:`SVMSolution` (never raises inside ``jit``; read
    ``converged`` / ``result``).
    """
    if Z.ndim != 2:
        raise ValueError(f"solve_svm: Z must be (N, d), got shape {Z.shape}.")
    N = Z.shape[0]
    for name, v in (("y", y), ("margin", margin), ("cost", cost)):
        if jnp.shape(v) != (N,):
            raise ValueError(
                f"solve_svm: {name} must have shape ({N},) to match Z, got {jnp.shape(v)}."
            )
    dt = jnp.result_type(Z.dtype, jnp.float32)
    if int(max_iter) < 1:
        raise ValueError(f"solve_svm: max_iter must be >= 1, got {max_iter!r}.")
    return _smo(
        jnp.asarray(Z, dt),
        jnp.asarray(y, dt),
        jnp.asarray(margin, dt),
        jnp.asarray(cost, dt),
        jnp.asarray(tol, dt),
        int(max_iter),
    )

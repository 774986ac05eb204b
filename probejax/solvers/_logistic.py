r"""Pieces shared by the ridge-logistic solvers: the loss terms, the exact line search
and the solution type.

The problem, for one ridge strength :math:`\lambda > 0`, is

.. math::

    \min_{w, b}\; F(w, b) = \sum_{i=1}^n \log\bigl(1 + e^{-y_i (w^\top x_i + b)}\bigr)
    + \tfrac{\lambda}{2}\lVert w\rVert^2, \qquad y_i \in \{-1, +1\},

with the intercept :math:`b` unpenalised. scikit-learn's ``LogisticRegression(C)``
minimises :math:`F / \lambda` with :math:`C = 1/\lambda`.
"""

from __future__ import annotations

import enum

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

MAX_MARGIN_STEP = 30.0


class Result(enum.IntEnum):
    """Per-point solver status (``RidgeLogisticSolution.result``)."""

    SUCCESS = 0
    MAX_ITER = 1  # gradient tolerance not reached within max_iter
    NONFINITE = 2  # the search direction or step became non-finite; the last finite iterate is kept


class RidgeLogisticSolution(eqx.Module):
    """A ridge-logistic fit at one ridge strength (leading grid axis when vmapped).

    **Fields:**

    - ``w``: weights, shape ``(d,)``.
    - ``b``: intercept (0 when fitted without one).
    - ``lam``: the ridge strength :math:`\\lambda` (scikit-learn ``C = 1/lam``).
    - ``objective``: :math:`F(w, b)` at the returned point.
    - ``grad_norm``: :math:`\\lVert \\nabla_{(w,b)} F\\rVert_2` at the returned point.
    - ``grad_norm0``: the same at :math:`(w, b) = 0`.
    - ``decrement``: :math:`\nabla F^\top H^{-1}\nabla F` at the last step (Newton: exact
      Hessian; L-BFGS: its approximation); :math:`\approx 2(F - F^*)`.
    - ``n_iter``: iterations taken.
    - ``converged``: whether the tolerance was met (see :func:`tolerance_met`).
    - ``result``: a :class:`Result` code.
    """

    w: Float[Array, " d"]
    b: Float[Array, ""]
    lam: Float[Array, ""]
    objective: Float[Array, ""]
    grad_norm: Float[Array, ""]
    grad_norm0: Float[Array, ""]
    decrement: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    result: Int[Array, ""]


def vdot(a: Float[Array, "... k"], b: Float[Array, "... k"]) -> Float[Array, ...]:
    """Inner product over the last axis as multiply-and-sum: under ``vmap`` this fuses,
    where a batched ``dot`` of two vectors becomes a slow tiny batched matmul on CPU."""
    return jnp.sum(a * b, axis=-1)


def logistic_terms(z: Float[Array, " n"], y: Float[Array, " n"]):
    r"""Loss, first and second derivative of :math:`\ell(z) = \log(1 + e^{-y z})` in ``z``.

    **Returns:** ``(loss, g, D)`` with :math:`g = -y\,\sigma(-yz)` and
    :math:`D = \sigma(z)\sigma(-z)`; all finite for any finite ``z``.
    """
    m = y * z
    s = jax.nn.sigmoid(-m)
    return jax.nn.softplus(-m), -y * s, s * (1.0 - s)


def exact_line_search(
    z: Float[Array, " n"],
    dz: Float[Array, " n"],
    y: Float[Array, " n"],
    lam: Float[Array, ""],
    c1: Float[Array, ""],
    c2: Float[Array, ""],
    steps: int,
) -> Float[Array, ""]:
    r"""Minimise :math:`\varphi(t) = \sum_i \ell(z_i + t\,\Delta z_i) + \frac{\lambda}{2}(c_0 + 2tc_1 + t^2c_2)`.

    The margins are affine in the step, so each evaluation costs O(n) once
    :math:`\Delta z` is known. Safeguarded Newton on :math:`\varphi'` from :math:`t = 1`:
    a bracket :math:`[lo, hi]` with :math:`\varphi'(lo) < 0 \le \varphi'(hi)` is kept,
    steps leaving it are replaced by bisection (or by quadrupling while no upper end is
    known). :math:`\varphi` is strictly convex for :math:`\lambda c_2 > 0`. The step is
    capped so that no margin moves by more than ``MAX_MARGIN_STEP`` (a trust region on
    the margins: the loss is linear or flat beyond that), which keeps iterates finite
    when a direction is badly scaled, e.g. at a tiny ridge on separable data.

    **Arguments:** margins ``z``, their change ``dz`` along the direction, labels, ridge
    ``lam``, the penalty inner products ``c1 = <theta, G dtheta>``,
    ``c2 = <dtheta, G dtheta>``, and the number of safeguarded Newton ``steps``.

    **Returns:** the step ``t >= 0`` (finite).
    """
    dt = z.dtype

    def body(_, carry):
        t, lo, hi = carry
        _, g, D = logistic_terms(z + t * dz, y)
        d1 = vdot(g, dz) + lam * (c1 + t * c2)
        d2 = vdot(D, dz * dz) + lam * c2
        lo = jnp.where(d1 < 0, t, lo)
        hi = jnp.where(d1 < 0, hi, t)
        tn = t - d1 / d2
        inside = jnp.isfinite(tn) & (tn > lo) & (tn < hi)
        fallback = jnp.where(jnp.isfinite(hi), 0.5 * (lo + hi), 4.0 * t)
        return jnp.where(inside, tn, fallback), lo, hi

    reach = jnp.max(jnp.abs(dz))
    t_max = jnp.where(reach > 0, MAX_MARGIN_STEP / jnp.where(reach > 0, reach, 1.0), jnp.inf)
    init = (jnp.minimum(1.0, t_max).astype(dt), jnp.zeros((), dt), t_max.astype(dt))
    t, _, _ = jax.lax.fori_loop(0, steps, body, init, unroll=True)
    return jnp.where(jnp.isfinite(t), t, 0.0)


def tolerance_met(grad_norm, grad_norm0, decrement, objective, tol):
    r"""The convergence test of every solver, both parts at once:

    - relative gradient: :math:`\lVert\nabla F\rVert_2 \le \mathrm{tol}\,\lVert\nabla F(0)\rVert_2`;
    - (quasi-)Newton decrement: :math:`\tfrac12\nabla F^\top H^{-1}\nabla F \le
      \mathrm{tol}\cdot F`, an estimate of :math:`(F - F^*)/F`.

    The second part matters at a tiny ridge on separable data, where the gradient is
    exponentially small far from the minimiser (the objective is almost flat along
    directions the loss no longer sees) but :math:`H^{-1}` scales like :math:`1/\lambda`.
    """
    return (grad_norm <= tol * grad_norm0) & (0.5 * decrement <= tol * objective)


def finish(
    *, w, b, lam, objective, grad_norm, grad_norm0, decrement, n_iter, failed, tol
) -> RidgeLogisticSolution:
    """Assemble a solution, deciding ``converged`` and ``result`` at the returned point."""
    converged = tolerance_met(grad_norm, grad_norm0, decrement, objective, tol)
    result = jnp.where(
        converged, Result.SUCCESS, jnp.where(failed, Result.NONFINITE, Result.MAX_ITER)
    )
    return RidgeLogisticSolution(
        w=w,
        b=b,
        lam=jnp.asarray(lam, objective.dtype),
        objective=objective,
        grad_norm=grad_norm,
        grad_norm0=grad_norm0,
        decrement=decrement,
        n_iter=n_iter,
        converged=converged,
        result=result,
    )

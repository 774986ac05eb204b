r"""Damped Newton for ridge-logistic regression, in the representer (dual) form when
:math:`n < d` and in the primal form otherwise.

**Primal** (:math:`\theta = w \in \mathbb R^d`, :math:`z = Xw + b`): the Newton system is
:math:`A\,\Delta w = -(X^\top g + \lambda w)` with :math:`A = X^\top D X + \lambda I`,
one Cholesky factorisation of a :math:`d\times d` matrix per step.

**Representer** (:math:`w = X^\top a`, :math:`\theta = a \in \mathbb R^n`, :math:`z = Ka + b`,
:math:`K = XX^\top`): pushing the primal step through :math:`X^\top` gives
:math:`\Delta a = -M(g + \lambda a)` with :math:`M = (\lambda I + DK)^{-1}`. By Woodbury,
:math:`M v = \lambda^{-1}\bigl(v - D^{1/2} C^{-1} D^{1/2} K v\bigr)` with the SPD matrix
:math:`C = \lambda I + D^{1/2} K D^{1/2}`: one :math:`n\times n` Cholesky per step, no
division by :math:`D` (which underflows on separable data).

**Intercept** (unpenalised): both forms solve the bordered system by its Schur
complement. With :math:`u_1 = M r`, :math:`u_2 = M\,\mathrm{rhs}_b` (``rhs_b`` is
:math:`D\mathbf 1` in the representer form, :math:`X^\top D \mathbf 1` in the primal),

.. math::

    \Delta b = \frac{D^\top \Phi u_1 - \mathbf 1^\top g}{\mathbf 1^\top D\mathbf 1 - D^\top \Phi u_2},
    \qquad \Delta\theta = -(u_1 + \Delta b\, u_2),

where :math:`\Phi` maps :math:`\theta` to margins (:math:`K` or :math:`X`). The denominator
is a Schur complement of a PSD matrix and is floored at a tiny positive value.

Each step is followed by an exact line search on the margins, so the objective is
never evaluated at an overflowing point. When rounding spoils the Newton direction
(a ridge far below the curvature in float32), the step falls back to steepest descent.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float

from ..core._linalg import cholesky
from ._logistic import (
    RidgeLogisticSolution,
    exact_line_search,
    finish,
    logistic_terms,
    tolerance_met,
    vdot,
)


def _cholesky_solver(A):
    L = cholesky(A)

    def solve(v):
        u = jsl.solve_triangular(L, v, lower=True)
        return jsl.solve_triangular(L, u, lower=True, trans="T")

    return solve


# A Newton step costs a factorisation; a line-search step costs O(n). Search precisely:
# far below the curvature in float32 the step may be a steepest-descent fallback.
LINE_SEARCH_STEPS = 6


class _PrimalForm(eqx.Module):
    X: Float[Array, "n d"]

    def size(self):
        return self.X.shape[1]

    def phi(self, theta):
        return self.X @ theta

    def residual(self, g, theta, lam):
        return self.X.T @ g + lam * theta

    def grad_norm2(self, r):
        return vdot(r, r)

    def factor(self, D, lam):
        A = self.X.T @ (D[:, None] * self.X) + lam * jnp.eye(self.X.shape[1], dtype=D.dtype)
        return _cholesky_solver(A)

    def rhs_b(self, D):
        return self.X.T @ D

    def penalty_inner(self, u, dtheta, dphi):
        return vdot(u, dtheta)

    def weights(self, theta):
        return theta

    def coordinates(self, w):
        """The form's coordinates of the weights ``w`` (here ``w`` itself)."""
        return w


class _RepresenterForm(eqx.Module):
    X: Float[Array, "n d"]
    K: Float[Array, "n n"]

    def size(self):
        return self.K.shape[0]

    def phi(self, theta):
        return self.K @ theta

    def residual(self, g, theta, lam):
        return g + lam * theta

    def grad_norm2(self, r):
        return jnp.maximum(vdot(r, self.K @ r), 0.0)

    def factor(self, D, lam):
        sD = jnp.sqrt(D)
        C = sD[:, None] * self.K * sD[None, :] + lam * jnp.eye(self.K.shape[0], dtype=D.dtype)
        solve_C = _cholesky_solver(C)
        return lambda v: (v - sD * solve_C(sD * (self.K @ v))) / lam

    def rhs_b(self, D):
        return D

    def penalty_inner(self, u, dtheta, dphi):
        return vdot(u, dphi)

    def weights(self, theta):
        # a row vector times X, not X.T times a vector: XLA's CPU backend turns the
        # latter into a transposed copy of X fused into a loop, far slower than this
        # product (benchmarks/raptor_protocol.py refits in this form at n < d)
        return theta @ self.X

    def coordinates(self, w):
        """None: weights have no cheap exact representer coordinates (a warm start is
        dropped)."""
        return None


def newton_form(X: Float[Array, "n d"], gram: Float[Array, "n n"] | None = None):
    """The cheaper Newton form for this shape: representer when ``n < d`` (using
    ``gram`` :math:`= XX^\top` when the caller has it)."""
    n, d = X.shape
    if n < d:
        return _RepresenterForm(X, X @ X.T if gram is None else gram)
    return _PrimalForm(X)


class _State(eqx.Module):
    theta: Array
    b: Array
    z: Array
    g: Array
    D: Array
    r: Array
    grad_norm: Array
    objective: Array
    decrement: Array
    k: Array
    failed: Array


def _evaluate(form, y, lam, theta, b, z, decrement, k, failed, fit_intercept):
    loss, g, D = logistic_terms(z, y)
    r = form.residual(g, theta, lam)
    gb = jnp.sum(g) if fit_intercept else jnp.zeros((), z.dtype)
    grad_norm = jnp.sqrt(form.grad_norm2(r) + gb**2)
    objective = jnp.sum(loss) + 0.5 * lam * form.penalty_inner(theta, theta, z - b)
    return _State(theta, b, z, g, D, r, grad_norm, objective, decrement, k, failed)


def newton_solve(
    form,
    y: Float[Array, " n"],
    lam,
    *,
    fit_intercept: bool,
    tol,
    max_iter: int,
    init: tuple[Array, Array] | None = None,
) -> RidgeLogisticSolution:
    """Run damped Newton until :func:`tolerance_met` or ``max_iter`` steps, from zero or
    from ``init = (theta, b)`` in the form's coordinates (a warm start; ignored where
    not finite). The stopping rule is the same either way: the gradient tolerance is
    relative to the gradient at zero."""
    dt = y.dtype
    n, p = y.shape[0], form.size()
    zero = jnp.zeros((), dt)

    def at(theta, b, z):  # the solver state at a starting point
        inf = jnp.full((), jnp.inf, dt)
        return _evaluate(
            form, y, lam, theta, b, z, inf, jnp.array(0), jnp.array(False), fit_intercept
        )

    s0 = at(jnp.zeros(p, dt), zero, jnp.zeros(n, dt))
    g0 = s0.grad_norm
    if init is not None:
        theta, b = (jnp.asarray(v, dt) for v in init)
        b = b if fit_intercept else zero
        usable = jnp.all(jnp.isfinite(theta)) & jnp.isfinite(b)
        theta, b = jnp.where(usable, theta, 0.0), jnp.where(usable, b, 0.0)
        s0 = at(theta, b, form.phi(theta) + b)
    s0 = eqx.tree_at(lambda s: s.decrement, s0, jnp.where(g0 > 0, jnp.inf, 0.0).astype(dt))
    tiny = jnp.finfo(dt).tiny

    def cond(s):
        # Aim below tol: the margins are updated incrementally and the final, exact
        # recomputation must still pass.
        done = tolerance_met(s.grad_norm, g0, s.decrement, s.objective, 0.5 * tol)
        return (~done) & (s.k < max_iter) & (~s.failed)

    def body(s):
        solve = form.factor(s.D, lam)
        u1 = solve(s.r)
        if fit_intercept:
            u2 = solve(form.rhs_b(s.D))
            sD = jnp.sum(s.D)
            num = vdot(s.D, form.phi(u1)) - jnp.sum(s.g)
            den = jnp.maximum(sD - vdot(s.D, form.phi(u2)), sD * jnp.finfo(dt).eps + tiny)
            db = num / den
            dtheta = -(u1 + db * u2)
        else:
            db = zero
            dtheta = -u1
        dphi = form.phi(dtheta)
        slope = vdot(s.g, dphi + db) + lam * form.penalty_inner(s.theta, dtheta, dphi)
        newton_ok = jnp.isfinite(slope) & (slope < 0)
        # A Newton direction spoilt by rounding (ridge far below the curvature in low
        # precision) falls back to steepest descent, which is always a descent direction.
        sd_b = -jnp.sum(s.g) if fit_intercept else zero
        dtheta = jnp.where(newton_ok, dtheta, -s.r)
        db = jnp.where(newton_ok, db, sd_b)
        dphi = jnp.where(newton_ok, dphi, -form.phi(s.r))
        finite = jnp.all(jnp.isfinite(dphi)) & jnp.isfinite(db)
        dtheta, dphi, db = (jnp.where(finite, v, 0.0) for v in (dtheta, dphi, db))
        c1 = form.penalty_inner(s.theta, dtheta, dphi)
        c2 = form.penalty_inner(dtheta, dtheta, dphi)
        t = exact_line_search(s.z, dphi + db, y, lam, c1, c2, LINE_SEARCH_STEPS)
        decrement = jnp.where(newton_ok, -slope, jnp.inf)
        return _evaluate(
            form,
            y,
            lam,
            s.theta + t * dtheta,
            s.b + t * db,
            s.z + t * (dphi + db),
            decrement,
            s.k + 1,
            ~finite,
            fit_intercept,
        )

    s = jax.lax.while_loop(cond, body, s0)
    # Margins were updated incrementally; recompute them once so that the reported
    # gradient and objective are those of the returned point. The decrement is the last
    # step's (an over-estimate at the returned point).
    z = form.phi(s.theta) + s.b
    s = _evaluate(form, y, lam, s.theta, s.b, z, s.decrement, s.k, s.failed, fit_intercept)
    return finish(
        w=form.weights(s.theta),
        b=s.b,
        lam=lam,
        objective=s.objective,
        grad_norm=s.grad_norm,
        grad_norm0=g0,
        decrement=s.decrement,
        n_iter=s.k,
        failed=s.failed,
        tol=tol,
    )

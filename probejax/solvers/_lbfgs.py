r"""Preconditioned L-BFGS for ridge-logistic regression on the reduced design.

In the coordinates of :func:`probejax.solvers._design.reduce_design` the problem is

.. math::

    \min_{\beta, b}\; \sum_i \ell\bigl(y_i (F\beta + b)_i\bigr) + \tfrac{\lambda}{2}\lVert\beta\rVert^2,
    \qquad F^\top F = S \text{ diagonal},

with gradient :math:`(\mathbf 1^\top g,\; F^\top g + \lambda\beta)` and Hessian
:math:`\tilde F^\top D \tilde F + \mathrm{diag}(0, \lambda I)`. The L-BFGS two-loop
recursion (history of ``HISTORY`` pairs) starts from the preconditioner

.. math::

    H_0 = \mathrm{diag}\bigl(n\bar D,\; \bar D\, s + \lambda\bigr), \qquad
    \bar D = \tfrac1n \textstyle\sum_i D_i,

the Hessian with the curvatures :math:`D_i` replaced by their mean. It is exact at
:math:`\beta = 0` (where :math:`D = 1/4`) whenever the intercept column is orthogonal to
:math:`F` (centred data), so the first step is a Newton step, and the eigen-spread of
:math:`X` never enters the conditioning. Steps use the exact line search on the margins
(a few safeguarded Newton steps; exactness is not needed by L-BFGS). Each iteration
costs two products with :math:`F` (:math:`O(nr)`); vmapped over a ridge grid these are
matrix-matrix products, and the rest is elementwise.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._design import ReducedDesign
from ._logistic import (
    RidgeLogisticSolution,
    exact_line_search,
    finish,
    logistic_terms,
    tolerance_met,
    vdot,
)

HISTORY = 4
# L-BFGS needs a good step, not the exact minimiser along the line: three safeguarded
# Newton steps on the margins (measured faster overall than six).
LINE_SEARCH_STEPS = 3
# Ridges per vmapped chunk of a warm-started path (lbfgs_path).
PATH_CHUNK = 4


class _State(eqx.Module):
    theta: Array  # (r + 1,): intercept first, then beta
    z: Array
    G: Array
    D: Array
    S: Array
    Y: Array
    rho: Array
    k: Array
    grad_norm: Array
    objective: Array
    decrement: Array
    failed: Array


def _gradient(design, y, lam, theta, z, fit_intercept):
    loss, g, D = logistic_terms(z, y)
    gb = jnp.sum(g) if fit_intercept else jnp.zeros((), z.dtype)
    G = jnp.concatenate([gb[None], design.F.T @ g + lam * theta[1:]])
    objective = jnp.sum(loss) + 0.5 * lam * vdot(theta[1:], theta[1:])
    return G, D, objective


def _two_loop(G, S, Y, rho, h0):
    """:math:`H G` by the two-loop recursion; history rows are oldest first, and empty
    rows have ``rho = 0`` (no-ops). Static indices: no gathers inside the loop."""
    m = S.shape[0]
    q, a = G, [None] * m
    for j in reversed(range(m)):
        a[j] = rho[j] * vdot(S[j], q)
        q = q - a[j] * Y[j]
    r = h0 * q
    for j in range(m):
        r = r + S[j] * (a[j] - rho[j] * vdot(Y[j], r))
    return r


def _push(H, row):
    """Append ``row`` as the newest history entry, dropping the oldest."""
    return jnp.concatenate([H[1:], row[None]])


def lbfgs_run(
    design: ReducedDesign,
    y: Float[Array, " n"],
    lam,
    *,
    fit_intercept: bool,
    tol,
    max_iter: int,
    history: int = HISTORY,
    init: Float[Array, " r1"] | None = None,
) -> tuple[RidgeLogisticSolution, Float[Array, " r1"]]:
    """Run preconditioned L-BFGS until :func:`tolerance_met` or ``max_iter``.

    ``init``: a starting point ``(b, beta)`` in the reduced coordinates (a warm start,
    e.g. the solution at a neighbouring ridge); zero when ``None``. The stopping rule
    is the same either way: the gradient tolerance is relative to the gradient at zero.

    **Returns:** the solution and its reduced coordinates ``(b, beta)`` (a warm start
    for the next ridge).
    """
    F = design.F
    n, r = F.shape
    dt = F.dtype
    floor_b = n * jnp.finfo(dt).eps
    zeros = jnp.zeros(r + 1, dt)
    at_zero = _gradient(design, y, lam, zeros, jnp.zeros(n, dt), fit_intercept)
    g0 = jnp.sqrt(vdot(at_zero[0], at_zero[0]))
    if init is None:
        theta0, z0 = zeros, jnp.zeros(n, dt)
        G0, D0, F0 = at_zero
    else:
        theta0 = jnp.asarray(init, dt)
        if not fit_intercept:
            theta0 = theta0.at[0].set(0.0)
        z0 = F @ theta0[1:] + theta0[0]
        G0, D0, F0 = _gradient(design, y, lam, theta0, z0, fit_intercept)
    s0 = _State(
        theta0,
        z0,
        G0,
        D0,
        jnp.zeros((history, r + 1), dt),
        jnp.zeros((history, r + 1), dt),
        jnp.zeros(history, dt),
        jnp.array(0),
        jnp.sqrt(vdot(G0, G0)),
        F0,
        jnp.where(g0 > 0, jnp.inf, 0.0).astype(dt),
        jnp.array(False),
    )

    def cond(s):
        # Aim below tol: the margins are updated incrementally and the final, exact
        # recomputation must still pass.
        done = tolerance_met(s.grad_norm, g0, s.decrement, s.objective, 0.5 * tol)
        return (~done) & (s.k < max_iter) & (~s.failed)

    def body(s):
        c = jnp.mean(s.D)
        h0 = 1.0 / jnp.concatenate([jnp.maximum(n * c, floor_b)[None], c * design.s + lam])
        p = -_two_loop(s.G, s.S, s.Y, s.rho, h0)
        if not fit_intercept:
            p = p.at[0].set(0.0)
        finite = jnp.all(jnp.isfinite(p))
        p = jnp.where(finite, p, 0.0)
        dz = F @ p[1:] + p[0]
        t = exact_line_search(
            s.z, dz, y, lam, vdot(s.theta[1:], p[1:]), vdot(p[1:], p[1:]), LINE_SEARCH_STEPS
        )
        step = t * p
        theta = s.theta + step
        z = s.z + t * dz
        G, D, objective = _gradient(design, y, lam, theta, z, fit_intercept)
        yv = G - s.G
        sy = vdot(step, yv)
        keep = sy > jnp.finfo(dt).eps * jnp.sqrt(vdot(step, step)) * jnp.sqrt(vdot(yv, yv))
        # A pair failing the curvature test (rounding) is skipped: history unchanged.
        S = jnp.where(keep, _push(s.S, step), s.S)
        Y = jnp.where(keep, _push(s.Y, yv), s.Y)
        rho = jnp.where(keep, _push(s.rho, 1.0 / jnp.where(keep, sy, 1.0)), s.rho)
        decrement = jnp.where(finite, -vdot(s.G, p), jnp.inf)
        return _State(
            theta, z, G, D, S, Y, rho, s.k + 1, jnp.sqrt(vdot(G, G)), objective, decrement, ~finite
        )

    s = jax.lax.while_loop(cond, body, s0)
    z = F @ s.theta[1:] + s.theta[0]
    G, _, objective = _gradient(design, y, lam, s.theta, z, fit_intercept)
    grad_norm = jnp.sqrt(vdot(G, G))
    sol = finish(
        w=design.lift(s.theta[1:]),
        b=s.theta[0],
        lam=lam,
        objective=objective,
        grad_norm=grad_norm,
        grad_norm0=g0,
        decrement=s.decrement,
        n_iter=s.k,
        failed=s.failed,
        tol=tol,
    )
    return sol, s.theta


def lbfgs_solve(design: ReducedDesign, y, lam, **kwargs) -> RidgeLogisticSolution:
    """:func:`lbfgs_run`'s solution alone (same arguments)."""
    return lbfgs_run(design, y, lam, **kwargs)[0]


def lbfgs_path(
    design: ReducedDesign,
    y: Float[Array, " n"],
    lams: Float[Array, " L"],
    *,
    fit_intercept: bool,
    tol,
    max_iter: int,
    chunk: int = PATH_CHUNK,
    history: int = HISTORY,
) -> RidgeLogisticSolution:
    r"""A ridge grid by warm-started continuation, ``chunk`` ridges at a time.

    The grid is sorted from the largest ridge (the easiest problem, the smallest
    solution) down and cut into chunks; each chunk is solved as one vmapped program
    (matrix-matrix products over its ridges) started from the solution at the smallest
    ridge of the chunk before. From zero, the iterations grow several-fold towards the
    smallest ridges, and a vmapped loop runs as long as its slowest lane: the warm
    start shortens the slow lanes, the chunks keep fast lanes from waiting on them.
    Each ridge has the stopping rule of :func:`lbfgs_run`; fields come back in the
    order of ``lams``.
    """
    L = lams.shape[0]
    chunk = max(1, min(chunk, L))
    n_chunks = -(-L // chunk)
    order = jnp.argsort(-lams)
    ordered = lams[order]
    padded = jnp.concatenate([ordered, jnp.repeat(ordered[-1:], n_chunks * chunk - L)])

    def one(theta, lam):
        return lbfgs_run(
            design,
            y,
            lam,
            fit_intercept=fit_intercept,
            tol=tol,
            max_iter=max_iter,
            history=history,
            init=theta,
        )

    def step(carry, lam_chunk):
        theta_a, log_a, theta_b, log_b = carry
        # secant predictor in log(lam) from the two smallest ridges solved so far
        slope = (theta_b - theta_a) / jnp.where(log_b != log_a, log_b - log_a, 1.0)
        starts = theta_b + (jnp.log(lam_chunk) - log_b)[:, None] * slope
        sols, thetas = jax.vmap(one)(starts, lam_chunk)
        logs = jnp.log(lam_chunk)
        # the two smallest ridges solved so far: the chunk's last two, or with one ridge
        # per chunk the previous chunk's and this one
        if chunk > 1:
            return (thetas[-2], logs[-2], thetas[-1], logs[-1]), sols
        return (theta_b, log_b, thetas[-1], logs[-1]), sols

    theta0 = jnp.zeros(design.F.shape[1] + 1, design.F.dtype)
    log0 = jnp.log(ordered[0])
    carry0 = (theta0, log0 + 1.0, theta0, log0)
    _, sols = jax.lax.scan(step, carry0, padded.reshape(n_chunks, chunk))
    inverse = jnp.argsort(order)
    return jax.tree.map(lambda a: a.reshape(n_chunks * chunk, *a.shape[2:])[:L][inverse], sols)

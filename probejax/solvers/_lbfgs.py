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
import numpy as np
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
# Newton steps on the margins; more steps cost more per iteration than they save in
# iterations (benchmarks/sweep_scaling.py times the grid path with these constants).
LINE_SEARCH_STEPS = 3
# lbfgs_path: ridges per vmapped chunk of the continuation, the continuation's stride
# through the grid, the degree of its predictor and the nodes of the interpolation. A
# longer stride leaves fewer ridges to the sequential continuation but worse starts to
# the fine stage; a wider chunk widens the sequential programs but runs each chunk as
# long as its slowest ridge (benchmarks/sweep_scaling.py times the grid path).
PATH_CHUNK = 4
PATH_STRIDE = 3
PREDICTOR_DEGREE = 2
INTERPOLATION_NODES = 4


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


def _lagrange(nodes: Float[Array, " K"], t: Float[Array, ""]) -> Float[Array, " K"]:
    r"""Weights :math:`\ell_a(t) = \prod_{b\ne a} (t - t_b)/(t_a - t_b)` of the polynomial
    through ``nodes`` (its value at ``t`` is :math:`\sum_a \ell_a(t)\,\theta_a`); the
    nearest node alone when two nodes coincide (a repeated ridge in the grid)."""
    K = nodes.shape[0]
    diff = nodes[:, None] - nodes[None, :]
    eye = jnp.eye(K, dtype=bool)
    distinct = jnp.all(eye | (diff != 0))
    safe = jnp.where(eye | (diff == 0), 1.0, diff)
    w = jnp.prod(jnp.where(eye, 1.0, (t - nodes[None, :]) / safe), axis=1)
    nearest = jax.nn.one_hot(jnp.argmin(jnp.abs(t - nodes)), K, dtype=nodes.dtype)
    return jnp.where(distinct, w, nearest)


def _continuation(run, lams: Float[Array, " Lc"], chunk: int, r1: int, dtype):
    r"""``run(start, lam) -> (solution, theta)`` along ``lams`` (decreasing), ``chunk``
    ridges per vmapped program, each started from the quadratic through the solutions
    at the three smallest ridges solved so far, extrapolated in :math:`\log\lambda`
    (zero for the first chunk). **Returns** the solutions and their thetas, in order."""
    L = lams.shape[0]
    n_chunks = -(-L // chunk)
    padded = jnp.concatenate([lams, jnp.repeat(lams[-1:], n_chunks * chunk - L)])
    K = PREDICTOR_DEGREE + 1

    def step(carry, lam_chunk):
        thetas, logs = carry  # the K smallest ridges solved so far, oldest first
        t = jnp.log(lam_chunk)
        starts = jax.vmap(lambda ti: _lagrange(logs, ti))(t) @ thetas
        sols, new = jax.vmap(run)(starts, lam_chunk)
        carry = (jnp.concatenate([thetas, new])[-K:], jnp.concatenate([logs, t])[-K:])
        return carry, (sols, new)

    # dummy nodes above the grid with zero solutions: the first prediction is zero
    logs0 = jnp.log(lams[0]) + jnp.arange(K, 0, -1).astype(dtype)
    _, out = jax.lax.scan(step, (jnp.zeros((K, r1), dtype), logs0), padded.reshape(n_chunks, chunk))
    return jax.tree.map(lambda a: a.reshape(n_chunks * chunk, *a.shape[2:])[:L], out)


def lbfgs_path(
    design: ReducedDesign,
    y: Float[Array, " n"],
    lams: Float[Array, " L"],
    *,
    fit_intercept: bool,
    tol,
    max_iter: int,
    chunk: int = PATH_CHUNK,
    stride: int = PATH_STRIDE,
    history: int = HISTORY,
) -> RidgeLogisticSolution:
    r"""A ridge grid in two stages: warm-started continuation on every ``stride``-th
    ridge, then all the others at once from interpolated starts.

    With the grid sorted from the largest ridge (the easiest problem, the smallest
    solution) down, :math:`\lambda_0 > \lambda_1 > \dots`:

    1. *coarse*: :math:`\lambda_0, \lambda_s, \lambda_{2s}, \dots` and the smallest ridge,
       solved by continuation, ``chunk`` ridges per vmapped program, each started from
       the quadratic in :math:`t = \log\lambda` through the three smallest coarse
       solutions so far (error :math:`O(h^3)` in the step :math:`h`, where reusing the
       last solution is :math:`O(h)`);
    2. *fine*: every other ridge in one vmapped program started from the cubic in
       :math:`t` through the four nearest coarse solutions (an interpolation, error
       :math:`O(h^4)`: a handful of iterations).

    From zero the iterations grow several-fold towards the smallest ridges; the
    continuation is sequential and its programs are narrow, so the fewer ridges it
    solves the better, while the fine stage is one wide program (matrix-matrix products
    over all its ridges) that runs as long as its slowest lane. Each ridge has the
    stopping rule of :func:`lbfgs_run`; fields come back in the order of ``lams``.
    """
    L = lams.shape[0]
    r1 = design.F.shape[1] + 1
    dt = design.F.dtype
    order = jnp.argsort(-lams)
    ordered = lams[order]
    coarse = np.unique(np.r_[np.arange(0, L, max(1, stride)), L - 1])
    fine = np.setdiff1d(np.arange(L), coarse)

    def run(theta, lam):
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

    sols, thetas = _continuation(run, ordered[coarse], max(1, min(chunk, coarse.size)), r1, dt)
    if fine.size:
        # the INTERPOLATION_NODES coarse ridges around each fine one (static positions)
        k = min(INTERPOLATION_NODES, coarse.size)
        left = np.searchsorted(coarse, fine) - 1
        window = np.clip(left - (k // 2 - 1), 0, coarse.size - k)[:, None] + np.arange(k)
        t = jnp.log(ordered)
        weights = jax.vmap(_lagrange)(t[coarse][window], t[fine])
        starts = jnp.einsum("fk,fkr->fr", weights, thetas[window])
        sols_fine, _ = jax.vmap(run)(starts, ordered[fine])
        position = np.argsort(np.r_[coarse, fine])
        sols = jax.tree.map(lambda a, b: jnp.concatenate([a, b])[position], sols, sols_fine)
    inverse = jnp.argsort(order)
    return jax.tree.map(lambda a: a[inverse], sols)

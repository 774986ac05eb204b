r"""The replica-symmetric / CGMT fixed point of ridge-logistic regression in the Gaussian
teacher-student model (derivation: ``docs/theory/fixed_point.md``).

Channel side, with :math:`\xi\sim\mathcal N(0,1)`, :math:`\omega = \sqrt q\,\xi`,
:math:`\omega_0 = (m/\sqrt q)\,\xi`, :math:`V_0 = \rho - m^2/q`, and the proximal terms
:math:`f, \partial_\omega f` of :func:`probejax.solvers._prox.prox_terms`:

.. math::

    \hat m = \alpha\sum_y \mathbb E_\xi[\partial_{\omega_0} Z_0\, f],\quad
    \hat q = \alpha\sum_y \mathbb E_\xi[Z_0 f^2],\quad
    \hat V = -\alpha\sum_y \mathbb E_\xi[Z_0\,\partial_\omega f];

the channels are symmetric under :math:`(y, \xi) \to (-y, -\xi)`, so the :math:`y = -1`
term equals the :math:`y = +1` term and the sum is twice the latter. Prior side (ridge):

.. math::

    V = \frac{1}{\lambda + \hat V},\quad m = \frac{\rho\hat m}{\lambda + \hat V},\quad
    q = \frac{\rho\hat m^2 + \hat q}{(\lambda + \hat V)^2}.

The solver works in unconstrained coordinates :math:`x = (\operatorname{atanh}(m/\sqrt{\rho q}),
\log q, \log V)` on the residual :math:`R(x) = x(T(x)) - x` of one sweep
:math:`T` = channel then prior, with the theory's one solver (:mod:`._solver`: damped
sweeps, then trust-region Newton with backtracking). It returns a status per point and
never raises. Derivatives of the solution with respect to the parameters :math:`p` use
the implicit function theorem, :math:`dx^* = -(\partial_x R)^{-1}\partial_p R\,dp`,
never the iterations.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..solvers._prox import prox_terms
from ._channels import channel_scale, partition
from ._quadrature import Quadrature, gaussian_rule
from ._solver import FixedPointSolver, default_tol

# Coordinates (atanh(m / sqrt(rho q)), log q, log V): q and V are bounded.
SOLVER = FixedPointSolver(log_bounded=(1, 2), picard_steps=8, max_iter=200)


class Params(eqx.Module):
    """The swept scalars of one point: sample ratio ``alpha``, ridge ``lam`` and the
    teacher (a :class:`probejax.GaussianTeacherStudent`)."""

    alpha: Float[Array, ""]
    lam: Float[Array, ""]
    model: eqx.Module


class FixedPoint(eqx.Module):
    """Order parameters and conjugates at the solution, with the solver's status.

    ``residual`` is :math:`\\lVert R\\rVert_\\infty`; ``converged`` means
    ``residual <= tol``; ``status`` a :class:`probejax.theory.Status` code (the report
    of :class:`probejax.theory.FixedPointSolver`).
    """

    m: Float[Array, ""]
    q: Float[Array, ""]
    V: Float[Array, ""]
    mh: Float[Array, ""]
    qh: Float[Array, ""]
    Vh: Float[Array, ""]
    residual: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    status: Int[Array, ""]


def outer_rule(model, m, q, V, quad: Quadrature, lo=None, hi=None):
    """The :math:`\\xi` rule for the :math:`y = +1` channel terms on ``[lo, hi]`` (default
    :math:`[-L, L]`), graded at the teacher's transition (0) and at the proximal map's
    corners (:math:`0`, :math:`-V/\\sqrt q`); ``lo``/``hi`` are breakpoints themselves."""
    sq = jnp.sqrt(q)
    V0 = jnp.maximum(model.rho - m**2 / q, 0.0)
    teacher_width = channel_scale(model, V0) * sq / jnp.maximum(jnp.abs(m), 1e-300)
    h0 = jnp.minimum(1.0 / sq, teacher_width)
    L = quad.half_width
    lo = -L if lo is None else lo
    hi = L if hi is None else hi
    features = [(0.0, h0), (-V / sq, 1.0 / sq)]
    return gaussian_rule(lo, hi, features, quad), V0


def channel_update(p: Params, m, q, V, quad: Quadrature):
    """:math:`(\\hat m, \\hat q, \\hat V)` from :math:`(m, q, V)` (module docstring)."""
    (xi, w), V0 = outer_rule(p.model, m, q, V, quad)
    sq = jnp.sqrt(q)
    Z, dZ = partition(p.model, 1.0, (m / sq) * xi, V0, quad)
    _, f, df = prox_terms(1.0, sq * xi, V)
    two_alpha = 2.0 * p.alpha
    return (
        two_alpha * jnp.sum(w * dZ * f),
        two_alpha * jnp.sum(w * Z * f**2),
        -two_alpha * jnp.sum(w * Z * df),
    )


def prior_update(p: Params, mh, qh, Vh):
    """:math:`(m, q, V)` from the conjugates (ridge prior, teacher power ``rho``)."""
    V = 1.0 / (p.lam + Vh)
    rho = p.model.rho
    return rho * mh * V, (rho * mh**2 + qh) * V**2, V


def to_coords(rho, m, q, V):
    return jnp.stack([jnp.arctanh(m / jnp.sqrt(rho * q)), jnp.log(q), jnp.log(V)])


def from_coords(rho, x):
    q = jnp.exp(x[1])
    return jnp.tanh(x[0]) * jnp.sqrt(rho * q), q, jnp.exp(x[2])


def residual(x, p: Params, quad: Quadrature):
    """:math:`R(x) = x(T(x)) - x` in the solver's coordinates."""
    m, q, V = from_coords(p.model.rho, x)
    return to_coords(p.model.rho, *prior_update(p, *channel_update(p, m, q, V, quad))) - x


def _initial(p: Params):
    V = 1.0 / (p.lam + 0.25 * p.alpha)
    return jnp.stack(
        [jnp.asarray(0.5, V.dtype), jnp.log(jnp.asarray(0.5, V.dtype) * p.model.rho), jnp.log(V)]
    )


def solve_fixed_point(
    model,
    alpha,
    lam,
    *,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int | None = None,
    init: FixedPoint | None = None,
) -> FixedPoint:
    """Solve the fixed point at one point (vmap over any of ``alpha``, ``lam`` or the
    model's array parameters; differentiable in all of them).

    **Arguments:** ``model`` (:class:`probejax.GaussianTeacherStudent`: channel, rho,
    beta, delta, eps), ``alpha = n/d > 0``, ``lam >= 0`` (``lam = 0`` is the
    unregularised estimator, which exists only beyond the separability threshold),
    ``quad``, ``tol`` on :math:`\\lVert R\\rVert_\\infty` (default 1e-10 in float64, 1e-5 in
    float32), ``max_iter`` damped and Newton iterations (default ``SOLVER.max_iter``,
    200), ``init`` a nearby converged :class:`FixedPoint` to start from (continuation
    along a grid: no damped warm-up).

    **Returns:** :class:`FixedPoint`.
    """
    dtype = jnp.zeros(()).dtype
    p = Params(
        jnp.asarray(alpha, dtype),
        jnp.asarray(lam, dtype),
        jax.tree.map(lambda a: jnp.asarray(a, dtype), model),
    )
    return _solve(p, init, quad=quad, tol=default_tol(tol), solver=SOLVER.with_max_iter(max_iter))


@eqx.filter_jit
def _solve(
    p: Params, init, *, quad: Quadrature, tol: float, solver: FixedPointSolver
) -> FixedPoint:
    # Compiled once per (channel, quadrature, tol, solver, dtype, init or not): the
    # swept values are traced leaves of ``p``.
    warm = None if init is None else to_coords(p.model.rho, init.m, init.q, init.V)
    sol = solver.solve(residual, _initial(p), p, (quad,), tol=tol, warm=warm)
    m, q, V = from_coords(p.model.rho, sol.x)
    mh, qh, Vh = channel_update(p, m, q, V, quad)
    keep = sol.keep
    return FixedPoint(
        m=keep(m),
        q=keep(q),
        V=keep(V),
        mh=keep(mh),
        qh=keep(qh),
        Vh=keep(Vh),
        residual=sol.residual,
        n_iter=sol.n_iter,
        converged=sol.converged,
        status=sol.status,
    )

r"""The replica-symmetric / CGMT fixed point of ridge-logistic regression in the Gaussian
teacher-student model (derivation: ``theory/fixed_point.md``).

Channel side, with :math:`\xi\sim\mathcal N(0,1)`, :math:`\omega = \sqrt q\,\xi`,
:math:`\omega_0 = (m/\sqrt q)\,\xi`, :math:`V_0 = \rho - m^2/q`, and the proximal terms
:math:`f, \partial_\omega f` of :mod:`._prox`:

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
:math:`T` = channel then prior: a few damped (Picard) sweeps, then Newton steps (Jacobian
by forward differentiation, steps clipped to a trust region) that are kept only when
they reduce :math:`\lVert R\rVert_2` (backtracking by halving), damped sweeps otherwise. It returns a status per
point and never raises. Derivatives of the solution with respect to the parameters
:math:`p` use the implicit function theorem, :math:`dx^* = -(\partial_x R)^{-1}\partial_p R\,dp`,
never the iterations.
"""

from __future__ import annotations

import enum
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._channels import channel_scale, partition
from ._prox import prox_terms
from ._quadrature import Quadrature, gaussian_rule

PICARD_STEPS = 8
DAMPING = 0.5
TRUST = 2.0
BACKTRACKS = 5
Q_MAX = 1e12


class Status(enum.IntEnum):
    CONVERGED = 0
    MAX_ITER = 1  # no convergence within max_iter
    DIVERGED = 2  # q or V left (0, Q_MAX) or became non-finite: no fixed point found


class Params(eqx.Module):
    """The swept scalars of one point: sample ratio ``alpha``, ridge ``lam`` and the
    teacher (a :class:`probejax.GaussianTeacherStudent`)."""

    alpha: Float[Array, ""]
    lam: Float[Array, ""]
    model: eqx.Module


class FixedPoint(eqx.Module):
    """Order parameters and conjugates at the solution, with the solver's status.

    ``residual`` is :math:`\\lVert R\\rVert_\\infty`; ``converged`` means
    ``residual <= tol``; ``status`` a :class:`Status` code.
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


def _healthy(x):
    return (
        jnp.all(jnp.isfinite(x))
        & (jnp.abs(x[1]) < jnp.log(Q_MAX))
        & (jnp.abs(x[2]) < jnp.log(Q_MAX))
    )


def _norm(r):
    return jnp.where(jnp.all(jnp.isfinite(r)), jnp.max(jnp.abs(r)), jnp.inf)


def _norm2(r):
    return jnp.where(jnp.all(jnp.isfinite(r)), jnp.sqrt(jnp.sum(r * r)), jnp.inf)


def _iterate(p: Params, quad: Quadrature, tol, max_iter, x0, picard_steps):
    R = partial(residual, p=p, quad=quad)

    def picard(_, x):
        return jnp.where(_healthy(x), x + DAMPING * R(x), x)

    x = jax.lax.fori_loop(0, picard_steps, picard, x0)

    def cond(c):
        x, r, k = c
        return (_norm(r) > tol) & (k < max_iter) & _healthy(x)

    def body(c):
        x, r, k = c
        J = jax.jacfwd(R)(x)
        step = jnp.clip(-jnp.linalg.solve(J, r), -TRUST, TRUST)
        step = jnp.where(jnp.all(jnp.isfinite(step)), step, 0.0)
        target = _norm2(r)

        # Trials: the Newton step, then halvings (accepted once |R|_2 drops: Newton's
        # direction descends it), and last a damped sweep, accepted unconditionally.
        # The residual of the accepted trial is kept, so convergence is detected
        # without another Jacobian.
        def trial(i):
            newton = x + (0.5**i) * step
            return jnp.where(i <= BACKTRACKS, newton, x + DAMPING * r)

        def ls_cond(c):
            _, _, ok, i = c
            return ~ok & (i <= BACKTRACKS + 1)

        def ls_body(c):
            _, _, _, i = c
            xt = trial(i)
            rt = R(xt)
            ok = (i > BACKTRACKS) | (_norm2(rt) < (1 - 1e-4 * 0.5**i) * target)
            return xt, rt, ok, i + 1

        xt, rt, _, _ = jax.lax.while_loop(ls_cond, ls_body, (x, r, False, 0))
        return xt, rt, k + 1

    x, r, k = jax.lax.while_loop(cond, body, (x, R(x), jnp.array(picard_steps)))
    return x, _norm(r), k


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _with_implicit_derivative(x, p: Params, quad: Quadrature):
    return x


@_with_implicit_derivative.defjvp
def _implicit_jvp(quad, primals, tangents):
    x, p = primals
    _, dp = tangents
    J = jax.jacfwd(residual)(x, p, quad)
    _, dR = jax.jvp(lambda p_: residual(x, p_, quad), (p,), (dp,))
    return x, -jnp.linalg.solve(J, dR)


def solve_fixed_point(
    model,
    alpha,
    lam,
    *,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int = 200,
    init: FixedPoint | None = None,
) -> FixedPoint:
    """Solve the fixed point at one point (vmap over any of ``alpha``, ``lam`` or the
    model's array parameters; differentiable in all of them).

    **Arguments:** ``model`` (:class:`probejax.GaussianTeacherStudent`: channel, rho,
    beta, delta, eps), ``alpha = n/d > 0``, ``lam >= 0`` (``lam = 0`` is the
    unregularised estimator, which exists only beyond the separability threshold),
    ``quad``, ``tol`` on :math:`\\lVert R\\rVert_\\infty` (default 1e-10 in float64, 1e-5 in
    float32), ``max_iter`` Newton/damped iterations, ``init`` a nearby converged
    :class:`FixedPoint` to start from (continuation along a grid: no damped warm-up).

    **Returns:** :class:`FixedPoint`.
    """
    dtype = jnp.zeros(()).dtype
    p = Params(
        jnp.asarray(alpha, dtype),
        jnp.asarray(lam, dtype),
        jax.tree.map(lambda a: jnp.asarray(a, dtype), model),
    )
    tol = (1e-10 if dtype == jnp.float64 else 1e-5) if tol is None else float(tol)
    return _solve(p, init, quad=quad, tol=tol, max_iter=int(max_iter))


@eqx.filter_jit
def _solve(p: Params, init, *, quad: Quadrature, tol: float, max_iter: int) -> FixedPoint:
    # Compiled once per (channel, quadrature, tol, max_iter, dtype, init or not): the
    # swept values are traced leaves of ``p``.
    dtype = p.alpha.dtype
    if init is None:
        x0, warmup = _initial(p), PICARD_STEPS
    else:
        x0 = jax.lax.stop_gradient(to_coords(p.model.rho, init.m, init.q, init.V))
        x0, warmup = jnp.where(jnp.all(jnp.isfinite(x0)), x0, _initial(p)), 0
    x, res, k = _iterate(jax.lax.stop_gradient(p), quad, tol, max_iter, x0, warmup)
    x = jax.lax.stop_gradient(x)
    healthy = _healthy(x) & jnp.isfinite(res)
    converged = healthy & (res <= tol)
    status = jnp.where(
        converged, Status.CONVERGED, jnp.where(healthy, Status.MAX_ITER, Status.DIVERGED)
    )
    x = _with_implicit_derivative(x, p, quad)
    m, q, V = from_coords(p.model.rho, x)
    mh, qh, Vh = channel_update(p, m, q, V, quad)
    nan = jnp.asarray(jnp.nan, dtype)
    keep = lambda v: jnp.where(converged, v, nan)
    return FixedPoint(
        m=keep(m),
        q=keep(q),
        V=keep(V),
        mh=keep(mh),
        qh=keep(qh),
        Vh=keep(Vh),
        residual=res,
        n_iter=k,
        converged=converged,
        status=status,
    )

r"""The fixed-point solver shared by every data model of the theory.

A data model supplies a residual :math:`R(x; p) = T(x; p) - x` of one sweep :math:`T`
of its saddle-point equations in unconstrained coordinates :math:`x` (a 1-D array), its
parameters :math:`p` (a pytree of arrays) and a start :math:`x_0`. The solver runs

1. ``picard_steps`` damped sweeps :math:`x \leftarrow x + \eta R(x)` (skipped on a warm
   start), then
2. Newton steps :math:`s = -(\partial_x R)^{-1}R` (Jacobian by forward differentiation),
   each component clipped to ``[-trust, trust]``, tried at :math:`x + 2^{-i}s` for
   :math:`i = 0, \dots,` ``backtracks`` and accepted once
   :math:`\lVert R\rVert_2` drops by the factor :math:`1 - 10^{-4}\,2^{-i}`; if no
   halving does, one damped sweep :math:`x + \eta R(x)` is taken instead,

until :math:`\lVert R\rVert_\infty \le` ``tol``, ``max_iter`` iterations (the warm-up
sweeps count), or :math:`x` leaves the healthy set: finite, with the log-scale
coordinates ``log_bounded`` inside :math:`(-\log q_{\max}, \log q_{\max})`. It returns a
status per point and never raises, so it vmaps. The solution carries the derivative of
the implicit function theorem, :math:`dx^* = -(\partial_x R)^{-1}\partial_p R\,dp`, and
never differentiates the iterations.

:func:`continuation` solves a batch of points along a decreasing ridge grid, each warm
started from the previous ridge's solutions, with a cold retry where a warm start fails.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


class Status(enum.IntEnum):
    CONVERGED = 0
    MAX_ITER = 1  # no convergence within max_iter
    DIVERGED = 2  # a bounded coordinate left (-log q_max, log q_max) or became non-finite


class Solution(eqx.Module):
    """What :meth:`FixedPointSolver.solve` returns: the point ``x`` (carrying the
    implicit derivative), ``residual`` :math:`\\lVert R(x)\\rVert_\\infty`, ``n_iter``
    (warm-up sweeps plus Newton iterations), ``converged`` (healthy and
    ``residual <= tol``) and ``status`` (a :class:`Status` code). Every fixed point of
    the theory reports these four fields with this meaning."""

    x: Float[Array, " k"]
    residual: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    status: Int[Array, ""]

    def keep(self, value):
        """``value`` where converged, NaN elsewhere."""
        return jnp.where(self.converged, value, jnp.asarray(jnp.nan, self.residual.dtype))


def default_tol(tol: float | None = None) -> float:
    """``tol``, or the default for the current float dtype: 1e-10 in float64, 1e-5 in
    float32 (where the Newton residuals stall near 1e-6)."""
    if tol is not None:
        return float(tol)
    return 1e-10 if jnp.zeros(()).dtype == jnp.float64 else 1e-5


def _norm(r):
    return jnp.where(jnp.all(jnp.isfinite(r)), jnp.max(jnp.abs(r)), jnp.inf)


def _norm2(r):
    return jnp.where(jnp.all(jnp.isfinite(r)), jnp.sqrt(jnp.sum(r * r)), jnp.inf)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _with_implicit_derivative(residual, static, x, p):
    return x


@_with_implicit_derivative.defjvp
def _implicit_jvp(residual, static, primals, tangents):
    x, p = primals
    _, dp = tangents
    J = jax.jacfwd(residual)(x, p, *static)
    _, dR = jax.jvp(lambda p_: residual(x, p_, *static), (p,), (dp,))
    return x, -jnp.linalg.solve(J, dR)


class FixedPointSolver(eqx.Module):
    """Damped Picard sweeps, then trust-region Newton with backtracking (module
    docstring). Every field is static: a solver is part of the compiled program, the
    parameters it solves at are traced.

    **Arguments:**

    - ``log_bounded``: indices of the coordinates that are logarithms of positive order
      parameters (:math:`\\log q`, :math:`\\log V`); the point is healthy while each lies
      in :math:`(-\\log q_{\\max}, \\log q_{\\max})`.
    - ``picard_steps``: damped sweeps before Newton on a cold start (>= 0).
    - ``max_iter``: iterations in all, warm-up sweeps included (>= 1).
    - ``damping``: :math:`\\eta \\in (0, 1]` of the damped sweeps.
    - ``trust``: bound on each component of a Newton step (> 0).
    - ``backtracks``: halvings of a Newton step before the damped sweep (>= 0).
    - ``q_max``: bound on the positive order parameters and their inverses (> 1).
    """

    log_bounded: tuple[int, ...] = eqx.field(static=True)
    picard_steps: int = eqx.field(static=True, default=8)
    max_iter: int = eqx.field(static=True, default=200)
    damping: float = eqx.field(static=True, default=0.5)
    trust: float = eqx.field(static=True, default=2.0)
    backtracks: int = eqx.field(static=True, default=5)
    q_max: float = eqx.field(static=True, default=1e12)

    def __check_init__(self):
        checks = (
            ("log_bounded", all(isinstance(i, int) for i in self.log_bounded), "int indices"),
            ("picard_steps", self.picard_steps >= 0, ">= 0"),
            ("max_iter", self.max_iter >= 1, ">= 1"),
            ("damping", 0 < self.damping <= 1, "in (0, 1]"),
            ("trust", self.trust > 0, "> 0"),
            ("backtracks", self.backtracks >= 0, ">= 0"),
            ("q_max", self.q_max > 1, "> 1"),
        )
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(
                    f"FixedPointSolver.{name} must be {valid}, got {getattr(self, name)!r}."
                )

    def with_max_iter(self, max_iter: int | None) -> FixedPointSolver:
        """This solver with ``max_iter`` iterations (unchanged when ``None``)."""
        return self if max_iter is None else dataclasses.replace(self, max_iter=int(max_iter))

    def healthy(self, x) -> Bool[Array, ""]:
        """:math:`x` finite with its log-scale coordinates inside the bounds."""
        logs = x[jnp.asarray(self.log_bounded, int)]
        return jnp.all(jnp.isfinite(x)) & jnp.all(jnp.abs(logs) < jnp.log(self.q_max))

    def _iterate(self, R, x0, tol, warmup):
        eta, n_back = self.damping, self.backtracks

        def picard(_, x):
            return jnp.where(self.healthy(x), x + eta * R(x), x)

        x = jax.lax.fori_loop(0, warmup, picard, x0)

        def cond(c):
            x, r, k = c
            return (_norm(r) > tol) & (k < self.max_iter) & self.healthy(x)

        def body(c):
            x, r, k = c
            J = jax.jacfwd(R)(x)
            step = jnp.clip(-jnp.linalg.solve(J, r), -self.trust, self.trust)
            step = jnp.where(jnp.all(jnp.isfinite(step)), step, 0.0)
            target = _norm2(r)

            # Trials: the Newton step, then halvings (accepted once |R|_2 drops: Newton's
            # direction descends it), and last a damped sweep, accepted unconditionally.
            # The residual of the accepted trial is kept, so convergence is detected
            # without another Jacobian.
            def ls_cond(c):
                _, _, ok, i = c
                return ~ok & (i <= n_back + 1)

            def ls_body(c):
                _, _, _, i = c
                xt = jnp.where(i <= n_back, x + (0.5**i) * step, x + eta * r)
                rt = R(xt)
                ok = (i > n_back) | (_norm2(rt) < (1 - 1e-4 * 0.5**i) * target)
                return xt, rt, ok, i + 1

            xt, rt, _, _ = jax.lax.while_loop(ls_cond, ls_body, (x, r, False, 0))
            return xt, rt, k + 1

        x, r, k = jax.lax.while_loop(cond, body, (x, R(x), jnp.array(warmup)))
        return x, _norm(r), k

    def solve(
        self,
        residual: Callable,
        x0: Float[Array, " k"],
        params,
        static: tuple = (),
        *,
        tol: float,
        warm: Float[Array, " k"] | None = None,
    ) -> Solution:
        """Solve :math:`R(x; p) = 0` from ``x0`` (module docstring).

        **Arguments:** ``residual(x, params, *static) -> R`` (a hashable function, e.g. a
        module-level one), ``x0`` the cold start, ``params`` the pytree :math:`p` that
        derivatives flow through, ``static`` hashable extra arguments of ``residual``
        (quadrature, loss), ``tol`` on :math:`\\lVert R\\rVert_\\infty`, ``warm`` a nearby
        solution to start from instead (no damped warm-up; ``x0`` is used where it is
        not finite).

        **Returns:** :class:`Solution`.
        """
        if warm is None:
            warmup = self.picard_steps
        else:
            warm = jax.lax.stop_gradient(warm)
            x0, warmup = jnp.where(jnp.all(jnp.isfinite(warm)), warm, x0), 0
        p_stopped = jax.lax.stop_gradient(params)
        R = lambda x: residual(x, p_stopped, *static)
        x, res, k = self._iterate(R, x0, tol, warmup)
        x = jax.lax.stop_gradient(x)
        healthy = self.healthy(x) & jnp.isfinite(res)
        converged = healthy & (res <= tol)
        status = jnp.where(
            converged, Status.CONVERGED, jnp.where(healthy, Status.MAX_ITER, Status.DIVERGED)
        )
        x = _with_implicit_derivative(residual, tuple(static), x, params)
        return Solution(x=x, residual=res, n_iter=k, converged=converged, status=status)


def _select(mask, a, b):
    """``a`` where ``mask`` (one flag per lane, leading axis), else ``b``, leaf by leaf."""
    return jax.tree.map(
        lambda u, v: jnp.where(jnp.reshape(mask, mask.shape + (1,) * (u.ndim - mask.ndim)), u, v),
        a,
        b,
    )


def continuation(solve: Callable, lams_desc, start: Callable, *, hold_failed: bool = False):
    """Solutions for a batch of lanes at each ridge of ``lams_desc`` (strongest first).

    **Arguments:** ``solve(lam, init)`` solves every lane at ``lam`` from ``init`` (a
    batch of solutions) or cold when ``init`` is ``None``, returning a pytree with a
    per-lane ``converged`` flag; ``lams_desc`` a decreasing 1-D array;
    ``start(last, before, lam, lam_last, lam_before)`` the warm start at ``lam`` from
    the two previous steps; ``hold_failed``: where a lane fails, carry its previous
    solution forward instead (so the next warm start comes from the last converged one).
    Lanes whose warm start fails are re-solved cold; the cold solve runs only when some
    lane failed (a ``cond`` outside the lanes' vmap).

    **Returns:** the solutions, leaves ``(len(lams_desc), lanes, ...)``.
    """
    first = solve(lams_desc[0], None)

    def step(carry, lam):
        last, before, lam_last, lam_before = carry
        sol = solve(lam, start(last, before, lam, lam_last, lam_before))
        retry = lambda: _select(sol.converged, sol, solve(lam, None))
        sol = jax.lax.cond(jnp.all(sol.converged), lambda: sol, retry)
        held = _select(sol.converged, sol, last) if hold_failed else sol
        return (held, last, lam, lam_last), sol

    # The sentinel ridge before the first is larger, so a secant start at the second
    # ridge sees two equal solutions and reduces to the first.
    carry = (first, first, lams_desc[0], 2.0 * lams_desc[0] + 1.0)
    _, rest = jax.lax.scan(step, carry, lams_desc[1:])
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)

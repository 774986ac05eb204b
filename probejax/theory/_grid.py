r"""Fixed points over an :math:`(\alpha, \lambda)` grid by continuation in :math:`\lambda`.

Every :math:`\alpha` of the grid is one lane of a ``vmap``; the :math:`\lambda` values are
visited in a ``lax.scan`` from the strongest ridge to the weakest, each solve starting
from the previous :math:`\lambda`'s fixed point (:func:`solve_fixed_point` with
``init=``): a warm Newton start needs a few iterations where a cold start needs a
damped warm-up and more; the start is the secant extrapolation in :math:`\log\lambda`
through the two previous solutions. Points whose warm start fails are re-solved from the cold
start; the result is the same fixed point either way (the solution does not depend on
the path, only the cost does).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._fixed_point import FixedPoint, from_coords, solve_fixed_point, to_coords
from ._quadrature import Quadrature
from ._solver import continuation, default_tol


@eqx.filter_jit
def _continuation(model, alphas, lams_desc, quad, tol, max_iter):
    def solve(lam, init):
        one = lambda a, init: solve_fixed_point(
            model, a, lam, quad=quad, tol=tol, max_iter=max_iter, init=init
        )
        return jax.vmap(one)(alphas, init)

    rho = model.rho
    coords = jax.vmap(to_coords, in_axes=(None, 0, 0, 0))

    def secant(last, before, lam, lam_last, lam_before):
        # Secant in log(lam) through the two previous solutions (coordinates of the
        # solver), falling back to the last solution where that is not available.
        x1 = coords(rho, last.m, last.q, last.V)
        x2 = coords(rho, before.m, before.q, before.V)
        ok = (lam > 0) & (lam_last > 0) & (lam_before > lam_last)
        t = jnp.where(
            ok,
            jnp.log(jnp.where(ok, lam / lam_last, 1.0))
            / jnp.log(jnp.where(ok, lam_last / lam_before, 2.0)),
            0.0,
        )
        x = x1 + t * (x1 - x2)
        x = jnp.where(jnp.isfinite(x), x, x1)
        m, q, V = jax.vmap(from_coords, in_axes=(None, 0))(rho, x)
        return eqx.tree_at(lambda f: (f.m, f.q, f.V), last, (m, q, V))

    return continuation(solve, lams_desc, secant)


def solve_grid(
    model,
    alphas,
    lams,
    *,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int | None = None,
) -> FixedPoint:
    """Fixed points at every ``(lams[i], alphas[j])``.

    **Arguments:** ``model``, 1-D ``alphas`` (> 0) and ``lams`` (>= 0, any order), and
    the options of :func:`solve_fixed_point`.

    **Returns:** a :class:`FixedPoint` whose leaves have shape ``(len(lams), len(alphas))``.
    """
    alphas = jnp.asarray(alphas, jnp.zeros(()).dtype)
    lams_np = np.asarray(lams, dtype=float)
    if alphas.ndim != 1 or lams_np.ndim != 1 or alphas.size == 0 or lams_np.size == 0:
        raise ValueError("alphas and lams must be non-empty 1-D arrays.")
    order = np.argsort(-lams_np, kind="stable")
    tol = default_tol(tol)
    out = _continuation(
        model, alphas, jnp.asarray(lams_np[order], alphas.dtype), quad, tol, max_iter
    )
    inverse = np.argsort(order)
    return jax.tree.map(lambda a: a[inverse], out)

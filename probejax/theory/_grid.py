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


@eqx.filter_jit
def _continuation(model, alphas, lams_desc, quad, tol, max_iter):
    solve = lambda a, lam, init: solve_fixed_point(
        model, a, lam, quad=quad, tol=tol, max_iter=max_iter, init=init
    )
    cold = jax.vmap(lambda a, lam: solve(a, lam, None), in_axes=(0, None))
    warm = jax.vmap(solve, in_axes=(0, None, 0))
    first = cold(alphas, lams_desc[0])
    rho = model.rho

    def extrapolate(fp1, fp2, lam, lam1, lam2):
        # Secant in log(lam) through the two previous solutions (coordinates of the
        # solver), falling back to the last solution where that is not available.
        x1 = jax.vmap(to_coords, in_axes=(None, 0, 0, 0))(rho, fp1.m, fp1.q, fp1.V)
        x2 = jax.vmap(to_coords, in_axes=(None, 0, 0, 0))(rho, fp2.m, fp2.q, fp2.V)
        ok = (lam > 0) & (lam1 > 0) & (lam2 > lam1)
        t = jnp.where(
            ok,
            jnp.log(jnp.where(ok, lam / lam1, 1.0)) / jnp.log(jnp.where(ok, lam1 / lam2, 2.0)),
            0.0,
        )
        x = x1 + t * (x1 - x2)
        x = jnp.where(jnp.isfinite(x), x, x1)
        m, q, V = jax.vmap(from_coords, in_axes=(None, 0))(rho, x)
        return eqx.tree_at(lambda f: (f.m, f.q, f.V), fp1, (m, q, V))

    def step(carry, lam):
        fp1, fp2, lam1, lam2 = carry
        fp = warm(alphas, lam, extrapolate(fp1, fp2, lam, lam1, lam2))
        retry = lambda: jax.tree.map(
            lambda a, b: jnp.where(fp.converged, a, b), fp, cold(alphas, lam)
        )
        fp = jax.lax.cond(jnp.all(fp.converged), lambda: fp, retry)
        return (fp, fp1, lam, lam1), fp

    carry = (first, first, lams_desc[0], 2.0 * lams_desc[0] + 1.0)
    _, rest = jax.lax.scan(step, carry, lams_desc[1:])
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)


def solve_grid(
    model,
    alphas,
    lams,
    *,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int = 200,
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
    tol = (1e-10 if alphas.dtype == jnp.float64 else 1e-5) if tol is None else float(tol)
    out = _continuation(
        model, alphas, jnp.asarray(lams_np[order], alphas.dtype), quad, tol, max_iter
    )
    inverse = np.argsort(order)
    return jax.tree.map(lambda a: a[inverse], out)

r"""Ridge-logistic regression for one ridge strength, and for a whole grid by ``vmap``.

Minimises :math:`F(w,b) = \sum_i \log(1 + e^{-y_i(w^\top x_i + b)}) + \frac{\lambda}{2}\lVert w\rVert^2`
(intercept unpenalised; scikit-learn ``C = 1/lambda``) until
:math:`\lVert\nabla F\rVert_2 \le \mathrm{tol}\cdot\lVert\nabla F(0)\rVert_2` and the
(quasi-)Newton decrement estimate of :math:`(F - F^*)/F` is below ``tol``
(:func:`probejax.solvers._logistic.tolerance_met`).

Solvers (``solver=``):

- ``"newton"``: damped Newton with an exact line search; representer form
  (:math:`n\times n` Cholesky per step) when :math:`n < d`, primal
  (:math:`d \times d`) otherwise. Quadratic convergence, robust at tiny ridge.
- ``"lbfgs"``: L-BFGS on the eigen-reduced design with a Jacobi preconditioner; one
  eigendecomposition shared by every grid point, then two :math:`O(n\min(n,d))`
  products per iteration. The fast choice for grids.
- ``"auto"``: ``"lbfgs"`` for grids of more than one point when
  :math:`\min(n, d) > 64`, else ``"newton"``.

Separable data at a tiny ridge give large-norm solutions: every solver stays finite
and reports ``converged=False`` when ``max_iter`` is reached first.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams
from ._design import reduce_design
from ._lbfgs import lbfgs_path, lbfgs_solve
from ._logistic import RidgeLogisticSolution
from ._newton import newton_form, newton_solve

SOLVERS = ("auto", "newton", "lbfgs")


def default_tol(dtype) -> float:
    """Relative gradient tolerance by precision: 1e-5 in float32, 1e-10 in float64."""
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def default_max_iter(solver: str) -> int:
    return 100 if solver == "newton" else 1000


def solve_ridge_logistic(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    lam: Float[Array, ""],
    *,
    fit_intercept: bool = True,
    solver: str = "newton",
    tol: float | None = None,
    max_iter: int | None = None,
    gram: Float[Array, "n n"] | None = None,
    init: tuple[Float[Array, " d"], Float[Array, ""]] | None = None,
) -> RidgeLogisticSolution:
    """The traceable core: one fit, no input checks. ``y`` must be +-1 floats.

    Compose it with ``jax.vmap``/``jax.jit`` freely; under ``vmap`` over ``lam`` the
    Gram matrix or eigendecomposition of ``X`` is computed once. ``solver`` is
    ``"newton"`` or ``"lbfgs"`` (``"auto"`` is resolved by the callers that know the
    grid size). ``gram``: optionally :math:`XX^\top`, precomputed (used when ``n < d``).
    ``init``: a warm start ``(w, b)``, e.g. the solution of a nearby problem; Newton in
    the primal form (``n >= d``) starts there, the other forms start from zero. The
    stopping rule does not depend on the start.
    """
    if solver not in ("newton", "lbfgs"):
        raise ValueError(f"solver must be 'newton' or 'lbfgs' here, got {solver!r}.")
    tol = default_tol(X.dtype) if tol is None else tol
    max_iter = default_max_iter(solver) if max_iter is None else max_iter
    if solver == "newton":
        form = newton_form(X, gram)
        theta = None if init is None else form.coordinates(init[0])
        start = None if theta is None else (theta, init[1])
        return newton_solve(
            form, y, lam, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter, init=start
        )
    return lbfgs_solve(
        reduce_design(X, gram), y, lam, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter
    )


def solve_ridge_logistic_path(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    lams: Float[Array, " L"],
    *,
    fit_intercept: bool = True,
    solver: str = "newton",
    tol: float | None = None,
    max_iter: int | None = None,
    gram: Float[Array, "n n"] | None = None,
) -> RidgeLogisticSolution:
    """The traceable core of a grid (leading axis ``len(lams)`` on every field).

    ``"newton"``: :func:`solve_ridge_logistic` vmapped over ``lams`` (one Gram matrix).
    ``"lbfgs"``: one reduced design for the grid, then the warm-started continuation
    :func:`probejax.solvers._lbfgs.lbfgs_path`. Every ridge has the stopping rule of a
    single fit.
    """
    if solver == "lbfgs":
        tol = default_tol(X.dtype) if tol is None else tol
        max_iter = default_max_iter(solver) if max_iter is None else max_iter
        return lbfgs_path(
            reduce_design(X, gram), y, lams, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter
        )
    one = partial(
        solve_ridge_logistic,
        fit_intercept=fit_intercept,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        gram=gram,
    )
    return jax.vmap(lambda lam: one(X, y, lam))(lams)


def resolve_solver(solver: str, n: int, d: int, grid_size: int) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if solver != "auto":
        return solver
    return "lbfgs" if grid_size > 1 and min(n, d) > 64 else "newton"


@partial(jax.jit, static_argnames=("fit_intercept", "solver", "tol", "max_iter"))
def _fit_jit(X, y, lam, *, fit_intercept, solver, tol, max_iter):
    return solve_ridge_logistic(
        X, y, lam, fit_intercept=fit_intercept, solver=solver, tol=tol, max_iter=max_iter
    )


@partial(jax.jit, static_argnames=("fit_intercept", "solver", "tol", "max_iter"))
def _path_jit(X, y, lams, *, fit_intercept, solver, tol, max_iter):
    return solve_ridge_logistic_path(
        X, y, lams, fit_intercept=fit_intercept, solver=solver, tol=tol, max_iter=max_iter
    )


def _checked(X, y, lams, name, solver, *, scalar):
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    lams = check_lams(lams, name, scalar=scalar)
    grid_size = 1 if scalar else lams.shape[0]
    return X, y, lams, resolve_solver(solver, *X.shape, grid_size=grid_size)


def fit_ridge_logistic(
    X,
    y,
    lam,
    *,
    fit_intercept: bool = True,
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
) -> RidgeLogisticSolution:
    """Fit one ridge-logistic model.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.
    - ``lam``: ridge strength > 0 (scikit-learn ``C = 1/lam``).
    - ``fit_intercept``, ``solver``, ``tol`` (relative gradient norm; default 1e-5 in
      float32, 1e-10 in float64), ``max_iter``.

    **Returns:** a :class:`RidgeLogisticSolution`.
    """
    X, y, lam, solver = _checked(X, y, lam, "lam", solver, scalar=True)
    return _fit_jit(
        X, y, lam, fit_intercept=fit_intercept, solver=solver, tol=tol, max_iter=max_iter
    )


def ridge_logistic_path(
    X,
    y,
    lams,
    *,
    fit_intercept: bool = True,
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
) -> RidgeLogisticSolution:
    """Fit the whole grid ``lams`` (1-D, each > 0) in one vmapped, jit-compiled call.

    Same arguments as :func:`fit_ridge_logistic`; every field of the returned
    :class:`RidgeLogisticSolution` has a leading axis of length ``len(lams)``. A new grid
    of the same length reuses the compiled program.
    """
    X, y, lams, solver = _checked(X, y, lams, "lams", solver, scalar=False)
    return _path_jit(
        X, y, lams, fit_intercept=fit_intercept, solver=solver, tol=tol, max_iter=max_iter
    )


def lams_from_C(C) -> jax.Array:
    """scikit-learn's inverse regularisation ``C`` to the ridge strength ``lam = 1/C``."""
    return 1.0 / jnp.asarray(C)

r"""Ridge-logistic regression for one ridge strength, and for a whole grid by ``vmap``.

Minimises :math:`F(w,b) = \sum_i \log(1 + e^{-y_i(w^\top x_i + b)}) + \frac{\lambda}{2}\lVert w\rVert^2`
(intercept unpenalised; scikit-learn ``C = 1/lambda``) until
:math:`\lVert\nabla F\rVert_2 \le \mathrm{tol}\cdot\lVert\nabla F(0)\rVert_2` and the
(quasi-)Newton decrement estimate of :math:`(F - F^*)/F` is below ``tol``
(:func:`probejax.solvers._logistic.tolerance_met`).

The solver is an object (:mod:`probejax.solvers._solver_specs`): ``Newton(tol,
max_iter)``, ``LBFGS(tol, max_iter)``, or ``Auto()``, which takes its L-BFGS for grids
of more than one point when :math:`\min(n, d) > 64` and its Newton otherwise.

Separable data at a tiny ridge give large-norm solutions: every solver stays finite
and reports ``converged=False`` when ``max_iter`` is reached first.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams
from ._logistic import RidgeLogisticSolution
from ._solver_specs import LBFGS, Auto, Newton, Solver, check_solver, resolve_solver


def _concrete(solver) -> Newton | LBFGS:
    if isinstance(check_solver(solver), Auto):
        raise TypeError(
            "solve_ridge_logistic and solve_ridge_logistic_path need Newton(...) or "
            "LBFGS(...); resolve Auto() first with solver.resolve(n, d, grid_size), or "
            "call fit_ridge_logistic / ridge_logistic_path."
        )
    return solver


def solve_ridge_logistic(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    lam: Float[Array, ""],
    *,
    fit_intercept: bool = True,
    solver: Newton | LBFGS = Newton(),
    gram: Float[Array, "n n"] | None = None,
    init: tuple[Float[Array, " d"], Float[Array, ""]] | None = None,
) -> RidgeLogisticSolution:
    r"""The traceable core: one fit, no input checks. ``y`` must be +-1 floats.

    Compose it with ``jax.vmap``/``jax.jit`` freely; under ``vmap`` over ``lam`` the
    Gram matrix or eigendecomposition of ``X`` is computed once.

    **Arguments:**

    - ``X``, ``y``, ``lam``: the problem (``lam`` may be traced).
    - ``fit_intercept``: fit an unpenalised intercept.
    - ``solver``: a :class:`~probejax.solvers.Newton` or :class:`~probejax.solvers.LBFGS`
      (an :class:`~probejax.solvers.Auto` is resolved by the callers that know the grid
      size).
    - ``gram``: optionally :math:`XX^\top`, precomputed (used when ``n < d``).
    - ``init``: a warm start ``(w, b)``, e.g. the solution of a nearby problem; Newton
      in the primal form (``n >= d``) starts there, the other forms start from zero.
      The stopping rule does not depend on the start.

    **Returns:** a :class:`RidgeLogisticSolution`.
    """
    return _concrete(solver).solve(X, y, lam, fit_intercept=fit_intercept, gram=gram, init=init)


def solve_ridge_logistic_path(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    lams: Float[Array, " L"],
    *,
    fit_intercept: bool = True,
    solver: Newton | LBFGS = Newton(),
    gram: Float[Array, "n n"] | None = None,
) -> RidgeLogisticSolution:
    """The traceable core of a grid (leading axis ``len(lams)`` on every field).

    ``Newton``: :func:`solve_ridge_logistic` vmapped over ``lams`` (one Gram matrix).
    ``LBFGS``: one reduced design for the grid, then the warm-started continuation
    :func:`probejax.solvers._lbfgs.lbfgs_path`. Every ridge has the stopping rule of a
    single fit. Arguments as :func:`solve_ridge_logistic`.
    """
    return _concrete(solver).path(X, y, lams, fit_intercept=fit_intercept, gram=gram)


@partial(jax.jit, static_argnames=("fit_intercept", "solver"))
def _fit_jit(X, y, lam, *, fit_intercept, solver):
    return solve_ridge_logistic(X, y, lam, fit_intercept=fit_intercept, solver=solver)


@partial(jax.jit, static_argnames=("fit_intercept", "solver"))
def _path_jit(X, y, lams, *, fit_intercept, solver):
    return solve_ridge_logistic_path(X, y, lams, fit_intercept=fit_intercept, solver=solver)


def _checked(X, y, lams, name, solver, *, scalar):
    solver = check_solver(solver)
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    lams = check_lams(lams, name, scalar=scalar)
    grid_size = 1 if scalar else lams.shape[0]
    return X, y, lams, resolve_solver(solver, *X.shape, grid_size=grid_size)


def fit_ridge_logistic(
    X, y, lam, *, fit_intercept: bool = True, solver: Solver = Auto()
) -> RidgeLogisticSolution:
    """Fit one ridge-logistic model.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.
    - ``lam``: ridge strength > 0 (scikit-learn ``C = 1/lam``).
    - ``fit_intercept``: fit an unpenalised intercept.
    - ``solver``: :class:`~probejax.solvers.Newton`, :class:`~probejax.solvers.LBFGS`
      or :class:`~probejax.solvers.Auto` (Newton for one fit), each with its ``tol``
      (relative gradient norm; ``None``: 1e-5 in float32, 1e-10 in float64) and
      ``max_iter``.

    **Returns:** a :class:`RidgeLogisticSolution`.
    """
    X, y, lam, solver = _checked(X, y, lam, "lam", solver, scalar=True)
    return _fit_jit(X, y, lam, fit_intercept=fit_intercept, solver=solver)


def ridge_logistic_path(
    X, y, lams, *, fit_intercept: bool = True, solver: Solver = Auto()
) -> RidgeLogisticSolution:
    """Fit the whole grid ``lams`` (1-D, each > 0) in one vmapped, jit-compiled call.

    **Arguments:** as :func:`fit_ridge_logistic`, with ``lams`` for ``lam``
    (:class:`~probejax.solvers.Auto` takes L-BFGS for grids when
    :math:`\\min(n, d) > 64`).

    **Returns:** a :class:`RidgeLogisticSolution` whose every field has a leading axis
    of length ``len(lams)``. A new grid of the same length reuses the compiled program.
    """
    X, y, lams, solver = _checked(X, y, lams, "lams", solver, scalar=False)
    return _path_jit(X, y, lams, fit_intercept=fit_intercept, solver=solver)


def lams_from_C(C) -> jax.Array:
    """scikit-learn's inverse regularisation ``C`` to the ridge strength ``lam = 1/C``."""
    return 1.0 / jnp.asarray(C)

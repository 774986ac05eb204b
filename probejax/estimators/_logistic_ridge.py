r"""L2-regularised logistic regression as an estimator.

.. math::

    \min_{w, b}\ \sum_i \log\bigl(1 + e^{-y_i(w^\top x_i + b)}\bigr)
    + \tfrac{\lambda}{2}\lVert w\rVert^2

(scikit-learn's ``C = 1/lam``; the intercept is not penalised). ``fit`` solves one
problem (damped Newton unless ``solver`` says otherwise); ``path`` solves a grid with
one Gram matrix or eigendecomposition shared by the grid (L-BFGS on the eigen-reduced
design for grids on problems with ``min(n, d) > 64`` when ``solver=Auto()``); under
:class:`~probejax.estimators.Tuned` the path and the refit share the pool's Gram
matrix when the problems are wide. The
probe carries ``lam``, the solver's ``converged`` flag and iteration count.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._probe import Diagnosed, LinearProbe
from ..solvers._losses import Logistic
from ..solvers._ridge_logistic import solve_ridge_logistic, solve_ridge_logistic_path
from ..solvers._solver_specs import Auto, Solver, check_solver, resolve_solver
from ._base import PathEstimator


class LogisticRidge(PathEstimator):
    """Ridge-logistic probe at ``lam``.

    - ``lam``: ridge strength (scikit-learn ``C = 1/lam``).
    - ``fit_intercept``: fit an unpenalised intercept.
    - ``solver``: :class:`~probejax.solvers.Newton`, :class:`~probejax.solvers.LBFGS` or
      :class:`~probejax.solvers.Auto` (with its ``tol`` and ``max_iter``).
    """

    lam: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)
    fit_intercept: bool = eqx.field(default=True, static=True)
    solver: Solver = eqx.field(default=Auto(), static=True)

    def __check_init__(self):
        check_solver(self.solver, "LogisticRidge.solver")

    def _options(self, X, grid_size: int, gram) -> dict:
        """The solver's keyword arguments for ``X`` and a grid of ``grid_size`` ridges."""
        n, d = X.shape
        solver = resolve_solver(self.solver, n, d, grid_size)
        return dict(fit_intercept=self.fit_intercept, solver=solver, gram=gram)

    @staticmethod
    def _wrap(sol):
        info = {"lam": sol.lam, "converged": sol.converged, "n_iter": sol.n_iter}
        return Diagnosed(LinearProbe(sol.w, sol.b), info)

    def fit(self, X, y, key=None):
        return self.refit(X, y, key)

    def theory_loss(self):
        """``(Logistic(), lam)`` for :mod:`probejax.theory`'s mixture fixed point."""
        return Logistic(), self.lam

    def shared(self, X, n_train):
        """The pool's Gram matrix when the path's problems are wide (``n_train < d``)."""
        return X @ X.T if n_train < X.shape[1] else None

    def path(self, X, y, lams, key=None, shared=None):
        n, d = X.shape
        if shared is not None:
            gram = shared[:n, :n]
        else:
            gram = X @ X.T if n < d else None
        options = self._options(X, lams.shape[0], gram)
        return self._wrap(solve_ridge_logistic_path(X, y, jnp.asarray(lams, X.dtype), **options))

    def refit(self, X, y, key=None, shared=None):
        return self._solve_one(X, y, shared, None)

    def warm_refit(self, X, y, key, start, shared=None):
        """:meth:`refit` started from ``start``'s ``(w, b)``: Newton in the primal form
        (``n >= d``) starts there, near the pool's solution, so it needs fewer steps
        than from zero; the representer form starts from zero."""
        lin = start.linear()
        return self._solve_one(X, y, shared, (lin.w, lin.b))

    def _solve_one(self, X, y, shared, init):
        options = self._options(X, 1, shared)
        lam = jnp.asarray(self.lam, X.dtype)
        return self._wrap(solve_ridge_logistic(X, y, lam, init=init, **options))

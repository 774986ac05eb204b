r"""RAPTOR (Ridge-Adaptive Logistic Probe, arXiv 2602.00158) as a composition.

``raptor()`` is ``Tuned(LogisticRidge(), lams = 1/C)`` over the grid
:math:`C \in \mathrm{logspace}(-4, 2, 100)` (scikit-learn's convention,
:math:`\tfrac12\lVert w\rVert^2 + C\sum_i\ell_i`): standardise with the train part's
statistics, fit the grid, take the best validation accuracy (ties to the smallest C),
refit on train + validation, map back to raw coordinates. The same tuning of ridge least
squares is ``tuned_ridge_ls()``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core._checks import check_lams
from ..core._metrics import accuracy
from ..solvers._solver_specs import Auto, Solver
from ._logistic_ridge import LogisticRidge
from ._ridge_ls import RidgeLS
from ._tuned import Tuned

RAPTOR_C_GRID = np.logspace(-4, 2, 100)


def _lams(Cs) -> np.ndarray:
    """``1/C`` for a checked grid of scikit-learn ``C`` values (errors name the entry)."""
    return 1.0 / np.asarray(check_lams(np.asarray(Cs, dtype=float), "Cs"), dtype=float)


def raptor(
    Cs=RAPTOR_C_GRID,
    *,
    criterion: Callable = accuracy,
    standardize: bool = True,
    refit: bool = True,
    val_fraction: float = 0.2,
    fit_intercept: bool = True,
    solver: Solver = Auto(),
) -> Tuned:
    """The RAPTOR estimator (module docstring) over the grid ``Cs``; ``criterion(y,
    scores)`` is maximised on validation (:func:`probejax.metrics.accuracy`, RAPTOR's;
    :func:`probejax.estimators.neg_log_loss` for the log-loss); the rest as
    :class:`Tuned` and :class:`LogisticRidge` (``solver``: a
    :class:`~probejax.solvers.Newton`, :class:`~probejax.solvers.LBFGS` or
    :class:`~probejax.solvers.Auto`)."""
    if not callable(criterion):
        raise ValueError(
            f"criterion must be a callable criterion(y, scores) -> scalar (larger is better), "
            f"e.g. probejax.metrics.accuracy, got {criterion!r}."
        )
    inner = LogisticRidge(fit_intercept=fit_intercept, solver=solver)
    return Tuned(
        inner,
        _lams(Cs),
        criterion=criterion,
        standardize=standardize,
        refit=refit,
        val_fraction=val_fraction,
    )


def tuned_ridge_ls(Cs=RAPTOR_C_GRID, *, standardize: bool = True) -> Tuned:
    """Ridge least squares tuned as RAPTOR tunes its ridge (``lam = 1/C`` on the grid)."""
    return Tuned(RidgeLS(), _lams(Cs), standardize=standardize)

"""Solvers: ridge-logistic regression (damped Newton, preconditioned L-BFGS, chosen by
a solver object) with a status per point, and ridge least squares from one
eigendecomposition."""

from ._logistic import Result as Result, RidgeLogisticSolution as RidgeLogisticSolution
from ._ridge_logistic import (
    fit_ridge_logistic as fit_ridge_logistic,
    lams_from_C as lams_from_C,
    ridge_logistic_path as ridge_logistic_path,
    solve_ridge_logistic as solve_ridge_logistic,
)
from ._ridge_ls import fit_ridge_ls as fit_ridge_ls, ridge_ls_path as ridge_ls_path
from ._solver_specs import LBFGS as LBFGS, Auto as Auto, Newton as Newton

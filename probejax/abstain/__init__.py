"""Abstaining probes: split conformal prediction sets on any probe's probabilities, and
multiple-instance SVMs on token bags with a multinomial combiner."""

from ._combiner import Multinomial as Multinomial, fit_multinomial as fit_multinomial
from ._conformal import (
    ABSTAIN as ABSTAIN,
    APS as APS,
    LAC as LAC,
    Conformal as Conformal,
    ConformalReport as ConformalReport,
    abstention as abstention,
    calibrate as calibrate,
    conformal_level as conformal_level,
    conformal_quantile as conformal_quantile,
    conformal_report as conformal_report,
)
from ._mil import (
    MILSVM as MILSVM,
    MILSolution as MILSolution,
    bag_scores as bag_scores,
    token_bags as token_bags,
)
from ._svm import SVMSolution as SVMSolution, solve_svm as solve_svm, svm_objective as svm_objective

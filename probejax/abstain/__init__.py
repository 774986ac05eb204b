"""Abstaining probes: split conformal prediction sets on any probe's probabilities, and
the sAwMIL truth probe (multiple-instance SVMs on token bags, a multinomial combiner,
conformal abstention) with its three-class true / false / neither data."""

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
from ._data import (
    TRUTH_LABELS as TRUTH_LABELS,
    TruthDataset as TruthDataset,
    fictional_names as fictional_names,
    synthetic_bags as synthetic_bags,
    truth_neither_dataset as truth_neither_dataset,
)
from ._mil import (
    MILSVM as MILSVM,
    MILSolution as MILSolution,
    bag_scores as bag_scores,
    token_bags as token_bags,
)
from ._pipeline import (
    FittedSAwMIL as FittedSAwMIL,
    LayerTable as LayerTable,
    SAwMIL as SAwMIL,
    SAwMILReport as SAwMILReport,
    sawmil_layers as sawmil_layers,
)
from ._svm import SVMSolution as SVMSolution, solve_svm as solve_svm, svm_objective as svm_objective

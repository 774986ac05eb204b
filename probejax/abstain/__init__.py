"""Abstaining probes: split conformal prediction sets on any probe's probabilities."""

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

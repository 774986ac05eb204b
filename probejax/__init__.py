"""probejax: probe theory and scaling in JAX.

Ridge-logistic probes with vmapped ridge sweeps (the RAPTOR protocol), baselines,
metrics, directional stability and layer sweeps.
"""

from ._calibrate import platt_calibrate as platt_calibrate
from ._gcs import GCSProbe as GCSProbe, fit_gcs as fit_gcs
from ._layers import map_layers as map_layers, raptor_layers as raptor_layers
from ._lda import fit_lda as fit_lda, lda_shrinkage as lda_shrinkage
from ._logistic import Result as Result, RidgeLogisticSolution as RidgeLogisticSolution
from ._mass_mean import fit_mass_mean as fit_mass_mean
from ._metrics import (
    accuracy as accuracy,
    auroc as auroc,
    cosine as cosine,
    log_loss as log_loss,
    pairwise_cosine_summary as pairwise_cosine_summary,
)
from ._pca import fit_pca_probe as fit_pca_probe
from ._probe import LinearProbe as LinearProbe, Probe as Probe
from ._raptor import (
    RAPTOR_C_GRID as RAPTOR_C_GRID,
    RaptorConfig as RaptorConfig,
    RaptorResult as RaptorResult,
    RaptorSplits as RaptorSplits,
    fit_raptor as fit_raptor,
    raptor_fit_split as raptor_fit_split,
    raptor_splits as raptor_splits,
)
from ._ridge_logistic import (
    fit_ridge_logistic as fit_ridge_logistic,
    lams_from_C as lams_from_C,
    ridge_logistic_path as ridge_logistic_path,
    solve_ridge_logistic as solve_ridge_logistic,
)
from ._ridge_ls import fit_ridge_ls as fit_ridge_ls, ridge_ls_path as ridge_ls_path
from ._scaler import Standardizer as Standardizer
from ._splits import (
    stratified_partition as stratified_partition,
    stratified_split as stratified_split,
)
from ._stability import StabilityResult as StabilityResult, raptor_stability as raptor_stability
from ._teacher_student import GaussianTeacherStudent as GaussianTeacherStudent

__version__ = "0.1.0"

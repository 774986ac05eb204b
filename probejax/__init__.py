"""probejax: probe theory and scaling in JAX.

Ridge-logistic probes with vmapped ridge sweeps (the RAPTOR protocol), baselines,
metrics, directional stability and layer sweeps.
"""

from ._calibrate import platt_calibrate as platt_calibrate
from ._gcs import GCSProbe as GCSProbe
from ._gcs import fit_gcs as fit_gcs
from ._layers import map_layers as map_layers
from ._layers import raptor_layers as raptor_layers
from ._lda import fit_lda as fit_lda
from ._lda import lda_shrinkage as lda_shrinkage
from ._logistic import Result as Result
from ._logistic import RidgeLogisticSolution as RidgeLogisticSolution
from ._mass_mean import fit_mass_mean as fit_mass_mean
from ._metrics import (
    accuracy as accuracy,
)
from ._metrics import (
    auroc as auroc,
)
from ._metrics import (
    cosine as cosine,
)
from ._metrics import (
    log_loss as log_loss,
)
from ._metrics import (
    pairwise_cosine_summary as pairwise_cosine_summary,
)
from ._pca import fit_pca_probe as fit_pca_probe
from ._probe import LinearProbe as LinearProbe
from ._probe import Probe as Probe
from ._raptor import (
    RAPTOR_C_GRID as RAPTOR_C_GRID,
)
from ._raptor import (
    RaptorConfig as RaptorConfig,
)
from ._raptor import (
    RaptorResult as RaptorResult,
)
from ._raptor import (
    RaptorSplits as RaptorSplits,
)
from ._raptor import (
    fit_raptor as fit_raptor,
)
from ._raptor import (
    raptor_fit_split as raptor_fit_split,
)
from ._raptor import (
    raptor_splits as raptor_splits,
)
from ._ridge_logistic import (
    fit_ridge_logistic as fit_ridge_logistic,
)
from ._ridge_logistic import (
    lams_from_C as lams_from_C,
)
from ._ridge_logistic import (
    ridge_logistic_path as ridge_logistic_path,
)
from ._ridge_logistic import (
    solve_ridge_logistic as solve_ridge_logistic,
)
from ._ridge_ls import fit_ridge_ls as fit_ridge_ls
from ._ridge_ls import ridge_ls_path as ridge_ls_path
from ._scaler import Standardizer as Standardizer
from ._splits import (
    stratified_partition as stratified_partition,
)
from ._splits import (
    stratified_split as stratified_split,
)
from ._stability import StabilityResult as StabilityResult
from ._stability import raptor_stability as raptor_stability
from ._teacher_student import GaussianTeacherStudent as GaussianTeacherStudent

__version__ = "0.1.0"

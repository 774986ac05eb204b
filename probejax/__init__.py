"""probejax: probe theory and scaling in JAX.

Layers, bottom to top: ``io`` (atomic writes, results hashes, the compiled-program
cache), ``core`` (input checks,
metrics, splits, standardisation, probe types), ``solvers`` (ridge-logistic Newton and
L-BFGS, ridge least squares), ``estimators`` (the :class:`Estimator` protocol and
every probe built on it), ``protocol`` (fit-and-score, stability, comparison and the
one layer engine, for any estimator), ``sweep`` (the resumable sharded runner below
the protocol), ``theory`` and ``datamodels``; applications on top: ``llm``, ``seq``,
``reproduce``, ``cli``, ``sklearn``.
"""

from .core._metrics import (
    accuracy as accuracy,
    auroc as auroc,
    cosine as cosine,
    log_loss as log_loss,
    pairwise_cosine_summary as pairwise_cosine_summary,
)
from .core._probe import LinearProbe as LinearProbe, Probe as Probe
from .core._scaler import Standardizer as Standardizer
from .core._splits import (
    stratified_partition as stratified_partition,
    stratified_split as stratified_split,
)
from .datamodels._mixture import GaussianMixture as GaussianMixture
from .datamodels._teacher_student import GaussianTeacherStudent as GaussianTeacherStudent
from .estimators import (
    Estimator as Estimator,
    get_estimator as get_estimator,
    register as register,
)
from .estimators._calibrate import platt_calibrate as platt_calibrate
from .estimators._gcs import GCSProbe as GCSProbe, fit_gcs as fit_gcs
from .estimators._kdirection import (
    KDirection as KDirection,
    RandomDirection as RandomDirection,
    inlp_directions as inlp_directions,
    random_abs_cosine as random_abs_cosine,
)
from .estimators._lda import fit_lda as fit_lda, lda_shrinkage as lda_shrinkage
from .estimators._mass_mean import fit_mass_mean as fit_mass_mean
from .estimators._pca import fit_pca_probe as fit_pca_probe
from .io._compile_cache import enable_compile_cache as enable_compile_cache
from .protocol import (
    Controls as Controls,
    Evaluation as Evaluation,
    Splits as Splits,
    Stability as Stability,
    compare as compare,
    control_layers as control_layers,
    controls as controls,
    evaluate as evaluate,
    k_direction_curve as k_direction_curve,
    permutation_test as permutation_test,
    protocol_splits as protocol_splits,
    random_direction_baseline as random_direction_baseline,
    raptor_layers as raptor_layers,
    stability as stability,
)
from .protocol._raptor import (
    RAPTOR_C_GRID as RAPTOR_C_GRID,
    RaptorConfig as RaptorConfig,
    RaptorResult as RaptorResult,
    RaptorSplits as RaptorSplits,
    fit_raptor as fit_raptor,
    raptor_fit_split as raptor_fit_split,
    raptor_splits as raptor_splits,
)
from .protocol._stability import (
    StabilityResult as StabilityResult,
    raptor_stability as raptor_stability,
)
from .solvers._logistic import Result as Result, RidgeLogisticSolution as RidgeLogisticSolution
from .solvers._ridge_logistic import (
    fit_ridge_logistic as fit_ridge_logistic,
    lams_from_C as lams_from_C,
    ridge_logistic_path as ridge_logistic_path,
    solve_ridge_logistic as solve_ridge_logistic,
)
from .solvers._ridge_ls import fit_ridge_ls as fit_ridge_ls, ridge_ls_path as ridge_ls_path

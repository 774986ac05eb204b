"""Estimators: one protocol (:class:`Estimator`), small composable pieces
(:class:`Standardized`, :class:`Tuned`, :class:`Bagged`), the probes built from them,
and the registry that names them for the command line."""

from ._alo import ALOTuned as ALOTuned, alo_margins as alo_margins, raptor_alo as raptor_alo
from ._bagged import Bagged as Bagged, gcs as gcs
from ._base import (
    Estimator as Estimator,
    PathEstimator as PathEstimator,
    ValidatedEstimator as ValidatedEstimator,
)
from ._kdirection import (
    KDirection as KDirection,
    RandomDirection as RandomDirection,
    inlp_directions as inlp_directions,
    inlp_scan as inlp_scan,
    random_abs_cosine as random_abs_cosine,
)
from ._lda import LDA as LDA
from ._logistic_ridge import LogisticRidge as LogisticRidge
from ._mass_mean import MassMean as MassMean
from ._pca import PCA as PCA
from ._raptor import (
    RAPTOR_C_GRID as RAPTOR_C_GRID,
    raptor as raptor,
    tuned_ridge_ls as tuned_ridge_ls,
)
from ._registry import (
    Entry as Entry,
    estimator_label as estimator_label,
    get_entry as get_entry,
    get_estimator as get_estimator,
    register as register,
    registered as registered,
    resolve_methods as resolve_methods,
)
from ._rfm import RFM as RFM, RFMProbe as RFMProbe
from ._ridge_ls import RidgeLS as RidgeLS
from ._tuned import (
    Standardized as Standardized,
    Tuned as Tuned,
    neg_log_loss as neg_log_loss,
    select_index as select_index,
)

register("raptor", raptor, label="RAPTOR (ridge logistic, tuned)", color="tab:blue")
register(
    "raptor_alo",
    raptor_alo,
    label="RAPTOR, C by approximate leave-one-out",
    color="tab:green",
)
register("mass_mean", MassMean, label="mass-mean", color="tab:orange")
register("lda", LDA, label="Fisher LDA (Ledoit-Wolf)", color="tab:red")
register("pca", PCA, label="top PCA direction", color="tab:brown")
register("ridge_ls", tuned_ridge_ls, label="ridge least squares (tuned)", color="tab:pink")
register("gcs", gcs, label="GCS (mean of 1000 probes)", stability=False, color="tab:olive")
register("rfm", RFM, label="RFM (xRFM, tuned)", stability=False, color="tab:purple")
register("kdir", KDirection, label="k-direction probe (INLP, k=3)", color="tab:cyan")
register(
    "random_direction",
    RandomDirection,
    label="random direction (Platt)",
    color="gray",
    linestyle="--",
)

# what a language-model sweep runs when no estimators are named: RAPTOR first (the
# sweep's primary estimator), then its baselines
DEFAULT_ESTIMATORS = ("raptor", "mass_mean", "lda", "pca", "ridge_ls", "gcs")

"""Multi-class probes: RAPTOR's protocol with the multinomial loss (the same C as
scikit-learn's multinomial ``LogisticRegression`` loop), one-vs-rest for any binary
estimator, macro-F1 and per-class AUROC, and a sweep over layers."""

from ._estimators import (
    MulticlassProbe as MulticlassProbe,
    MultinomialRaptor as MultinomialRaptor,
    OneVsRest as OneVsRest,
    OneVsRestProbe as OneVsRestProbe,
    multinomial_raptor as multinomial_raptor,
)
from ._evaluate import (
    MulticlassEvaluation as MulticlassEvaluation,
    compare_multiclass as compare_multiclass,
    evaluate_multiclass as evaluate_multiclass,
    macro_f1 as macro_f1,
    per_class_auroc as per_class_auroc,
)
from ._multinomial import (
    MultinomialSolution as MultinomialSolution,
    fit_multinomial_ridge as fit_multinomial_ridge,
    multinomial_ridge_path as multinomial_ridge_path,
)
from ._sweep import (
    named_estimators as named_estimators,
    plot_multiclass as plot_multiclass,
    probe_multiclass as probe_multiclass,
)

"""scikit-learn classifiers backed by probejax estimators.

Every probejax :class:`~probejax.estimators.Estimator` becomes a binary scikit-learn
classifier: ``fit(X, y)`` with any two labels, ``predict``, ``predict_proba``,
``decision_function``, ``score``; ``get_params``/``set_params``, ``clone``, pickling,
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work as for any scikit-learn
estimator::

    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from probejax.sklearn import EstimatorClassifier, LogisticRidgeClassifier, RaptorClassifier

    clf = RaptorClassifier(random_state=0).fit(X, y)  # y: any two labels
    clf.predict(X)  # labels from clf.classes_
    clf.coef_, clf.intercept_  # (1, d) and (1,), raw coordinates
    clf.probe_.concept_vector()  # the fitted probejax probe
    clf.diagnostics_["C"]  # the C RAPTOR chose

    GridSearchCV(LogisticRidgeClassifier(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    cross_val_score(Pipeline([("scale", StandardScaler()), ("clf", clf)]), X, y, cv=5)

    EstimatorClassifier(my_estimator).fit(X, y)  # any probejax Estimator (or registry name)

The classifiers (constructor arguments are stored as given and checked in ``fit``):

- :class:`RaptorClassifier` (``Cs``, ``criterion``, ``val_fraction``, ``random_state``):
  :func:`probejax.estimators.raptor`, ridge logistic tuned on a validation split that
  ``fit`` draws from ``random_state``;
- :class:`LogisticRidgeClassifier` (``C``, ``standardize``): ridge logistic regression
  at ``lam = 1/C`` (scikit-learn's ``LogisticRegression(C=C)`` objective), on
  standardised features by default;
- :class:`MassMeanClassifier`, :class:`LDAClassifier` (``shrinkage``),
  :class:`PCAClassifier`: the classical baselines;
- :class:`RidgeLSClassifier` (``Cs``, ``random_state``): tuned ridge least squares;
- :class:`GCSClassifier` (``n_estimators``, ``fraction``, ``C``, ``random_state``);
- :class:`EstimatorClassifier` (``estimator``, ``random_state``): any estimator.

Conventions: labels are mapped so that ``classes_[1]`` (the larger label, as
``np.unique`` sorts them) is the probe's positive class; exactly two classes are
required. Features are fitted in float32, or float64 when ``jax_enable_x64`` is on.
``random_state`` (an int, ``None`` for a fresh draw from NumPy's global generator, or a
NumPy ``RandomState``/``Generator``) seeds the ``jax.random.key`` handed to ``fit``.
Fitted attributes: ``classes_``, ``n_features_in_`` (and ``feature_names_in_`` for
dataframes), ``probe_``, ``estimator_`` (the probejax estimator that was fitted),
``diagnostics_`` (a dict of NumPy arrays, e.g. RAPTOR's chosen ``C``) and, for linear
probes, ``coef_`` ``(1, d)`` and ``intercept_`` ``(1,)``. A pickled classifier holds
NumPy copies of the probe's arrays, so it loads on any JAX backend.
"""

from __future__ import annotations

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from .core._checks import float_dtype
from .core._metrics import accuracy
from .core._probe import Probe, diagnostics
from .estimators import (
    LDA,
    PCA,
    RAPTOR_C_GRID,
    Estimator,
    LogisticRidge,
    MassMean,
    Standardized,
    gcs,
    get_estimator,
    neg_log_loss,
    raptor,
    tuned_ridge_ls,
)

__all__ = [
    "EstimatorClassifier",
    "GCSClassifier",
    "LDAClassifier",
    "LogisticRidgeClassifier",
    "MassMeanClassifier",
    "PCAClassifier",
    "ProbeClassifier",
    "RaptorClassifier",
    "RidgeLSClassifier",
]


@eqx.filter_jit
def _fit(estimator: Estimator, X, y, key) -> Probe:
    return estimator.fit(X, y, key)


def _key(random_state) -> jax.Array:
    """A ``jax.random.key`` from a scikit-learn style ``random_state``."""
    if random_state is None:
        seed = np.random.randint(np.iinfo(np.int32).max)
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        seed = random_state.randint(np.iinfo(np.int32).max)
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(np.iinfo(np.int32).max))
    else:
        raise ValueError(
            "random_state must be an int, None, a numpy RandomState or Generator; "
            f"got {random_state!r}."
        )
    return jax.random.key(seed)


def _positive(value, name: str) -> float:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def _to_numpy(tree):
    return jax.tree.map(lambda a: np.asarray(a) if isinstance(a, jax.Array) else a, tree)


def _to_jax(tree):
    return jax.tree.map(lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a, tree)


class ProbeClassifier(ClassifierMixin, BaseEstimator):
    """Base class: a binary scikit-learn classifier around a probejax estimator.

    Subclasses define ``_make_estimator()`` (build the probejax
    :class:`~probejax.estimators.Estimator` from the constructor parameters, checking
    them) and, if the fit is random, a ``random_state`` parameter.
    """

    def _make_estimator(self) -> Estimator:
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """Fit the probe on ``X`` ``(n, d)`` and two-class labels ``y`` ``(n,)``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size != 2:
            shown = classes[:10].tolist()
            more = " ..." if classes.size > 10 else ""
            plural = "" if classes.size == 1 else "es"
            target = type_of_target(y, input_name="y")
            raise ValueError(
                f"Only binary classification is supported. The type of the target is "
                f"{target}: {type(self).__name__} needs exactly two classes in y, found "
                f"{classes.size} class{plural}: {shown}{more}."
            )
        estimator = self._make_estimator()
        if not isinstance(estimator, Estimator):
            raise TypeError(f"expected a probejax Estimator, got {type(estimator).__name__}.")
        key = _key(getattr(self, "random_state", 0))
        dtype = float_dtype()
        Xj = jnp.asarray(X, dtype)
        yj = jnp.asarray(np.where(y == classes[1], 1.0, -1.0), dtype)
        probe = _fit(estimator, Xj, yj, key)
        self.classes_ = classes
        self.estimator_ = estimator
        self.probe_ = probe
        self.diagnostics_ = {k: np.asarray(v) for k, v in diagnostics(probe).items()}
        lin = probe.linear()
        if lin is not None:
            self.coef_ = np.asarray(lin.w).reshape(1, -1)
            self.intercept_ = np.asarray(lin.b).reshape(1)
        return self

    def _validated(self, X) -> jax.Array:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return jnp.asarray(X, float_dtype())

    def decision_function(self, X) -> np.ndarray:
        """Probe scores, shape ``(n,)``; positive means ``classes_[1]``."""
        X = self._validated(X)
        return np.asarray(self.probe_.decision_function(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape ``(n, 2)``, columns in the order of ``classes_``."""
        X = self._validated(X)
        p = np.asarray(self.probe_.predict_proba(X))
        return np.stack([1.0 - p, p], axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_``: ``classes_[1]`` where the score is positive."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int)]

    def concept_vector(self) -> np.ndarray:
        """The fitted probe's unit concept vector, shape ``(d,)``."""
        check_is_fitted(self)
        return np.asarray(self.probe_.concept_vector())

    def __getstate__(self):
        state = super().__getstate__()
        for name in ("probe_", "estimator_"):
            if name in state:
                state[name] = _to_numpy(state[name])
        return state

    def __setstate__(self, state):
        state = dict(state)
        for name in ("probe_", "estimator_"):
            if name in state:
                state[name] = _to_jax(state[name])
        super().__setstate__(state)


# scikit-learn names its scoring rules by strings (``scoring="accuracy"``); the wrapper
# speaks that convention and hands the estimator the function
_CRITERIA = {"accuracy": accuracy, "log_loss": neg_log_loss}


class RaptorClassifier(ProbeClassifier):
    """RAPTOR (:func:`probejax.estimators.raptor`): ridge logistic regression on
    standardised features with ``C`` tuned over ``Cs`` (``None``: ``logspace(-4, 2,
    100)``) by ``criterion`` (``"accuracy"`` or ``"log_loss"``) on a stratified
    ``val_fraction`` validation split drawn from ``random_state``, refitted on all data."""

    def __init__(self, Cs=None, criterion="accuracy", val_fraction=0.2, random_state=0):
        self.Cs = Cs
        self.criterion = criterion
        self.val_fraction = val_fraction
        self.random_state = random_state

    def _make_estimator(self):
        if not (isinstance(self.val_fraction, numbers.Real) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction!r}.")
        if self.criterion not in _CRITERIA:
            raise ValueError(
                f"criterion must be one of {tuple(_CRITERIA)}, got {self.criterion!r}."
            )
        Cs = RAPTOR_C_GRID if self.Cs is None else self.Cs
        return raptor(
            Cs, criterion=_CRITERIA[self.criterion], val_fraction=float(self.val_fraction)
        )


class LogisticRidgeClassifier(ProbeClassifier):
    """Ridge logistic regression at ``lam = 1/C`` (scikit-learn's
    ``LogisticRegression(C=C)`` objective, intercept unpenalised), fitted on
    standardised features when ``standardize`` (coefficients in raw coordinates)."""

    def __init__(self, C=1.0, standardize=True):
        self.C = C
        self.standardize = standardize

    def _make_estimator(self):
        inner = LogisticRidge(lam=1.0 / _positive(self.C, "C"))
        return Standardized(inner) if self.standardize else inner


class MassMeanClassifier(ProbeClassifier):
    """The mass-mean probe (difference of class means, Platt-scaled)."""

    def _make_estimator(self):
        return MassMean()


class LDAClassifier(ProbeClassifier):
    """Fisher LDA; ``shrinkage`` in [0, 1], or ``None`` for the Ledoit-Wolf coefficient."""

    def __init__(self, shrinkage=None):
        self.shrinkage = shrinkage

    def _make_estimator(self):
        s = self.shrinkage
        if s is not None and not (isinstance(s, numbers.Real) and 0 <= s <= 1):
            raise ValueError(f"shrinkage must be None or a number in [0, 1], got {s!r}.")
        return LDA(shrinkage=None if s is None else float(s))


class PCAClassifier(ProbeClassifier):
    """The top principal direction, oriented towards the positive class."""

    def _make_estimator(self):
        return PCA()


class RidgeLSClassifier(ProbeClassifier):
    """Ridge least squares with ``C = 1/lam`` tuned over ``Cs`` (``None``: RAPTOR's
    grid) on a validation split drawn from ``random_state``."""

    def __init__(self, Cs=None, random_state=0):
        self.Cs = Cs
        self.random_state = random_state

    def _make_estimator(self):
        return tuned_ridge_ls(RAPTOR_C_GRID if self.Cs is None else self.Cs)


class GCSClassifier(ProbeClassifier):
    """GCS: the mean of ``n_estimators`` standardised ridge-logistic probes at ``C``,
    each fitted on a stratified ``fraction`` subsample drawn from ``random_state``."""

    def __init__(self, n_estimators=1000, fraction=0.1, C=1.0, random_state=0):
        self.n_estimators = n_estimators
        self.fraction = fraction
        self.C = C
        self.random_state = random_state

    def _make_estimator(self):
        n = self.n_estimators
        if not (isinstance(n, numbers.Integral) and n >= 1):
            raise ValueError(f"n_estimators must be an int >= 1, got {n!r}.")
        if not (isinstance(self.fraction, numbers.Real) and 0 < self.fraction <= 1):
            raise ValueError(f"fraction must lie in (0, 1], got {self.fraction!r}.")
        return gcs(int(n), float(self.fraction), _positive(self.C, "C"))


class EstimatorClassifier(ProbeClassifier):
    """Any probejax :class:`~probejax.estimators.Estimator` instance (or the name of a
    registered one, or ``"module:attribute"``), given ``jax.random.key(random_state)``."""

    def __init__(self, estimator, random_state=0):
        self.estimator = estimator
        self.random_state = random_state

    def _make_estimator(self):
        est = self.estimator
        if isinstance(est, str):
            return get_estimator(est)
        if not isinstance(est, Estimator):
            raise TypeError(
                "estimator must be a probejax Estimator instance or a registered name, "
                f"got {type(est).__name__}."
            )
        return est

"""The scikit-learn wrappers (probejax.sklearn): parameters, cloning, pickling,
meta-estimators, agreement with scikit-learn and with the RAPTOR protocol, labels."""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import planted_problem
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import probejax
from probejax.core._splits import traced_stratified_split
from probejax.estimators import MassMean
from probejax.sklearn import (
    EstimatorClassifier,
    GCSClassifier,
    LDAClassifier,
    LogisticRidgeClassifier,
    MassMeanClassifier,
    PCAClassifier,
    ProbeClassifier,
    RaptorClassifier,
    RidgeLSClassifier,
)

SHORT_GRID = np.logspace(-3, 1, 9)

ALL = [
    RaptorClassifier(Cs=SHORT_GRID),
    LogisticRidgeClassifier(),
    MassMeanClassifier(),
    LDAClassifier(),
    PCAClassifier(),
    RidgeLSClassifier(Cs=SHORT_GRID),
    GCSClassifier(n_estimators=16, fraction=0.3),
    EstimatorClassifier(MassMean()),
]


@pytest.fixture(scope="module")
def data():
    return planted_problem(0, 90, 6, signal=1.0)


def test_params_set_params_clone():
    clf = RaptorClassifier()
    assert clf.get_params() == {
        "Cs": None,
        "criterion": "accuracy",
        "val_fraction": 0.2,
        "random_state": 0,
    }
    assert LogisticRidgeClassifier().get_params() == {"C": 1.0, "standardize": True}
    assert GCSClassifier().get_params() == {
        "n_estimators": 1000,
        "fraction": 0.1,
        "C": 1.0,
        "random_state": 0,
    }
    assert LDAClassifier().get_params() == {"shrinkage": None}
    assert RidgeLSClassifier().get_params() == {"Cs": None, "random_state": 0}
    assert MassMeanClassifier().get_params() == {}
    assert clf.set_params(criterion="log_loss", random_state=3) is clf
    c2 = clone(clf)
    assert c2 is not clf and c2.get_params() == clf.get_params()
    est = EstimatorClassifier(MassMean(), random_state=1)
    assert isinstance(clone(est).estimator, MassMean)
    with pytest.raises(NotFittedError):
        LogisticRidgeClassifier().predict(np.zeros((2, 3)))


@pytest.mark.parametrize("clf", ALL, ids=lambda c: type(c).__name__)
def test_fit_predict_shapes(clf, data):
    X, y = data
    clf = clone(clf).fit(X, y)
    assert isinstance(clf, ProbeClassifier)
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert clf.n_features_in_ == X.shape[1]
    assert clf.coef_.shape == (1, X.shape[1]) and clf.intercept_.shape == (1,)
    s = clf.decision_function(X)
    P = clf.predict_proba(X)
    assert s.shape == (len(y),) and P.shape == (len(y), 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), (s > 0).astype(int))
    np.testing.assert_allclose(s, X @ clf.coef_[0] + clf.intercept_[0], rtol=1e-4, atol=1e-4)
    assert clf.score(X, y) > 0.75
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :-1])


@pytest.mark.parametrize(
    "clf",
    [RaptorClassifier(Cs=SHORT_GRID), LogisticRidgeClassifier(), EstimatorClassifier(MassMean())],
    ids=lambda c: type(c).__name__,
)
def test_pickle_round_trip(clf, data):
    X, y = data
    clf = clone(clf).fit(X, y)
    state = clf.__getstate__()
    assert not any(isinstance(a, jax.Array) for a in jax.tree.leaves(state["probe_"]))
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.decision_function(X), clf.decision_function(X))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.coef_, clf.coef_)
    assert repr(back) == repr(clf)


def test_pipeline_grid_search_cross_val(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("clf", RaptorClassifier(Cs=SHORT_GRID))])
    assert pipe.fit(X, y).score(X, y) > 0.75
    search = GridSearchCV(LogisticRidgeClassifier(), {"C": [0.1, 1]}, cv=3).fit(X, y)
    assert search.best_params_["C"] in (0.1, 1)
    assert search.best_estimator_.coef_.shape == (1, X.shape[1])
    scores = cross_val_score(LogisticRidgeClassifier(C=0.5), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_logistic_ridge_matches_sklearn(C, data):
    X, y = data
    ours = LogisticRidgeClassifier(C=C, standardize=False).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
    s_ref = ref.decision_function(X)
    np.testing.assert_allclose(
        ours.decision_function(X), s_ref, rtol=1e-3, atol=1e-3 * np.abs(s_ref).max()
    )
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-4)


def test_standardized_logistic_ridge_matches_pipeline(data):
    X, y = data
    ours = LogisticRidgeClassifier(C=0.3).fit(X, y)
    ref = Pipeline(
        [("s", StandardScaler()), ("lr", LogisticRegression(C=0.3, tol=1e-10, max_iter=10000))]
    ).fit(X, y)
    s_ref = ref.decision_function(X)
    np.testing.assert_allclose(
        ours.decision_function(X), s_ref, rtol=1e-3, atol=1e-3 * np.abs(s_ref).max()
    )


def test_raptor_matches_evaluate(data):
    """Same validation split (the one ``fit`` draws from the key) gives the same probe."""
    X, y = data
    clf = RaptorClassifier(random_state=5).fit(X, y)
    y_pm1 = jnp.asarray(2.0 * y - 1.0, jnp.float32)
    n_val = math.ceil(0.2 * len(y))
    train, val = traced_stratified_split(jax.random.key(5), y_pm1, n_val)
    splits = probejax.Splits(train, val, val)  # test part unused by the probe
    res = probejax.evaluate(probejax.estimators.raptor(), X, y, split=splits)
    w = np.asarray(res.probe.linear().w)
    cos = float(clf.coef_[0] @ w / (np.linalg.norm(clf.coef_[0]) * np.linalg.norm(w)))
    assert cos > 0.999
    assert clf.diagnostics_["C"] == pytest.approx(float(res.info["C"]), rel=1e-5)
    assert clf.score(X, y) > 0.75


def test_random_state(data):
    X, y = data
    a = RaptorClassifier(Cs=SHORT_GRID, random_state=1).fit(X, y)
    b = RaptorClassifier(Cs=SHORT_GRID, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    c = RaptorClassifier(Cs=SHORT_GRID, random_state=np.random.RandomState(0)).fit(X, y)
    assert c.coef_.shape == a.coef_.shape
    with pytest.raises(ValueError, match="random_state"):
        RaptorClassifier(random_state="seed").fit(X, y)


def test_string_labels(data):
    X, y = data
    ys = np.where(y == 1, "pos", "neg")
    clf = LogisticRidgeClassifier().fit(X, ys)
    np.testing.assert_array_equal(clf.classes_, ["neg", "pos"])
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"neg", "pos"}
    np.testing.assert_array_equal(pred == "pos", clf.decision_function(X) > 0)
    num = LogisticRidgeClassifier().fit(X, y)
    np.testing.assert_allclose(clf.coef_, num.coef_, rtol=1e-6)
    # classes_[1] is the positive class whatever the labels' order of appearance
    flipped = LogisticRidgeClassifier().fit(X, np.where(y == 1, "a", "b"))
    np.testing.assert_allclose(flipped.coef_, -num.coef_, rtol=1e-4, atol=1e-6)


def test_not_two_classes_raise(data):
    X, y = data
    y3 = np.array(["apple", "banana", "cherry"])[np.arange(len(y)) % 3]
    with pytest.raises(ValueError, match=r"3 classes: \['apple', 'banana', 'cherry'\]"):
        MassMeanClassifier().fit(X, y3)
    with pytest.raises(ValueError, match=r"1 class: \[0\]"):
        MassMeanClassifier().fit(X, np.zeros(len(y), int))
    with pytest.raises(ValueError, match="Unknown label type"):
        MassMeanClassifier().fit(X, np.linspace(0, 1, len(y)))


def test_bad_hyperparameters_raise_in_fit(data):
    X, y = data
    clf = LogisticRidgeClassifier(C=-1.0)  # constructing never validates
    with pytest.raises(ValueError, match="C must be"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="criterion"):
        RaptorClassifier(criterion="auc").fit(X, y)
    with pytest.raises(ValueError, match="val_fraction"):
        RaptorClassifier(val_fraction=1.5).fit(X, y)
    with pytest.raises(TypeError, match="Estimator"):
        EstimatorClassifier(object()).fit(X, y)


def test_float64_when_x64(x64, data):
    X, y = data
    clf = LogisticRidgeClassifier().fit(X, y)
    assert clf.coef_.dtype == np.float64
    assert clf.decision_function(X).dtype == np.float64


@pytest.mark.slow
def test_check_estimator():
    """The full scikit-learn estimator check suite (about 30 s, so marked slow); all
    checks pass for LogisticRidgeClassifier (pandas-based checks skip without pandas)."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(LogisticRidgeClassifier(), on_skip=None)

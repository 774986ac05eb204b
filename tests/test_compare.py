"""compare: every estimator on every layer equals the single-method functions."""

import jax
import numpy as np
import pytest

import probejax as pj
from probejax import estimators as E
from probejax.estimators import get_estimator, resolve_methods
from probejax.sweep import Execution


def _layers(seed=0, L=3, n=160, d=24):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    X = np.stack(
        [rng.standard_normal((n, d)) + (k + 1) * 0.6 * np.outer(2 * y - 1, u) / 2 for k in range(L)]
    )
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def compared():
    X, y = _layers()
    methods = {
        "raptor": {},
        "mass_mean": {},
        "lda": {},
        "pca": {},
        "ridge_ls": {},
        "gcs": {"n_estimators": 16, "fraction": 0.3},
    }
    estimators, _, stable = resolve_methods(methods)
    spec = pj.StabilitySpec(runs=4, estimators=stable)
    execution = Execution(cells_per_device=2, progress=False)
    out = pj.compare(estimators, X, y, jax.random.key(3), stability=spec, execution=execution)
    return X, y, spec, out


def test_every_method_matches_its_single_fit(compared):
    X, y, spec, out = compared
    splits = out.splits
    pool = np.concatenate([np.asarray(splits.train_sub), np.asarray(splits.val)])
    te = np.asarray(splits.test)
    m = out.estimators
    ypm = np.where(y > 0, 1.0, -1.0).astype(np.float32)  # what estimators' fit takes
    for layer in range(X.shape[0]):
        one = pj.evaluate(E.raptor(), X[layer], y, split=splits)
        np.testing.assert_allclose(
            m["raptor"]["w"][layer], one.probe.linear().w, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(m["raptor"]["test_accuracy"][layer], one.test_accuracy)
        np.testing.assert_allclose(m["raptor"]["lam"][layer], one.info["lam"])
    for layer in range(X.shape[0]):
        ref = E.MassMean().fit(X[layer][pool], ypm[pool])
        np.testing.assert_allclose(m["mass_mean"]["w"][layer], ref.w, rtol=1e-5, atol=1e-6)
        acc = np.mean((np.asarray(ref.decision_function(X[layer][te])) > 0) == (y[te] > 0))
        np.testing.assert_allclose(m["mass_mean"]["test_accuracy"][layer], acc, atol=1e-6)
        ref = E.LDA().fit(X[layer][pool], ypm[pool])
        np.testing.assert_allclose(m["lda"]["w"][layer], ref.w, rtol=1e-4, atol=1e-5)
    # signal grows with depth: the last layer is read best by every method
    for name, res in m.items():
        assert res["test_accuracy"][-1] >= 0.9, name
        assert np.isnan(res["lam"]).all() == (name in ("mass_mean", "lda", "pca"))
        assert res["fit_seconds"].shape == (3,)


def test_compare_stability_is_stability(compared):
    X, y, spec, out = compared
    for layer in range(X.shape[0]):
        ref = pj.stability(E.raptor(), X[layer], y, jax.random.key(3), spec=spec)
        np.testing.assert_allclose(
            out.estimators["raptor"]["stability"][layer], ref.mean_abs_cos, rtol=1e-5
        )
    assert np.isnan(out.estimators["gcs"]["stability"]).all()  # not measured by default
    assert (out.estimators["mass_mean"]["stability"] > 0.5).all()


def test_bad_config_is_named():
    X, y = _layers(L=1)
    with pytest.raises(ValueError, match="unknown estimator 'svm'"):
        resolve_methods("raptor,svm")
    with pytest.raises(ValueError, match=r"StabilitySpec.estimators names \['lda'\]"):
        pj.compare(
            {"raptor": get_estimator("raptor")},
            X,
            y,
            jax.random.key(0),
            stability=pj.StabilitySpec(estimators=["lda"]),
        )
    with pytest.raises(ValueError, match=r"StabilitySpec.runs must be an integer >= 2"):
        pj.StabilitySpec(runs=1)


def test_sklearn_reference_is_the_raptor_protocol():
    pytest.importorskip("sklearn")
    from probejax.protocol._sklearn_reference import sklearn_raptor

    rng = np.random.default_rng(4)
    n, d = 400, 20
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    scales = rng.uniform(0.5, 3.0, d)  # raw coordinates differ from standardised ones
    X = ((rng.standard_normal((n, d)) + np.outer(2 * y - 1, u) / 2 + 1.0) * scales).astype(
        np.float32
    )
    splits = pj.protocol_splits(jax.random.key(0), y)
    sk = sklearn_raptor(X, y, splits.train_sub, splits.val, splits.test)
    res = pj.evaluate(E.raptor(), X, y, split=splits)
    assert sk["C"] == pytest.approx(float(res.info["C"]), rel=1e-5)
    assert sk["test_accuracy"] == pytest.approx(float(res.test_accuracy), abs=1e-6)
    w = np.asarray(res.probe.linear().w, np.float64)
    assert w @ sk["w"] / np.linalg.norm(w) / np.linalg.norm(sk["w"]) > 0.9999
    s_sk = X[np.asarray(splits.test)] @ sk["w"] + sk["b"]
    s_pj = np.asarray(res.probe.decision_function(X[np.asarray(splits.test)]))
    np.testing.assert_allclose(s_sk, s_pj, rtol=1e-2, atol=1e-2)
    assert 0 < sk["sweep_seconds"] <= sk["total_seconds"]

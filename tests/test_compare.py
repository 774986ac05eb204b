"""compare: every estimator on every layer equals the single-method functions."""

import jax
import numpy as np
import pytest

import probejax as pj
from probejax.estimators import get_estimator, resolve_methods


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
    cfg = dict(stability_runs=4, stability_of=stable, chunk_size=2)
    out = pj.compare(estimators, X, y, jax.random.key(3), progress=False, **cfg)
    return X, y, cfg, out


def test_every_method_matches_its_single_fit(compared):
    X, y, cfg, out = compared
    splits = out["splits"]
    pool = np.concatenate([np.asarray(splits.train_sub), np.asarray(splits.val)])
    te = np.asarray(splits.test)
    lay = pj.raptor_layers(X, y, splits=splits)
    m = out["methods"]
    np.testing.assert_allclose(m["raptor"]["w"], lay.results.probe.w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m["raptor"]["test_accuracy"], lay.results.test_accuracy)
    np.testing.assert_allclose(m["raptor"]["lam"], lay.results.lam)
    for layer in range(X.shape[0]):
        ref = pj.fit_mass_mean(X[layer][pool], y[pool])
        np.testing.assert_allclose(m["mass_mean"]["w"][layer], ref.w, rtol=1e-5, atol=1e-6)
        acc = np.mean((np.asarray(ref.decision_function(X[layer][te])) > 0) == (y[te] > 0))
        np.testing.assert_allclose(m["mass_mean"]["test_accuracy"][layer], acc, atol=1e-6)
        ref = pj.fit_lda(X[layer][pool], y[pool])
        np.testing.assert_allclose(m["lda"]["w"][layer], ref.w, rtol=1e-4, atol=1e-5)
    # signal grows with depth: the last layer is read best by every method
    for name, res in m.items():
        assert res["test_accuracy"][-1] >= 0.9, name
        assert np.isnan(res["lam"]).all() == (name in ("mass_mean", "lda", "pca"))
        assert res["fit_seconds"].shape == (3,)


def test_raptor_stability_is_raptor_stability(compared):
    X, y, cfg, out = compared
    for layer in range(X.shape[0]):
        ref = pj.raptor_stability(
            X[layer], y, jax.random.key(3), n_runs=cfg["stability_runs"], splits=out["splits"]
        )
        np.testing.assert_allclose(
            out["methods"]["raptor"]["stability"][layer], ref.mean_abs_cos, rtol=1e-5
        )
    assert np.isnan(out["methods"]["gcs"]["stability"]).all()  # not measured by default
    assert (out["methods"]["mass_mean"]["stability"] > 0.5).all()


def test_bad_config_is_named():
    X, y = _layers(L=1)
    with pytest.raises(ValueError, match="unknown estimator 'svm'"):
        resolve_methods("raptor,svm")
    with pytest.raises(ValueError, match="stability_of"):
        pj.compare(
            {"raptor": get_estimator("raptor")}, X, y, jax.random.key(0), stability_of=["lda"]
        )


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
    splits = pj.raptor_splits(jax.random.key(0), y)
    sk = sklearn_raptor(X, y, splits.train_sub, splits.val, splits.test)
    res, _ = pj.fit_raptor(X, y, splits=splits)
    assert sk["C"] == pytest.approx(float(res.C), rel=1e-5)
    assert sk["test_accuracy"] == pytest.approx(float(res.test_accuracy), abs=1e-6)
    w = np.asarray(res.probe.w, np.float64)
    assert w @ sk["w"] / np.linalg.norm(w) / np.linalg.norm(sk["w"]) > 0.9999
    s_sk = X[np.asarray(splits.test)] @ sk["w"] + sk["b"]
    s_pj = np.asarray(res.probe.decision_function(X[np.asarray(splits.test)]))
    np.testing.assert_allclose(s_sk, s_pj, rtol=1e-2, atol=1e-2)
    assert 0 < sk["sweep_seconds"] <= sk["total_seconds"]

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import planted_problem
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import StandardScaler

import probejax as pj
from probejax import estimators as E
from probejax.core import LinearProbe, Standardizer
from probejax.estimators import select_index
from probejax.metrics import cosine
from probejax.solvers import fit_ridge_logistic


def authors_loop(X, y, tr, va, te, Cs, tol=1e-4):
    """RAPTOR's published selection loop, re-implemented with scikit-learn."""
    sc = StandardScaler().fit(X[tr])
    Xtr, Xva, Xte = sc.transform(X[tr]), sc.transform(X[va]), sc.transform(X[te])
    clf = LogisticRegression(solver="lbfgs", max_iter=1000, warm_start=True, tol=tol)
    best_C, best_val, val_accs = 1.0, -1.0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for C in Cs:
            clf.set_params(C=float(C))
            clf.fit(Xtr, y[tr])
            acc = accuracy_score(y[va], clf.predict(Xva))
            val_accs.append(acc)
            if acc > best_val:
                best_val, best_C = acc, float(C)
        final = LogisticRegression(solver="lbfgs", max_iter=1000, C=best_C, tol=tol).fit(
            np.vstack([Xtr, Xva]), np.concatenate([y[tr], y[va]])
        )
    scale = np.where(sc.scale_ == 0, 1.0, sc.scale_)
    w_raw = final.coef_.ravel() / scale
    b_raw = final.intercept_[0] - w_raw @ sc.mean_
    return best_C, accuracy_score(y[te], final.predict(Xte)), w_raw, b_raw, np.array(val_accs)


@pytest.fixture(scope="module")
def problem():
    X, y = planted_problem(11, 500, 80, signal=0.6, shift=2.0)
    X = X * np.linspace(0.5, 3.0, 80)  # unequal feature scales: standardisation matters
    res = pj.evaluate(E.raptor(), X.astype(np.float32), y, jax.random.key(0))
    return X, y, res, res.splits


def test_matches_authors_sklearn_loop(problem):
    X, y, res, splits = problem
    tr, va, te = (np.asarray(a) for a in (splits.train_sub, splits.val, splits.test))
    C, acc, w_raw, b_raw, _ = authors_loop(X, y, tr, va, te, E.RAPTOR_C_GRID)
    assert np.isclose(float(res.info["C"]), C, rtol=1e-5)
    assert abs(float(res.test_accuracy) - acc) <= 0.005
    w = np.asarray(res.probe.linear().w, np.float64)
    assert w @ w_raw / np.linalg.norm(w) / np.linalg.norm(w_raw) >= 0.999
    assert bool(res.info["path_converged"].all()) and bool(res.info["refit_converged"])


def test_every_validation_accuracy_matches_tight_sklearn(x64):
    X, y = planted_problem(12, 300, 40, signal=0.5)
    Cs = E.RAPTOR_C_GRID[::4]
    res = pj.evaluate(E.raptor(Cs), X, y, jax.random.key(1))
    splits, info, probe = res.splits, res.info, res.probe.linear()
    tr, va, te = (np.asarray(a) for a in (splits.train_sub, splits.val, splits.test))
    C, acc, w_raw, b_raw, val_accs = authors_loop(X, y, tr, va, te, Cs, tol=1e-10)
    np.testing.assert_allclose(np.asarray(info["val_accuracy"]), val_accs)
    assert np.isclose(float(info["C"]), C)
    np.testing.assert_allclose(np.asarray(probe.w), w_raw, rtol=1e-6, atol=1e-9)
    assert np.isclose(float(probe.b), b_raw, rtol=1e-6, atol=1e-9)


def test_chosen_C_is_smallest_with_best_validation_accuracy(problem):
    _, _, res, _ = problem
    val = np.asarray(res.info["val_accuracy"])
    first_best = int(np.flatnonzero(val == val.max())[0])
    assert int(res.info["index"]) == first_best
    assert np.isclose(float(res.info["C"]), E.RAPTOR_C_GRID[first_best], rtol=1e-5)


def test_select_index_ties_go_to_strongest_ridge():
    lams = jnp.array([0.1, 10.0, 1.0, 100.0])
    assert int(select_index(jnp.array([0.9, 0.9, 0.8, 0.7]), lams)) == 1
    assert int(select_index(jnp.array([0.5, 0.9, 0.8, 0.9]), lams)) == 3
    assert int(select_index(jnp.array([1.0, 0.9, 0.8, 0.9]), lams)) == 0


def test_split_sizes_and_stratification():
    y = np.r_[np.zeros(748), np.ones(748)]
    sp = pj.protocol_splits(jax.random.key(0), y)
    parts = [np.asarray(a) for a in (sp.train_sub, sp.val, sp.test)]
    assert [len(p) for p in parts] == [956, 240, 300]  # as sklearn's train_test_split
    assert len(np.unique(np.concatenate(parts))) == 1496
    for p in parts:
        assert abs(y[p].mean() - 0.5) <= 1 / len(p)
    again = pj.protocol_splits(jax.random.key(0), y)
    other = pj.protocol_splits(jax.random.key(1), y)
    assert np.array_equal(parts[2], np.asarray(again.test))
    assert not np.array_equal(parts[2], np.asarray(other.test))


def test_config_variants(problem):
    X, y, res, splits = problem
    Xf = X.astype(np.float32)
    r2 = pj.evaluate(E.raptor(criterion=E.neg_log_loss, refit=False), Xf, y, split=splits)
    idx = int(np.argmax(np.asarray(r2.info["val_criterion"])))
    assert int(r2.info["index"]) == idx
    # Without refit, the probe is the path fit at the chosen C mapped to raw coordinates.
    tr = np.asarray(splits.train_sub)
    sc = Standardizer.fit(jnp.asarray(Xf[tr]))
    path = fit_ridge_logistic(sc.transform(jnp.asarray(Xf[tr])), y[tr], float(r2.info["lam"]))
    raw = LinearProbe(path.w, path.b).unstandardize(sc)
    w = np.asarray(r2.probe.linear().w)
    assert w @ np.asarray(raw.w) / np.linalg.norm(w) / np.linalg.norm(raw.w) > 0.9999
    r3 = pj.evaluate(E.raptor(standardize=False), Xf, y, split=splits)
    pool = np.concatenate([tr, np.asarray(splits.val)])
    raw3 = fit_ridge_logistic(Xf[pool], y[pool], float(r3.info["lam"]))
    assert float(cosine(raw3.w, r3.probe.linear().w)) > 0.9999
    assert np.isclose(float(raw3.b), float(r3.probe.linear().b), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="criterion must be a callable"):
        E.raptor(criterion="f1")


def test_bad_inputs(problem):
    X, y, _, splits = problem
    raptor = E.raptor()
    with pytest.raises(ValueError, match="give a PRNG key"):
        pj.evaluate(raptor, X, y)
    with pytest.raises(ValueError, match="Cs must be a 1-D grid"):
        E.raptor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Cs must be finite and > 0.*entry 1"):
        E.raptor(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="leaves a side without some class"):
        pj.evaluate(raptor, X[:6], np.r_[0, 0, 0, 0, 1, 1], jax.random.key(0))
    bad = pj.Splits(splits.train_sub, splits.val, jnp.array([0, 10_000]))
    with pytest.raises(ValueError, match=r"splits.test holds indices outside \[0, 500\)"):
        pj.evaluate(raptor, X, y, split=bad)
    one_class = np.flatnonzero(y == 1)[:5]
    bad = pj.Splits(splits.train_sub, jnp.asarray(one_class), splits.test)
    with pytest.raises(ValueError, match="the val split has 5 positive and 0 negative"):
        pj.evaluate(raptor, X, y, split=bad)

"""Multi-class probes against scikit-learn: the multinomial ridge solution, RAPTOR's
selected C and validation curve, macro-F1 and per-class AUROC; one-vs-rest equals K
binary fits; K = 2 reduces to binary ridge logistic regression."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from probejax import estimators as E
from probejax.multiclass import (
    OneVsRest,
    compare_multiclass,
    evaluate_multiclass,
    fit_multinomial_ridge,
    macro_f1,
    multinomial_raptor,
    multinomial_ridge_path,
    per_class_auroc,
)
from probejax.protocol import SplitSpec, protocol_splits
from probejax.solvers import fit_ridge_logistic


def problem(seed, n=300, d=20, K=3, signal=0.7):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, d))
    y = np.arange(n) % K
    rng.shuffle(y)
    X = means[y] * signal + rng.normal(size=(n, d)) * np.linspace(0.5, 3.0, d)
    return X, y


def sklearn_loop(X, y, tr, va, te, Cs, tol):
    """RAPTOR's selection loop with scikit-learn's multinomial LogisticRegression."""
    sc = StandardScaler().fit(X[tr])
    Xtr, Xva, Xte = sc.transform(X[tr]), sc.transform(X[va]), sc.transform(X[te])
    clf = LogisticRegression(max_iter=10000, warm_start=True, tol=tol)
    best_C, best, accs = None, -1.0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for C in Cs:
            clf.set_params(C=float(C)).fit(Xtr, y[tr])
            accs.append(float(np.mean(clf.predict(Xva) == y[va])))
            if accs[-1] > best:
                best, best_C = accs[-1], float(C)
        final = LogisticRegression(max_iter=10000, tol=tol, C=best_C).fit(
            np.vstack([Xtr, Xva]), np.concatenate([y[tr], y[va]])
        )
    return best_C, float(np.mean(final.predict(Xte) == y[te])), np.array(accs)


def test_the_solution_is_scikit_learns(x64):
    X, y = problem(0)
    X = StandardScaler().fit_transform(X)
    Cs = np.logspace(-4, 2, 7)
    sol = multinomial_ridge_path(X, y, 1 / Cs, 3)
    assert bool(sol.converged.all())
    for i, C in enumerate(Cs):
        clf = LogisticRegression(C=C, tol=1e-12, max_iter=20000).fit(X, y)
        np.testing.assert_allclose(np.asarray(sol.W[i]), clf.coef_, atol=1e-5 * max(1, C))
        b = clf.intercept_ - clf.intercept_.mean()
        np.testing.assert_allclose(np.asarray(sol.b[i]), b, atol=1e-5 * max(1, C))


def test_two_classes_reduce_to_binary_ridge_logistic(x64):
    X, y = problem(1, K=2)
    sol = fit_multinomial_ridge(X, y, 3.0, 2)
    # symmetric rows W_1 = -W_0 = w / 2: the penalty (lam/2)|W|^2 is (lam/4)|w|^2
    binary = fit_ridge_logistic(jnp.asarray(X), jnp.asarray(2.0 * y - 1), 1.5)
    np.testing.assert_allclose(np.asarray(sol.W[1] - sol.W[0]), np.asarray(binary.w), atol=1e-6)
    np.testing.assert_allclose(float(sol.b[1] - sol.b[0]), float(binary.b), atol=1e-6)


@pytest.mark.parametrize("seed", [2, 3])
def test_raptor_selects_scikit_learns_C(x64, seed):
    X, y = problem(seed)
    Cs = E.RAPTOR_C_GRID[::3]
    key = jax.random.key(seed)
    ev = evaluate_multiclass(multinomial_raptor(3, Cs), X, y, key)
    sp = ev.splits
    tr, va, te = (np.asarray(a) for a in (sp.train_sub, sp.val, sp.test))
    C, acc, accs = sklearn_loop(X, y, tr, va, te, Cs, tol=1e-10)
    np.testing.assert_allclose(ev.info["val_accuracy"], accs)
    assert np.isclose(float(ev.info["C"]), C) and np.isclose(ev.test_accuracy, acc)
    assert bool(ev.info["path_converged"].all()) and bool(ev.info["refit_converged"])


def test_float32_raptor_selects_scikit_learns_C_with_the_full_grid():
    X, y = problem(4, n=600, d=40, K=4, signal=0.5)
    key = jax.random.key(0)
    ev = evaluate_multiclass(multinomial_raptor(4), X.astype(np.float32), y, key)
    sp = ev.splits
    tr, va, te = (np.asarray(a) for a in (sp.train_sub, sp.val, sp.test))
    C, acc, accs = sklearn_loop(X, y, tr, va, te, E.RAPTOR_C_GRID, tol=1e-6)
    assert np.isclose(float(ev.info["C"]), C, rtol=1e-5)
    assert abs(ev.test_accuracy - acc) <= 1 / len(te)


def test_one_vs_rest_is_k_binary_fits():
    X, y = problem(5, K=3)
    X = X.astype(np.float32)
    splits = protocol_splits(jax.random.key(0), y, SplitSpec())
    est = E.get_estimator("mass_mean")
    probe = OneVsRest(est, 3).fit_with_validation(
        jnp.asarray(X), jnp.asarray(y), splits.train_sub, splits.val, jax.random.key(1)
    )
    scores = np.asarray(probe.decision_function(jnp.asarray(X)))
    for k in range(3):
        yk = jnp.asarray(np.where(y == k, 1.0, -1.0), jnp.float32)
        one = est.fit_with_validation(
            jnp.asarray(X), yk, splits.train_sub, splits.val, jax.random.key(1)
        )
        np.testing.assert_allclose(
            scores[:, k], np.asarray(one.decision_function(jnp.asarray(X))), rtol=1e-5, atol=1e-5
        )
    np.testing.assert_array_equal(np.asarray(probe.predict(jnp.asarray(X))), scores.argmax(1))


def test_metrics_equal_scikit_learns():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 200)
    scores = rng.normal(size=(200, 4)) + np.eye(4)[y]
    pred = scores.argmax(1)
    assert np.isclose(float(macro_f1(jnp.asarray(y), jnp.asarray(pred), 4)),
                      f1_score(y, pred, average="macro"))  # fmt: skip
    want = [roc_auc_score(y == k, scores[:, k]) for k in range(4)]
    np.testing.assert_allclose(
        np.asarray(per_class_auroc(jnp.asarray(y), jnp.asarray(scores))), want, rtol=1e-6
    )


def test_compare_over_layers_and_bad_labels():
    X, y = problem(7, n=240, d=12)
    stack = np.stack([X, X[:, ::-1]]).astype(np.float32)
    res = compare_multiclass(
        {"raptor": multinomial_raptor(3, E.RAPTOR_C_GRID[::10]), "ovr": OneVsRest(E.get_estimator("lda"), 3)},
        stack, y, jax.random.key(0),
    )  # fmt: skip
    assert res["layers"] == [0, 1] and res["n_classes"] == 3
    r = res["estimators"]["raptor"]
    assert len(r["test_accuracy"]) == 2 and np.shape(r["per_class_auroc"]) == (2, 3)
    assert r["test_accuracy"][0] == r["test_accuracy"][1]  # a feature permutation changes nothing
    assert res["estimators"]["ovr"]["C"] == [None, None] and min(r["test_accuracy"]) > 0.5
    for bad in (np.r_[y[:-1], 5], y + 1, y.astype(float) + 0.5):
        with pytest.raises(ValueError, match="labels"):
            evaluate_multiclass(multinomial_raptor(3), X, bad, jax.random.key(0))
    with pytest.raises(ValueError, match="n_classes"):
        multinomial_raptor(1)


def test_multiclass_command_on_a_file_equals_the_python_api(tmp_path):
    import json

    from typer.testing import CliRunner

    from probejax.cli import app
    from probejax.io import open_activations, write_activations
    from probejax.multiclass import probe_multiclass

    X, y = problem(8, n=240, d=12)
    names = np.array(["anger", "joy", "fear"])[y]
    path = tmp_path / "acts.safetensors"
    write_activations(path, {3: X.astype(np.float32), 5: (2 * X[:, ::-1]).astype(np.float32)})
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(names) + "\n")
    args = ["multiclass", str(path), "--labels", str(tmp_path / "labels.csv"), "--out",
            str(tmp_path / "out"), "--estimators", "multinomial,ovr:mass_mean"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["layers"] == [3, 5] and res["label_names"] == ["anger", "fear", "joy"]
    assert (tmp_path / "out" / "multiclass.png").stat().st_size > 0
    api = probe_multiclass(open_activations(path), tmp_path / "labels.csv",
                           estimators=["multinomial", "ovr:mass_mean"], log=None)  # fmt: skip
    for m in ("multinomial", "ovr:mass_mean"):
        for field in ("test_accuracy", "macro_f1", "C"):
            assert res["estimators"][m][field] == api["estimators"][m][field], (m, field)
    bad = CliRunner().invoke(app, [*args[:-1], "ovr:nope"])
    assert bad.exit_code == 1 and "nope" in bad.output
    (tmp_path / "short.csv").write_text("label\n" + "\n".join(names[:-1]) + "\n")
    short = CliRunner().invoke(app, [*args[:2], "--labels", str(tmp_path / "short.csv"), *args[4:]])
    assert short.exit_code == 1 and "short.csv holds 239 labels" in short.output
    # the binary command refuses three classes and points here
    binary = CliRunner().invoke(app, ["probe", str(path), "--labels", str(tmp_path / "labels.csv"),
                                      "--out", str(tmp_path / "b")])  # fmt: skip
    assert binary.exit_code == 1 and "probejax multiclass" in binary.output

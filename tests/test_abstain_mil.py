"""Multiple-instance SVMs and the multinomial combiner of probejax.abstain against
references: SMO against scikit-learn's SVC, bags of one instance against a standard
linear SVM, the sMIL objective against scipy on the same convex problem, the sbMIL
stage against SVC on its relabelled instances, the combiner against scikit-learn's
LogisticRegression; invariances (vmap == loop)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from probejax.abstain import (
    ABSTAIN,
    MILSVM,
    SAwMIL,
    fit_multinomial,
    sawmil_layers,
    solve_svm,
    svm_objective,
    synthetic_bags,
    token_bags,
)


def _planted(seed, n, d, shift=0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, d)) + shift * (2 * y - 1)[:, None] * np.eye(d)[0] + 0.3
    return X, y


def _mil_problem(seed=0, n=14, T=4, d=3):
    """Bags of 1..T instances; positive bags hold one shifted instance."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    size = rng.integers(1, T + 1, n)
    mask = np.arange(T)[None, :] < size[:, None]
    X = rng.standard_normal((n, T, d))
    X[y == 1, 0, 0] += 2.5
    return X * mask[..., None], mask, y


def _smil_reference(X, mask, y, C):
    """The sMIL primal with slacks, built directly from the bags, minimised by SLSQP."""
    d = X.shape[2]
    neg = [X[i, t] for i in range(len(y)) if y[i] == 0 for t in range(X.shape[1]) if mask[i, t]]
    pos = [(X[i][mask[i]].mean(0), 2 / mask[i].sum() - 1) for i in range(len(y)) if y[i] == 1]
    c_n, c_p = C / len(neg), C / len(pos)
    m = len(neg) + len(pos)

    def objective(v):
        w, xi = v[:d], v[d + 1 :]
        return 0.5 * w @ w + c_n * xi[: len(neg)].sum() + c_p * xi[len(neg) :].sum()

    def margins(v):
        w, b, xi = v[:d], v[d], v[d + 1 :]
        out = [xi[j] - 1 - (w @ x + b) for j, x in enumerate(neg)]
        out += [xi[len(neg) + j] - rho + (w @ x + b) for j, (x, rho) in enumerate(pos)]
        return np.array(out)

    res = minimize(
        objective,
        np.zeros(d + 1 + m),
        method="SLSQP",
        bounds=[(None, None)] * (d + 1) + [(0, None)] * m,
        constraints=[{"type": "ineq", "fun": margins}],
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    assert res.success, res.message
    return res.fun, res.x[:d], res.x[d]


def test_smo_matches_sklearn_svc(x64):
    X, y = _planted(0, 80, 5)
    ypm = 2.0 * y - 1
    cost = np.where(y == 1, 0.7 * 2.0, 0.7 * 0.5)  # class_weight {0: 0.5, 1: 2}
    sol = solve_svm(X, ypm, np.ones(80), cost, tol=1e-8)
    ref = SVC(kernel="linear", C=0.7, class_weight={0: 0.5, 1: 2.0}, tol=1e-10).fit(X, y)
    assert bool(sol.converged) and int(sol.result) == 0
    np.testing.assert_allclose(sol.w, ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(sol.b, ref.intercept_[0], atol=1e-6)
    p_ref = svm_objective(ref.coef_[0], ref.intercept_[0], X, ypm, np.ones(80), cost)
    np.testing.assert_allclose(sol.objective, p_ref, rtol=1e-6)
    assert float(sol.objective) <= float(p_ref) * (1 + 1e-9)  # no worse than libsvm
    assert float(sol.dual) <= float(sol.objective) + 1e-9
    assert float(sol.objective) - float(sol.dual) < 1e-6 * float(sol.objective)


@pytest.mark.parametrize("scale_C", [False, True])
@pytest.mark.parametrize("eta", [None, 0.3])
def test_bags_of_one_instance_are_a_linear_svm(x64, scale_C, eta):
    """rho = 2/1 - 1 = 1 and every positive instance is relabelled positive: both stages
    are SVC(kernel='linear') with the matching costs."""
    X, y = _planted(1, 60, 4)
    sol = MILSVM(C=0.7, eta=eta, scale_C=scale_C, tol=1e-8).fit(X[:, None, :], None, y)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if eta is None:
        C, weight = 0.7, ({0: 1 / n_neg, 1: 1 / n_pos} if scale_C else None)
    else:
        C, weight = (0.7 / 60 if scale_C else 0.7), None
        assert int(sol.n_positive) == n_pos
    ref = SVC(kernel="linear", C=C, class_weight=weight, tol=1e-10).fit(X, y)
    assert bool(sol.converged)
    np.testing.assert_allclose(sol.w, ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(sol.b, ref.intercept_[0], atol=1e-6)


def test_smil_objective_matches_scipy_on_the_same_convex_problem(x64):
    X, mask, y = _mil_problem()
    C = 3.0
    sol = MILSVM(C=C, eta=None, tol=1e-9).fit(X, mask, y)
    value, w_ref, b_ref = _smil_reference(X, mask, y, C)
    assert bool(sol.converged)
    np.testing.assert_allclose(sol.smil.objective, value, rtol=1e-6)
    np.testing.assert_allclose(sol.w, w_ref, atol=1e-4)
    np.testing.assert_allclose(sol.b, b_ref, atol=1e-4)


def test_sbmil_stage_is_an_svm_on_the_relabelled_instances(x64):
    X, mask, y = _mil_problem(seed=2, n=20)
    eta, C = 0.3, 2.0
    sol = MILSVM(C=C, eta=eta, tol=1e-9).fit(X, mask, y)
    # relabel from the stage-1 separator, as misvm.sbMIL does
    inst = X[mask]
    in_pos = np.repeat(y == 1, mask.sum(1))
    f = inst @ np.asarray(sol.smil.w) + float(sol.smil.b)
    k = min(in_pos.sum(), max(int((y == 1).sum()), round(eta * in_pos.sum())))
    cutoff = np.sort(f[in_pos])[::-1][k - 1]
    labels = in_pos & (f >= cutoff)
    assert int(sol.n_positive) == labels.sum() == k
    ref = SVC(kernel="linear", C=C / len(inst), tol=1e-10).fit(inst, labels.astype(int))
    np.testing.assert_allclose(sol.w, ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(sol.b, ref.intercept_[0], atol=1e-6)
    # the bag score is the best instance's
    scores = np.asarray(sol.decision_function(X, mask))
    direct = [max(X[i][mask[i]] @ np.asarray(sol.w)) + float(sol.b) for i in range(len(y))]
    np.testing.assert_allclose(scores, direct, rtol=1e-10)


def test_vmap_over_C_equals_a_loop():
    X, mask, y = _mil_problem(seed=3, n=16)
    Cs = jnp.array([0.1, 1.0, 10.0])
    fit = jax.jit(jax.vmap(lambda c: MILSVM(C=c).fit(X, mask, y)))
    batched = fit(Cs)
    for i, c in enumerate([0.1, 1.0, 10.0]):
        one = MILSVM(C=c).fit(X, mask, y)
        np.testing.assert_allclose(batched.w[i], one.w, rtol=1e-4, atol=1e-6)
        assert bool(batched.converged[i]) and bool(one.converged)


def test_token_bags_keep_the_last_tokens():
    rng = np.random.default_rng(0)
    length = rng.integers(1, 13, 40)
    mask = np.arange(12)[None, :] < length[:, None]
    idx, bag = token_bags(mask, jax.random.key(0), size=5, keep_last=2)
    idx, bag = np.asarray(idx), np.asarray(bag)
    assert idx.shape == (40, 5)
    for i in range(40):
        kept = idx[i][bag[i]]
        assert len(kept) == min(5, length[i]) and len(set(kept)) == len(kept)
        assert mask[i, kept].all()
        assert {length[i] - 1, max(length[i] - 2, 0)} <= set(kept.tolist())


def test_multinomial_combiner_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    S = rng.standard_normal((150, 3)) + 1.5 * np.eye(3)[y]
    m = fit_multinomial(S, y, 3, lam=0.5)
    ref = LogisticRegression(C=2.0, tol=1e-10, max_iter=1000).fit(S, y)
    assert bool(m.converged)
    np.testing.assert_allclose(m.predict_proba(S), ref.predict_proba(S), atol=1e-5)


def test_mil_input_errors():
    X, mask, y = _mil_problem()
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        MILSVM(C=-1.0)
    with pytest.raises(ValueError, match=r"eta must be in \(0, 1\]"):
        MILSVM(eta=0.0)
    with pytest.raises(ValueError, match=r"mask must have shape \(14, 4\)"):
        MILSVM().fit(X, mask[:, :3], y)
    empty = mask.copy()
    empty[5] = False
    with pytest.raises(ValueError, match="bag 5 has no token"):
        MILSVM().fit(X, empty, y)
    with pytest.raises(ValueError, match="0 positive and 14 negative bags"):
        MILSVM().fit(X, mask, np.zeros(14))
    with pytest.raises(ValueError, match=r"y must have shape \(14,\)"):
        MILSVM().fit(X, mask, y[:5])


N_PER_CLASS = 100  # 300 statements: 225 train (SVMs, combiner, calibration), 75 test


@pytest.fixture(scope="module")
def bags():
    return synthetic_bags(jax.random.key(0), N_PER_CLASS, n_tokens=8, d=16, signal=2.5)


def _coverage_floor(alpha, n_cal, n_test):
    """1 - alpha less 3 standard deviations of one split's coverage (calibration and
    test sampling)."""
    return 1 - alpha - 3 * np.sqrt(alpha * (1 - alpha) * (1 / n_cal + 1 / n_test))


def test_sawmil_layers_end_to_end_on_synthetic_bags(bags):
    X, mask, y = bags
    noise = jax.random.normal(jax.random.key(1), X.shape) * mask[..., None]
    acts = jnp.stack([noise, X])
    table = sawmil_layers(acts, mask, y, jax.random.key(2), SAwMIL(alpha=0.1), layers=[3, 7])
    assert list(table.layer) == [3, 7] and table.alpha == 0.1 and table.n_test == 75
    assert table.converged.all()
    assert table.accuracy[0] < 0.6 < 0.85 < table.accuracy[1]  # chance 1/3 at the noise layer
    assert (table.coverage >= _coverage_floor(0.1, 56, 75)).all()
    assert table.abstention[0] > 0.5 > table.abstention[1]
    assert table.selective_accuracy[1] >= table.accuracy[1]
    text = table.markdown()
    assert "alpha = 0.1 (target coverage 90%), 75 test statements" in text
    assert "| layer | accuracy | coverage | abstention |" in text and "| 7 |" in text
    assert table.rows()[1]["layer"] == 7


def test_fitted_pipeline_predicts_sets_and_abstains(bags):
    X, mask, y = bags
    train = np.setdiff1d(np.arange(300), np.arange(0, 300, 4))  # 225, the layer test's shapes
    fitted = SAwMIL().fit(X[train], mask[train], y[train], jax.random.key(3))
    assert bool(fitted.converged)
    assert fitted.ovr.w.shape == (3, 16) and fitted.conformal.threshold.shape == (3,)
    Xt, mt, yt = synthetic_bags(jax.random.key(4), 200, n_tokens=8, d=16, signal=2.5)
    report = eqx.filter_jit(lambda f, a, m, t: f.evaluate(a, m, t))(fitted, Xt, mt, yt)
    assert float(report.accuracy) > 0.85
    assert float(report.conformal.coverage) >= _coverage_floor(0.1, 56, 600)
    sets = np.asarray(fitted.sets(Xt, mt))
    decided = np.asarray(fitted.predict(Xt, mt))
    np.testing.assert_array_equal(decided == ABSTAIN, sets.sum(1) != 1)
    np.testing.assert_array_equal(decided[decided != ABSTAIN], sets.argmax(1)[decided != ABSTAIN])


def test_pipeline_input_errors(bags):
    X, mask, y = bags
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        SAwMIL(alpha=1.0)
    with pytest.raises(ValueError, match="sum < 1"):
        SAwMIL(combine_fraction=0.6, calibrate_fraction=0.5)
    with pytest.raises(ValueError, match=r"classes \[1\] absent"):
        SAwMIL().fit(X, mask, np.where(np.asarray(y) == 1, 2, y), jax.random.key(0))
    with pytest.raises(ValueError, match=r"calibration part has \[75\].*needs at least 99"):
        SAwMIL(alpha=0.01).fit(X, mask, y, jax.random.key(0))
    with pytest.raises(ValueError, match=r"acts must be \(L layers, n statements, T tokens, d\)"):
        sawmil_layers(X, mask, y, jax.random.key(0))
    with pytest.raises(ValueError, match=r"mask must have shape \(300, 8\)"):
        sawmil_layers(X[None], mask[:, :4], y, jax.random.key(0))


@pytest.mark.slow
def test_sawmil_layers_on_a_tiny_llama():
    """The real entry point: per-token activations of a tiny random Llama for the
    three-class truth statements (a random model: no accuracy is expected)."""
    pytest.importorskip("torch")
    from tiny_lm import tiny_llama

    from probejax.abstain import truth_neither_dataset
    from probejax.llm import LoadedModel, extract

    model, tok = tiny_llama(3, 32, seed=0, max_positions=96)
    model.requires_grad_(False)
    lm = LoadedModel(model, tok, "tiny", "r0", 3, 32, 96)
    data = truth_neither_dataset(seed=0, n_per_class=30)
    acts, mask = extract(lm, data.texts, layers=[0, 2], per_token=True, batch_size=32)
    table = sawmil_layers(
        acts, mask, data.labels, jax.random.key(0), SAwMIL(alpha=0.2), layers=[0, 2]
    )
    assert table.layer.tolist() == [0, 2] and table.n_test == 23
    assert np.isfinite(table.accuracy).all() and np.isfinite(table.coverage).all()

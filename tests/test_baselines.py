"""Baseline probes: mass-mean, LDA, PCA, ridge least squares, GCS, and Platt scaling.

Oracles: scikit-learn (LDA, PCA, Ridge, LogisticRegression, Ledoit-Wolf), numpy closed
forms, invariances (label encoding, scale, batching, path vs single fit), a jaxpr scan
for d x d intermediates, and Monte Carlo bounds for the GCS sampler.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.preprocessing import StandardScaler

from probejax.core._splits import stratified_split
from probejax.estimators._calibrate import platt_calibrate
from probejax.estimators._gcs import fit_gcs
from probejax.estimators._lda import fit_lda, lda_core, lda_shrinkage
from probejax.estimators._mass_mean import fit_mass_mean
from probejax.estimators._pca import fit_pca_probe, pca_core
from probejax.solvers._ridge_ls import fit_ridge_ls, ridge_ls_path, ridge_ls_path_core


@pytest.fixture
def x64():
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def make_data(seed, n, d, sep=1.0, isotropic=False):
    """Gaussian classes at +-sep along a random unit ``u``, noise scales 2 -> 0.5 across
    features (1 if ``isotropic``); returns ``(X, y in {0, 1}, u)``."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.permutation(np.arange(n) % 2)
    scales = 1.0 if isotropic else np.linspace(2.0, 0.5, d)
    X = rng.normal(size=(n, d)) * scales + sep * np.outer(2 * y - 1, u)
    return X, y, u


def cosine(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def within_centred(X, y):
    Z = np.array(X, dtype=float)
    for c in np.unique(y):
        Z[y == c] -= Z[y == c].mean(axis=0)
    return Z


# Platt scaling


def test_platt_matches_unpenalised_sklearn(x64):
    X, y, _ = make_data(0, 300, 6, sep=0.4)
    v = np.random.default_rng(1).normal(size=6)
    probe = platt_calibrate(v, X, 2 * y - 1)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit((X @ v)[:, None], y)
    a = np.asarray(probe.w) / v
    np.testing.assert_allclose(a, ref.coef_[0, 0], rtol=1e-4)
    np.testing.assert_allclose(probe.b, ref.intercept_[0], rtol=1e-4, atol=1e-6)


def test_platt_ignores_scale_and_sign_of_direction(x64):
    X, y, u = make_data(2, 200, 5, sep=0.5)
    p1, p2 = platt_calibrate(u, X, y), platt_calibrate(-1e3 * u, X, y)
    np.testing.assert_allclose(p1.w, p2.w, rtol=1e-7)
    np.testing.assert_allclose(p1.b, p2.b, rtol=1e-7, atol=1e-9)
    assert cosine(p1.concept_vector(), u) > 0.999999


def test_platt_separable_scores_stay_finite():
    X, y, u = make_data(3, 100, 4, sep=8.0)
    probe = platt_calibrate(u, X, y)
    assert np.all(np.isfinite(np.asarray(probe.w))) and np.isfinite(float(probe.b))
    np.testing.assert_array_equal(probe.predict(X), y)
    assert float(jnp.min(jnp.where(y == 1, probe.predict_proba(X), 1.0))) > 0.99


# Mass-mean


def test_mass_mean_direction_is_difference_of_means():
    X, y, _ = make_data(4, 120, 30)
    probe = fit_mass_mean(X, y)
    expected = X[y == 1].mean(0) - X[y == 0].mean(0)
    assert cosine(probe.concept_vector(), expected) > 1 - 1e-5
    assert float(jnp.mean(probe.predict(X) == y)) > 0.7


def test_mass_mean_invariant_to_label_encoding():
    X, y, _ = make_data(5, 80, 10)
    p01 = fit_mass_mean(X, y)
    pstr = fit_mass_mean(X, np.where(y == 1, "yes", "no"))
    np.testing.assert_allclose(p01.w, pstr.w, rtol=1e-5)
    flipped = fit_mass_mean(X, 1 - y)
    assert cosine(flipped.concept_vector(), p01.concept_vector()) < -0.99999


# LDA


@pytest.mark.parametrize("n, d", [(60, 100), (200, 20)])
@pytest.mark.parametrize("gamma", [0.1, 0.7])
def test_lda_matches_sklearn_fixed_shrinkage(x64, n, d, gamma):
    X, y, _ = make_data(6, n, d)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=gamma).fit(X, y)
    assert cosine(fit_lda(X, y, gamma).w, ref.coef_[0]) >= 0.9999


def test_lda_unshrunk_is_fisher_with_pseudo_inverse(x64):
    X, y, _ = make_data(7, 200, 15)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.0).fit(X, y)
    assert cosine(fit_lda(X, y, 0.0).w, ref.coef_[0]) >= 0.9999
    X, y, _ = make_data(8, 40, 90)
    Z = within_centred(X, y)
    delta = X[y == 1].mean(0) - X[y == 0].mean(0)
    expected = np.linalg.pinv(Z.T @ Z / len(y), rcond=1e-10, hermitian=True) @ delta
    assert cosine(fit_lda(X, y, 0.0).w, expected) >= 0.9999


@pytest.mark.parametrize("n, d", [(50, 120), (300, 25)])
def test_lda_ledoit_wolf_coefficient_matches_sklearn(x64, n, d):
    X, y, _ = make_data(9, n, d)
    g_ref = ledoit_wolf_shrinkage(within_centred(X, y), assume_centered=True)
    g = float(lda_shrinkage(X, y))
    assert 0.0 < g < 1.0
    np.testing.assert_allclose(g, g_ref, rtol=1e-10)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=g_ref).fit(X, y)
    assert cosine(fit_lda(X, y).w, ref.coef_[0]) >= 0.9999


def test_lda_whole_shrinkage_is_mass_mean_and_vmaps_over_gamma(x64):
    X, y, _ = make_data(10, 70, 40)
    assert cosine(fit_lda(X, y, 1.0).w, fit_mass_mean(X, y).w) > 1 - 1e-10
    y_pm1 = jnp.asarray(2.0 * y - 1)
    gammas = jnp.array([0.05, 0.3, 0.9])
    batched = jax.vmap(lambda g: lda_core(jnp.asarray(X), y_pm1, g, ledoit_wolf=False))(gammas)
    for i, g in enumerate(gammas):
        np.testing.assert_allclose(batched.w[i], fit_lda(X, y, float(g)).w, rtol=1e-8)


def _intermediate_shapes(jaxpr):
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            yield tuple(getattr(var.aval, "shape", ()))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", None)
                if isinstance(sub, jax.extend.core.Jaxpr):
                    inner = sub
                if inner is not None and hasattr(inner, "eqns"):
                    yield from _intermediate_shapes(inner)


@pytest.mark.parametrize(
    "fit",
    [
        lambda X, y: lda_core(X, y, jnp.asarray(0.2), ledoit_wolf=False),
        lambda X, y: lda_core(X, y, jnp.asarray(0.2), ledoit_wolf=True),
        pca_core,
        lambda X, y: ridge_ls_path_core(X, y, jnp.array([0.1, 1.0])),
    ],
    ids=["lda", "lda-lw", "pca", "ridge-ls-path"],
)
def test_no_d_by_d_intermediate_when_d_exceeds_n(fit):
    n, d = 40, 512
    X, y = jnp.zeros((n, d)), jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)
    shapes = list(_intermediate_shapes(jax.make_jaxpr(fit)(X, y).jaxpr))
    assert (n, d) in shapes or (d, n) in shapes
    assert not [s for s in shapes if sum(k >= d for k in s) >= 2]


def test_lda_large_d_float32_agrees_with_float64():
    X, y, _ = make_data(11, 200, 2048)
    w32 = np.asarray(fit_lda(X, y).concept_vector())
    jax.config.update("jax_enable_x64", True)
    try:
        w64 = np.asarray(fit_lda(X, y).concept_vector())
    finally:
        jax.config.update("jax_enable_x64", False)
    assert w32.dtype == np.float32 and w64.dtype == np.float64
    assert cosine(w32, w64) > 0.999


# PCA


@pytest.mark.parametrize("n, d", [(50, 80), (300, 12)])
def test_pca_matches_sklearn_and_points_to_positive_class(x64, n, d):
    X, y, _ = make_data(12, n, d)
    v = np.asarray(fit_pca_probe(X, y).concept_vector())
    assert abs(cosine(v, PCA().fit(X).components_[0])) >= 0.9999
    proj = X @ v
    assert proj[y == 1].mean() > proj[y == 0].mean()
    v_flipped = np.asarray(fit_pca_probe(X, 1 - y).concept_vector())
    assert cosine(v, v_flipped) <= -0.9999


# Ridge least squares


@pytest.mark.parametrize("n, d", [(40, 90), (150, 20)])
def test_ridge_ls_matches_sklearn(x64, n, d):
    X, y, _ = make_data(13, n, d)
    lams = np.array([1e-2, 1.0, 30.0])
    path = ridge_ls_path(X, y, lams)
    assert path.w.shape == (3, d) and path.b.shape == (3,)
    for i, lam in enumerate(lams):
        ref = Ridge(alpha=lam).fit(X, 2.0 * y - 1)
        clf = RidgeClassifier(alpha=lam).fit(X, y)
        single = fit_ridge_ls(X, y, lam)
        np.testing.assert_allclose(path.w[i], ref.coef_, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(path.b[i], ref.intercept_, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(single.w, np.ravel(clf.coef_), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(single.b, np.ravel(clf.intercept_)[0], rtol=1e-6, atol=1e-12)


def test_ridge_ls_path_equals_single_fits():
    X, y, _ = make_data(14, 60, 30)
    lams = jnp.array([0.1, 3.0, 100.0])
    path = ridge_ls_path(X, y, lams)
    scores = jax.vmap(lambda p: p.decision_function(jnp.asarray(X, jnp.float32)))(path)
    assert scores.shape == (3, 60)
    for i in range(3):
        single = fit_ridge_ls(X, y, lams[i])
        np.testing.assert_allclose(path.w[i], single.w, rtol=2e-3, atol=1e-5)
        np.testing.assert_allclose(scores[i], single.decision_function(X), rtol=2e-3, atol=1e-4)


# GCS


def test_gcs_mean_and_std_match_sklearn_probes(x64):
    X, y, _ = make_data(15, 80, 6, sep=0.7)
    key, K, C, frac = jax.random.key(0), 4, 0.5, 0.5
    gcs = fit_gcs(X, y, key, n_probes=K, C=C, subsample=frac, batch_size=3)
    thetas = []
    for k in jax.random.split(key, K):
        rows = np.asarray(stratified_split(k, y, frac)[1])
        scaler = StandardScaler().fit(X[rows])
        clf = LogisticRegression(C=C, tol=1e-12, max_iter=10_000)
        clf.fit(scaler.transform(X[rows]), y[rows])
        w = clf.coef_[0] / scaler.scale_
        thetas.append(np.append(w, clf.intercept_[0] - w @ scaler.mean_))
    thetas = np.array(thetas)
    np.testing.assert_allclose(gcs.w_mean, thetas[:, :-1].mean(0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gcs.b_mean, thetas[:, -1].mean(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gcs.w_std, thetas[:, :-1].std(0), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(gcs.b_std, thetas[:, -1].std(), rtol=1e-4, atol=1e-8)


def test_gcs_mean_direction_finds_signal():
    X, y, u = make_data(16, 400, 20, sep=1.0, isotropic=True)
    gcs = fit_gcs(X, y, jax.random.key(1), n_probes=64, subsample=0.2)
    assert cosine(gcs.concept_vector(), u) > 0.9
    assert float(jnp.mean(gcs.predict(X) == y)) > 0.8
    assert float(gcs.sampled_accuracy(jax.random.key(2), X, y, 32)) > 0.7


def test_gcs_samples_fill_the_one_std_box():
    X, y, _ = make_data(17, 200, 8)
    gcs = fit_gcs(X, y, jax.random.key(3), n_probes=32, subsample=0.2)
    k = 4000
    w, b = gcs.sample(jax.random.key(4), k)
    assert w.shape == (k, 8) and b.shape == (k,)
    theta = np.column_stack([w, b])
    mu = np.append(gcs.w_mean, gcs.b_mean)
    s = np.append(gcs.w_std, gcs.b_std)
    assert np.all(s > 0)
    assert np.all(np.abs(theta - mu) <= s * (1 + 1e-5))
    np.testing.assert_array_less(np.abs(theta.mean(0) - mu), 5 * s / np.sqrt(3 * k))
    np.testing.assert_allclose(theta.std(0), s / np.sqrt(3), rtol=0.05)


def test_gcs_is_deterministic_given_key_and_batching():
    X, y, _ = make_data(18, 120, 10)
    fit = lambda key, batch: fit_gcs(X, y, key, n_probes=10, subsample=0.3, batch_size=batch)
    a, b, c = fit(jax.random.key(5), 4), fit(jax.random.key(5), 10), fit(jax.random.key(6), 4)
    np.testing.assert_allclose(a.w_mean, b.w_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.w_std, b.w_std, rtol=1e-4, atol=1e-6)
    assert not np.allclose(a.w_mean, c.w_mean, rtol=1e-3)
    s1, s2 = a.sample(jax.random.key(7), 3), a.sample(jax.random.key(7), 3)
    np.testing.assert_array_equal(s1[0], s2[0])
    w, bias = a.sample(jax.random.key(8), 16)
    manual = np.mean((X.astype(np.float32) @ np.asarray(w).T + np.asarray(bias) >= 0) == y[:, None])
    np.testing.assert_allclose(a.sampled_accuracy(jax.random.key(8), X, y, 16), manual, rtol=1e-6)


# Bad input

FITTERS = {
    "mass_mean": fit_mass_mean,
    "lda": fit_lda,
    "pca": fit_pca_probe,
    "ridge_ls": lambda X, y: fit_ridge_ls(X, y, 1.0),
    "ridge_ls_path": lambda X, y: ridge_ls_path(X, y, [0.1, 1.0]),
    "gcs": lambda X, y: fit_gcs(X, y, jax.random.key(0), n_probes=2, subsample=0.5),
    "platt": lambda X, y: platt_calibrate(np.ones(5), X, y),
}


@pytest.mark.parametrize("fit", FITTERS.values(), ids=FITTERS.keys())
def test_bad_inputs_raise_clear_errors(fit):
    X, y, _ = make_data(19, 20, 5)
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"X holds 1 non-finite.*\(3, 2\)"):
        fit(X_nan, y)
    with pytest.raises(ValueError, match="exactly two classes.*got 3"):
        fit(X, np.arange(20) % 3)
    with pytest.raises(ValueError, match="19 labels but X has 20 rows"):
        fit(X, y[:19])
    with pytest.raises(ValueError, match="2-D"):
        fit(X[0], y)


def test_bad_hyperparameters_raise_clear_errors():
    X, y, _ = make_data(20, 20, 5)
    for bad in ("auto", 1.5, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match="shrinkage must be 'ledoit_wolf'"):
            fit_lda(X, y, bad)
    with pytest.raises(ValueError, match="lams must be finite and > 0.*entry 1"):
        ridge_ls_path(X, y, [1.0, 0.0])
    with pytest.raises(ValueError, match="lam must be a scalar"):
        fit_ridge_ls(X, y, [1.0])
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="n_probes must be a positive integer"):
        fit_gcs(X, y, key, n_probes=0)
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        fit_gcs(X, y, key, C=-1.0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit_gcs(X, y, key, subsample=1.5)
    with pytest.raises(ValueError, match="leaves a side without some class"):
        fit_gcs(X, y, key, subsample=0.01)
    with pytest.raises(ValueError, match="direction has 4 entries but X has 5 columns"):
        platt_calibrate(np.ones(4), X, y)
    gcs = fit_gcs(X, y, key, n_probes=2, subsample=0.5)
    with pytest.raises(ValueError, match="X has 4 columns but the probe was fitted on 5"):
        gcs.sampled_accuracy(key, X[:, :4], y, 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        gcs.sample(key, 0)

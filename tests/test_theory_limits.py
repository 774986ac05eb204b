"""Separability threshold, Sur-Candes unregularised limit, Bayes-optimal error of the
sign teacher, and the optimal ridge (probejax.theory._limits, ._optimal)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from probejax import GaussianTeacherStudent
from probejax.theory import Params, Quadrature, observables, solve_fixed_point
from probejax.theory._limits import mle_existence_h, separability_threshold
from probejax.theory._optimal import (
    LamStatus,
    bayes_optimal_error_sign,
    bayes_optimal_overlap_sign,
    metric_at,
    optimal_lam,
)


@pytest.fixture(autouse=True)
def float64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


SIGN = GaussianTeacherStudent("sign")
# Jitted once per session: every call below with the same structure reuses the compilation.
solve = jax.jit(solve_fixed_point, static_argnames=("quad", "tol", "max_iter"))
h_of = jax.jit(mle_existence_h, static_argnames="quad")
threshold = jax.jit(separability_threshold)
q_of = jax.jit(jax.vmap(bayes_optimal_overlap_sign))
q_err = jax.jit(jax.vmap(bayes_optimal_error_sign))
sign_acc = jax.jit(lambda alpha, lam: metric_at(SIGN, alpha, jnp.log(lam))[0])


def h_scipy(p_positive):
    """Candes-Sur h by adaptive quadrature and Brent minimisation (independent oracle)."""

    def F(t):
        g = lambda v: (
            2
            * stats.norm.pdf(v)
            * p_positive(v)
            * (((t * v) ** 2 + 1) * stats.norm.cdf(t * v) + t * v * stats.norm.pdf(t * v))
        )
        return sum(
            integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-13)[0] for a, b in [(-12, 0), (0, 12)]
        )

    return optimize.minimize_scalar(F, bracket=(-5.0, 0.0), tol=1e-12).fun


# ---------------------------------------------------------------- Candes-Sur h(gamma)


def test_h_candes_sur_values():
    gammas = jnp.array([0.0, 1.0, np.sqrt(5.0), 3.0, 5.0])
    h = jax.vmap(mle_existence_h)(gammas)
    np.testing.assert_allclose(h, [0.5, 0.43894, 0.32559, 0.27252, 0.18505], atol=1e-5)
    assert float(h[0]) == pytest.approx(0.5, abs=1e-12)  # Cover: V ~ N(0, 1), F = (1 + t^2)/2
    np.testing.assert_allclose(h, [h_of(g) for g in gammas], rtol=1e-13)  # vmap == loop


def test_h_matches_scipy_and_node_doubling():
    for gamma in (2.0, 10.0):
        h = h_of(gamma)
        ref = h_scipy(lambda v, g=gamma: special.expit(g * v))
        assert float(h) == pytest.approx(ref, abs=1e-10)
        assert float(h_of(gamma, quad=Quadrature().doubled())) == pytest.approx(float(h), abs=1e-12)


def test_h_gradient_is_envelope():
    g = jax.jit(jax.grad(mle_existence_h))(1.5)
    fd = (h_of(1.5 + 1e-5) - h_of(1.5 - 1e-5)) / 2e-5
    assert float(g) < 0
    assert float(g) == pytest.approx(float(fd), rel=1e-6)


def test_separability_threshold_channels():
    logistic = lambda rho, beta, eps=0.0: GaussianTeacherStudent(
        "logistic", rho=rho, beta=beta, eps=eps
    )
    assert float(threshold(logistic(1.0, 0.0))) == pytest.approx(2.0, abs=1e-12)
    assert float(threshold(logistic(1.0, 1.0))) == pytest.approx(2.278, abs=1e-3)
    # gamma = beta sqrt(rho): only the product matters.
    for rho, beta in [(4.0, 0.5), (0.25, 2.0)]:
        assert float(threshold(logistic(rho, beta))) == pytest.approx(
            1 / float(h_of(1.0)), rel=1e-12
        )
    assert float(threshold(logistic(5.0, 1.0))) == pytest.approx(
        1 / float(h_of(np.sqrt(5.0))), rel=1e-12
    )
    assert float(threshold(SIGN)) == np.inf
    cases = [
        (GaussianTeacherStudent("sign", eps=0.1), lambda v: 0.1 + 0.8 * (v > 0)),
        (
            GaussianTeacherStudent("probit", rho=2.0, delta=0.3),
            lambda v: stats.norm.cdf(np.sqrt(2 / 0.3) * v),
        ),
        (logistic(1.0, 1.0, eps=0.05), lambda v: 0.05 + 0.9 * special.expit(v)),
    ]
    for model, p in cases:
        assert float(threshold(model)) == pytest.approx(1 / h_scipy(p), rel=1e-9)
    # Label noise makes the data harder to separate.
    assert float(threshold(cases[2][0])) < float(threshold(logistic(1.0, 1.0)))


# ------------------------------------------------ the lam = 0 fixed point at the threshold


@pytest.mark.parametrize("beta", [1e-6, 1.0])
def test_unregularised_fixed_point_exists_iff_above_threshold(beta):
    # beta = 1e-6 is pure noise to O(beta^2): alpha_c = 2 + O(1e-12).
    model = GaussianTeacherStudent("logistic", rho=1.0, beta=beta)
    alpha_c = float(threshold(model))
    above = solve(model, 1.01 * alpha_c, 0.0)
    below = solve(model, 0.99 * alpha_c, 0.0)
    assert bool(above.converged) and 0 < float(above.V) < np.inf
    assert not bool(below.converged)
    assert int(below.status) != 0 and np.isnan(float(below.q)) and np.isnan(float(below.m))


def test_unregularised_pure_noise_beta_zero():
    model = GaussianTeacherStudent("logistic", rho=1.0, beta=0.0)
    assert bool(solve(model, 2.02, 0.0).converged)
    assert not bool(solve(model, 1.98, 0.0).converged)


def test_small_ridge_blows_up_only_below_threshold():
    model = GaussianTeacherStudent("logistic", rho=1.0, beta=1.0)
    alpha_c = float(threshold(model))
    q = lambda a, lam: float(solve(model, a, lam).q)
    below, above = 0.9 * alpha_c, 1.1 * alpha_c
    assert q(below, 1e-4) > 10 * q(above, 1e-4)
    assert q(below, 1e-6) > 3 * q(below, 1e-4)  # |w| grows like log(1/lam) on separable data
    assert q(above, 1e-6) == pytest.approx(q(above, 0.0), rel=1e-3)  # tends to the MLE


def test_sur_candes_worked_example():
    # kappa = 0.2, gamma = sqrt(5): x ~ N(0, I/d) with rho = gamma^2, beta = 1, alpha = 5.
    rho, kappa = 5.0, 0.2
    fp = solve(GaussianTeacherStudent("logistic", rho=rho, beta=1.0), 1 / kappa, 0.0)
    assert bool(fp.converged)
    alpha_star = float(fp.m) / rho
    sigma_star = np.sqrt((float(fp.q) - float(fp.m) ** 2 / rho) / kappa)
    assert alpha_star == pytest.approx(1.499, abs=1e-3)
    assert sigma_star == pytest.approx(4.744, abs=1e-3)


# ------------------------------------------------------------- Bayes-optimal, sign teacher


def overlap_engel_van_den_broeck(alpha):
    """q / sqrt(1 - q) = (alpha/pi) int Dt exp(-q t^2/2) / H(-sqrt(q) t), by scipy."""

    def rhs(q):
        g = lambda t: stats.norm.pdf(t) * np.exp(-q * t**2 / 2 - special.log_ndtr(np.sqrt(q) * t))
        return alpha / np.pi * integrate.quad(g, -40, 40, epsabs=1e-14, epsrel=1e-13, limit=200)[0]

    return optimize.brentq(lambda q: q / np.sqrt(1 - q) - rhs(q), 1e-12, 1 - 1e-12, xtol=1e-15)


def test_bayes_overlap_matches_engel_van_den_broeck():
    alphas = jnp.array([0.5, 3.0, 20.0])
    q = q_of(alphas)
    np.testing.assert_allclose(
        q, [overlap_engel_van_den_broeck(float(a)) for a in alphas], atol=1e-9
    )
    g = jax.jit(jax.grad(bayes_optimal_overlap_sign))(3.0)
    fd = (q_of(jnp.array([3.0 + 1e-5])) - q_of(jnp.array([3.0 - 1e-5])))[0] / 2e-5
    assert float(g) == pytest.approx(float(fd), rel=1e-6)


def test_bayes_error_values_and_large_alpha_rate():
    alphas = jnp.array([0.0, 3.0, 50.0, 100.0, 200.0])
    err = np.asarray(q_err(alphas))
    assert err[0] == 0.5
    assert err[1] == pytest.approx(
        np.arccos(np.sqrt(overlap_engel_van_den_broeck(3.0))) / np.pi, abs=1e-9
    )
    scaled = np.asarray(alphas[2:]) * err[2:]
    np.testing.assert_allclose(scaled, 0.4417, atol=1e-3)
    assert np.all(np.diff(scaled) > 0)  # approaches the limit from below
    assert 2 * scaled[2] - scaled[1] == pytest.approx(0.4417, abs=1e-4)  # Richardson, O(1/alpha)


# ------------------------------------------------------------------------ optimal ridge


@pytest.mark.parametrize(
    "model, alpha, lam",
    [
        (SIGN, 3.0, 0.03),
        (GaussianTeacherStudent("logistic", rho=2.0, beta=2.0, eps=0.05), 2.0, 0.1),
    ],
)
def test_implicit_gradient_of_accuracy_matches_finite_differences(model, alpha, lam):
    def acc(lam):
        fp = solve_fixed_point(model, alpha, lam)
        return observables(Params(alpha, lam, model), fp).acc

    acc = jax.jit(acc)
    g = jax.grad(acc)(lam)
    h = 1e-4 * lam
    fd = (acc(lam + h) - acc(lam - h)) / (2 * h)
    assert abs(float(g)) > 1e-3
    assert float(g) == pytest.approx(float(fd), rel=1e-5)


def test_optimal_lam_is_a_stationary_maximum():
    r = optimal_lam(SIGN, 1.0)
    assert bool(r.converged) and not bool(r.at_end) and int(r.status) == LamStatus.INTERIOR
    assert 1e-4 < float(r.lam) < 1e2 and abs(float(r.slope)) < 1e-9
    lam = float(r.lam)
    assert float(r.value) == pytest.approx(float(sign_acc(1.0, lam)), abs=1e-12)
    # Stationary by central differences in log lam (curvature ~ 1e-2: slope error ~ 1e-8).
    d = 1e-3
    slope = (sign_acc(1.0, lam * np.exp(d)) - sign_acc(1.0, lam * np.exp(-d))) / (2 * d)
    assert abs(float(slope)) < 1e-8
    for factor in (1.5, 1 / 1.5):
        assert float(r.value) > float(sign_acc(1.0, lam * factor))


def test_optimal_lam_reports_bracket_ends():
    lower = optimal_lam(SIGN, 10.0, bracket=(1e-2, 1e2))  # optimum near 1e-3
    assert int(lower.status) == LamStatus.LOWER_END and bool(lower.at_end)
    assert not bool(lower.converged)
    assert float(lower.lam) == pytest.approx(1e-2, rel=1e-12)
    assert float(lower.slope) < 0
    assert float(lower.value) == pytest.approx(float(sign_acc(10.0, 1e-2)), abs=1e-12)
    upper = optimal_lam(SIGN, 1.0, bracket=(1e-4, 1e-2))  # optimum near 3e-2
    assert int(upper.status) == LamStatus.UPPER_END and float(upper.lam) == pytest.approx(1e-2)
    assert float(upper.slope) > 0
    failed = optimal_lam(SIGN, jnp.nan)
    assert int(failed.status) == LamStatus.FAILED and np.isnan(float(failed.lam))
    with pytest.raises(ValueError, match="metric"):
        optimal_lam(SIGN, 1.0, metric="test_error")
    with pytest.raises(ValueError, match="bracket"):
        optimal_lam(SIGN, 1.0, bracket=(1.0, 0.1))


def _gap_to_bayes(r, alphas):
    assert np.all(np.asarray(r.converged))
    gap = (1 - np.asarray(r.value)) - np.asarray(q_err(jnp.asarray(alphas)))
    assert np.all(gap > 0)  # no estimator beats Bayes
    assert np.all(gap < 1e-3)  # Aubin et al. 2020: optimally regularised logistic is close


def test_optimal_logistic_regression_is_nearly_bayes_optimal():
    for alpha in (1.0, 3.0):
        _gap_to_bayes(optimal_lam(SIGN, alpha), [alpha])


@pytest.mark.slow
def test_optimal_logistic_regression_is_nearly_bayes_optimal_vmapped():
    alphas = [1.0, 3.0, 10.0]
    r = jax.vmap(lambda a: optimal_lam(SIGN, a))(jnp.asarray(alphas))
    _gap_to_bayes(r, alphas)
    np.testing.assert_allclose(r.lam, [optimal_lam(SIGN, a).lam for a in alphas], rtol=1e-6)

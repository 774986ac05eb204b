"""Two learners on overlapping samples: closed-form limits, the theory's own equation,
an independent quadrature, node doubling, vmap, and Monte Carlo with the core solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax as pj
from probejax.solvers._prox import prox_terms
from probejax.theory import Quadrature, solve_fixed_point
from probejax.theory._channels import partition
from probejax.theory._two_learners import _overlap, cross_moment, two_learner_overlap

LOGISTIC = (pj.GaussianTeacherStudent("logistic", rho=1.0, beta=1.0), 2.0, 0.1)
SIGN = (pj.GaussianTeacherStudent("sign"), 3.0, 0.05)
HARD = (pj.GaussianTeacherStudent("sign"), 10.0, 1e-3)  # q ~ 330: features of width 0.05
CASES = {"logistic": LOGISTIC, "sign": SIGN}

_fixed_point = jax.jit(solve_fixed_point, static_argnames=("quad",))


@pytest.fixture(scope="module")
def fps():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield {name: _fixed_point(*case, quad=Quadrature()) for name, case in CASES.items()}
    jax.config.update("jax_enable_x64", before)


def r0(model, fp):
    return fp.m**2 / (model.rho * fp.q)


@pytest.mark.parametrize("name", CASES)
def test_independent_samples_give_the_single_learner_stability(x64, fps, name):
    model, alpha, lam = CASES[name]
    fp = fps[name]
    out = two_learner_overlap(model, alpha, lam, 0.0, fp)
    assert bool(out.converged)
    assert abs(float(out.stability) - float(r0(model, fp))) < 1e-10
    assert abs(float(out.q12) - float(fp.m**2 / model.rho)) < 1e-10 * float(fp.q)


@pytest.mark.parametrize("name", CASES)
def test_identical_samples_give_the_same_learner(x64, fps, name):
    model, alpha, lam = CASES[name]
    out = two_learner_overlap(model, alpha, lam, 1.0, fps[name])
    assert bool(out.converged)
    assert float(out.q12) == pytest.approx(float(fps[name].q), rel=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_solution_satisfies_the_cross_overlap_equation(x64, fps, name):
    """q12 = (rho mh^2 + c alpha g(q12)) / (lam + Vh)^2 in the replica form, and the 2-D
    rule at q12 = q reproduces the 1-D fixed point's qh = alpha g(q)."""
    model, alpha, lam = CASES[name]
    fp, c = fps[name], 0.8
    out = two_learner_overlap(model, alpha, lam, c, fp)
    g = lambda r: cross_moment(model, fp.m, fp.q, fp.V, r, Quadrature())
    assert float(alpha * g(1.0)) == pytest.approx(float(fp.qh), rel=1e-9)
    rhs = (model.rho * fp.mh**2 + c * alpha * g(out.stability)) / (lam + fp.Vh) ** 2
    assert float(out.q12) == pytest.approx(float(rhs), rel=1e-9)


def brute_force_cross_moment(model, m, q, V, q12, n=160):
    """sum_y E[Z0 f f] on a tensor Gauss-Hermite grid in (omega_1, omega_2), with the
    teacher's conditional law from Q^{-1} directly (no parametrisation, both labels)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    Q = jnp.array([[q, q12], [q12, q]])
    mv = jnp.array([m, m])
    z = jnp.stack(jnp.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    omega = z @ jnp.linalg.cholesky(Q).T
    a = jnp.linalg.solve(Q, mv)
    W = jnp.outer(w, w).ravel()
    total = 0.0
    for y in (1.0, -1.0):
        Z, _ = partition(model, y, omega @ a, model.rho - mv @ a, Quadrature())
        f1, f2 = (prox_terms(y, omega[:, k], V)[1] for k in (0, 1))
        total = total + jnp.sum(W * Z * f1 * f2)
    return total


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("frac", [0.3, 0.8])
def test_cross_moment_matches_an_independent_quadrature(x64, fps, name, frac):
    """At r = q12/q inside [m^2/(rho q), 1], where (teacher, omega_1, omega_2) has a
    valid covariance (below 2 m^2/(rho q) - 1 it has none)."""
    model, _, _ = CASES[name]
    fp = fps[name]
    r = r0(model, fp) + frac * (1.0 - r0(model, fp))
    ours = cross_moment(model, fp.m, fp.q, fp.V, r, Quadrature())
    ref = brute_force_cross_moment(model, fp.m, fp.q, fp.V, r * fp.q)
    assert float(ours) == pytest.approx(float(ref), rel=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_stability_increases_with_the_shared_fraction(x64, fps, name):
    model, alpha, lam = CASES[name]
    cs = jnp.linspace(0.0, 1.0, 6)
    out = jax.vmap(lambda c: two_learner_overlap(model, alpha, lam, c, fps[name]))(cs)
    s = np.asarray(out.stability)
    assert np.all(np.asarray(out.converged))
    assert np.all(np.diff(s) > 1e-3)
    assert s[0] == pytest.approx(float(r0(model, fps[name])), abs=1e-10) and s[-1] == 1.0


def test_vmap_over_c_equals_a_loop(x64, fps):
    model, alpha, lam = SIGN
    cs = jnp.linspace(0.05, 0.95, 6)  # the batch size of the monotonicity test: one compile
    batched = jax.vmap(lambda c: two_learner_overlap(model, alpha, lam, c, fps["sign"]))(cs)
    for i, c in enumerate(cs):
        one = two_learner_overlap(model, alpha, lam, c, fps["sign"])
        assert float(batched.q12[i]) == pytest.approx(float(one.q12), rel=1e-12)
        assert int(batched.n_iter[i]) <= 60


def test_fixed_point_is_solved_when_not_given(x64, fps):
    model, alpha, lam = SIGN
    given = two_learner_overlap(model, alpha, lam, 0.8, fps["sign"])
    solved = two_learner_overlap(model, alpha, lam, 0.8)
    assert bool(solved.converged)
    assert float(solved.q12) == pytest.approx(float(given.q12), rel=1e-9)


def test_changing_c_does_not_recompile(x64, fps):
    model, alpha, lam = SIGN
    two_learner_overlap(model, alpha, lam, 0.3, fps["sign"])
    size = _overlap._cache_size()
    two_learner_overlap(model, alpha, lam, 0.6, fps["sign"])
    two_learner_overlap(model, alpha, lam + 0.01, 0.7, fps["sign"])
    assert _overlap._cache_size() == size


@pytest.mark.parametrize("case", [LOGISTIC, HARD], ids=["logistic", "sign-hard"])
def test_node_doubling_converges(x64, case):
    model, alpha, lam = case
    vals = []
    for quad in (Quadrature(), Quadrature().doubled()):
        fp = _fixed_point(model, alpha, lam, quad=quad)
        out = two_learner_overlap(model, alpha, lam, 0.8, fp, quad=quad)
        assert bool(out.converged)
        vals.append(float(out.stability))
    assert abs(vals[0] - vals[1]) < 1e-7


def test_unconverged_fixed_point_gives_nan(x64, fps):
    model, alpha, lam = SIGN
    fp = fps["sign"]
    bad = type(fp)(**{**vars(fp), "converged": jnp.asarray(False)})
    out = two_learner_overlap(model, alpha, lam, 0.8, bad)
    assert not bool(out.converged) and np.isnan(float(out.stability))


def simulate(model, alpha, lam, cs, d, n_seeds, key):
    """cos(w1, w2) per seed (rows) and shared fraction (columns): a teacher, a dataset
    of n = alpha d examples, a second one sharing round(c n) of them plus fresh ones.

    The fits run in float32 (the tolerance 1e-5 on the relative gradient moves the
    cosine by ~1e-7, far below the seed-to-seed spread) to halve the cost."""
    n = round(alpha * d)
    f32 = jnp.float32
    fit = lambda X, y: pj.solvers.solve_ridge_logistic(
        X.astype(f32), y.astype(f32), f32(lam), fit_intercept=False, solver=pj.solvers.Newton()
    )

    def one(key):
        k_t, k_1, k_2 = jax.random.split(key, 3)
        w_star = model.teacher(k_t, d)
        X1, y1, _ = model.sample(k_1, n, d, w_star)
        Xf, yf, _ = model.sample(k_2, n, d, w_star)
        s1 = fit(X1, y1)
        cos, ok = [], [s1.converged]
        for k in (round(c * n) for c in cs):
            s2 = fit(jnp.concatenate([X1[:k], Xf[: n - k]]), jnp.concatenate([y1[:k], yf[: n - k]]))
            cos.append(pj.metrics.cosine(s1.w, s2.w))
            ok.append(s2.converged)
        return jnp.stack(cos), jnp.all(jnp.stack(ok))

    cos, ok = jax.jit(jax.vmap(one))(jax.random.split(key, n_seeds))
    assert np.all(np.asarray(ok))
    return np.asarray(cos, np.float64)


def check_against_simulation(case, d, n_seeds, finite_size, seed):
    model, alpha, lam = case
    cs = (0.8, 0.0)
    fp = _fixed_point(model, alpha, lam, quad=Quadrature())
    theory = np.array([float(two_learner_overlap(model, alpha, lam, c, fp).stability) for c in cs])
    cos = simulate(model, alpha, lam, cs, d, n_seeds, jax.random.key(seed))
    mean, se = cos.mean(0), cos.std(0, ddof=1) / np.sqrt(n_seeds)
    assert np.all(np.abs(mean - theory) <= 4 * se + finite_size), (mean, se, theory)
    return theory, mean, se


# Finite-size allowance: the leading corrections to the overlaps are O(1/d), and the
# bias of a ratio of fluctuating overlaps is of the order of their variance (per-run
# spread of cos ~0.07 at d = 250, ~0.02 at d = 2000 for c = 0). Scans at d = 250, 500,
# 1000, 2000 (8 seeds each) found |mean - theory| <= 0.004 at c = 0.8 and never beyond
# 2 standard errors at either c, so 0.01 is a conservative bound at d >= 250.
FINITE_SIZE = 0.01


@pytest.mark.parametrize("name", CASES)
def test_matches_simulation_small(x64, name):
    check_against_simulation(CASES[name], d=250, n_seeds=8, finite_size=FINITE_SIZE, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_matches_simulation(x64, name):
    """d = 2000, 8 seeds: ~6 min per case on 2 CPU cores."""
    check_against_simulation(CASES[name], d=2000, n_seeds=8, finite_size=FINITE_SIZE, seed=2)


# n < d at d = 2000: the fits take the representer form (n x n systems), so the
# acceptance check at d >= 2000 also runs in the default suite.
FEW_SHOT = (pj.GaussianTeacherStudent("logistic", rho=1.0, beta=2.0), 0.7, 0.1)


def test_matches_simulation_at_d2000_few_shot(x64):
    theory, mean, se = check_against_simulation(
        FEW_SHOT, d=2000, n_seeds=6, finite_size=FINITE_SIZE, seed=3
    )
    assert theory[0] > theory[1] + 0.1  # the 80% overlap is visibly more stable

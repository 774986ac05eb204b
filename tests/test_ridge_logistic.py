import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import planted_problem
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import probejax as pj
from probejax.solvers import LBFGS, Auto, Newton
from probejax.solvers._ridge_logistic import _path_jit

SOLVERS = [Newton, LBFGS]


def objective(X, y, w, b, lam):
    ypm = np.where(y > 0, 1.0, -1.0)
    return np.logaddexp(0.0, -ypm * (X @ w + b)).sum() + 0.5 * lam * w @ w


@pytest.mark.parametrize("solver", SOLVERS, ids=["newton", "lbfgs"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(40, 120), (150, 25)])
def test_matches_sklearn_over_grid(x64, solver, fit_intercept, shape):
    n, d = shape
    X, y = planted_problem(0, n, d, signal=1.5)
    Cs = np.logspace(-3, 4, 8)  # C = 1e4 is near-separable when n < d
    sol = pj.solvers.ridge_logistic_path(X, y, 1 / Cs, fit_intercept=fit_intercept, solver=solver())
    assert sol.w.dtype == jnp.float64
    assert bool(sol.converged.all())
    compared = 0
    for i, C in enumerate(Cs):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            try:
                sk = LogisticRegression(
                    C=C, tol=1e-10, max_iter=20000, fit_intercept=fit_intercept
                ).fit(X, y)
            except ConvergenceWarning:
                continue
        ws, bs = sk.coef_[0], (sk.intercept_[0] if fit_intercept else 0.0)
        w, b = np.asarray(sol.w[i]), float(sol.b[i])
        f_ours, f_sk = objective(X, y, w, b, 1 / C), objective(X, y, ws, bs, 1 / C)
        assert (f_ours - f_sk) / f_sk <= 1e-5
        assert w @ ws / np.linalg.norm(w) / np.linalg.norm(ws) >= 0.9999
        assert np.isclose(float(sol.objective[i]), f_ours, rtol=1e-10)
        compared += 1
    assert compared >= 6


@pytest.mark.parametrize("solver", SOLVERS, ids=["newton", "lbfgs"])
def test_reported_gradient_is_the_true_gradient(x64, solver):
    X, y = planted_problem(1, 60, 90)
    lam = 0.3
    sol = pj.solvers.fit_ridge_logistic(X, y, lam, solver=solver(tol=1e-3))
    ypm = jnp.where(jnp.asarray(y) > 0, 1.0, -1.0)
    F = lambda w, b: jnp.sum(jnp.logaddexp(0.0, -ypm * (X @ w + b))) + 0.5 * lam * w @ w
    gw, gb = jax.grad(F, argnums=(0, 1))(sol.w, sol.b)
    true = float(jnp.sqrt(gw @ gw + gb**2))
    assert np.isclose(float(sol.grad_norm), true, rtol=1e-6)
    assert float(sol.decrement) <= 2e-3 * float(sol.objective)
    g0w, g0b = jax.grad(F, argnums=(0, 1))(jnp.zeros(90), 0.0)
    assert np.isclose(float(sol.grad_norm0), float(jnp.sqrt(g0w @ g0w + g0b**2)), rtol=1e-10)
    assert float(sol.grad_norm) <= 1e-3 * float(sol.grad_norm0)


@pytest.mark.parametrize("solver", SOLVERS, ids=["newton", "lbfgs"])
def test_intercept_only_closed_form(x64, solver):
    # With all-zero features the minimiser is w = 0, b = logit(fraction positive).
    y = np.r_[np.ones(30), np.zeros(10)]
    sol = pj.solvers.fit_ridge_logistic(np.zeros((40, 5)), y, 1.0, solver=solver())
    assert np.allclose(sol.w, 0.0)
    assert np.isclose(float(sol.b), np.log(3.0), rtol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS, ids=["newton", "lbfgs"])
def test_vmap_equals_loop(x64, solver):
    # Batched and single products round differently, so the iterates differ at the
    # level of the tolerance: compare tightly converged float64 fits.
    X, y = planted_problem(2, 80, 120)
    lams = np.array([0.05, 0.5, 5.0, 50.0])
    path = pj.solvers.ridge_logistic_path(X, y, lams, solver=solver(tol=1e-12))
    for i, lam in enumerate(lams):
        one = pj.solvers.fit_ridge_logistic(X, y, lam, solver=solver(tol=1e-12))
        np.testing.assert_allclose(path.w[i], one.w, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(path.b[i], one.b, rtol=1e-8, atol=1e-10)
        assert bool(path.converged[i]) and bool(one.converged)


@pytest.mark.parametrize(
    "lams",
    [
        np.array([3.0]),
        np.array([0.1, 10.0]),
        np.array([5.0, 0.02, 0.5, 0.5, 50.0, 0.005, 2.0, 0.2]),  # unsorted, a repeat
    ],
)
def test_lbfgs_path_stages_equal_single_fits(x64, lams):
    # every grid point, coarse (continuation) or fine (interpolated start), is the
    # single fit; grids shorter than the stride and repeated ridges included
    X, y = planted_problem(3, 90, 60)
    path = pj.solvers.ridge_logistic_path(X, y, lams, solver=LBFGS(tol=1e-12))
    for i, lam in enumerate(lams):
        one = pj.solvers.fit_ridge_logistic(X, y, lam, solver=Newton(tol=1e-12))
        np.testing.assert_allclose(path.w[i], one.w, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(path.b[i], one.b, rtol=1e-7, atol=1e-9)
        assert bool(path.converged[i])
        assert float(path.lam[i]) == lam


@pytest.mark.parametrize("solver", SOLVERS, ids=["newton", "lbfgs"])
def test_vmap_equals_loop_float32_objective(solver):
    X, y = planted_problem(2, 80, 120)
    lams = np.array([0.05, 5.0])
    path = pj.solvers.ridge_logistic_path(X, y, lams, solver=solver())
    for i, lam in enumerate(lams):
        one = pj.solvers.fit_ridge_logistic(X, y, lam, solver=solver())
        np.testing.assert_allclose(path.objective[i], one.objective, rtol=1e-6)


def test_new_grid_does_not_recompile():
    X, y = planted_problem(3, 50, 30)
    pj.solvers.ridge_logistic_path(X, y, np.logspace(-2, 2, 7), solver=LBFGS())
    size = _path_jit._cache_size()
    pj.solvers.ridge_logistic_path(X, y, np.logspace(-1, 3, 7), solver=LBFGS())  # a new, equal spec
    assert _path_jit._cache_size() == size
    pj.solvers.ridge_logistic_path(X, y, np.logspace(-1, 3, 8), solver=LBFGS())
    assert _path_jit._cache_size() == size + 1  # the counter does count compilations


def test_separable_tiny_ridge_is_finite_and_flagged():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 200)).astype(np.float32)
    y = np.sign(X[:, 0])
    lams = np.array([1e-12, 1e-6, 1e-3, 1.0])
    full = {}
    for solver in SOLVERS:
        short = pj.solvers.ridge_logistic_path(X, y, lams, solver=solver(max_iter=3))
        assert np.isfinite(np.asarray(short.w)).all() and np.isfinite(np.asarray(short.b)).all()
        assert np.isfinite(np.asarray(short.objective)).all()
        assert not bool(short.converged[0])
        assert int(short.result[0]) == pj.solvers.Result.MAX_ITER
        full[solver] = sol = pj.solvers.ridge_logistic_path(X, y, lams, solver=solver())
        assert bool(sol.converged.all())
        norms = np.linalg.norm(np.asarray(sol.w), axis=1)
        assert (np.diff(norms) < 0).all()  # the large-norm end is reached at tiny ridge
    # A flat objective must not stop a solver early: both reach the same minimiser
    # (at lam = 1e-12 the conditioning exceeds float32, so only the objective is compared).
    w_n, w_l = np.asarray(full[Newton].w[1]), np.asarray(full[LBFGS].w[1])
    assert w_n @ w_l / np.linalg.norm(w_n) / np.linalg.norm(w_l) > 0.9999
    assert np.isclose(full[Newton].objective[0], full[LBFGS].objective[0], rtol=0.05)


def test_float32_default_and_agrees_with_float64():
    X, y = planted_problem(5, 100, 60)
    sol32 = pj.solvers.fit_ridge_logistic(X, y, 0.5)
    assert sol32.w.dtype == jnp.float32
    jax.config.update("jax_enable_x64", True)
    try:
        sol64 = pj.solvers.fit_ridge_logistic(X, y, 0.5)
        assert sol64.w.dtype == jnp.float64
    finally:
        jax.config.update("jax_enable_x64", False)
    w32, w64 = np.asarray(sol32.w, np.float64), np.asarray(sol64.w)
    assert w32 @ w64 / np.linalg.norm(w32) / np.linalg.norm(w64) > 0.99999


def test_auto_solver_choice():
    from probejax.solvers._solver_specs import resolve_solver

    assert Auto().resolve(640, 4096, 100) == LBFGS()
    assert Auto().resolve(640, 4096, 1) == Newton()
    assert Auto().resolve(30, 20, 100) == Newton()
    assert Auto().resolve(65, 65, 2) == LBFGS() and Auto().resolve(64, 4096, 2) == Newton()
    tight = Auto(Newton(tol=1e-9), LBFGS(max_iter=50))
    assert tight.resolve(640, 4096, 100) == LBFGS(max_iter=50)
    assert tight.resolve(640, 4096, 1) == Newton(tol=1e-9)
    assert resolve_solver(Newton(), 640, 4096, 100) == Newton()
    assert resolve_solver(LBFGS(), 10, 10, 1) == LBFGS()
    for bad in ("auto", "newton", "sgd", None):
        with pytest.raises(TypeError, match=r"Newton\(...\), LBFGS\(...\) or Auto\(...\)"):
            resolve_solver(bad, 10, 10, 1)


def test_solver_specs_validate_hash_and_describe():
    """The defaults are today's (tol: the precision's; Newton 100 steps, L-BFGS 1000);
    bad values name the field; equal specs hash equal (one compiled program); a string
    is refused with the classes named; the core refuses Auto (it cannot see the grid)."""
    import json

    assert (Newton().tol, Newton().max_iter, LBFGS().tol, LBFGS().max_iter) == (
        None,
        100,
        None,
        1000,
    )
    for make, field, bad in [
        (Newton, "tol", 0.0),
        (Newton, "tol", float("nan")),
        (LBFGS, "tol", "1e-5"),
        (Newton, "max_iter", 0),
        (LBFGS, "max_iter", 2.5),
        (LBFGS, "max_iter", True),
    ]:
        with pytest.raises(ValueError, match=rf"{make.__name__}\.{field} must be"):
            make(**{field: bad})
    with pytest.raises(ValueError, match=r"Auto\.newton must be a Newton"):
        Auto(newton=LBFGS())
    with pytest.raises(ValueError, match=r"Auto\.lbfgs must be a LBFGS"):
        Auto(lbfgs="lbfgs")
    assert hash(Newton(tol=1e-3)) == hash(Newton(tol=1e-3)) and Newton(tol=1e-3) != LBFGS(tol=1e-3)
    assert {Auto(): 1}[Auto()] == 1
    desc = Auto(lbfgs=LBFGS(tol=1e-8)).describe()
    assert desc == {
        "Auto": {
            "newton": {"Newton": {"tol": None, "max_iter": 100}},
            "lbfgs": {"LBFGS": {"tol": 1e-8, "max_iter": 1000}},
        }
    }
    assert json.loads(json.dumps(desc, sort_keys=True)) == desc
    X, y = planted_problem(6, 20, 5)
    for bad in ("auto", "newton", "lbfgs"):
        with pytest.raises(TypeError, match="Newton.*LBFGS.*Auto"):
            pj.solvers.fit_ridge_logistic(X, y, 1.0, solver=bad)
        with pytest.raises(TypeError, match="Newton.*LBFGS.*Auto"):
            pj.solvers.ridge_logistic_path(X, y, np.ones(3), solver=bad)
    ypm = jnp.where(jnp.asarray(y) > 0, 1.0, -1.0)
    with pytest.raises(TypeError, match="resolve Auto"):
        pj.solvers.solve_ridge_logistic(jnp.asarray(X), ypm, 1.0, solver=Auto())


def test_bad_inputs_are_named():
    X, y = planted_problem(6, 20, 5)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    Xn[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"X holds 2 non-finite.*index \(3, 2\)"):
        pj.solvers.fit_ridge_logistic(Xn, y, 1.0)
    with pytest.raises(ValueError, match="y has 19 labels but X has 20 rows"):
        pj.solvers.fit_ridge_logistic(X, y[:-1], 1.0)
    with pytest.raises(ValueError, match="exactly two classes.*got 3"):
        pj.solvers.fit_ridge_logistic(X, np.arange(20) % 3, 1.0)
    with pytest.raises(ValueError, match="exactly two classes.*got 1"):
        pj.solvers.fit_ridge_logistic(X, np.ones(20), 1.0)
    with pytest.raises(ValueError, match=r"lam must be finite and > 0.*entry 0 is 0.0"):
        pj.solvers.fit_ridge_logistic(X, y, 0.0)
    with pytest.raises(ValueError, match=r"lams must be finite and > 0.*entry 2 is -1.0"):
        pj.solvers.ridge_logistic_path(X, y, np.array([1.0, 2.0, -1.0]))
    with pytest.raises(ValueError, match="lams must be a 1-D grid"):
        pj.solvers.ridge_logistic_path(X, y, np.ones((2, 2)))
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        pj.solvers.fit_ridge_logistic(X[None], y, 1.0)


@pytest.mark.parametrize("shape", [(600, 80), (120, 400)])
def test_float32_path_keeps_small_directions(shape):
    """A spectrum spanning six decades (as real layers have): the float32 L-BFGS path at
    small ridges matches scikit-learn in float64 (margins within 0.5%). A reduced design that drops directions
    below n*eps*s_max loses the small ones the labels depend on (this test then fails)."""
    n, d = shape
    k = min(n, d)
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    scales = np.logspace(0, -3, k)
    X = (rng.standard_normal((n, k)) * scales) @ Q.T
    teacher = Q @ (rng.standard_normal(k) / scales)  # every direction carries signal
    y = np.where(X @ teacher + rng.standard_normal(n) * np.linalg.norm(teacher) * 0.01 > 0, 1, -1)
    lams = np.array([1e-2, 1e-3])
    path = pj.solvers.ridge_logistic_path(X.astype(np.float32), y, lams, solver=LBFGS())
    assert bool(np.all(np.asarray(path.converged)))
    for i, lam in enumerate(lams):
        ref = LogisticRegression(C=1 / lam, tol=1e-12, max_iter=100_000).fit(X, y)
        w_ref = ref.coef_.ravel()
        margins = X @ np.asarray(path.w[i], np.float64) + float(path.b[i])
        ref_margins = X @ w_ref + ref.intercept_[0]
        err = np.linalg.norm(margins - ref_margins) / np.linalg.norm(ref_margins)
        assert err < 5e-3, (shape, lam, err)


def test_warm_start_reaches_the_cold_solution():
    """Newton in the primal form started from a nearby solution (the train part's, as
    RAPTOR's refit does) converges to the pool's solution in fewer steps; a start that
    is not finite is dropped; the representer form ignores the start."""
    from probejax.solvers._ridge_logistic import solve_ridge_logistic

    solve = jax.jit(lambda X, y, init: solve_ridge_logistic(X, y, 0.5, solver=Newton(), init=init))
    for n, d, warm_fewer in ((300, 40, True), (40, 80, False)):
        X, y = planted_problem(7, n, d)
        X, y = jnp.asarray(X, jnp.float32), jnp.asarray(np.where(y > 0, 1.0, -1.0), jnp.float32)
        zero = (jnp.zeros(d), jnp.zeros(()))
        cold = solve(X, y, zero)
        near = solve(X[: int(0.8 * n)], y[: int(0.8 * n)], zero)
        warm = solve(X, y, (near.w, near.b))
        bad = solve(X, y, (jnp.full(d, jnp.nan), jnp.zeros(())))
        for sol in (warm, bad):
            assert bool(sol.converged)
            np.testing.assert_allclose(sol.w, cold.w, rtol=2e-4, atol=2e-5)
        assert int(bad.n_iter) == int(cold.n_iter)
        if warm_fewer:
            # from the train part's solution (80% of the pool, as RAPTOR's refit) Newton
            # needs no more steps than from zero; from a nearer one (90%), fewer
            assert int(warm.n_iter) <= int(cold.n_iter)
            nearer = solve(X[: int(0.9 * n)], y[: int(0.9 * n)], zero)
            closer = solve(X, y, (nearer.w, nearer.b))
            np.testing.assert_allclose(closer.w, cold.w, rtol=2e-4, atol=2e-5)
            assert int(closer.n_iter) < int(cold.n_iter)
        else:
            assert int(warm.n_iter) == int(cold.n_iter)

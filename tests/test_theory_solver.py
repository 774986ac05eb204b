"""The theory's one fixed-point solver (probejax.theory._solver): its status codes and
implicit derivative on a problem with a closed form, and both data models (the
teacher-student and the Gaussian mixture) solved through it, with its implicit
derivative against finite differences of converged solutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax as pj
from probejax import theory as th
from probejax.datamodels._mixture import GaussianMixture
from probejax.theory import _fixed_point, _mixture
from probejax.theory._solver import FixedPointSolver, Status


def toy_residual(x, p):
    """:math:`R = T(x) - x` with :math:`T(x) = (\\log a,\\ x_0 / 2 + b)`: the root is
    :math:`x^* = (\\log a, \\log(a)/2 + b)`, :math:`x_1` a log-scale coordinate."""
    return jnp.stack([jnp.log(p["a"]) - x[0], 0.5 * x[0] + p["b"] - x[1]])


def no_root(x, p):
    """:math:`R = e^{x} p`: no root; Newton walks :math:`x \\to -\\infty`."""
    return jnp.exp(x) * p


TOY = FixedPointSolver(log_bounded=(1,), picard_steps=3, max_iter=50)


def test_solver_status_and_implicit_derivative_closed_form(x64):
    p = {"a": jnp.asarray(3.0), "b": jnp.asarray(-0.5)}
    x0 = jnp.zeros(2)
    sol = jax.jit(lambda p: TOY.solve(toy_residual, x0, p, tol=1e-12))(p)
    assert int(sol.status) == Status.CONVERGED and bool(sol.converged)
    assert float(sol.residual) <= 1e-12 and 3 <= int(sol.n_iter) <= 50
    np.testing.assert_allclose(sol.x, [np.log(3.0), np.log(3.0) / 2 - 0.5], rtol=1e-12)
    # dx*/da = (1/a, 1/(2a)), dx*/db = (0, 1): the implicit function theorem, exactly.
    J = jax.jacfwd(lambda p: TOY.solve(toy_residual, x0, p, tol=1e-12).x)(p)
    np.testing.assert_allclose(J["a"], [1 / 3, 1 / 6], rtol=1e-12)
    np.testing.assert_allclose(J["b"], [0.0, 1.0], atol=1e-14)
    g = jax.grad(lambda p: jnp.sum(TOY.solve(toy_residual, x0, p, tol=1e-12).x))(p)
    assert float(g["a"]) == pytest.approx(0.5) and float(g["b"]) == pytest.approx(1.0)
    # A warm start skips the damped sweeps.
    warm = TOY.solve(toy_residual, x0, p, tol=1e-12, warm=sol.x)
    assert int(warm.n_iter) == 0 and bool(warm.converged)
    # max_iter counts the damped sweeps: none left for Newton.
    short = TOY.with_max_iter(3).solve(toy_residual, jnp.asarray([9.0, 9.0]), p, tol=1e-12)
    assert int(short.status) == Status.MAX_ITER and int(short.n_iter) == 3
    assert np.isnan(float(short.keep(short.x[0])))
    lost = TOY.solve(no_root, jnp.zeros(2), jnp.ones(2), tol=1e-12)
    assert int(lost.status) == Status.DIVERGED and not bool(lost.converged)


def test_solver_options_are_validated():
    with pytest.raises(ValueError, match="FixedPointSolver.damping must be in"):
        FixedPointSolver(log_bounded=(0,), damping=1.5)
    with pytest.raises(ValueError, match="FixedPointSolver.max_iter must be >= 1"):
        FixedPointSolver(log_bounded=(0,), max_iter=0)


def teacher_student():
    model = pj.GaussianTeacherStudent("logistic", rho=1.0, beta=2.0)
    solver = _fixed_point.SOLVER
    quad = th.Quadrature()

    def params(t):  # t = (alpha, lam)
        return th.Params(t[0], t[1], jax.tree.map(jnp.asarray, model))

    def solve(t, solver=solver):
        p = params(t)
        sol = solver.solve(_fixed_point.residual, _fixed_point._initial(p), p, (quad,), tol=1e-12)
        return sol, th.solve_fixed_point(model, t[0], t[1], tol=1e-12, max_iter=solver.max_iter)

    return solver, solve, jnp.asarray([2.0, 0.1])


def mixture():
    rng = np.random.default_rng(0)
    om = 1.0 / (1.0 + np.arange(20))
    mu = rng.standard_normal(20) * np.sqrt(om)
    model = GaussianMixture.from_spectrum(om, np.stack([1.3 * mu, -0.7 * mu]))
    spec = th.Spectrum.of(model)
    solver, loss, quad = _mixture.MIXTURE_SOLVER, th.Logistic(), _mixture.MIXTURE_QUAD

    def solve(t, solver=solver):  # t = (n, lam)
        p = _mixture.MixtureParams(t[0], t[1], jnp.asarray([0.5, 0.5]), spec)
        x0 = _mixture._initial(p)
        sol = solver.solve(_mixture.residual, x0, p, (loss, quad), tol=1e-12)
        return sol, th.solve_mixture(spec, t[0], t[1], tol=1e-12, max_iter=solver.max_iter)

    return solver, solve, jnp.asarray([60.0, 0.5])


@pytest.mark.parametrize("case", [teacher_student, mixture])
def test_both_data_models_go_through_the_one_solver(x64, case):
    solver, solve, t = case()
    assert isinstance(solver, FixedPointSolver)
    sol, fp = jax.jit(solve)(t)
    # The public solver's report is the shared solver's, bit for bit.
    for name in ("residual", "n_iter", "converged", "status"):
        assert np.array_equal(getattr(sol, name), getattr(fp, name)), name
    assert int(fp.status) == Status.CONVERGED and int(fp.n_iter) >= solver.picard_steps
    short, fp_short = solve(t, solver.with_max_iter(solver.picard_steps + 1))
    assert int(short.status) == int(fp_short.status) == Status.MAX_ITER
    assert int(fp_short.n_iter) == solver.picard_steps + 1 and np.isnan(
        float(jnp.ravel(fp_short.q)[0])
    )
    # Implicit derivative of x* against central differences of converged solutions.
    x = jax.jit(lambda t: solve(t)[0].x)
    J = jax.jacfwd(x)(t)
    assert float(jnp.max(jnp.abs(J))) > 1e-3
    for i in range(t.size):
        h = 1e-4 * float(t[i])
        e = jnp.zeros_like(t).at[i].set(h)
        fd = (x(t + e) - x(t - e)) / (2 * h)
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-6, atol=1e-9)

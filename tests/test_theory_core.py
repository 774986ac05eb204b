import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm
from typer.testing import CliRunner

import probejax as pj
from probejax import theory as th
from probejax.cli import app
from probejax.solvers._prox import prox_margin
from probejax.theory._fixed_point import channel_update, prior_update
from probejax.theory._quadrature import gaussian_rule

HARD_POINTS = [  # (channel, alpha, lam): large q and V, where coarse rules fail
    ("logistic", 10.0, 1e-3),
    ("sign", 3.0, 0.01),
    ("probit", 2.0, 0.1),
    ("logistic", 0.5, 1.0),
]


def model_of(channel, **kw):
    return pj.GaussianTeacherStudent(channel, **kw)


def params(model, alpha, lam):
    return th.Params(jnp.asarray(alpha), jnp.asarray(lam), jax.tree.map(jnp.asarray, model))


def test_gaussian_rule_closed_forms(x64):
    q = th.Quadrature()
    xi, w = gaussian_rule(-10.0, 10.0, [(0.0, 1e-3), (-2.0, 0.05)], q)
    assert np.isclose(float(jnp.sum(w)), 1.0, atol=1e-14)
    assert np.isclose(float(jnp.sum(w * xi**2)), 1.0, atol=1e-13)
    assert np.isclose(float(jnp.sum(w * xi**4)), 3.0, atol=1e-12)
    # A step of width 1e-4 at 0 and a kink at -2: features the grading must resolve.
    assert np.isclose(float(jnp.sum(w * jax.nn.sigmoid(xi / 1e-4))), 0.5, atol=1e-12)
    expect = float(norm.pdf(2.0) - 2.0 * norm.cdf(-2.0))  # E[(-2 - xi)_+]
    assert np.isclose(float(jnp.sum(w * jnp.maximum(-2.0 - xi, 0))), expect, atol=1e-12)
    xi, w = gaussian_rule(1.5, 10.0, [(0.0, 0.1)], q)
    assert np.isclose(float(jnp.sum(w)), float(norm.cdf(-1.5)), atol=1e-14)
    xi, w = gaussian_rule(10.0, 10.0, [(0.0, 0.1)], q)
    assert float(jnp.sum(w)) == 0.0


def test_prox_satisfies_its_optimality_condition(x64):
    for V in (1e-3, 0.7, 25.0, 1e3):
        a = jnp.linspace(-3 * V - 30, 30, 4001)
        u = prox_margin(a, V)
        assert float(jnp.max(jnp.abs(u - a - V * jax.nn.sigmoid(-u)))) < 1e-12 * (1 + V)
        assert bool(jnp.all((u >= a) & (u <= a + V)))
    # V ~ 25, y omega ~ -22: plain Newton cycles there.
    u = prox_margin(jnp.asarray(-22.0), 25.0)
    assert abs(float(u + 22.0 - 25.0 * jax.nn.sigmoid(-u))) < 1e-12
    # Implicit derivative against central differences.
    a0, V0, h = jnp.asarray(-3.0), jnp.asarray(5.0), 1e-6
    da, dV = jax.grad(prox_margin, argnums=(0, 1))(a0, V0)
    assert np.isclose(
        float(da), float((prox_margin(a0 + h, V0) - prox_margin(a0 - h, V0)) / (2 * h)), rtol=1e-7
    )
    assert np.isclose(
        float(dV), float((prox_margin(a0, V0 + h) - prox_margin(a0, V0 - h)) / (2 * h)), rtol=1e-7
    )


@pytest.mark.parametrize("point", HARD_POINTS)
def test_solution_is_a_fixed_point_and_quadrature_converged(x64, point):
    channel, alpha, lam = point
    model = model_of(channel, eps=0.05 if channel == "probit" else 0.0)
    fp = th.solve_fixed_point(model, alpha, lam)
    assert bool(fp.converged) and int(fp.status) == th.Status.CONVERGED
    p = params(model, alpha, lam)
    m, q, V = prior_update(p, *channel_update(p, fp.m, fp.q, fp.V, th.Quadrature()))
    np.testing.assert_allclose([m, q, V], [fp.m, fp.q, fp.V], rtol=1e-9)
    fine = th.Quadrature().doubled()
    fp2 = th.solve_fixed_point(model, alpha, lam, quad=fine)
    for name in ("m", "q", "V"):
        assert abs(float(getattr(fp2, name)) / float(getattr(fp, name)) - 1) < 1e-8, name
    o1, o2 = th.observables(p, fp), th.observables(p, fp2, fine)
    for name in ("acc", "train_loss", "train_acc"):
        assert abs(float(getattr(o1, name)) - float(getattr(o2, name))) < 1e-8, name


def test_sign_teacher_accuracy_formulas_agree(x64):
    for eps in (0.0, 0.1):
        model = model_of("sign", eps=eps)
        fp = th.solve_fixed_point(model, 2.0, 0.3)
        obs = th.observables(params(model, 2.0, 0.3), fp)
        closed = eps + (1 - 2 * eps) * (1 - np.arccos(float(obs.cos)) / np.pi)
        assert np.isclose(float(obs.acc), closed, atol=1e-12)
        assert np.isclose(float(obs.stability), float(obs.cos) ** 2)


def test_vmap_equals_loop(x64):
    model = model_of("logistic")
    alphas, lams = jnp.array([0.7, 2.0, 4.0]), jnp.array([0.05, 0.5, 2.0])
    grid = jax.vmap(lambda a, lm: th.solve_fixed_point(model, a, lm))(alphas, lams)
    for i in range(3):
        one = th.solve_fixed_point(model, alphas[i], lams[i])
        np.testing.assert_allclose(grid.q[i], one.q, rtol=1e-10)
        np.testing.assert_allclose(grid.m[i], one.m, rtol=1e-10)


def test_missing_fixed_point_is_flagged_not_a_number(x64):
    noise = model_of("logistic", beta=0.0)  # labels independent of x: separable iff alpha < 2
    below = th.solve_fixed_point(noise, 1.6, 0.0)
    assert not bool(below.converged) and int(below.status) != th.Status.CONVERGED
    assert np.isnan(float(below.q)) and np.isnan(float(below.m))
    above = th.solve_fixed_point(noise, 2.6, 0.0)
    assert bool(above.converged) and abs(float(above.m)) < 1e-12 and float(above.q) > 0


SIM_POINTS = [  # n < d keeps the d = 2000 fits fast (representer form)
    ("logistic", dict(beta=2.0), 0.8, 0.1),
    ("sign", {}, 0.5, 0.05),
    ("probit", dict(delta=0.25, eps=0.05), 0.6, 0.3),
    pytest.param("logistic", dict(beta=1.0), 2.0, 0.1, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("channel", "kw", "alpha", "lam"), SIM_POINTS)
def test_theory_matches_simulation(x64, channel, kw, alpha, lam):
    model = model_of(channel, **kw)
    fp = th.solve_fixed_point(model, alpha, lam)
    obs = th.observables(params(model, alpha, lam), fp)
    seeds, d = 6, 2000
    sim = jax.jit(jax.vmap(lambda k: th.simulate(model, alpha, lam, d, k)))(
        jax.random.split(jax.random.key(7), seeds)
    )
    assert bool(sim.converged.all())
    for name, theory in [
        ("m", fp.m),
        ("q", fp.q),
        ("cos", obs.cos),
        ("acc", obs.acc),
        ("train_loss", obs.train_loss),
        ("train_acc", obs.train_acc),
        ("stability", obs.stability),
    ]:
        vals = np.asarray(getattr(sim, name))
        se = vals.std(ddof=1) / np.sqrt(seeds)
        # 4 standard errors over seeds, plus an O(1/sqrt(d)) allowance for the
        # finite-size bias of a single d = 2000 system (theory is the d -> infinity limit).
        tol = 4 * se + 0.5 * abs(float(theory)) / np.sqrt(d) + 1e-3
        assert abs(vals.mean() - float(theory)) < tol, (name, vals.mean(), float(theory), tol)


def test_theory_point_command_prints_json():
    out = CliRunner().invoke(
        app, ["theory", "point", "--alpha", "2", "--lam", "0.1", "--teacher", "sign", "--json"]
    )
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert got["converged"] is True and {"m", "q", "V", "cos", "acc", "stability"} <= set(got)
    assert np.isclose(got["acc"], 1 - np.arccos(got["cos"]) / np.pi, atol=1e-10)
    bad = CliRunner().invoke(app, ["theory", "point", "--alpha", "0", "--lam", "0.1"])
    assert bad.exit_code != 0 and "alpha must be finite and > 0" in bad.output

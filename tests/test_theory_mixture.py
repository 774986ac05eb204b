"""The Gaussian-mixture fixed point: Monte Carlo on a power-law spectrum, the isotropic
reduction, implicit derivatives, continuation, and the ``theory layer`` command."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

import probejax as pj
from probejax import theory as th
from probejax.cli import app
from probejax.datamodels._mixture import GaussianMixture
from probejax.estimators import LogisticRidge, RidgeLS
from probejax.theory._fixed_point import prior_update
from probejax.theory._losses import theory_loss
from probejax.theory._mixture import Spectrum, solve_mixture, solve_mixture_grid, spectral_prior
from probejax.theory._mixture_observables import mixture_observables, mixture_overlap


def power_law_mixture(
    d: int, seed: int = 0, signal: float = 1.2, shift: float = 0.3, per_class: bool = False
):
    """Spectrum i^-1 (mean 1) in a random basis; means +-mu + shift*mu (so the intercept
    is not zero), mu drawn with the covariance's own profile; ``per_class``: class
    variances 0.5 (1 + cos(i)/2) and 1.5 times the spectrum (one eigenbasis)."""
    rng = np.random.default_rng(seed)
    om = 1.0 / (1.0 + np.arange(d))
    om /= om.mean()
    U = np.linalg.qr(rng.standard_normal((d, d)))[0]
    mu = U @ (rng.standard_normal(d) * np.sqrt(om))
    mu *= signal / np.linalg.norm(mu)
    means = np.stack([(1 + shift) * mu, (shift - 1) * mu])
    cw = np.stack([0.5 * om * (1 + 0.5 * np.cos(np.arange(d))), 1.5 * om]) if per_class else None
    return GaussianMixture.from_spectrum(om, means, eigvecs=U, class_eigvals=cw)


def _wb(probe):
    probe = getattr(probe, "probe", probe)
    return np.asarray(probe.w), float(probe.b)


@pytest.mark.parametrize(
    "estimator,per_class",
    [
        pytest.param(LogisticRidge(lam=2.0), False, marks=pytest.mark.slow),
        pytest.param(LogisticRidge(lam=2.0), True, marks=pytest.mark.slow),
        pytest.param(RidgeLS(lam=20.0), False, marks=pytest.mark.slow),
        (RidgeLS(lam=20.0), True),
    ],
    ids=["logistic", "logistic-per-class", "square", "square-per-class"],
)
def test_mixture_theory_against_monte_carlo(x64, estimator, per_class):
    """d = 300, n = 400, 16 datasets: accuracy per class (exact given w, b: no test
    noise), the intercept, the cosine to the Bayes direction and both stabilities within
    4 standard errors (independent-sample stability: the s.e. of 8 disjoint pairs; the 120
    pairs' mean is the estimate) plus 0.01 for the O(1/sqrt(d)) finite-size bias of
    cosines; shared and per-class covariances."""
    d, n, S, c = 300, 400, 16, 0.8
    model = power_law_mixture(d, per_class=per_class)
    loss, lam = theory_loss(estimator)
    fp = solve_mixture(model, n, lam, loss=loss)
    assert bool(fp.converged)
    ob = mixture_observables(model, fp, lam, loss=loss)
    _, stab_c, _ = mixture_overlap(model, fp, n, lam, c, loss=loss)

    Sig = [np.asarray((model.eigvecs * v) @ model.eigvecs.T) for v in model.class_eigvals]
    means = np.asarray(model.means)
    fit = jax.jit(lambda X, y: estimator.fit(X, y))
    keep = int(c * n) // 2
    fresh = np.r_[np.arange(keep, n // 2), n // 2 + np.arange(keep, n // 2)]
    acc, bs, ws, shared = [], [], [], []
    for s in range(S):
        X, y = model.sample(jax.random.key(s), n, balanced=True)
        w, b = _wb(fit(X, y))
        m = means @ w
        acc.append(
            [norm.cdf(y * (m[k] + b) / np.sqrt(w @ Sig[k] @ w)) for k, y in enumerate((1, -1))]
        )
        bs.append(b)
        ws.append(w / np.linalg.norm(w))
        X2, _ = model.sample(jax.random.key(1000 + s), n, balanced=True)
        X3 = np.array(X)
        X3[fresh] = np.asarray(X2)[fresh]
        w3, _ = _wb(fit(jnp.asarray(X3), y))
        shared.append(w @ w3 / np.linalg.norm(w) / np.linalg.norm(w3))
    ws = np.array(ws)
    wb = np.asarray(model.bayes_direction())
    cos_b = ws @ wb / np.linalg.norm(wb)
    pairs = (ws @ ws.T)[np.triu_indices(S, 1)]
    disjoint = np.sum(ws[0::2] * ws[1::2], axis=1)
    acc = np.array(acc)
    checks = {
        f"accuracy{k}": (
            acc[:, k].mean(),
            acc[:, k].std(ddof=1) / np.sqrt(S),
            float(ob.acc_class[k]),
            0.0,
        )
        for k in range(2)
    }
    checks |= {
        "intercept": (np.mean(bs), np.std(bs, ddof=1) / np.sqrt(S), float(ob.b), 0.0),
        "cos_bayes": (cos_b.mean(), cos_b.std(ddof=1) / np.sqrt(S), float(ob.cos_bayes), 0.01),
        "stability": (
            pairs.mean(),
            disjoint.std(ddof=1) / np.sqrt(S // 2),
            float(ob.stability),
            0.01,
        ),
        "stability_c": (
            np.mean(shared),
            np.std(shared, ddof=1) / np.sqrt(S),
            float(stab_c),
            0.01,
        ),
    }
    for name, (mean, se, theory, slack) in checks.items():
        assert abs(mean - theory) <= 4 * se + slack, (name, mean, se, theory)


def test_isotropic_reduction_is_exact(x64):
    """Flat spectrum 1/d, means +-mu with |mu|^2 = rho/d, hats d times the isotropic ones
    (q-hat and V-hat split equally between the classes: with a shared covariance only
    their sums enter): the spectral prior is the isotropic teacher-student prior, to
    rounding."""
    d, rho, lam = 50, 1.7, 0.3
    mh_iso, qh_iso, Vh_iso = 0.8, 1.3, 2.1
    mu = np.random.default_rng(0).standard_normal(d)
    mu *= np.sqrt(rho / d) / np.linalg.norm(mu)
    model = GaussianMixture.isotropic(mu, sigma2=1.0 / d)
    half = jnp.asarray([0.5, 0.5])
    m, q, V, _, _ = spectral_prior(
        Spectrum.of(model),
        lam,
        jnp.asarray([d * mh_iso / 2, -d * mh_iso / 2]),
        d * qh_iso * half,
        d * Vh_iso * half,
    )
    p = th.Params(jnp.asarray(1.0), jnp.asarray(lam), pj.GaussianTeacherStudent(rho=rho))
    m_iso, q_iso, V_iso = prior_update(p, mh_iso, qh_iso, Vh_iso)
    np.testing.assert_allclose(
        [m[0], -m[1], *q, *V], [m_iso, m_iso, q_iso, q_iso, V_iso, V_iso], rtol=1e-13
    )


def test_debiased_means_remove_the_pool_noise(x64):
    """A pool with no signal at all: the raw pool means read as signal, the debiased
    quadratic forms of the means are unbiased (mean over pools ~ 0)."""
    d, N = 40, 400
    rng = np.random.default_rng(1)
    traces = []
    for _ in range(20):
        X = rng.standard_normal((N, d))
        y = np.repeat([0, 1], N // 2)
        model = GaussianMixture.from_activations(X, y, standardize=False)
        G = Spectrum.of(model).gram
        traces.append(float(jnp.sum(G[0, 0] - 2 * G[0, 1] + G[1, 1])))
    mean, se = np.mean(traces), np.std(traces, ddof=1) / np.sqrt(len(traces))
    assert abs(mean) <= 4 * se
    raw = GaussianMixture.from_activations(X, y, standardize=False, debias=False)
    raw_gram = Spectrum.of(raw).gram
    assert float(jnp.sum(raw_gram[0, 0] - 2 * raw_gram[0, 1] + raw_gram[1, 1])) > 10 * se


def test_implicit_derivatives_match_finite_differences(x64):
    model = power_law_mixture(60, seed=2)

    @jax.jit
    def acc(n, lam, t):
        scaled = eqx_scale(model, t)
        fp = solve_mixture(scaled, n, lam)
        return mixture_observables(scaled, fp, lam).acc

    args = (jnp.asarray(80.0), jnp.asarray(0.5), jnp.asarray(1.0))
    grads = jax.grad(acc, argnums=(0, 1, 2))(*args)
    for i, g in enumerate(grads):
        h = 1e-5 * max(1.0, abs(float(args[i])))
        up = [*args]
        dn = [*args]
        up[i] = up[i] + h
        dn[i] = dn[i] - h
        fd = (float(acc(*up)) - float(acc(*dn))) / (2 * h)
        assert np.isclose(float(g), fd, rtol=1e-5, atol=1e-9), (i, float(g), fd)


def eqx_scale(model, t):
    """The model with its covariance multiplied by ``t`` (a differentiable leaf)."""
    import equinox as eqx

    return eqx.tree_at(lambda m: m.eigvals, model, model.eigvals * t)


@pytest.mark.slow
def test_grid_continuation_matches_cold_solves(x64):
    model = power_law_mixture(60, seed=3)
    ns, lams = [50.0, 200.0], [10.0, 1.0, 0.1, 0.01]
    grid = solve_mixture_grid(model, ns, lams)
    assert bool(jnp.all(grid.converged))
    for i, n in enumerate(ns):
        for j in (1, 3):
            fp = solve_mixture(model, n, lams[j])
            np.testing.assert_allclose(np.asarray(grid.q[i, j]), np.asarray(fp.q), rtol=1e-8)
            np.testing.assert_allclose(float(grid.b[i, j]), float(fp.b), atol=1e-8)


def test_theory_layer_cli_end_to_end(tmp_path, x64):
    """The contract: last stdout line a JSON object with lists C, accuracy, stability;
    the accuracy and stability of probes trained on class-balanced draws from a synthetic
    pool (standardised by the pool's statistics, tested on the rest of the pool) agree."""
    d, N, n = 60, 1200, 200
    model = power_law_mixture(d, seed=4, signal=1.5, shift=0.0)
    X, ypm = model.sample(jax.random.key(7), N, balanced=True)
    X = np.asarray(X) * 3.0 + 1.0
    y = (np.asarray(ypm) > 0).astype(np.int64)
    np.save(tmp_path / "A.npy", X)
    np.save(tmp_path / "y.npy", y)
    Cs = [0.01, 1.0]
    res = CliRunner().invoke(
        app,
        [
            "theory",
            "layer",
            "--activations",
            str(tmp_path / "A.npy"),
            "--labels",
            str(tmp_path / "y.npy"),
            "--n-train",
            str(n),
            "--C",
            ",".join(map(str, Cs)),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["C"] == Cs and len(out["accuracy"]) == len(out["stability"]) == 2
    Xs = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(0)
    fit = jax.jit(lambda X, y, lam: LogisticRidge(lam=lam).fit(X, y))
    acc, ws = [], []
    for _ in range(8):
        idx = np.r_[
            rng.choice(np.flatnonzero(y == 1), n // 2, replace=False),
            rng.choice(np.flatnonzero(y == 0), n // 2, replace=False),
        ]
        rest = np.setdiff1d(np.arange(N), idx)
        row_a, row_w = [], []
        for C in Cs:
            w, b = _wb(fit(jnp.asarray(Xs[idx]), jnp.asarray(2.0 * y[idx] - 1), 1.0 / C))
            s = Xs[rest] @ w + b
            row_a.append(np.mean((s > 0) == (y[rest] == 1)))
            row_w.append(w / np.linalg.norm(w))
        acc.append(row_a)
        ws.append(row_w)
    acc, ws = np.array(acc), np.array(ws)
    stab = np.abs(np.einsum("sjd,sjd->sj", ws[0::2], ws[1::2]))
    se_acc = np.sqrt(acc.std(0, ddof=1) ** 2 / 8 + 0.25 / (N - n) / 8)
    np.testing.assert_array_less(np.abs(acc.mean(0) - out["accuracy"]), 4 * se_acc + 0.01)
    se_stab = stab.std(0, ddof=1) / 2
    np.testing.assert_array_less(np.abs(stab.mean(0) - out["stability"]), 4 * se_stab + 0.02)


def test_covariance_estimators():
    """Ledoit-Wolf equals scikit-learn's; nonlinear shrinkage pulls the sample spectrum
    of identity-covariance data (d/n = 1/3) towards 1."""
    from sklearn.covariance import LedoitWolf

    from probejax.datamodels._mixture import _ledoit_wolf, _nonlinear_shrinkage

    rng = np.random.default_rng(0)
    R = rng.standard_normal((300, 100))
    S = R.T @ R / 300
    ref = LedoitWolf(assume_centered=True).fit(R).covariance_
    np.testing.assert_allclose(_ledoit_wolf(R, S), ref, rtol=1e-10, atol=1e-12)
    lam = np.linalg.eigvalsh(S)
    shrunk = _nonlinear_shrinkage(lam, 300)
    assert np.mean(np.abs(shrunk - 1)) < 0.3 * np.mean(np.abs(lam - 1))


@pytest.mark.parametrize("loss", [th.Logistic(), th.Square(), th.Hinge()], ids=str)
def test_loss_prox_against_scipy(x64, loss):
    """u = yP with P = argmin (z - omega)^2 / (2V) + loss(yz), f = (P - omega)/V, and
    df/domega by central differences."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(0)
    for y, omega, V in zip(
        rng.choice([-1.0, 1.0], 12), rng.normal(0, 3, 12), rng.uniform(0.1, 5, 12), strict=True
    ):

        def obj(z, y=y, omega=omega, V=V):
            return (z - omega) ** 2 / (2 * V) + float(loss.value(jnp.asarray(y * z)))

        P = minimize_scalar(obj, bracket=(omega - 10, omega + 10), tol=1e-12).x
        u, f, df = loss.prox(y, jnp.asarray(omega), jnp.asarray(V))
        assert np.isclose(float(u), y * P, atol=1e-5)
        assert np.isclose(float(f), (P - omega) / V, atol=1e-5)
        h = 1e-6
        fd = (float(loss.prox(y, omega + h, V)[1]) - float(loss.prox(y, omega - h, V)[1])) / (2 * h)
        if not isinstance(loss, th.Hinge) or (
            abs(y * omega - 1) > 1e-3 and abs(y * omega - 1 + V) > 1e-3
        ):
            assert np.isclose(float(df), fd, atol=1e-5)


@pytest.mark.slow
def test_theory_llm_quick_target(tmp_path):
    """Smoke test of ``probejax reproduce theory-llm --quick`` (needs the activation cache
    of ``probejax reproduce llm``; about a minute)."""
    from probejax.reproduce._theory_llm import load_layer, table

    try:
        load_layer("cities", 16)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    args = ["reproduce", "theory-llm", "--quick", "--results-dir", str(tmp_path / "r"),
            "--figures-dir", str(tmp_path / "f")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "r" / "theory-llm" / "results.json").read_text())
    row = results["datasets"]["cities"][0]
    assert all(np.all(row["theory"]["converged"]) for row in results["datasets"]["cities"])
    assert 0 <= row["gaps"]["acc_median"] < 0.05
    assert (tmp_path / "f" / "theory_llm_cities_curves.png").exists()
    assert "| cities | 16 |" in table(results)

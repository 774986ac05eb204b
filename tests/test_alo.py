"""The ALO-tuned ridge-logistic probe: ALO margins against exact leave-one-out refits,
the square-loss identity it generalises, and the estimator's choice of C."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import planted_problem

import probejax as pj
from probejax import estimators as E
from probejax.solvers import fit_ridge_logistic


def test_alo_margins_track_exact_leave_one_out(x64):
    X, y = planted_problem(21, 80, 6, signal=0.8)
    X, y = jnp.asarray(X), jnp.asarray(2.0 * y - 1.0)
    lam = 2.0
    fit = fit_ridge_logistic(X, y, lam)
    z = X @ fit.w + fit.b
    alo = np.asarray(E.alo_margins(X, y, z, jnp.asarray(lam)))
    exact = np.empty(len(y))
    for i in range(len(y)):
        keep = np.delete(np.arange(len(y)), i)
        f = fit_ridge_logistic(X[keep], y[keep], lam)
        exact[i] = float(X[i] @ f.w + f.b)
    shift_exact, shift_alo = exact - np.asarray(z), alo - np.asarray(z)
    # one Newton step from the full fit: the shift to within a few percent of its size
    # on typical examples, and to 10% for the most influential one
    err = np.abs(alo - exact)
    assert np.mean(err) <= 0.03 * np.mean(np.abs(shift_exact))
    assert np.max(err) <= 0.1 * np.max(np.abs(shift_exact))
    assert np.corrcoef(shift_exact, shift_alo)[0, 1] > 0.99


def test_the_estimator_picks_the_best_alo_accuracy():
    X, y = planted_problem(22, 400, 60, signal=0.5)
    est = E.raptor_alo(E.RAPTOR_C_GRID[::5])
    res = pj.evaluate(est, X.astype(np.float32), y, jax.random.key(0))
    crit = np.asarray(res.info["alo_criterion"])
    assert int(res.info["index"]) == int(np.flatnonzero(crit == crit.max())[0])
    assert np.isclose(float(res.info["C"]), E.RAPTOR_C_GRID[::5][int(res.info["index"])], rtol=1e-5)
    raptor = pj.evaluate(E.raptor(E.RAPTOR_C_GRID[::5]), X.astype(np.float32), y, jax.random.key(0))
    assert res.test_accuracy >= raptor.test_accuracy - 0.05
    assert "raptor_alo" in E.registered()

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss, roc_auc_score
from typer.testing import CliRunner

import probejax as pj
from probejax.cli import app


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.standard_normal(200) + y, 1)  # rounding creates ties
    assert np.isclose(float(pj.metrics.auroc(y, s)), roc_auc_score(y, s), atol=1e-6)
    p = 1 / (1 + np.exp(-s))
    assert np.isclose(float(pj.metrics.log_loss(y, s)), sk_log_loss(y, p), rtol=1e-5)
    assert np.isclose(float(pj.metrics.accuracy(y, s)), np.mean((s > 0) == (y > 0)))
    assert np.isclose(float(pj.metrics.auroc(2 * y - 1, s)), roc_auc_score(y, s), atol=1e-6)


def test_metrics_jit_and_vmap():
    y = jnp.array([1.0, -1.0, 1.0, -1.0])
    S = jnp.array([[2.0, 1.0, 3.0, 0.5], [-1.0, 1.0, -2.0, 2.0]])
    aucs = jax.jit(jax.vmap(pj.metrics.auroc, in_axes=(None, 0)))(y, S)
    np.testing.assert_allclose(aucs, [1.0, 0.0])


def test_cosine_and_pairwise_summary():
    u, v = jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0])
    assert np.isclose(float(pj.metrics.cosine(u, v)), 1 / np.sqrt(2))
    assert float(pj.metrics.cosine(u, jnp.zeros(2))) == 0.0
    V = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]])
    mean_abs, mean_signed = pj.metrics.pairwise_cosine_summary(V)
    assert np.isclose(float(mean_abs), 1 / 3) and np.isclose(float(mean_signed), -1 / 3)


def test_teacher_student_sampling():
    model = pj.GaussianTeacherStudent(rho=4.0)
    X, y, w = model.sample(jax.random.key(0), 20000, 200)
    assert np.isclose(float(w @ w) / 200, 4.0, rtol=1e-5)
    assert np.isclose(float(jnp.mean(X**2)) * 200, 1.0, atol=0.01)
    h = X @ w
    # P(y = 1 | h) = sigmoid(h): compare in bins with a 5-sigma binomial tolerance.
    edges = np.quantile(np.asarray(h), np.linspace(0, 1, 11))
    for lo, hi in itertools.pairwise(edges):
        m = (h >= lo) & (h < hi)
        emp = float(jnp.mean(y[m] > 0))
        expect = float(jnp.mean(jax.nn.sigmoid(h[m])))
        assert abs(emp - expect) < 5 * np.sqrt(0.25 / int(m.sum()))
    X2, y2, w2 = pj.GaussianTeacherStudent(channel="sign").sample(jax.random.key(1), 500, 50)
    assert bool(jnp.all(y2 == jnp.sign(X2 @ w2)))
    flipped = pj.GaussianTeacherStudent(channel="sign", eps=0.2)
    X3, y3, w3 = flipped.sample(jax.random.key(2), 20000, 50)
    assert abs(float(jnp.mean(y3 != jnp.sign(X3 @ w3))) - 0.2) < 5 * np.sqrt(0.16 / 20000)
    with pytest.raises(ValueError, match="channel must be one of"):
        pj.GaussianTeacherStudent(channel="relu")


def test_demo_command_runs_end_to_end():
    out = CliRunner().invoke(app, ["demo", "--n", "300", "--d", "20", "--runs", "3"])
    assert out.exit_code == 0, out.output
    assert "chosen C =" in out.output and "test accuracy:" in out.output
    assert "mean |cos| =" in out.output
    acc = float(out.output.split("test accuracy:")[1].split()[0])
    assert 0.6 < acc <= 1.0

"""Scale invariance: inputs multiplied by 1e-30 ... 1e30 give the same probe, up to the
scale, in float32 (standardisation and the non-standardising estimators work on inputs
brought to unit scale first)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax as pj
from probejax.core._probe import unit
from probejax.estimators import get_estimator, registered

SCALES = [1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30]


def _data(n=300, d=20, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    shift = 0.8 * np.outer(2 * y - 1, u / np.linalg.norm(u))
    X = (rng.standard_normal((n, d)) + shift + 3.0) * rng.uniform(0.5, 2.0, d)
    return X.astype(np.float32), y


def _cos(a, b):
    a, b = (
        np.asarray(unit(jnp.asarray(a)), np.float64),
        np.asarray(unit(jnp.asarray(b)), np.float64),
    )
    return float(a @ b)


def test_raptor_protocol_is_scale_invariant():
    X, y = _data()
    raptor = pj.estimators.raptor()
    ref = pj.evaluate(raptor, X, y, jax.random.key(0))
    assert float(ref.test_accuracy) > 0.65
    ref_probe = ref.probe.linear()
    for s in SCALES:
        res = pj.evaluate(raptor, X * np.float32(s), y, split=ref.splits)
        probe = res.probe.linear()
        assert float(res.info["C"]) == float(ref.info["C"]), s
        assert float(res.test_accuracy) == float(ref.test_accuracy), s
        assert np.all(np.isfinite(np.asarray(probe.w))), s
        assert _cos(probe.w, ref_probe.w) > 1 - 1e-5, s
        # raw weights scale as 1/s, the intercept does not change
        ratio = float(jnp.max(jnp.abs(probe.w))) * s / float(jnp.max(jnp.abs(ref_probe.w)))
        assert ratio == pytest.approx(1.0, rel=1e-3), s
        assert float(probe.b) == pytest.approx(float(ref_probe.b), rel=1e-3, abs=1e-3), s


@pytest.mark.parametrize("name", [n for n in registered() if n != "rfm"])
def test_every_estimator_is_scale_invariant(name):
    X, y01 = _data(n=200, d=12, seed=1)
    y = jnp.asarray(2.0 * y01 - 1, jnp.float32)
    est = get_estimator(name)
    fit = eqx.filter_jit(lambda X, y, key: est.fit(X, y, key))
    ref = fit(jnp.asarray(X), y, jax.random.key(1))
    pred = np.asarray(ref.decision_function(jnp.asarray(X))) > 0
    for s in (1e-30, 1e30):
        Xs = jnp.asarray(X * np.float32(s))
        probe = fit(Xs, y, jax.random.key(1))
        assert _cos(probe.concept_vector(), ref.concept_vector()) > 1 - 1e-5, (name, s)
        assert np.mean((np.asarray(probe.decision_function(Xs)) > 0) == pred) > 0.99, (name, s)


def test_standardizer_constant_and_zero_columns_at_any_scale():
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    X[:, 1] = 7.0
    X[:, 2] = 0.0
    for s in (1e-30, 1.0, 1e30):
        sc = pj.core.Standardizer.fit(jnp.asarray(X * np.float32(s)))
        scale = np.asarray(sc.scale)
        assert scale[1] == 1.0 and scale[2] == 1.0
        assert scale[0] == pytest.approx(X[:, 0].std() * s, rel=1e-5)
        Z = np.asarray(sc.transform(jnp.asarray(X * np.float32(s))))
        np.testing.assert_allclose(Z[:, 0], (X[:, 0] - X[:, 0].mean()) / X[:, 0].std(), atol=1e-5)

"""RFM probe: the rounds against a direct NumPy implementation, the validation
selection against brute force, a nonlinear problem, sign alignment, jit/vmap over keys."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probejax.core._metrics import accuracy
from probejax.core._probe import bare, diagnostics
from probejax.core._scaler import Standardizer
from probejax.estimators._rfm import RFM, RFMProbe, rfm_iterations, top_agop_direction


def numpy_rfm(X, y01, bandwidth, reg, center, iters):
    """Reference rounds with explicit pairwise differences: ``[(alpha_t, M_t)]``."""
    n, d = X.shape
    M = np.eye(d)
    rounds = []
    diff = X[:, None, :] - X[None, :, :]
    for _ in range(iters):
        dist = np.sqrt(np.maximum(np.einsum("jik,kl,jil->ji", diff, M, diff), 0.0))
        K = np.exp(-dist / bandwidth)
        alpha = np.linalg.solve(K + reg * np.eye(n), y01)
        with np.errstate(divide="ignore", invalid="ignore"):
            W = np.where(dist < 1e-10, 0.0, K / dist)
        grads = -np.einsum("i,ji,jik->jk", alpha, W, diff @ M) / bandwidth
        if center:
            grads = grads - grads.mean(axis=0)
        G = grads.T @ grads
        rounds.append((alpha, M))
        M = G / np.abs(G).max()
    return rounds


def numpy_kernel(A, B, M, bandwidth):
    diff = A[:, None, :] - B[None, :, :]
    dist = np.sqrt(np.maximum(np.einsum("jik,kl,jil->ji", diff, M, diff), 0.0))
    return np.exp(-dist / bandwidth)


def small_problem(seed=0, n=60, d=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y01 = (X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.standard_normal(n) > 0.5).astype(float)
    return X, y01


@pytest.mark.parametrize("center", [True, False])
def test_rounds_match_numpy_float64(x64, center):
    X, y01 = small_problem()
    X_test = np.random.default_rng(1).standard_normal((20, 5))
    ref = numpy_rfm(X, y01, 3.0, 1e-3, center, 3)
    alphas, Ms = jax.jit(rfm_iterations, static_argnums=5)(
        jnp.asarray(X), jnp.asarray(y01), 3.0, 1e-3, center, 3
    )
    assert alphas.dtype == jnp.float64
    for t, (alpha, M) in enumerate(ref):
        np.testing.assert_allclose(Ms[t], M, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(alphas[t], alpha, rtol=1e-7, atol=1e-9)
        probe = RFMProbe(jnp.asarray(X), alphas[t], Ms[t], jnp.asarray(3.0), jnp.zeros(5))
        expected = numpy_kernel(X_test, X, M, 3.0) @ alpha - 0.5
        np.testing.assert_allclose(
            probe.decision_function(jnp.asarray(X_test)), expected, atol=1e-9
        )
    assert not np.allclose(ref[2][1], np.eye(5))


def test_rounds_match_numpy_float32():
    X, y01 = small_problem(seed=2)
    ref = numpy_rfm(X, y01, 10.0, 1e-3, True, 3)
    Xj = jnp.asarray(X, jnp.float32)
    alphas, Ms = rfm_iterations(Xj, jnp.asarray(y01, jnp.float32), 10.0, 1e-3, True, 3)
    assert alphas.dtype == jnp.float32
    for t, (alpha, M) in enumerate(ref):
        np.testing.assert_allclose(Ms[t], M, rtol=2e-3, atol=2e-4)
        probe = RFMProbe(Xj, alphas[t], Ms[t], jnp.asarray(10.0), jnp.zeros(5))
        expected = numpy_kernel(X, X, M, 10.0) @ alpha - 0.5
        np.testing.assert_allclose(probe.decision_function(Xj), expected, atol=2e-3)


def test_selection_matches_brute_force(x64):
    X, y01 = small_problem(seed=3, n=80)
    X = X * np.array([1.0, 3.0, 0.5, 2.0, 1.0]) + 1.0
    y = 2 * y01 - 1
    perm = np.random.default_rng(4).permutation(80)
    train, val = jnp.asarray(perm[:60]), jnp.asarray(perm[60:])
    est = RFM(bandwidths=(1.0, 10.0), iters=4)
    probe = jax.jit(lambda *a: est.fit_with_validation(*a))(
        jnp.asarray(X), jnp.asarray(y), train, val, jax.random.key(0)
    )
    scaler = Standardizer.fit(jnp.asarray(X)[train])
    Xs = scaler.transform(jnp.asarray(X))
    X_tr, X_val = Xs[train], Xs[val]
    best, grid = None, []
    iterations = jax.jit(rfm_iterations, static_argnums=5)
    for bw, center in itertools.product((1.0, 10.0), (True, False)):
        alphas, Ms = iterations(X_tr, jnp.asarray(y01)[train], bw, 1e-3, center, 4)
        for t in range(4):
            p = RFMProbe(X_tr, alphas[t], Ms[t], jnp.asarray(bw), jnp.zeros(5))
            acc = float(accuracy(jnp.asarray(y)[val], p.decision_function(X_val)))
            grid.append(acc)
            if best is None or acc > best[0]:
                best = (acc, bw, center, t, p)
    info = diagnostics(probe)
    np.testing.assert_allclose(np.ravel(info["val_accuracy_grid"]), grid)
    assert float(info["val_accuracy"]) == best[0]
    assert float(info["bandwidth"]) == best[1]
    assert bool(info["center_grads"]) == best[2]
    assert int(info["iteration"]) == best[3]
    np.testing.assert_allclose(
        probe.decision_function(jnp.asarray(X)), best[4].decision_function(Xs), atol=1e-10
    )
    cv = probe.concept_vector()
    np.testing.assert_allclose(jnp.linalg.norm(cv), 1.0, atol=1e-12)
    assert probe.linear() is None


def test_top_direction_small_gram_equals_large():
    rng = np.random.default_rng(5)
    grads = jnp.asarray(rng.standard_normal((6, 9)), jnp.float32)
    X = jnp.asarray(rng.standard_normal((6, 9)), jnp.float32)
    y = jnp.asarray([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    v = top_agop_direction(grads, X, y)
    w = np.linalg.eigh(np.asarray(grads, float).T @ np.asarray(grads, float))[1][:, -1]
    np.testing.assert_allclose(abs(np.dot(v, w)), 1.0, atol=1e-5)
    delta = X[y > 0].mean(0) - X[y < 0].mean(0)
    assert float(jnp.dot(v, delta)) > 0


def test_nonlinear_single_coordinate():
    rng = np.random.default_rng(6)
    n, d = 400, 6
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.where(X[:, 0] ** 2 > np.median(X[:, 0] ** 2), 1.0, -1.0).astype(np.float32)
    X_tr, y_tr, X_te, y_te = X[:300], y[:300], X[300:], y[300:]
    probe = jax.jit(lambda X, y, k: RFM().fit(X, y, k))(
        jnp.asarray(X_tr), jnp.asarray(y_tr), jax.random.key(0)
    )
    acc = float(accuracy(jnp.asarray(y_te), probe.decision_function(jnp.asarray(X_te))))
    assert acc > 0.85
    cv = np.asarray(probe.concept_vector())
    assert np.argmax(np.abs(cv)) == 0
    assert abs(cv[0]) > 0.9


def test_concept_vector_sign_follows_the_labels():
    rng = np.random.default_rng(7)
    n, d = 200, 4
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0).astype(np.float32)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[:, 1] += 2.0 * y
    X = X * np.array([2.0, 0.5, 1.0, 3.0], np.float32) - 1.0
    probe = jax.jit(lambda X, y, k: RFM(iters=3).fit(X, y, k))(
        jnp.asarray(X), jnp.asarray(y), jax.random.key(1)
    )
    cv = probe.concept_vector()
    assert float(cv[1]) > 0.9
    assert isinstance(bare(probe).probe, RFMProbe)
    acc = accuracy(jnp.asarray(y), probe.decision_function(jnp.asarray(X)))
    assert float(acc) > 0.9


def test_jit_vmap_over_keys_equals_loop():
    rng = np.random.default_rng(8)
    X = jnp.asarray(rng.standard_normal((50, 4)), jnp.float32)
    y = jnp.asarray(np.where(rng.standard_normal(50) + np.asarray(X[:, 0]) > 0, 1.0, -1.0))
    y = y.astype(jnp.float32)
    keys = jax.random.split(jax.random.key(2), 3)
    est = RFM(iters=3)

    def fit(k):
        probe = est.fit(X, y, k)
        return probe.decision_function(X), diagnostics(probe)

    batched, info = jax.jit(jax.vmap(fit))(keys)
    one = jax.jit(fit)
    looped = [one(k) for k in keys]
    assert batched.shape == (3, 50)
    np.testing.assert_allclose(batched, jnp.stack([s for s, _ in looped]), atol=1e-5)
    for name in ("bandwidth", "center_grads", "iteration", "val_accuracy"):
        np.testing.assert_array_equal(info[name], jnp.stack([i[name] for _, i in looped]))

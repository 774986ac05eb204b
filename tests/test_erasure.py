"""LEACE against its closed form: equal class-conditional means, idempotence, zero
cross-covariance, rank, least movement; streaming equals one-shot; erase-then-probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax
from probejax.erasure import ErasedInputs, LeaceMoments, fit_leace
from probejax.estimators import LogisticRidge, Standardized


def _planted(rng, n, d, K=2, shift=3.0):
    z = rng.integers(0, K, n)
    A = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    means = shift * rng.standard_normal((K, d))
    return rng.standard_normal((n, d)) @ A + means[z], z


@pytest.mark.parametrize("K,d,n", [(2, 8, 300), (4, 10, 400), (3, 40, 20)])
def test_closed_form_identities(x64, K, d, n):
    X, z = _planted(np.random.default_rng(K), n, d, K)
    e = fit_leace(X, z)
    R = np.asarray(e(jnp.asarray(X)))
    means = np.stack([R[z == k].mean(0) for k in range(K)])
    scale = np.abs(X).max()
    np.testing.assert_allclose(
        means, np.broadcast_to(means.mean(0), means.shape), atol=1e-6 * scale
    )
    np.testing.assert_allclose(np.asarray(e(e(jnp.asarray(X)))), R, atol=1e-8 * scale)
    Zc = np.eye(K)[z] - np.eye(K)[z].mean(0)
    np.testing.assert_allclose((R - R.mean(0)).T @ Zc / n, 0, atol=1e-8 * scale)
    assert int(e.rank) <= K - 1


def test_least_movement_among_valid_rank_one_erasers(x64):
    # every affine eraser x - a b^T (x - mu) with zero cross-covariance has a ∝ delta
    # (the mean difference) and b^T a = 1; LEACE's b ∝ Sigma^{-1} delta moves the data
    # least in E|r(x) - x|^2; we check it against the naive orthogonal projection
    # (b ∝ delta) and 200 random b, in the Euclidean and the Mahalanobis norm.
    rng = np.random.default_rng(0)
    X, z = _planted(rng, 2000, 6)
    e = fit_leace(X, z)
    Xc = X - X.mean(0)
    S = Xc.T @ Xc / len(X)
    Si = np.linalg.inv(S)
    delta = X[z == 1].mean(0) - X[z == 0].mean(0)

    def moved(a, b):
        D = np.outer(Xc @ b, a) / (b @ a)
        return np.mean(np.sum(D**2, 1)), np.mean(np.sum((D @ Si) * D, 1))

    D = X - np.asarray(e(jnp.asarray(X)))
    leace = np.mean(np.sum(D**2, 1)), np.mean(np.sum((D @ Si) * D, 1))
    for b in [delta, *rng.standard_normal((200, 6))]:
        other = moved(delta, b)
        assert leace[0] <= other[0] * (1 + 1e-9) and leace[1] <= other[1] * (1 + 1e-9)


def test_held_out_logistic_at_chance():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X, z = _planted(rng, 4000, 10, shift=2.0)
    tr, te = slice(0, 2000), slice(2000, None)
    before = LogisticRegression().fit(X[tr], z[tr]).score(X[te], z[te])
    e = fit_leace(jnp.asarray(X[tr], jnp.float32), z[tr])
    Xe = np.asarray(e(jnp.asarray(X, jnp.float32)))
    acc = LogisticRegression().fit(Xe[tr], z[tr]).score(Xe[te], z[te])
    p = max(z[te].mean(), 1 - z[te].mean())
    assert before > 0.9
    assert abs(acc - p) <= 2 * np.sqrt(p * (1 - p) / 2000)


def test_streaming_equals_one_shot(x64):
    X, z = _planted(np.random.default_rng(2), 500, 7, K=3)
    one = fit_leace(X, z)
    streamed = LeaceMoments.accumulate(X, z, classes=3, batch_size=64).eraser()
    chunks = LeaceMoments.accumulate(
        ((X[i : i + 100], z[i : i + 100]) for i in range(0, 500, 100)), classes=3
    ).eraser()
    for e in (streamed, chunks):
        np.testing.assert_allclose(
            np.asarray(e.projection()), np.asarray(one.projection()), atol=1e-9
        )
        np.testing.assert_allclose(np.asarray(e.mean), np.asarray(one.mean), atol=1e-12)


def test_erase_then_probe_through_evaluate(x64):
    rng = np.random.default_rng(3)
    X, a = _planted(rng, 600, 8)
    b = (X @ rng.standard_normal(8) > 0).astype(int)
    e = fit_leace(X, a)
    ev = probejax.evaluate(ErasedInputs(e, Standardized(LogisticRidge())), X, b, jax.random.key(0))
    lin = ev.probe.linear()
    Xj = jnp.asarray(X)
    np.testing.assert_allclose(
        np.asarray(lin.decision_function(Xj)), np.asarray(ev.probe.decision_function(Xj)), atol=1e-8
    )
    np.testing.assert_allclose(
        np.asarray(ev.probe.concept_vector()), np.asarray(lin.concept_vector()), atol=1e-8
    )


def test_errors():
    X = np.zeros((4, 3)) + np.arange(3)
    with pytest.raises(ValueError, match="one class"):
        fit_leace(X, np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        fit_leace(X, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="NaN"):
        fit_leace(np.full((4, 3), np.nan), np.array([0, 1, 0, 1]))


def test_erase_at_in_the_forward_pass():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sklearn.linear_model import LogisticRegression
    from tiny_lm import tiny_llama

    from probejax.llm import EraseAt, LoadedModel, extract

    model, tok = tiny_llama(3, 32, seed=0)
    model.requires_grad_(False)
    lm = LoadedModel(model, tok, "tiny", "r0", 3, 32, 128)
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    texts = ["".join(rng.choice(letters, 6)) + ("1" if i % 2 else "x") for i in range(300)]
    z = np.arange(300) % 2
    layer = 1
    acts = extract(lm, texts, layers=[layer])[0]
    e = fit_leace(jnp.asarray(acts), z)
    with torch.no_grad(), EraseAt({layer: e}).attach(lm.model):
        erased = extract(lm, texts, layers=[layer])[0]
    np.testing.assert_allclose(erased, np.asarray(e(jnp.asarray(acts))), atol=1e-4)
    assert LogisticRegression().fit(acts[:200], z[:200]).score(acts[200:], z[200:]) > 0.9
    acc = LogisticRegression(max_iter=1000).fit(erased[:200], z[:200]).score(erased[200:], z[200:])
    assert abs(acc - 0.5) <= 2 * np.sqrt(0.25 / 100)


def test_inlp_against_leace():
    # LEACE removes one direction and leaves chance; INLP (greedy, one logistic
    # direction per step) reaches chance too once it has removed enough directions
    from sklearn.linear_model import LogisticRegression

    from probejax.estimators import inlp_directions
    from probejax.estimators._kdirection import default_base, project_out

    rng = np.random.default_rng(4)
    X, z = _planted(rng, 3000, 6, shift=2.0)
    X = X.astype(np.float32)
    tr, te = slice(0, 1500), slice(1500, None)
    se2 = 2 * np.sqrt(0.25 / 1500)

    def left(Xe):
        return LogisticRegression().fit(Xe[tr], z[tr]).score(Xe[te], z[te])

    e = fit_leace(jnp.asarray(X[tr]), z[tr])
    assert abs(left(np.asarray(e(jnp.asarray(X)))) - 0.5) <= se2
    W = inlp_directions(
        default_base(), jnp.asarray(X[tr]), jnp.asarray(2.0 * z[tr] - 1), 6, jax.random.key(0)
    )
    accs = [left(np.asarray(project_out(jnp.asarray(X), W[:k]))) for k in range(1, 7)]
    assert abs(accs[-1] - 0.5) <= se2

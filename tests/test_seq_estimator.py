"""Sequence probes as protocol estimators: compare and stability on token data, an
equivalence oracle against the reference fit (probejax.seq._fit.fit_family), the
concept-vector rule."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax
import probejax.seq as ps
from probejax import Splits
from probejax.core import Tokens, diagnostics, rows
from probejax.core._metrics import accuracy
from probejax.seq._estimator import concept_direction
from probejax.seq._fit import fit_family
from probejax.sweep import Execution

D, T, N = 8, 8, 150
CFG = ps.TrainConfig(max_steps=100, eval_every=10, patience=5)


def _one_token_data(seed, n=N, s=6.0, informative=True):
    """Variable lengths 4..T; each sequence carries (2y - 1) s e_0 on one random real
    token (pure noise when not ``informative``)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, T, D)).astype(np.float32)
    lengths = rng.integers(4, T + 1, n)
    mask = np.arange(T)[None] < lengths[:, None]
    if informative:
        pos = (rng.random(n) * lengths).astype(int)
        X[np.arange(n), pos, 0] += s * (2 * y - 1)
    return X, mask, y


def _ep():
    grid = ps.SeqGrid(learning_rates=(3e-2,), seeds=2)
    return ps.SeqEstimator(ps.EfficientProbe, {"n_queries": 2}, config=CFG, grid=grid)


def test_compare_runs_sequence_probes_on_token_layers():
    X, mask, y = _one_token_data(0)
    noise, _, _ = _one_token_data(1, informative=False)
    ests = {
        "ep": _ep(),
        "mean": ps.SeqEstimator(
            ps.MeanLinearProbe, config=CFG, grid=ps.SeqGrid(learning_rates=(3e-2,), seeds=1)
        ),
    }
    out = probejax.compare(
        ests,
        np.stack([noise, X]),
        y,
        jax.random.key(0),
        mask=mask,
        stability=probejax.StabilitySpec(runs=3),
        execution=Execution(cells_per_device=4, progress=False),
    )
    ep = out.estimators["ep"]
    assert ep["test_accuracy"].shape == (2,) and float(ep["test_accuracy"][1]) > 0.85
    for m in out.estimators.values():
        assert np.all(np.isfinite(m["stability"])) and np.all(m["stability"] <= 1 + 1e-6)
        np.testing.assert_allclose(np.linalg.norm(m["concept"], axis=1), 1.0, rtol=1e-5)
        assert np.all(np.isnan(m["b"]))  # nonlinear probes: no raw linear probe
        # on the informative layer the largest component is the signal's feature 0
        assert int(np.argmax(np.abs(m["concept"][1]))) == 0


def test_stability_of_a_sequence_probe():
    X, mask, y = _one_token_data(2)
    st = probejax.stability(
        _ep(),
        Tokens(jnp.asarray(X), jnp.asarray(mask)),
        y,
        jax.random.key(1),
        spec=probejax.StabilitySpec(runs=3),
    )
    assert st.vectors.shape == (3, D)
    assert np.isfinite(float(st.mean_abs_cos)) and 0.0 <= float(st.mean_abs_cos) <= 1.0 + 1e-6
    # every run's probe is the gradient-direction kind (EP has no linear read-out)
    assert not np.any(np.asarray(diagnostics(st.runs.probe)["linear_readout"]))


@eqx.filter_jit
def _fit_with_validation(est, X, y, train, val, key):
    return est.fit_with_validation(X, y, train, val, key)


@pytest.mark.parametrize("criterion", [None, accuracy])
def test_fit_with_validation_equals_fit_family(criterion):
    X, mask, y = _one_token_data(3, s=4.0)
    idx = np.random.default_rng(0).permutation(N)
    tr, va, te = idx[:90], idx[90:120], idx[120:]
    key = jax.random.key(4)
    cfg = ps.TrainConfig(max_steps=60, eval_every=10, patience=3)
    est = ps.SeqEstimator(
        ps.AttentionPoolProbe,
        grid=ps.SeqGrid(learning_rates=(1e-2, 3e-2), weight_decays=(0.0, 1e-2), seeds=2),
        config=cfg,
        criterion=criterion,
    )
    ref = fit_family(
        est.make(D),
        X,
        mask,
        y,
        key,
        grid=est.grid,
        config=cfg,
        criterion=criterion,
        splits=Splits(*(jnp.asarray(a) for a in (tr, va, te))),
    )
    Xt = Tokens(jnp.asarray(X), jnp.asarray(mask))
    ypm = jnp.asarray(2.0 * y - 1.0)
    probe = _fit_with_validation(est, Xt, ypm, jnp.asarray(tr), jnp.asarray(va), key)
    info = diagnostics(probe)
    assert int(info["index"]) == int(ref.index)
    np.testing.assert_allclose(info["val_loss"], ref.val_loss, rtol=1e-4)
    np.testing.assert_allclose(info["val_accuracy"], ref.val_accuracy)
    assert float(info["learning_rate"]) == float(ref.learning_rate[ref.index])
    assert float(info["weight_decay"]) == float(ref.weight_decay[ref.index])
    acc = accuracy(ypm[te], probe.decision_function(rows(Xt, te)))
    assert float(acc) == pytest.approx(float(ref.accuracy))
    # attention pooling has a linear read-out: the concept vector is fit_family's
    assert bool(info["linear_readout"])
    np.testing.assert_allclose(probe.concept_vector(), ref.probe.concept_vector(), atol=1e-4)


def test_fit_splits_inside_and_maps_over_keys():
    X, mask, y = _one_token_data(7, n=60)
    est = ps.SeqEstimator(
        ps.MeanLinearProbe,
        grid=ps.SeqGrid(learning_rates=(1e-1,), seeds=1),
        config=ps.TrainConfig(max_steps=60, eval_every=10, patience=3),
    )
    Xt = Tokens(jnp.asarray(X), jnp.asarray(mask))
    ypm = jnp.asarray(2.0 * y - 1.0)

    @eqx.filter_jit
    def fits(est, keys):
        return jax.lax.map(lambda k: est.fit(Xt, ypm, k), keys)

    probes = fits(est, jax.random.split(jax.random.key(0), 2))
    V = jax.vmap(lambda p: p.concept_vector())(probes)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, rtol=1e-5)
    assert bool(jnp.all(diagnostics(probes)["linear_readout"]))
    one = jax.tree.map(lambda a: a[0], probes)
    assert float(accuracy(ypm, one.decision_function(Xt))) > 0.8


class _NoReadout(ps.SeqProbe):
    inner: ps.MeanLinearProbe

    def __call__(self, x, mask):
        return self.inner(x, mask)


def test_gradient_concept_equals_the_readout_of_a_mean_linear_probe():
    X, mask, _ = _one_token_data(5, n=20)
    inner = ps.MeanLinearProbe(D, key=jax.random.key(0))
    inner = eqx.tree_at(lambda p: p.b, inner, jnp.asarray(0.3))
    scaler = ps.TokenScaler(jnp.linspace(-1.0, 1.0, D), jnp.linspace(0.5, 2.0, D))
    data = ps.SeqData(scaler.transform(X, mask), jnp.asarray(mask), jnp.zeros(20))
    v, readout = concept_direction(ps.FittedSeqProbe(_NoReadout(inner), scaler), data)
    assert not readout
    np.testing.assert_allclose(v, ps.FittedSeqProbe(inner, scaler).concept_vector(), atol=1e-5)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="criterion"):
        ps.SeqEstimator(ps.EfficientProbe, criterion="f1")
    with pytest.raises(ValueError, match="learning_rates"):
        ps.SeqGrid(learning_rates=())
    with pytest.raises(ValueError, match="weight_decays"):
        ps.SeqGrid(weight_decays=(-1.0,))
    with pytest.raises(ValueError, match="seeds"):
        ps.SeqGrid(seeds=0)
    X, mask, y = _one_token_data(6, n=20)
    with pytest.raises(TypeError, match="Tokens"):
        _ep().fit(jnp.asarray(X), jnp.asarray(2.0 * y - 1.0), jax.random.key(0))


def test_probe_sweep_runs_a_sequence_probe_over_layers_and_seeds(tmp_path):
    from probejax.protocol import probe_sweep

    X, mask, y = _one_token_data(3)
    noise, _, _ = _one_token_data(4, informative=False)
    r = probe_sweep(_ep(), np.stack([noise, X]), y, tmp_path, seeds=[0, 1], mask=mask,
                    execution=Execution(progress=False))  # fmt: skip
    acc = r.values.test_accuracy
    assert acc.shape == (2, 2) and (acc[1] > acc[0]).all() and (acc[1] > 0.8).all()

import itertools

import jax
import numpy as np
import pytest
from conftest import planted_problem

import probejax as pj
from probejax import estimators as E
from probejax.metrics import cosine
from probejax.sweep import Execution

GRID = E.RAPTOR_C_GRID[::10]
RAPTOR = E.raptor(GRID)


@pytest.fixture(scope="module")
def stability():
    X, y = planted_problem(21, 300, 40, signal=0.8)
    res = pj.stability(RAPTOR, X, y, jax.random.key(3), spec=pj.StabilitySpec(runs=5, batch_size=2))
    return X, y, res


def test_stability_is_mean_pairwise_abs_cosine(stability):
    _, _, res = stability
    V = np.asarray(res.vectors, np.float64)
    assert np.allclose(np.linalg.norm(V, axis=1), 1.0, atol=1e-5)
    pairs = [V[r] @ V[s] for r, s in itertools.combinations(range(5), 2)]
    assert np.isclose(float(res.mean_abs_cos), np.mean(np.abs(pairs)), atol=1e-5)
    assert np.isclose(float(res.mean_signed_cos), np.mean(pairs), atol=1e-5)
    assert 0.5 < float(res.mean_abs_cos) < 1.0


def test_stability_runs_resample_the_pool_only(stability):
    X, y, res = stability
    base = pj.protocol_splits(jax.random.split(jax.random.key(3))[0], y)
    test = set(np.asarray(base.test).tolist())
    pool = set(np.asarray(base.train_sub).tolist()) | set(np.asarray(base.val).tolist())
    keys = jax.random.split(jax.random.split(jax.random.key(3))[1], 5)
    seen = []
    for k in keys:
        sp = pj.protocol.resampled_splits(k, y, base, drop=0.2, val_fraction=0.2)
        tr, va = set(np.asarray(sp.train_sub).tolist()), set(np.asarray(sp.val).tolist())
        assert not (tr | va) & test and (tr | va) <= pool and not tr & va
        assert len(tr | va) == len(pool) - int(np.ceil(0.2 * len(pool)))
        seen.append(frozenset(tr))
    assert len(set(seen)) == 5
    # Each run is the protocol on its splits: rerun one directly and compare.
    sp = pj.protocol.resampled_splits(keys[2], y, base, drop=0.2, val_fraction=0.2)
    one = pj.evaluate(RAPTOR, X, y, split=sp)
    assert np.isclose(float(one.info["C"]), float(res.runs.info["C"][2]), rtol=1e-5)
    assert float(cosine(one.probe.linear().w, res.vectors[2])) > 0.9999


def test_stability_tracks_signal_strength():
    vals = []
    for signal in (0.0, 3.0):
        X, y = planted_problem(22, 300, 40, signal=signal)
        vals.append(
            float(
                pj.stability(
                    RAPTOR, X, y, jax.random.key(0), spec=pj.StabilitySpec(runs=5, batch_size=2)
                ).mean_abs_cos
            )
        )
    assert vals[1] > 0.98 and vals[0] < vals[1] - 0.2


def test_stability_input_errors(stability):
    with pytest.raises(ValueError, match=r"StabilitySpec.runs must be an integer >= 2"):
        pj.StabilitySpec(runs=1)
    with pytest.raises(ValueError, match=r"StabilitySpec.drop must be a number in \(0, 1\)"):
        pj.StabilitySpec(drop=1.0)


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(5)
    X, y = planted_problem(23, 200, 30, signal=1.0)
    stack = np.stack([X * s + rng.standard_normal(X.shape) for s in (0.2, 1.0, 2.0)])
    return stack.astype(np.float32), y


def _sweep(stack, y, chunk):
    return pj.compare(
        {"raptor": RAPTOR},
        stack,
        y,
        jax.random.key(0),
        stability=None,
        execution=Execution(cells_per_device=chunk, progress=False),
    )


def test_layer_sweep_equals_per_layer_fits(layers):
    stack, y = layers
    out = _sweep(stack, y, 2)
    res = out.estimators["raptor"]
    assert res["test_accuracy"].shape == (3,) and res["fit_seconds"].shape == (3,)
    for i in range(3):
        one = pj.evaluate(RAPTOR, stack[i], y, split=out.splits)
        assert np.isclose(1 / float(one.info["lam"]), 1 / res["lam"][i], rtol=1e-5)
        assert float(cosine(one.probe.linear().w, res["w"][i])) > 0.9999
    acc = res["test_accuracy"]
    assert acc[2] > acc[0]


def test_layer_sweep_chunking_and_list_input_agree(layers):
    stack, y = layers
    a = _sweep(stack, y, 3).estimators["raptor"]
    b = _sweep(list(stack), y, 1).estimators["raptor"]
    np.testing.assert_array_equal(a["lam"], b["lam"])
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-4, atol=1e-5)


def test_layer_sweep_errors_name_the_layer(layers):
    stack, y = layers
    bad = stack.copy()
    bad[1, 4, 7] = np.nan
    with pytest.raises(ValueError, match=r"X_layers\[1\] holds 1 non-finite.*\(4, 7\)"):
        _sweep(bad, y, 1)
    with pytest.raises(ValueError, match=r"X_layers\[2\] has shape \(200, 29\)"):
        _sweep([stack[0], stack[1], stack[2][:, :29]], y, 1)
    with pytest.raises(ValueError, match="X_layers must be an array of shape"):
        _sweep(stack[0], y, 1)

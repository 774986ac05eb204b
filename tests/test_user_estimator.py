"""A brand-new estimator, defined here only, reaches every part of the library with no
library edit: compare, stability, a layer sweep, the CLI and the figures."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_llm_sweep import _write_csv, tiny  # noqa: F401  (the tiny Llama fixture)
from typer.testing import CliRunner

import probejax as pj
from probejax.cli import app
from probejax.protocol import probe_sweep
from probejax.sweep import Execution

QUIET = Execution(cells_per_device=4, progress=False)


class MedianDifference(pj.Estimator):
    """Direction: difference of the class-wise coordinate medians; threshold halfway
    between the class medians' projections."""

    def fit(self, X, y, key=None):
        pos, neg = y > 0, y <= 0
        med = lambda m: jnp.nanmedian(jnp.where(m[:, None], X, jnp.nan), axis=0)
        m_pos, m_neg = med(pos), med(neg)
        w = m_pos - m_neg
        return pj.LinearProbe(w, -0.5 * jnp.dot(w, m_pos + m_neg))


def _reference(X, y_pm1):
    m_pos, m_neg = np.median(X[y_pm1 > 0], axis=0), np.median(X[y_pm1 < 0], axis=0)
    w = m_pos - m_neg
    return w, -0.5 * w @ (m_pos + m_neg)


def _layers(L=3, n=120, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    X = np.stack(
        [rng.standard_normal((n, d)) + (k + 1) * 0.5 * np.outer(2 * y - 1, u) for k in range(L)]
    )
    return X.astype(np.float32), y


def test_compare_and_stability_take_a_user_estimator():
    X, y = _layers()
    est = {"median_diff": MedianDifference(), "mass_mean": pj.get_estimator("mass_mean")}
    out = pj.compare(
        est, X, y, jax.random.key(5), stability=pj.StabilitySpec(runs=4), execution=QUIET
    )
    sp = out.splits
    pool = np.concatenate([np.asarray(sp.train_sub), np.asarray(sp.val)])
    te = np.asarray(sp.test)
    ypm = np.where(y > 0, 1.0, -1.0)
    m = out.estimators["median_diff"]
    for layer in range(3):
        w, b = _reference(X[layer][pool], ypm[pool])
        np.testing.assert_allclose(m["w"][layer], w, rtol=1e-5, atol=1e-6)
        acc = np.mean(np.sign(X[layer][te] @ w + b) == ypm[te])
        assert np.isclose(m["test_accuracy"][layer], acc)
        st = pj.stability(
            MedianDifference(), X[layer], y, jax.random.key(5), spec=pj.StabilitySpec(runs=4)
        )
        assert np.isclose(m["stability"][layer], float(st.mean_abs_cos), rtol=1e-5)
    assert np.isnan(m["lam"]).all() and (m["stability"] > 0.5).all()


def test_layer_sweep_takes_a_user_estimator(tmp_path):
    X, y = _layers(L=2)
    r = probe_sweep(MedianDifference(), X, y, tmp_path, seeds=[0, 3], execution=QUIET)
    ypm = np.where(y > 0, 1.0, -1.0)
    assert r.values.test_accuracy.shape == (2, 2)
    for layer in range(2):
        for j, seed in enumerate([0, 3]):
            sp = pj.protocol_splits(jax.random.key(seed), y)
            pool = np.concatenate([np.asarray(sp.train_sub), np.asarray(sp.val)])
            w, b = _reference(X[layer][pool], ypm[pool])
            te = np.asarray(sp.test)
            acc = np.mean(np.sign(X[layer][te] @ w + b) == ypm[te])
            assert np.isclose(r.values.test_accuracy[layer, j], acc)
    again = probe_sweep(MedianDifference(), X, y, tmp_path, seeds=[0, 3], execution=QUIET)
    assert again.cells_reused == 4 and again.cells_computed == 0


def test_cli_and_figures_take_a_user_estimator(tiny):  # noqa: F811
    data = _write_csv(tiny / "user.csv")
    out = tiny / "user-out"
    spec = f"{Path(__file__).resolve()}:MedianDifference"
    args = [
        "llm", "sweep", "--model", str(tiny / "model"), "--data", str(data), "--out", str(out),
        "--runs", "3", "--estimators", f"raptor,{spec}",
        "--cache", str(tiny / "cache"), "--layers", "0-2",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert set(res["estimators"]) == {"raptor", "MedianDifference"}
    assert res["labels"]["MedianDifference"] == "MedianDifference"
    assert len(res["estimators"]["MedianDifference"]["stability"]) == 3
    assert np.load(out / "probes.npz")["MedianDifference_w"].shape == (3, 32)
    assert (out / "sweep_accuracy.png").stat().st_size > 0
    args[args.index("--estimators") + 1] = "raptor,no_such_probe"
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1 and "unknown estimator 'no_such_probe'" in bad.output


def test_compare_resumes_from_its_stores_and_keeps_changed_settings_apart(tmp_path):
    X, y = _layers(L=2)
    est = {"median_diff": MedianDifference()}
    run = lambda runs: (
        pj.compare(
            est,
            X,
            y,
            jax.random.key(1),
            stability=pj.StabilitySpec(runs=runs),
            directory=tmp_path,
            execution=QUIET,
        ).estimators
    )
    first = run(3)
    assert (first["median_diff"]["fit_seconds"] > 0).all()
    stores = sorted(p.name for p in tmp_path.iterdir())
    assert len(stores) == 2  # fit and stability
    again = run(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == stores  # reused, nothing new
    assert (again["median_diff"]["fit_seconds"] == 0).all()  # nothing computed
    np.testing.assert_array_equal(
        again["median_diff"]["stability"], first["median_diff"]["stability"]
    )
    run(4)  # another stability setting: its own store, the fit store is reused
    assert len(list(tmp_path.iterdir())) == 3


def test_estimators_command_lists_the_registry():
    result = CliRunner().invoke(app, ["estimators"])
    assert result.exit_code == 0, result.output
    for name in ("raptor", "mass_mean", "lda", "pca", "ridge_ls", "gcs", "rfm"):
        assert name in result.output


def test_bad_estimator_import_paths_say_what_is_wrong(tmp_path):
    """The estimator registry and the datasets share one import helper (probejax.io)."""
    (tmp_path / "broken.py").write_text("import probejax\ndef make(:\n")
    here = Path(__file__).resolve()
    # the file runs as a module of its own, so its class is not this module's
    assert type(pj.get_estimator(f"{here}:MedianDifference")).__name__ == "MedianDifference"
    for spec, match in [
        (f"{tmp_path}/missing.py:Probe", "no file"),
        (f"{here}:NoSuchProbe", "has no attribute 'NoSuchProbe'"),
        (f"{here}:", "cannot read it as an import path"),
        (f"{tmp_path}/broken.py:make", "syntax error in .*broken.py, line 2"),
        ("no_such_module_xyz:Probe", "cannot import 'no_such_module_xyz'"),
        (f"{here}:QUIET", "neither an Estimator nor a callable"),
    ]:
        with pytest.raises(ValueError, match=f"estimator {re.escape(repr(spec))}.*{match}"):
            pj.get_estimator(spec)

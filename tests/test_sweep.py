import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sweep_worker as sw
from conftest import planted_problem

import probejax as pj
from probejax.protocol import path_sweep, probe_sweep
from probejax.sweep import Axis, Execution, Grid, StoreMismatchError, load_sweep, run_sweep
from probejax.theory import theory_sweep
from probejax.theory._fixed_point import Params, residual, to_coords
from probejax.theory._quadrature import Quadrature

WORKER = str(Path(__file__).with_name("sweep_worker.py"))
ROOT = str(Path(__file__).parents[1])


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "PROBEJAX_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env | extra


def _worker(*args, env, timeout=120):
    return subprocess.run(
        [sys.executable, WORKER, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def reference():
    """The cheap sweep, cell by cell, without the runner."""
    X, y = sw.problem()
    one = jax.jit(sw.cheap_fn)
    cells = [
        one(
            {"layer": X[i], "seed": jnp.asarray(s), "lam": jnp.asarray(sw.LAMS, jnp.float32)},
            {"y": y},
        )
        for i in range(sw.N_LAYERS)
        for s in range(sw.N_SEEDS)
    ]
    w = np.stack([np.asarray(c["w"]) for c in cells]).reshape(sw.N_LAYERS, sw.N_SEEDS, 3, sw.D)
    return w


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, reference):
    return sw.run(tmp_path_factory.mktemp("full"), cells_per_device=3)


def test_grid_rejects_bad_axes():
    with pytest.raises(ValueError, match="unique; repeated: \\['a'\\]"):
        Grid([Axis("a", [1, 2]), Axis("a", [3])])
    with pytest.raises(ValueError, match="Axis 'b': kind must be one of"):
        Axis("b", [1.0], kind="outer")
    with pytest.raises(ValueError, match="'_cell': names starting with '_' are reserved"):
        Axis("_cell", [1])
    with pytest.raises(ValueError, match="Axis 'c' has no values"):
        Axis("c", np.zeros(0))
    with pytest.raises(ValueError, match="Axis 'd': values must have a leading axis"):
        Axis("d", 3.0)
    with pytest.raises(ValueError, match="Axis 'e': 2 labels for 3 values"):
        Axis("e", [1, 2, 3], labels=["x", "y"])
    g = Grid([Axis("a", [1, 2]), Axis("l", [0.1, 1.0, 10.0], kind="vmap"), Axis("s", [5, 6, 7])])
    assert g.shape == (2, 3) and g.n_cells == 6
    assert g.cell_values(np.array([4]))["a"].tolist() == [2]
    assert g.cell_values(np.array([4]))["s"].tolist() == [6]


def test_sweep_equals_cell_by_cell(uninterrupted, reference):
    r = uninterrupted
    assert r.values["w"].shape == (sw.N_LAYERS, sw.N_SEEDS, 3, sw.D)
    assert r.cells_computed == 10 and r.cells_reused == 0 and r.chunk_cells == 3
    np.testing.assert_allclose(r.values["w"], reference, rtol=1e-5, atol=1e-6)
    assert (r.values["iters"] < 500).all()
    flat = load_sweep(r.directory)  # from the files alone
    np.testing.assert_array_equal(flat["['w']"], r.values["w"])


def test_interrupted_sweep_recomputes_only_unfinished_cells(tmp_path, uninterrupted):
    seen = []

    def stop_after_two(event):
        seen.append(event.cells)
        if event.chunk == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sw.run(tmp_path, cells_per_device=2, progress=stop_after_two)
    assert seen == [2, 2] and len(list(tmp_path.glob("chunk-*.npz"))) == 2
    with pytest.raises(ValueError, match="unfinished: 6 of 10 cells missing"):
        load_sweep(tmp_path)
    computed = []
    r = sw.run(tmp_path, cells_per_device=2, progress=lambda e: computed.append(e.cells))
    assert r.cells_reused == 4 and r.cells_computed == 6 and sum(computed) == 6
    np.testing.assert_array_equal(r.values["w"], uninterrupted.values["w"])
    # a damaged chunk file is ignored and only its cells are recomputed
    victim = sorted(tmp_path.glob("chunk-*.npz"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    r = sw.run(tmp_path, cells_per_device=4)
    assert r.cells_reused == 8 and r.cells_computed == 2
    np.testing.assert_array_equal(r.values["w"], uninterrupted.values["w"])
    # a finished sweep compiles nothing
    r = sw.run(tmp_path)
    assert r.cells_computed == 0 and r.plan is None


def test_changed_config_never_reuses_results(tmp_path, uninterrupted):
    d = uninterrupted.directory
    old = json.loads((d / "manifest.json").read_text())["config_hash"]
    X, y = sw.problem()
    cases = {
        "lams": dict(grid=sw.grid(sw.LAMS * 2), data={"y": y}),
        "data": dict(grid=sw.grid(), data={"y": -y}),
        "config": dict(grid=sw.grid(), data={"y": y}, config={"note": "v2"}),
    }
    for name, kw in cases.items():
        with pytest.raises(StoreMismatchError) as e:
            run_sweep(sw.cheap_fn, kw["grid"], d, data=kw["data"], config=kw.get("config"))
        assert old in str(e.value), name
        new = str(e.value).split("this sweep has config ")[1].split()[0]
        assert new != old and len(new) == 64, name
    # a changed output structure under the same config is refused too
    with pytest.raises(StoreMismatchError, match="the function now returns"):
        run_sweep(lambda c, dt: sw.cheap_fn(c, dt)["w"], sw.grid(), d, data={"y": y})
    # the same config with another chunking reuses everything
    r = sw.run(d, cells_per_device=5)
    assert r.cells_computed == 0 and r.cells_reused == 10
    # and a changed config in a fresh directory computes everything
    r = sw.run(tmp_path, lams=sw.LAMS * 2)
    assert r.cells_computed == 10 and r.config_hash != old


def test_memory_budget_bounds_the_chunk(tmp_path):
    big = sw.run(tmp_path / "big", memory_budget_bytes=10**9)
    assert big.plan.cells_per_device == 10 and big.plan.source == "memory_analysis"
    per_cell = big.plan.program_bytes / 10
    budget = int(4.5 * per_cell)
    small = sw.run(tmp_path / "small", memory_budget_bytes=budget)
    assert 1 <= small.plan.cells_per_device < 10
    assert small.plan.program_bytes <= budget
    np.testing.assert_allclose(small.values["w"], big.values["w"], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="memory_budget_bytes=100 is below"):
        sw.run(tmp_path / "tiny", memory_budget_bytes=100)


def test_four_devices_equal_one_device(tmp_path, reference):
    out = tmp_path / "out.npz"
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    p = _worker("sharded", tmp_path, out, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    z = np.load(out)
    assert z["devices"].tolist() == [4, 1] and z["chunk"].tolist() == [4, 3]
    np.testing.assert_allclose(z["w4"], z["w1"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(z["it4"], z["it1"])
    np.testing.assert_allclose(z["w4"], reference, rtol=1e-5, atol=1e-6)


def test_killed_sweep_resumes_on_other_devices(tmp_path, uninterrupted):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    p = _worker("killed", tmp_path, env=env)
    assert p.returncode == -9, (p.returncode, p.stderr[-3000:])
    assert len(list(tmp_path.glob("chunk-*.npz"))) == 2  # 2 chunks of 4 cells written
    r = sw.run(tmp_path, cells_per_device=3)  # here: one device, chunks of 3
    assert r.cells_reused == 8 and r.cells_computed == 2
    np.testing.assert_allclose(r.values["w"], uninterrupted.values["w"], rtol=1e-6, atol=1e-7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_loopback_share_the_sweep(tmp_path, uninterrupted):
    addr = f"127.0.0.1:{_free_port()}"
    procs = []
    for pid in range(2):
        env = _env(
            PROBEJAX_COORDINATOR_ADDRESS=addr,
            PROBEJAX_NUM_PROCESSES="2",
            PROBEJAX_PROCESS_ID=str(pid),
        )
        cmd = [sys.executable, WORKER, "multihost", tmp_path / "store", tmp_path / f"p{pid}.npz"]
        procs.append(
            subprocess.Popen(
                list(map(str, cmd)),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    z = [np.load(tmp_path / f"p{pid}.npz") for pid in range(2)]
    assert [int(a["count"]) for a in z] == [2, 2]
    assert [int(a["computed"]) for a in z] == [5, 5]  # chunks of one cell, alternating
    for a in z:
        np.testing.assert_allclose(a["w"], uninterrupted.values["w"], rtol=1e-6, atol=1e-7)


def test_probe_sweep_cells_are_raptor_fits_of_their_layer_and_seed(tmp_path):
    # Oracles without a second compilation: the seed's split, the selection rule, the
    # refit's optimality (KKT) in standardised coordinates, and the test accuracy.
    X, y = planted_problem(3, 120, 10, signal=0.7)
    rng = np.random.default_rng(1)
    X_layers = np.stack([X, X @ rng.standard_normal((10, 10)) + 0.5]).astype(np.float32)
    Cs, seeds = pj.estimators.RAPTOR_C_GRID[::20], [0, 4]
    raptor = pj.estimators.raptor(Cs)
    execution = Execution(cells_per_device=4, progress=False)
    r = probe_sweep(raptor, X_layers, y, tmp_path, seeds=seeds, execution=execution)
    v, info = r.values, r.values.info
    probe = v.probe.linear()
    assert v.test_accuracy.shape == (2, 2) and info["val_accuracy"].shape == (2, 2, 5)
    ypm = np.where(y > 0, 1.0, -1.0)
    for layer in range(2):
        for j, seed in enumerate(seeds):
            sp = pj.protocol_splits(jax.random.key(seed), y)
            tr, va, te = (np.asarray(a) for a in (sp.train_sub, sp.val, sp.test))
            Xl = X_layers[layer].astype(np.float64)
            w, b = probe.w[layer, j].astype(np.float64), float(probe.b[layer, j])
            i = int(info["index"][layer, j])
            acc = info["val_accuracy"][layer, j]
            assert acc[i] == acc.max() and np.isclose(info["C"][layer, j], Cs[i], rtol=1e-6)
            mu, sd = Xl[tr].mean(0), Xl[tr].std(0)
            pool = np.concatenate([tr, va])
            Xs, ws = (Xl[pool] - mu) / sd, w * sd
            g = -ypm[pool] / (1 + np.exp(ypm[pool] * (Xl[pool] @ w + b)))
            grad = np.concatenate([[g.sum()], Xs.T @ g + ws / Cs[i]])
            assert np.linalg.norm(grad) < 1e-3 * np.linalg.norm(Xs.T @ (0.5 * ypm[pool]))
            acc_te = np.mean(np.sign(Xl[te] @ w + b) == ypm[te])
            assert np.isclose(v.test_accuracy[layer, j], acc_te)
    with pytest.raises(ValueError, match=r"X_layers\[1\] holds 1 non-finite"):
        bad = X_layers.copy()
        bad[1, 3, 2] = np.nan
        probe_sweep(raptor, bad, y, tmp_path / "bad", execution=execution)


def test_path_sweep_solutions_satisfy_optimality(tmp_path):
    X, y = planted_problem(5, 80, 6, signal=0.8)
    X_layers = np.stack([X, 2.0 * X + 1.0]).astype(np.float32)
    lams = np.array([0.1, 1.0, 10.0])
    r = path_sweep(
        X_layers, y, tmp_path, lams=lams, execution=Execution(cells_per_device=2, progress=False)
    )
    sol, ypm = r.values, np.where(y > 0, 1.0, -1.0)
    assert sol.w.shape == (2, 3, 6) and bool(sol.converged.all())
    for layer in range(2):
        Xl = X_layers[layer].astype(np.float64)
        sd = Xl.std(0)
        for j, lam in enumerate(lams):
            w, b = sol.w[layer, j].astype(np.float64), float(sol.b[layer, j])
            g = -ypm / (1 + np.exp(ypm * (Xl @ w + b)))
            grad = np.concatenate([[g.sum()], ((Xl - Xl.mean(0)) / sd).T @ g + lam * w * sd])
            assert np.linalg.norm(grad) < 1e-3 * float(sol.grad_norm0[layer, j])
    # the standardised problem is the same for both layers (an affine map of the first)
    np.testing.assert_allclose(sol.objective[0], sol.objective[1], rtol=1e-4)


def test_theory_sweep_cells_are_fixed_points(tmp_path, x64):
    alphas, lams, betas = np.array([0.7, 2.0, 5.0]), np.array([0.01, 1.0, 0.1]), [0.0, 2.0]
    r = theory_sweep(
        tmp_path,
        alphas=alphas,
        lams=lams,
        betas=betas,
        execution=Execution(cells_per_device=6, progress=False),
    )
    fp = r.values
    assert fp.m.shape == (2, 1, 3, 3) and bool(fp.converged.all())

    def res(beta, alpha, lam, m, q, V):
        model = pj.GaussianTeacherStudent("logistic", rho=1.0, beta=beta)
        return residual(to_coords(1.0, m, q, V), Params(alpha, lam, model), Quadrature())

    B, A, L = np.meshgrid(betas, alphas, lams, indexing="ij")
    args = (B, A, L, fp.m[:, 0], fp.q[:, 0], fp.V[:, 0])
    R = jax.jit(jax.vmap(res))(*(jnp.asarray(a.ravel()) for a in args))
    assert np.abs(np.asarray(R)).max() < 1e-9
    assert np.all(np.diff(fp.q[1, 0], axis=1)[:, 0] < 0)  # q falls as lam rises (0.01 -> 1)

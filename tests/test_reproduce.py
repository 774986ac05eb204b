"""Smoke tests of the reproduction entry point (``probejax reproduce theory --quick``)
and of the theory notebook, executed with nbclient so neither can rot."""

import json

import pytest
from typer.testing import CliRunner

import probejax.reproduce as rp
from probejax.cli import app

FIGURES = ("accuracy", "cosine", "stability", "optimal_lam", "phase")
RESULT_KEYS = {"target", "config", "config_hash", "created", "versions", "curves",
               "simulation", "stability", "optimal", "phase", "summary", "timing_s"}  # fmt: skip
COMPUTED = {"curves", "simulation", "stability", "optimal", "phase", "summary", "timing_s"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One real quick run (about a minute), shared by the tests below."""
    out = tmp_path_factory.mktemp("reproduce")
    args = ["reproduce", "theory", "--quick", "--results-dir", str(out / "results"),
            "--figures-dir", str(out / "figures")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, args, result


def test_quick_run_writes_results_and_figures(quick_run):
    out, _, result = quick_run
    path = out / "results" / "theory" / "results.json"
    assert f"results {path}" in result.output
    res = json.loads(path.read_text())
    assert RESULT_KEYS <= res.keys()
    config = rp.load_config("theory", quick=True)
    assert res["config_hash"] == rp.target_hash("theory", config)
    assert res["version"] == rp.runner_version("theory")
    assert res["config"]["results_dir"] == str(out / "results" / "theory")
    # Sanity of the numbers, not their precision (the quick grids are tiny).
    assert all(all(row) for row in res["curves"]["converged"])
    assert res["summary"]["sim_vs_theory"]["fits_converged"] == 1.0
    assert res["summary"]["phase_agreement"] == 1.0
    assert max(abs(g) for g in res["summary"]["sign_gap_to_bayes"]) < 1e-3
    assert res["phase"]["sign_alpha_c"] is None  # inf, stored as JSON null
    for name in FIGURES:
        png = out / "figures" / f"theory_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_same_config_hash_reuses_results(quick_run):
    out, args, _ = quick_run
    path = out / "results" / "theory" / "results.json"
    before = path.read_text()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reusing" in result.output and "(results reused)" in result.output
    assert path.read_text() == before


def test_stale_hash_or_force_recomputes(quick_run, monkeypatch):
    out, _, _ = quick_run
    path = out / "results" / "theory" / "results.json"
    stored = json.loads(path.read_text())
    calls = []

    def fake_compute(config, log):
        calls.append(config)
        return {k: v for k, v in stored.items() if k not in ("config", "config_hash")}

    monkeypatch.setattr("probejax.reproduce._theory.compute", fake_compute)
    kw = dict(quick=True, results_dir=out / "results" / "theory", figures_dir=out / "figures")
    path.write_text(json.dumps(stored | {"config_hash": "stale"}))
    assert not rp.run_target("theory", **kw).reused
    assert len(calls) == 1
    assert json.loads(path.read_text())["config_hash"] == stored["config_hash"]
    assert rp.run_target("theory", **kw).reused
    assert not rp.run_target("theory", force=True, **kw).reused
    assert len(calls) == 2


def test_source_edit_reuses_and_version_bump_recomputes(quick_run, monkeypatch):
    """The real quick results: a changed source digest (what a docstring edit changes)
    keeps them; a bumped runner VERSION recomputes, and the old VERSION reuses again."""
    import probejax.io._results as results
    import probejax.reproduce._theory as runner

    out, _, _ = quick_run
    path = out / "results" / "theory" / "results.json"
    stored = json.loads(path.read_text())
    kw = dict(quick=True, results_dir=out / "results" / "theory", figures_dir=out / "figures")
    real = results.code_version()
    edited = lambda: {**real, "source": "0" * 64, "git": "uncommitted edit"}
    monkeypatch.setattr(results, "code_version", edited)
    monkeypatch.setattr(rp, "code_version", edited)
    monkeypatch.setattr(runner, "plot", lambda results_path, figures_dir: [])
    calls = []

    def fake_compute(config, log):
        calls.append(config)
        return {k: stored[k] for k in COMPUTED}

    monkeypatch.setattr(runner, "compute", fake_compute)
    assert rp.run_target("theory", **kw).reused and not calls
    assert json.loads(path.read_text()) == stored
    monkeypatch.setattr(runner, "VERSION", runner.VERSION + 1)
    assert not rp.run_target("theory", **kw).reused and len(calls) == 1
    bumped = json.loads(path.read_text())
    assert bumped["version"] == runner.VERSION and bumped["config_hash"] != stored["config_hash"]
    assert bumped["versions"]["code"]["source"] == "0" * 64  # provenance, recorded
    assert rp.run_target("theory", **kw).reused and len(calls) == 1
    monkeypatch.setattr(runner, "VERSION", runner.VERSION - 1)
    assert not rp.run_target("theory", **kw).reused and len(calls) == 2
    assert json.loads(path.read_text())["config_hash"] == stored["config_hash"]


def test_unknown_target_and_missing_experiments(tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["reproduce", "nope"])
    assert result.exit_code != 0 and "nope" in result.output
    monkeypatch.setattr(rp, "repo_root", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="experiments"):
        rp.load_config("theory")


@pytest.mark.slow  # executes the notebook in a kernel (12 s); the theory it runs is tested elsewhere
def test_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.read(rp.repo_root() / "notebooks" / "theory_vs_simulation.ipynb", as_version=4)
    # kernel "python3": this environment's ipykernel (its spec runs sys.executable).
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300)
    client.km = client.create_kernel_manager()
    try:
        client.start_new_kernel(cwd=str(tmp_path))
    except Exception as err:  # no kernel spec, no ipykernel, cannot spawn
        pytest.skip(f"the python3 Jupyter kernel could not start: {err!r}")
    client.execute()  # owns the kernel: stops its channels and shuts it down at the end
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_default_runs_the_headline_and_all_the_rest(monkeypatch, quick_run):
    out, _, _ = quick_run
    stored = json.loads((out / "results" / "theory" / "results.json").read_text())
    ran = []

    llm = {
        "datasets": {
            "cities": {
                "model": {"id": "tiny"},
                "layers": [0, 1],
                "labels": {"raptor": "RAPTOR"},
                "estimators": {"raptor": {"test_accuracy": [0.6, 0.875], "stability": [None, 0.5]}},
            }
        }
    }
    llm_path = out / "fake_llm.json"
    llm_path.write_text(json.dumps(llm))

    controls = {
        "datasets": {
            "cities": {
                "controls": {
                    "best": {
                        "layer": 16,
                        "accuracy": 0.913,
                        "selectivity": -0.03,
                        "p_value": 0.048,
                    },
                    "best_grouped": {"layer": 15, "accuracy": 0.853},
                    "grouped_chance_z": [-0.3, 1.0],
                    "chance_z": [-5.1, 2.0],
                },
                "directions": {"k_star": 8},
            }
        }
    }
    controls_path = out / "fake_controls.json"
    controls_path.write_text(json.dumps(controls))

    def fake_run_target(name, **kw):
        ran.append(name)
        path = out / "results" / "theory" / "results.json"
        path = llm_path if "llm" in rp.TARGETS[name].runner else path
        path = controls_path if name == "controls" else path
        return rp.Outputs(path, [out / "figures" / "theory_accuracy.png"], True, 0.0)

    monkeypatch.setattr(rp, "run_target", fake_run_target)
    result = CliRunner().invoke(app, ["reproduce"])
    assert result.exit_code == 0, result.output
    assert ran == list(rp.HEADLINE)
    # the theory runner's headline lines are printed from the results file
    peak = stored["summary"]["accuracy_peak_on_grid"]["acc"][0]
    assert f"{peak:.3f}" in result.output
    assert "best layer  1, test accuracy 0.875, stability 0.50" in result.output
    ran.clear()
    result = CliRunner().invoke(app, ["reproduce", "--all"])
    assert result.exit_code == 0, result.output
    assert ran == [t for t in rp.TARGETS if t not in rp.HEADLINE] and "llm" in ran
    assert "cities: best layer 16 random split 0.913" in result.output
    for name in rp.HEADLINE:  # the headline configs load and name their own outputs
        cfg = rp.load_config(name)
        assert cfg["target"] == name and "headline" in cfg["results_dir"]

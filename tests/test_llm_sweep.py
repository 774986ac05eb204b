"""`probejax llm sweep` end to end on a tiny random Llama folder, the probe-then-steer
notebook, and the sweep's bad-input errors."""

import json

import numpy as np
import pytest
from tiny_lm import save_tiny_llama
from typer.testing import CliRunner

import probejax.reproduce as rp
from probejax.cli import app


def _write_csv(path, n=80, single_class=False, groups=False):
    rng = np.random.default_rng(0)
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    lines = ["text,label" + (",group" if groups else "")]
    for i in range(n):
        label = 1 if single_class else i % 2
        w = rng.choice(words[:3] if label else words[3:])
        lines.append(f"the day was {w} {i},{label}" + (f",topic{i // 4}" if groups else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    save_tiny_llama(root / "model", n_layers=3, d=32)
    return root


def _sweep_args(tiny, data, out):
    return [
        "llm", "sweep", "--model", str(tiny / "model"), "--data", str(data), "--out", str(out),
        "--runs", "3", "--estimators", "raptor,mass_mean,pca",
        "--cache", str(tiny / "cache"), "--layers", "0-2",
    ]  # fmt: skip


def test_sweep_command_writes_results_table_and_figures(tiny):
    data = _write_csv(tiny / "days.csv")
    out = tiny / "out"
    result = CliRunner().invoke(app, _sweep_args(tiny, data, out))
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["layers"] == [0, 1, 2]
    assert set(res["estimators"]) == {"raptor", "mass_mean", "pca"}
    for m in res["estimators"].values():
        for field in ("test_accuracy", "test_auroc", "lam", "stability", "fit_seconds"):
            assert len(m[field]) == 3
    assert all(0 <= a <= 1 for a in res["estimators"]["raptor"]["test_accuracy"])
    assert res["dataset"]["n"] == 80
    probes = np.load(out / "probes.npz")
    assert probes["raptor_w"].shape == (3, 32)
    assert (out / "sweep_accuracy.png").stat().st_size > 0
    assert (out / "sweep_stability.png").stat().st_size > 0
    assert "raptor acc" in result.output  # the per-layer table
    # a second run reuses the activation cache (no re-extraction) and agrees
    again = CliRunner().invoke(app, _sweep_args(tiny, data, tiny / "out2"))
    assert again.exit_code == 0, again.output
    res2 = json.loads((tiny / "out2" / "results.json").read_text())
    assert (
        res2["estimators"]["raptor"]["test_accuracy"]
        == res["estimators"]["raptor"]["test_accuracy"]
    )
    assert res["model"]["dtype"] == "float32"


def test_sweep_dtype_has_its_own_cache(tiny):
    data = _write_csv(tiny / "days_bf16.csv", n=40)
    args = _sweep_args(tiny, data, tiny / "out_bf16")
    args[args.index("--estimators") + 1] = "mass_mean"
    result = CliRunner().invoke(app, [*args, "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    res = json.loads((tiny / "out_bf16" / "results.json").read_text())
    assert res["model"]["dtype"] == "bfloat16"
    folders = [p.name for p in (tiny / "cache" / "activations").glob("*/days_bf16-*")]
    assert len(folders) == 1 and folders[0].endswith("-bfloat16")
    bad = CliRunner().invoke(app, [*args, "--dtype", "float8"])
    assert bad.exit_code == 1 and "ExtractionSpec.dtype must be one of" in bad.output


def test_sweep_grouped_split_and_controls(tiny):
    """--split grouped uses the file's group column; --controls writes the held-out-group
    accuracy, permutation p-values, control-task selectivity and their figure."""
    data = _write_csv(tiny / "topics.csv", groups=True)
    out = tiny / "out-controls"
    args = [*_sweep_args(tiny, data, out), "--split", "grouped", "--controls"]
    result = CliRunner().invoke(app, [*args, "--permutations", "5", "--k-max", "2"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["split"] == {"kind": "grouped", "groups": ["group"]}
    c = res["controls"]
    assert c["estimator"] == "raptor" and c["permutations"] == 5 and c["groups"] == ["group"]
    for field in ("accuracy", "grouped_accuracy", "control_accuracy", "selectivity", "p_value"):
        assert len(c[field]) == 3
    # p-values of 5 permutations are multiples of 1/6 in [1/6, 1]
    p = np.asarray(c["p_value"]) * 6
    assert np.allclose(p, np.round(p)) and (p >= 1).all() and (p <= 6).all()
    assert np.allclose(c["selectivity"], np.subtract(c["accuracy"], c["control_accuracy"]))
    assert (out / "sweep_controls.png").stat().st_size > 0
    assert "held-out groups (group)" in result.output
    d = c["directions"]
    assert d["split"] == "grouped" and len(d["auroc"]) == 2 and 0 <= d["k_star"] <= 2
    assert "k-direction probe AUROC" in result.output
    # a dataset without groups cannot be split by them
    plain = _write_csv(tiny / "plain.csv")
    bad = CliRunner().invoke(
        app, [*_sweep_args(tiny, plain, tiny / "bad-split"), "--split", "grouped"]
    )
    assert bad.exit_code != 0 and "needs groups" in bad.output.replace("\n", " ")


@pytest.mark.parametrize(
    "case, match",
    [
        ("model", "neither a local model folder"),
        ("single", "single class"),
        ("layers", "layer spec"),
    ],
)
def test_sweep_bad_input_is_named(tiny, case, match):
    data = _write_csv(tiny / f"{case}.csv", single_class=case == "single")
    args = _sweep_args(tiny, data, tiny / f"bad-{case}")
    if case == "model":
        args[args.index("--model") + 1] = str(tiny / "no-such-model")
    if case == "layers":
        args[args.index("--layers") + 1] = "3-x"
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert match in result.output.replace("\n", " ")
    assert not (tiny / f"bad-{case}" / "results.json").exists()


@pytest.mark.slow  # executes the notebook in a kernel (25 s); its API is tested above
def test_probe_then_steer_notebook_executes(tiny, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PROBEJAX_NB_MODEL", str(tiny / "model"))
    monkeypatch.setenv("PROBEJAX_NB_DATA", str(_write_csv(tiny / "nb.csv", n=120)))
    monkeypatch.setenv("PROBEJAX_NB_MAX_EXAMPLES", "100")
    monkeypatch.setenv("PROBEJAX_NB_PROMPT", "the day was")
    monkeypatch.setenv("PROBEJAX_NB_CACHE", str(tiny / "nb-cache"))
    nb = nbformat.read(rp.repo_root() / "notebooks" / "probe_then_steer.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300)
    client.km = client.create_kernel_manager()
    try:
        client.start_new_kernel(cwd=str(tmp_path))
    except Exception as err:
        pytest.skip(f"the python3 Jupyter kernel could not start: {err!r}")
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "steered:" in text and "best layer" in text


@pytest.mark.slow  # 41 s; the controls' pieces and the CLI's --controls are tested elsewhere
def test_controls_target_on_a_tiny_model(tiny, tmp_path, monkeypatch):
    """The `controls` reproduction target end to end on a tiny random Llama: per-layer
    controls, k-direction curve, random directions, transfer matrix, figures, headline."""
    from probejax.reproduce import _controls

    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path / "cache"))
    config = {
        **rp.load_config("controls", quick=True),
        "model": str(tiny / "model"),
        "results_dir": str(tmp_path / "results"),
        "datasets": {"cities": 120, str(_write_csv(tmp_path / "topics.csv", groups=True)): None},
        "layers": [0, 2],
        "transfer_layer": 2,
    }
    res = _controls.compute(config, log=lambda s: None)
    cities, topics = res["datasets"]["cities"], res["datasets"]["topics"]
    assert cities["groups"] == ["country", "city"] and topics["groups"] == ["group"]
    for d in (cities, topics):
        c = d["controls"]
        assert len(c["grouped_accuracy"]) == 2 and len(c["p_value"]) == 2
        assert d["directions"]["split"] == "grouped"
        assert 0 <= d["directions"]["k_star"] <= config["k_max"]
        assert len(d["directions"]["auroc"]) == config["k_max"]
    assert (tmp_path / "results" / "sweeps" / "cities" / "results.json").is_file()
    t = res["transfer"]
    assert t["datasets"] == ["cities", "topics"] and np.shape(t["auroc"]) == (2, 2)
    figures = _controls.plot(res, tmp_path / "fig")
    assert [p.name for p in figures] == [
        "controls_layers.png", "controls_kdir.png", "controls_transfer.png"
    ]  # fmt: skip
    lines = _controls.headline(res)
    assert len(lines) == 2 and lines[0].startswith("cities: best layer")

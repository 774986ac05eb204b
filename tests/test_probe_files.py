"""Probing a user's activation file: every format read a layer at a time, labels from a
CSV / .npy / the file itself, the sweep's results schema, and clear errors."""

import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from probejax.cli import app
from probejax.io import open_activations, read_labels, write_activations
from probejax.llm import probe_activations
from probejax.protocol import SplitSpec, StabilitySpec

N, D, SIGNAL_LAYER = 120, 8, 5


def _planted(layers=(3, 5, 7), seed=0):
    """Activations ``{layer: (N, D)}`` and labels; only layer 5 carries the label."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % 2
    acts = {}
    for i in layers:
        X = rng.normal(size=(N, D)).astype(np.float32)
        if i == SIGNAL_LAYER:
            X[:, 0] += 3.0 * (2 * y - 1)
        acts[i] = X
    return acts, y


def _write(fmt, path, acts, y):
    names = {i: f"model.layers.{i}" for i in acts}
    if fmt == "npy":
        np.save(path, np.stack(list(acts.values())))
    elif fmt == "npz":
        np.savez(path, **{names[i]: a for i, a in acts.items()})
    elif fmt == "safetensors":
        write_activations(path, acts, labels=y, metadata={"model": "tiny", "site": "resid"})
    elif fmt == "h5":
        with h5py.File(path, "w") as f:
            for i, a in acts.items():
                f[names[i]] = a
    elif fmt == "pt":
        torch.save(
            {names[i]: torch.from_numpy(a).to(torch.bfloat16) for i, a in acts.items()}, path
        )
    return path


@pytest.mark.parametrize("fmt", ["npy", "npz", "safetensors", "h5", "pt"])
def test_every_format_reads_the_same_layers_one_at_a_time(tmp_path, fmt):
    acts, y = _planted()
    stack = open_activations(_write(fmt, tmp_path / f"a.{fmt}", acts, y))
    assert stack.shape == (3, N, D)
    assert stack.layers == ((0, 1, 2) if fmt == "npy" else (3, 5, 7))
    tol = 1e-2 if fmt == "pt" else 0  # bfloat16 in the .pt file
    for row, layer in enumerate(acts):
        got = stack[row]
        assert got.shape == (N, D) and got.dtype == np.float32
        np.testing.assert_allclose(got, acts[layer], atol=tol * 40, rtol=tol)
    assert stack[np.array([0, 2])].shape == (2, N, D)
    if fmt == "safetensors":
        np.testing.assert_array_equal(stack.labels, y)
        assert stack.metadata == {"model": "tiny", "site": "resid"}


def test_reading_touches_only_the_layer_asked_for(tmp_path):
    acts, y = _planted(layers=range(6))
    stack = open_activations(_write("npz", tmp_path / "a.npz", acts, y))
    seen = []
    read = stack.read
    object.__setattr__(stack, "read", lambda i: seen.append(i) or read(i))
    stack[4]
    assert seen == [4]


def test_sweep_on_a_file_finds_the_planted_layer_and_keeps_the_llm_schema(tmp_path):
    acts, y = _planted()
    path = _write("h5", tmp_path / "acts.h5", acts, y)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "label,group\n" + "".join(f"{'pos' if v else 'neg'},g{i // 6}\n" for i, v in enumerate(y))
    )
    out = tmp_path / "out"
    res = probe_activations(
        path,
        labels,
        out,
        estimators=["raptor", "mass_mean"],
        stability=StabilitySpec(runs=3, layers=[5]),
        log=None,
    ).results
    assert res["layers"] == [3, 5, 7]
    assert res["best"]["layer"] == SIGNAL_LAYER
    assert res["best"]["test_accuracy"] > 0.9
    acc = res["estimators"]["raptor"]["test_accuracy"]
    assert acc[0] < 0.75 and acc[2] < 0.75  # noise layers
    assert res["dataset"]["label_names"] == ["neg", "pos"]
    assert res["activations"]["format"] == "hdf5"
    stab = np.asarray(res["estimators"]["raptor"]["stability"], float)
    assert np.isfinite(stab[1]) and np.isnan(stab[0])
    written = json.loads((out / "results.json").read_text())
    assert written["best"]["layer"] == SIGNAL_LAYER
    for key in ("model", "dataset", "layers", "splits", "split", "stability", "labels",
                "styles", "estimators", "best", "pooling", "site"):  # fmt: skip
        assert key in written
    assert np.load(out / "probes.npz")["raptor_w"].shape == (3, D)
    det = written["estimators"]["raptor"]["detection"]
    for k in ("accuracy", "auroc", "recall_at_1pct_fpr", "recall_at_5pct_fpr", "brier"):
        assert len(det[k]["value"]) == 3 and len(det[k]["low"]) == 3
    assert det["accuracy"]["value"][1] == pytest.approx(acc[1])
    assert det["recall_at_5pct_fpr"]["value"][1] > 0.8


def test_labels_carried_by_the_file_and_the_command_line(tmp_path):
    acts, y = _planted()
    path = _write("safetensors", tmp_path / "acts.safetensors", acts, y)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["probe", str(path), "--out", str(out), "--estimators", "raptor", "--no-stability"],
    )
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["best"]["layer"] == SIGNAL_LAYER
    assert res["model"]["id"] == "tiny"
    assert "raptor acc" in result.output
    assert "recall@5%FPR" in result.output  # the detection table
    assert (out / "sweep_accuracy.png").stat().st_size > 0


def test_labels_files_and_their_errors(tmp_path):
    np.save(tmp_path / "y.npy", np.array([-1, 1, 1, -1]))
    np.testing.assert_array_equal(read_labels(tmp_path / "y.npy").y, [0, 1, 1, 0])
    (tmp_path / "l.csv").write_text("text,label\na,yes\nb,no\n")
    lab = read_labels(tmp_path / "l.csv")
    assert lab.label_names == ("no", "yes") and lab.y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="holds 2 labels, but the activations hold 5"):
        read_labels(tmp_path / "l.csv", n=5)
    (tmp_path / "bad.csv").write_text("text,y\na,1\n")
    with pytest.raises(ValueError, match="needs a 'label' column"):
        read_labels(tmp_path / "bad.csv")
    (tmp_path / "three.csv").write_text("label\na\nb\nc\n")
    with pytest.raises(ValueError, match="two values, got 3"):
        read_labels(tmp_path / "three.csv")


def test_bad_activation_files_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no activation file"):
        open_activations(tmp_path / "missing.npy")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown activation format '.txt'"):
        open_activations(tmp_path / "a.txt")
    np.savez(tmp_path / "two.npz", resid_1=np.zeros((4, 2)), attn_1=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="several prefixes"):
        open_activations(tmp_path / "two.npz")
    assert open_activations(tmp_path / "two.npz", key="attn_").layers == (1,)
    np.savez(tmp_path / "shapes.npz", layer_0=np.zeros((4, 2)), layer_1=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="every layer must hold"):
        open_activations(tmp_path / "shapes.npz")
    np.savez(tmp_path / "noindex.npz", resid=np.zeros((4, 2)), attn=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="does not end in a layer index"):
        open_activations(tmp_path / "noindex.npz")
    np.save(tmp_path / "acts.npy", np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match="carries no labels"):
        probe_activations(tmp_path / "acts.npy", log=None)


def test_groups_split_by_group_by_default_and_random_on_request(tmp_path):
    acts, y = _planted()
    path = _write("npz", tmp_path / "acts.npz", acts, y)
    labels = tmp_path / "labels.csv"
    labels.write_text("label,group\n" + "".join(f"{v},g{i // 4}\n" for i, v in enumerate(y)))
    kw = dict(estimators=["mass_mean"], stability=None, log=None)
    auto = probe_activations(path, labels, **kw).results
    assert auto["split"] == {"kind": "grouped", "groups": ["group"]}
    random = probe_activations(path, labels, split=SplitSpec(), **kw).results
    assert random["split"]["kind"] == "random"
    np.save(tmp_path / "y.npy", y)
    assert probe_activations(path, tmp_path / "y.npy", **kw).results["split"]["kind"] == "random"

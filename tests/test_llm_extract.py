"""Model loading, activation extraction and the on-disk activation cache, on a tiny
random Llama (char tokenizer) built offline; one slow test on the real default model."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import save_tiny_llama, tiny_llama  # noqa: E402

from probejax.llm import (  # noqa: E402
    CacheCorruptError,
    CacheMismatchError,
    ExtractionSpec,
    LoadedModel,
    cached_activations,
    extract,
    hooked,
    length_order,
    load_model,
)

torch.set_num_threads(1)

N_LAYERS, D = 3, 32
TEXTS = [
    "Paris is in France.",
    "Oslo.",
    "A",
    "The city of Lima is in Peru, far away.",
    "Rome",
    "Bern is in Switzerland!",
    "Kyoto is in Japan.",
]


def _loaded(seed=0, model_id="tiny", revision="r0") -> LoadedModel:
    model, tok = tiny_llama(N_LAYERS, D, seed=seed, max_positions=64)
    model.requires_grad_(False)
    return LoadedModel(model, tok, model_id, revision, N_LAYERS, D, 64)


@pytest.fixture(scope="module")
def lm():
    return _loaded()


def _hidden_states(lm, text):
    ids = lm.tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = lm.model(input_ids=ids, output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


def test_block_sites_match_output_hidden_states(lm):
    text = TEXTS[3]
    hs = _hidden_states(lm, text)
    ids = lm.tokenizer(text, return_tensors="pt").input_ids
    for site, shift in (("block_output", 1), ("block_input", 0)):
        got = {}

        def read(i, h, got=got):
            got[i] = h[0].numpy().copy()

        with torch.inference_mode(), hooked(lm.model, range(N_LAYERS), read, site):
            lm.model(input_ids=ids)
        for i in range(N_LAYERS):
            want = hs[i + shift]
            if i + shift == N_LAYERS:  # transformers applies the final norm to the last entry
                with torch.inference_mode():
                    got[i] = lm.model.model.norm(torch.from_numpy(got[i])).numpy()
            np.testing.assert_allclose(got[i], want, atol=1e-5, err_msg=f"{site} {i}")


@pytest.mark.parametrize("site", ["block_output", "block_input"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pooling_matches_direct_computation(lm, pooling, site):
    text = TEXTS[0]
    hs = _hidden_states(lm, text)
    shift = 1 if site == "block_output" else 0
    got = extract(lm, [text], pooling=pooling, site=site, layers=[0, 1])
    for k, i in enumerate([0, 1]):
        h = hs[i + shift]
        want = {"last": h[-1], "mean": h[1:].mean(0), "max": h[1:].max(0)}[pooling]
        np.testing.assert_allclose(got[k, 0], want, atol=1e-5)


def test_one_token_text_falls_back_to_first_token(lm):
    hs = _hidden_states(lm, "A")
    for pooling in ("mean", "max", "last"):
        got = extract(lm, ["A"], pooling=pooling, layers=[1])
        np.testing.assert_allclose(got[0, 0], hs[2][0], atol=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_invariance(lm, pooling):
    batched = extract(lm, TEXTS, pooling=pooling, batch_size=len(TEXTS))
    single = extract(lm, TEXTS, pooling=pooling, batch_size=1)
    assert batched.shape == (N_LAYERS, len(TEXTS), D) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_layers_order_and_negative_indices(lm):
    full = extract(lm, TEXTS[:3])
    some = extract(lm, TEXTS[:3], layers=[-1, 0])
    np.testing.assert_allclose(some, full[[2, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="layer 5 is out of range"):
        extract(lm, TEXTS[:3], layers=[5])


def test_per_token(lm):
    acts, mask = extract(lm, TEXTS[:3], per_token=True, layers=[1], batch_size=2)
    lengths = [len(t) for t in TEXTS[:3]]  # one token per character
    assert acts.shape == (1, 3, max(lengths), D) and mask.sum(1).tolist() == lengths
    for j, t in enumerate(TEXTS[:3]):
        np.testing.assert_allclose(acts[0, j, : lengths[j]], _hidden_states(lm, t)[2], atol=1e-5)
        assert not acts[0, j, lengths[j] :].any()


def test_input_errors(lm):
    long = "x" * 70
    with pytest.raises(ValueError, match=r"texts\[2\] has 70 tokens, more than the limit of 64"):
        extract(lm, ["a", "b", long, long])
    with pytest.raises(ValueError, match=r"texts\[1\] has 12 tokens, more than the limit of 10"):
        extract(lm, ["a", "b" * 12], max_length=10)
    cut = extract(lm, [long], truncate=True, layers=[0])
    np.testing.assert_allclose(cut, extract(lm, ["x" * 64], layers=[0]), atol=1e-6)
    with pytest.raises(ValueError, match="texts is empty"):
        extract(lm, [])
    with pytest.raises(ValueError, match="no tokens"):
        extract(lm, ["a", ""])
    with pytest.raises(ValueError, match="pooling 'median'"):
        extract(lm, ["a"], pooling="median")


def test_load_model_from_folder_and_unknown_path(tmp_path):
    folder = tmp_path / "tiny"
    save_tiny_llama(folder, n_layers=2, d=16, max_positions=32)
    lm = load_model(str(folder))
    assert (lm.n_layers, lm.d_model, lm.max_length, lm.dtype) == (2, 16, 32, "float32")
    assert lm.revision.startswith("content:") and lm.revision == load_model(str(folder)).revision
    assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
    assert lm.tokenizer.pad_token is not None
    assert extract(lm, ["hi there"]).shape == (2, 1, 16)
    missing = tmp_path / "no_such_model"
    with pytest.raises(ValueError, match="neither a local model folder") as e:
        load_model(str(missing))
    assert str(missing) in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_model(str(tmp_path / "empty"))


def test_load_model_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="hub is unreachable") as e:
        load_model("nobody-xyz/no-such-model")
    assert "'nobody-xyz/no-such-model' is neither a local model folder" in str(e.value)


class _Calls:
    """Counts forward calls and texts seen; raises at call number ``fail_at`` (1-based)."""

    def __init__(self, model, fail_at=None):
        self.calls, self.texts, self.fail_at = 0, 0, fail_at
        self.widths = []
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        self.texts += kwargs["input_ids"].shape[0]
        self.widths.append(kwargs["input_ids"].shape[1])


def _counted(lm, run):
    """``run()`` and the forward calls it made (a :class:`_Calls`)."""
    calls = _Calls(lm.model)
    try:
        return run(), calls
    finally:
        calls.handle.remove()


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_cache_complete_equals_extract_and_reloads_without_model(lm, tmp_path):
    want = extract(lm, TEXTS, batch_size=3)
    got = cached_activations(
        lm, TEXTS, "h1", tmp_path / "c", ExtractionSpec(batch_size=3), progress=False
    )
    assert isinstance(got, np.memmap) and not got.flags.writeable
    np.testing.assert_array_equal(got, want)
    m = _manifest(tmp_path / "c")
    assert m["complete"] and m["n_done"] == len(TEXTS) and m["layers"] == [0, 1, 2]
    calls = _Calls(lm.model)
    try:
        again = cached_activations(lm, TEXTS, "h1", tmp_path / "c", progress=False)
    finally:
        calls.handle.remove()
    assert calls.calls == 0
    np.testing.assert_array_equal(again, want)


def test_cache_resumes_after_interruption(lm, tmp_path):
    folder = tmp_path / "c"
    calls = _Calls(lm.model, fail_at=3)
    try:
        with pytest.raises(KeyboardInterrupt):
            cached_activations(
                lm, TEXTS, "h1", folder, ExtractionSpec(batch_size=2), progress=False
            )
    finally:
        calls.handle.remove()
    m = _manifest(folder)
    assert m["n_done"] == 4 and m["complete"] is False
    got, calls = _counted(
        lm,
        lambda: cached_activations(
            lm, TEXTS, "h1", folder, ExtractionSpec(batch_size=2), progress=False
        ),
    )
    assert (calls.calls, calls.texts) == (2, len(TEXTS) - 4)
    assert _manifest(folder)["complete"] is True
    np.testing.assert_allclose(got, extract(lm, TEXTS, batch_size=2), atol=1e-6)


def test_batches_are_formed_by_token_count(lm):
    lengths = [len(r) for r in lm.tokenizer(TEXTS)["input_ids"]]
    order = length_order(lm.tokenizer(TEXTS)["input_ids"])
    assert [lengths[i] for i in order] == sorted(lengths)
    got, calls = _counted(lm, lambda: extract(lm, TEXTS, batch_size=2))
    s = sorted(lengths)
    assert calls.widths == [max(s[i : i + 2]) for i in range(0, len(s), 2)]
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(got[:, i], extract(lm, [text])[:, 0], atol=1e-5)


def test_cache_begun_in_input_order_resumes_in_input_order(lm, tmp_path):
    """A partial cache whose manifest predates length order (no "order" field) holds a
    prefix of the texts in input order; it is finished in that order."""
    folder = tmp_path / "c"
    want = extract(lm, TEXTS, batch_size=2)
    cached_activations(lm, TEXTS, "h1", folder, ExtractionSpec(batch_size=2), progress=False)
    m = _manifest(folder)
    assert m["order"] == "length"
    data = np.load(folder / "activations.npy", mmap_mode="r+")
    data[:, 4:] = 0.0
    data.flush()
    del data
    m.pop("order")
    m.update(n_done=4, complete=False)
    (folder / "manifest.json").write_text(json.dumps(m))
    got, calls = _counted(
        lm,
        lambda: cached_activations(
            lm, TEXTS, "h1", folder, ExtractionSpec(batch_size=2), progress=False
        ),
    )
    assert (calls.calls, calls.texts) == (2, len(TEXTS) - 4)
    assert _manifest(folder)["order"] == "input" and _manifest(folder)["complete"]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cache_mismatch(lm, tmp_path):
    folder = tmp_path / "c"
    cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)
    cases = [
        (dict(extraction=ExtractionSpec(pooling="mean")), "pooling"),
        (dict(dataset_hash="h2"), "dataset_hash"),
        (dict(extraction=ExtractionSpec(site="block_input")), "site"),
        (dict(loaded=_loaded(model_id="other")), "model_id"),
        (dict(loaded=_loaded(revision="r1")), "revision"),
        (dict(texts=TEXTS[1:4]), "texts_sha256"),
    ]
    for change, field in cases:
        kw = dict(loaded=lm, texts=TEXTS[:3], dataset_hash="h1", cache_dir=folder, progress=False)
        kw.update(change)
        with pytest.raises(CacheMismatchError, match=field) as e:
            cached_activations(**kw)
        assert str(folder) in str(e.value) and "stored" in str(e.value)
        assert isinstance(e.value, ValueError)


def test_cache_corrupt(lm, tmp_path):
    folder = tmp_path / "c"
    cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)
    data = folder / "activations.npy"
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CacheCorruptError, match="activations.npy"):
        cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)
    np.save(data, np.zeros((3, 2, D), np.float32))
    with pytest.raises(CacheCorruptError, match=r"expected float32 \(3, 3, 32\)"):
        cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)
    data.unlink()
    with pytest.raises(CacheCorruptError, match="missing"):
        cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CacheCorruptError, match="manifest.json"):
        cached_activations(lm, TEXTS[:3], "h1", folder, progress=False)


@pytest.mark.slow
def test_default_model_extracts():
    lm = load_model("default")
    assert (lm.n_layers, lm.d_model) == (30, 576) and lm.revision.startswith("gguf:")
    acts = extract(lm, ["Paris is in France.", "Hi", "The city of Lima is in Peru.", "Ok"])
    assert acts.shape == (30, 4, 576) and np.isfinite(acts).all()


def test_extract_command_writes_a_file_that_probe_reads(tmp_path):
    from typer.testing import CliRunner

    from probejax.cli import app
    from probejax.io import open_activations
    from probejax.llm import probe_activations
    from probejax.llm._cache import texts_sha256

    save_tiny_llama(tmp_path / "model", n_layers=N_LAYERS, d=D)
    rng = np.random.default_rng(0)
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = [(f"the day was {rng.choice(words[:3] if i % 2 else words[3:])} {i}", i % 2) for i in range(60)]  # fmt: skip
    (tmp_path / "days.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    path = tmp_path / "days.safetensors"
    args = [
        "llm", "extract", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "days.csv"),
        "--site", "post_attention_layernorm", "--pooling", "mean", "--layers", "0,2",
        "--out", str(path), "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stack = open_activations(path)
    assert stack.layers == (0, 2) and stack.shape == (2, 60, D)
    meta = stack.metadata
    assert meta["site"] == "post_attention_layernorm" and meta["pooling"] == "mean"
    assert meta["n_layers"] == N_LAYERS and meta["dtype"] == "float32"
    assert meta["dataset"] == "days" and meta["label_names"] == ["0", "1"]
    assert meta["texts_sha256"] == texts_sha256([t for t, _ in rows])
    assert meta["model"] == str((tmp_path / "model").resolve()) and meta["revision"]
    np.testing.assert_array_equal(stack.labels, [y for _, y in rows])
    lm = load_model(str(tmp_path / "model"))
    want = extract(lm, [t for t, _ in rows], layers=[0, 2], pooling="mean", site="post_attention_layernorm")  # fmt: skip
    np.testing.assert_allclose(np.stack([stack[0], stack[1]]), want, atol=1e-5)
    # the activation cache is reused: a second export of the same extraction reads it
    (manifest,) = (tmp_path / "cache").rglob("manifest.json")
    assert json.loads(manifest.read_text())["site"] == "post_attention_layernorm"
    stamps = [(f, f.stat().st_mtime_ns) for f in manifest.parent.iterdir()]
    again = CliRunner().invoke(app, [*args[:-4], "--out", str(tmp_path / "again.safetensors"), *args[-2:]])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert [(f, f.stat().st_mtime_ns) for f in manifest.parent.iterdir()] == stamps
    assert open_activations(tmp_path / "again.safetensors").metadata == meta

    out = tmp_path / "probed"
    probe_args = ["probe", str(path), "--out", str(out), "--estimators", "raptor,mass_mean",
                  "--no-stability"]  # fmt: skip
    result = CliRunner().invoke(app, probe_args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    api = probe_activations(
        open_activations(path), estimators="raptor,mass_mean", stability=None, log=None
    ).results
    assert res["site"] == "post_attention_layernorm" and res["pooling"] == "mean"
    assert res["model"]["id"] == meta["model"] and res["dataset"]["name"] == "days"
    assert res["dataset"]["hash"] == meta["texts_sha256"] and res["layers"] == [0, 2]
    for m in ("raptor", "mass_mean"):
        for field in ("test_accuracy", "test_auroc", "lam"):
            np.testing.assert_array_equal(
                np.asarray(res["estimators"][m][field], float),
                np.asarray(api["estimators"][m][field], float),
                err_msg=f"{m} {field}",
            )
    assert res["best"] == json.loads(json.dumps(api["best"]))


def test_extract_command_refuses_a_bad_site_before_extracting(tmp_path):
    from typer.testing import CliRunner

    from probejax.cli import app

    save_tiny_llama(tmp_path / "model", n_layers=N_LAYERS, d=D)
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"t {i},{i % 2}\n" for i in range(8)))
    base = ["llm", "extract", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "d.csv"),
            "--cache", str(tmp_path / "cache")]  # fmt: skip
    bad = CliRunner().invoke(app, [*base, "--site", "mlp.nope", "--out", str(tmp_path / "a.safetensors")])  # fmt: skip
    assert bad.exit_code == 1
    assert "'mlp.nope'" in bad.output and "LlamaForCausalLM" in bad.output
    assert "post_attention_layernorm" in bad.output  # what block 0 does have
    assert not (tmp_path / "cache").exists() and not (tmp_path / "a.safetensors").exists()
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.npy")])
    assert bad.exit_code == 1 and ".safetensors" in bad.output


def test_extract_command_device_map(tmp_path):
    from typer.testing import CliRunner

    from probejax.cli import app
    from probejax.io import open_activations

    pytest.importorskip("accelerate")
    save_tiny_llama(tmp_path / "model", n_layers=N_LAYERS, d=D)
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"t {i},{i % 2}\n" for i in range(8)))
    base = ["llm", "extract", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "d.csv"),
            "--layers", "1"]  # fmt: skip
    for i, extra in enumerate((["--device-map", "auto"], ["--device-map", '{"": "cpu"}'], [])):
        out = tmp_path / f"{i}.safetensors"
        cache = ["--cache", str(tmp_path / f"cache{i}")]
        result = CliRunner().invoke(app, [*base, *extra, "--out", str(out), *cache])
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(open_activations(tmp_path / "0.safetensors")[0],
                                  open_activations(tmp_path / "2.safetensors")[0])  # fmt: skip
    np.testing.assert_array_equal(open_activations(tmp_path / "1.safetensors")[0],
                                  open_activations(tmp_path / "2.safetensors")[0])  # fmt: skip
    bad = CliRunner().invoke(app, [*base, "--device-map", "gpus", "--out", str(tmp_path / "x.safetensors")])  # fmt: skip
    assert bad.exit_code == 1 and "--device-map must be 'auto' or a JSON object" in bad.output

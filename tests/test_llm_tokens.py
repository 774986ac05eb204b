"""Token masks and chat templates: each selection equals the same tokens read from
``output_hidden_states`` of one unpadded forward pass; chat inputs equal the template's
rendering; the selection is part of the cache key; bad input is refused up front."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import tiny_llama  # noqa: E402

from probejax.llm import (  # noqa: E402
    AfterMarker,
    AllTokens,
    AssistantTurn,
    CacheMismatchError,
    Chat,
    ExtractionSpec,
    LastTokens,
    LoadedModel,
    cached_activations,
    extract,
)
from probejax.llm._tokens import parse_tokens  # noqa: E402

torch.set_num_threads(1)

N_LAYERS, D = 3, 32
TEXTS = [
    "Paris is in France.",
    "Oslo is cold.",
    "The city of Lima is in Peru, far away.",
    "Bern is in Switzerland!",
]
# one token per character: the template uses only characters the tokenizer knows
TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} | {% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def _loaded(template=TEMPLATE) -> LoadedModel:
    model, tok = tiny_llama(N_LAYERS, D, max_positions=128)
    model.requires_grad_(False)
    if template is not None:
        tok.chat_template = template
    return LoadedModel(model, tok, "tiny", "r0", N_LAYERS, D, 128)


@pytest.fixture(scope="module")
def lm():
    return _loaded()


def _states(lm, text):
    """Block outputs ``(L, T, d)`` of ``text`` alone, read by forward hooks on the
    blocks (the tiny tokenizer adds no special tokens, one token per character)."""
    ids = lm.tokenizer(text, return_tensors="pt").input_ids
    assert ids.shape[1] == len(text)
    got = []

    def keep(module, args, out):
        got.append((out[0] if isinstance(out, tuple) else out)[0].clone().numpy())

    handles = [block.register_forward_hook(keep) for block in lm.model.model.layers]
    try:
        with torch.inference_mode():
            lm.model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return np.stack(got)


def _direct(lm, texts, pick, reduce):
    """Per text ``reduce(states[:, pick(text)])``: ``(L, n, d)``."""
    return np.stack([reduce(_states(lm, t)[:, pick(t)]) for t in texts], axis=1)


def _mean(h):
    return h.mean(1)


def test_default_tokens_are_the_poolings_own(lm):
    last = _direct(lm, TEXTS, lambda t: [len(t) - 1], _mean)
    mean = _direct(lm, TEXTS, lambda t: slice(1, None), _mean)
    np.testing.assert_allclose(extract(lm, TEXTS, batch_size=3), last, atol=1e-5)
    np.testing.assert_allclose(extract(lm, TEXTS, pooling="mean", batch_size=3), mean, atol=1e-5)
    # AllTokens keeps the first token, which the default mean leaves out
    every = _direct(lm, TEXTS, lambda t: slice(None), _mean)
    np.testing.assert_allclose(
        extract(lm, TEXTS, pooling="mean", tokens=AllTokens(), batch_size=3), every, atol=1e-5
    )


def test_last_k_and_after_marker_and_their_intersection(lm):
    got = extract(lm, TEXTS, pooling="mean", tokens=LastTokens(3), batch_size=2)
    np.testing.assert_allclose(got, _direct(lm, TEXTS, lambda t: slice(-3, None), _mean), atol=1e-5)
    after = lambda t: slice(t.rfind("is") + 2, None)
    got = extract(lm, TEXTS, pooling="max", tokens=AfterMarker("is"), batch_size=3)
    np.testing.assert_allclose(got, _direct(lm, TEXTS, after, lambda h: h.max(1)), atol=1e-5)
    both = AfterMarker("is") & LastTokens(2)
    assert both == parse_tokens("after:is&last:2") and both.describe() == "after:is&last:2"
    got = extract(lm, TEXTS, pooling="mean", tokens=both)
    np.testing.assert_allclose(got, _direct(lm, TEXTS, lambda t: slice(-2, None), _mean), atol=1e-5)
    # "last" pooling of a mask: the last token it selects
    first3 = AllTokens() & LastTokens(len(TEXTS[0]))
    assert np.allclose(extract(lm, TEXTS[:1], tokens=first3), extract(lm, TEXTS[:1]), atol=1e-6)


def test_per_token_mask_is_the_selection(lm):
    acts, mask = extract(lm, TEXTS, tokens=AfterMarker("is"), per_token=True)
    for i, t in enumerate(TEXTS):
        want = np.zeros(mask.shape[1], bool)
        want[t.rfind("is") + 2 : len(t)] = True
        np.testing.assert_array_equal(mask[i], want)
    acts_all, mask_all = extract(lm, TEXTS, per_token=True)
    np.testing.assert_array_equal(mask_all.sum(1), [len(t) for t in TEXTS])
    np.testing.assert_array_equal(acts, acts_all)


def test_chat_inputs_are_the_template_rendering(lm):
    chat = Chat(system="Be brief.")
    rendered = [f"[system] Be brief. | [user] {t} | [assistant] " for t in TEXTS]
    np.testing.assert_allclose(
        extract(lm, TEXTS, chat=chat, pooling="mean"),
        extract(lm, rendered, pooling="mean"),
        atol=1e-5,
    )
    rec = ExtractionSpec(chat=chat).record(lm.tokenizer, TEXTS)
    assert rec["inputs"] == rendered and rec["tokens"] is None
    assert rec["chat"]["system"] == "Be brief." and len(rec["chat"]["template_sha256"]) == 64


def test_assistant_turn_reads_the_reply(lm):
    texts = ["Is Paris in France? Answer: yes it is", "Is Oslo hot? Answer: no"]
    chat = Chat(assistant_after="Answer:")
    got = extract(lm, texts, chat=chat, tokens=AssistantTurn(), pooling="mean")
    want = []
    for t in texts:
        user, reply = t.split("Answer:")
        prompt = f"[user] {user}Answer: | [assistant] "
        full = prompt + f"{reply.strip()} | "
        want.append(_states(lm, full)[:, len(prompt) :].mean(1))
    np.testing.assert_allclose(got, np.stack(want, 1), atol=1e-5)


def test_bad_tokens_and_chat_are_refused(lm):
    with pytest.raises(ValueError, match=r"texts\[1\].*'zz'"):
        extract(lm, ["a zz b", "no marker"], tokens=AfterMarker("zz"))
    with pytest.raises(ValueError, match=r"texts\[0\].*selects no token"):
        extract(lm, ["ends with zz"], tokens=AfterMarker("zz"))
    with pytest.raises(ValueError, match=r"texts\[1\].*assistant_after"):
        extract(lm, ["q? A: y", "q?"], chat=Chat(assistant_after="A:"))
    with pytest.raises(ValueError, match="Chat\\(assistant_after"):
        ExtractionSpec(tokens=AssistantTurn())
    with pytest.raises(ValueError, match="no chat template"):
        extract(_loaded(template=None), TEXTS, chat=Chat())
    for bad in ("last:0", "last:x", "after:", "first", "all&"):
        with pytest.raises(ValueError):
            parse_tokens(bad)
    with pytest.raises(ValueError, match="LastTokens.k"):
        LastTokens(0)


def test_the_selection_is_part_of_the_cache_key(lm, tmp_path):
    spec = ExtractionSpec(pooling="mean", tokens=LastTokens(2), chat=Chat())
    folder = tmp_path / "c"
    got = cached_activations(lm, TEXTS, "h", folder, spec, progress=False)
    np.testing.assert_allclose(
        got, extract(lm, TEXTS, pooling="mean", tokens=LastTokens(2), chat=Chat()), atol=1e-6
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["selection"] == spec.selection(lm.tokenizer)
    assert "tokens=last:2" in manifest["selection"] and "chat(" in manifest["selection"]
    other = ExtractionSpec(pooling="mean", tokens=LastTokens(3), chat=Chat())
    with pytest.raises(CacheMismatchError, match="selection"):
        cached_activations(lm, TEXTS, "h", folder, other, progress=False)


def test_cli_chat_and_tokens_reach_the_exported_file(tmp_path):
    from typer.testing import CliRunner

    from probejax.cli import app
    from probejax.io import open_activations

    model, tok = tiny_llama(N_LAYERS, D, max_positions=128)
    tok.chat_template = TEMPLATE
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    rows = [(f"day {i} was {'good' if i % 2 else 'bad'}", i % 2) for i in range(12)]
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    out = tmp_path / "d.safetensors"
    args = ["llm", "extract", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "d.csv"),
            "--chat", "--system", "Rate it.", "--tokens", "last:3", "--pooling", "mean",
            "--layers", "1", "--out", str(out), "--cache", str(tmp_path / "cache")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = open_activations(out).metadata
    assert meta["tokens"] == "last:3" and meta["chat"]["system"] == "Rate it."
    texts = [t for t, _ in rows]
    assert meta["inputs"] == [f"[system] Rate it. | [user] {t} | [assistant] " for t in texts]
    lm = _loaded()
    want = extract(
        lm, texts, layers=[1], pooling="mean", tokens=LastTokens(3), chat=Chat("Rate it.")
    )
    np.testing.assert_allclose(open_activations(out)[0], want[0], atol=1e-5)
    bad = CliRunner().invoke(app, [*args[:9], "--tokens", "first", *args[11:]])
    assert bad.exit_code == 1 and "--tokens part 'first'" in bad.output
    lone = CliRunner().invoke(app, [a for a in args if a != "--chat"])
    assert lone.exit_code == 1 and "add --chat" in lone.output

"""Sites of any decoder model: on a tiny random model of every family in
``tiny_lm.FAMILIES`` (built offline with ``from_config``), ``extract`` at ``block_output``,
``attn_output``, ``mlp_output`` and a named submodule equals a forward hook the test
registers itself on that module; the forward pass stops at the last site; unknown sites
and models without blocks are refused before any work, naming what was looked for."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import FAMILIES, tiny_decoder, tiny_llama  # noqa: E402

from probejax.llm import (  # noqa: E402
    CacheMismatchError,
    ExtractionSpec,
    LoadedModel,
    cached_activations,
    decoder_layers,
    extract,
)
from probejax.llm._hooks import _block_lists  # noqa: E402

torch.set_num_threads(1)

N_LAYERS, D = 2, 16
TEXTS = ["Paris is in France.", "Oslo", "A", "The city of Lima is in Peru!", "Rome is old."]

# written out by hand, independently of the library's resolution: the blocks' path, the
# attention and MLP submodules, and one more named submodule per family
LAYOUT = {
    "llama": ("model.layers", "self_attn", "mlp", "self_attn.o_proj"),
    "gemma3_text": ("model.layers", "self_attn", "mlp", "post_attention_layernorm"),
    "qwen2": ("model.layers", "self_attn", "mlp", "mlp.down_proj"),
    "qwen3": ("model.layers", "self_attn", "mlp", "post_attention_layernorm"),
    "mistral": ("model.layers", "self_attn", "mlp", "input_layernorm"),
    "phi3": ("model.layers", "self_attn", "mlp", "post_attention_layernorm"),
    "gpt2": ("transformer.h", "attn", "mlp", "ln_2"),
    "gpt_neox": ("gpt_neox.layers", "attention", "mlp", "post_attention_layernorm"),
    "falcon": ("transformer.h", "self_attention", "mlp", "input_layernorm"),
    "qwen2_moe": ("model.layers", "self_attn", "mlp", "post_attention_layernorm"),
    "mixtral": ("model.layers", "self_attn", "mlp", "self_attn.o_proj"),
    "olmoe": ("model.layers", "self_attn", "mlp", "post_attention_layernorm"),
}
assert set(LAYOUT) == set(FAMILIES)


def _loaded(family: str) -> LoadedModel:
    model, tok = tiny_decoder(family, n_layers=N_LAYERS, d=D)
    return LoadedModel(model, tok, f"tiny-{family}", "r0", N_LAYERS, D, 64)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return request.param, _loaded(request.param)


def _reference(lm, path):
    """Per text, unbatched: the output (first element of a tuple) of the module at
    ``path``, read by a hook of the test's own, ``(T, width)``; and the hidden states."""
    captured = []

    def hook(module, args, output):
        out = output[0] if isinstance(output, tuple) else output
        captured.append(out[0].float().numpy().copy())

    handle = lm.model.get_submodule(path).register_forward_hook(hook)
    hidden = []
    try:
        for text in TEXTS:
            ids = lm.tokenizer(text, return_tensors="pt").input_ids
            with torch.inference_mode():
                out = lm.model(input_ids=ids, output_hidden_states=True, use_cache=False)
            hidden.append([h[0].numpy() for h in out.hidden_states])
    finally:
        handle.remove()
    assert len(captured) == len(TEXTS), f"{path} ran {len(captured)} times"
    return captured, hidden


def test_sites_equal_an_independent_forward_hook(family):
    name, lm = family
    blocks, attn, mlp, named = LAYOUT[name]
    for site, sub in (("block_output", ""), ("attn_output", attn), ("mlp_output", mlp), (named, named)):  # fmt: skip
        acts, mask = extract(lm, TEXTS, site=site, per_token=True, batch_size=3)
        mean = extract(lm, TEXTS, site=site, pooling="mean", batch_size=2)
        last = extract(lm, TEXTS, site=site, pooling="last", batch_size=4)
        for i in range(N_LAYERS):
            want, hidden = _reference(lm, f"{blocks}.{i}" + (f".{sub}" if sub else ""))
            for b, w in enumerate(want):
                where = f"{name} {site} layer {i} text {b}"
                T = len(w)
                assert mask[b].sum() == T, where
                np.testing.assert_allclose(acts[i, b, :T], w, atol=2e-5, rtol=1e-4, err_msg=where)
                np.testing.assert_allclose(last[i, b], w[-1], atol=2e-5, rtol=1e-4, err_msg=where)
                m = w[1:].mean(0) if T > 1 else w[0]
                np.testing.assert_allclose(mean[i, b], m, atol=2e-5, rtol=1e-4, err_msg=where)
                if site == "block_output" and i < N_LAYERS - 1:
                    # transformers applies the final norm to the last entry, hence i < L - 1
                    np.testing.assert_allclose(
                        acts[i, b, :T], hidden[b][i + 1], atol=2e-5, rtol=1e-4, err_msg=where
                    )


def test_the_blocks_are_found_generically(family):
    name, lm = family
    blocks = lm.model.get_submodule(LAYOUT[name][0])
    assert decoder_layers(lm.model) is blocks
    # the generic search alone (no known path) finds the same list
    assert max(_block_lists(lm.model), key=lambda pm: len(pm[1]))[1] is blocks


def test_the_forward_pass_stops_at_the_last_site(family):
    name, lm = family
    blocks, _, mlp, _ = LAYOUT[name]
    later = [f"{blocks}.0.{mlp}", f"{blocks}.1"]
    ran = []
    handles = [
        lm.model.get_submodule(p).register_forward_pre_hook(lambda m, a, p=p: ran.append(p))
        for p in later
    ]
    head = lm.model.get_output_embeddings()
    handles.append(head.register_forward_pre_hook(lambda m, a: ran.append("lm_head")))
    try:
        got = extract(lm, TEXTS, site="attn_output", layers=[0], batch_size=2)
        assert got.shape == (1, len(TEXTS), D)
        assert ran == [], f"{name}: {ran} ran after the last requested site"
        extract(lm, TEXTS, site="block_output", layers=[1], batch_size=len(TEXTS))
        assert ran == [later[0], later[1]], ran  # the last block's output: no head
        with torch.inference_mode():
            lm.model(input_ids=lm.tokenizer(TEXTS[0], return_tensors="pt").input_ids)
        assert ran[-1] == "lm_head"  # the hooks themselves do fire in a full pass
    finally:
        for h in handles:
            h.remove()


class _Calls:
    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.n += 1


@pytest.mark.parametrize("name", ["llama", "gpt2", "qwen2_moe"])
def test_an_unknown_site_is_refused_before_any_work(name, tmp_path):
    lm = _loaded(name)
    calls = _Calls(lm.model)
    try:
        for bad in ("no_such_module", "self_attn.nope"):
            with pytest.raises(ValueError) as e:
                extract(lm, TEXTS, site=bad)
            msg = str(e.value)
            assert repr(bad) in msg and type(lm.model).__name__ in msg
            assert LAYOUT[name][1] in msg and "block 0 has" in msg  # what does exist
            with pytest.raises(ValueError, match=bad):
                cached_activations(
                    lm, TEXTS, "h", tmp_path / "c", ExtractionSpec(site=bad), progress=False
                )
            assert not (tmp_path / "c").exists()
        assert calls.n == 0
    finally:
        calls.handle.remove()


def test_malformed_site_names_are_refused_by_the_spec():
    for bad in ("", "mlp output", "mlp..down", "3x", None):
        with pytest.raises(ValueError, match="site"):
            ExtractionSpec(site=bad)
    assert ExtractionSpec(site="mlp.down_proj").options()["site"] == "mlp.down_proj"


def test_a_site_that_does_not_see_every_token_is_refused():
    lm = _loaded("qwen2_moe")  # the experts see only the tokens routed to them
    with pytest.raises(ValueError, match=r"'mlp.experts'.*\(batch, tokens, width\)"):
        extract(lm, TEXTS, site="mlp.experts")


def test_a_site_of_another_width_and_the_cache_key(tmp_path):
    model, tok = tiny_llama(N_LAYERS, 32, max_positions=64)
    model.requires_grad_(False)
    lm = LoadedModel(model, tok, "tiny", "r0", N_LAYERS, 32, 64)
    got = extract(lm, TEXTS, site="mlp.up_proj", pooling="mean")
    assert got.shape == (N_LAYERS, len(TEXTS), 64)  # intermediate_size 2 d
    folder = tmp_path / "c"
    cached = cached_activations(
        lm, TEXTS, "h", folder, ExtractionSpec(site="mlp.up_proj", pooling="mean"), progress=False
    )
    np.testing.assert_allclose(cached, got, atol=1e-6)
    with pytest.raises(CacheMismatchError, match="site: stored 'mlp.up_proj'"):
        cached_activations(
            lm,
            TEXTS,
            "h",
            folder,
            ExtractionSpec(site="mlp.down_proj", pooling="mean"),
            progress=False,
        )


def test_decoder_layers_of_an_unknown_layout():
    nn = torch.nn

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList([Expert() for _ in range(5)])  # longer, inside

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.stack = nn.ModuleList([Block(), Block()])
            self.heads = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])  # no submodules

    odd = Odd()
    assert decoder_layers(odd) is odd.backbone.stack

    class NoBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

    with pytest.raises(ValueError, match=r"NoBlocks.*model\.layers.*transformer\.h.*ModuleList"):
        decoder_layers(NoBlocks())

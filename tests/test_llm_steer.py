"""Steering on a tiny random Llama (char tokenizer): hooks that come off exactly, the
closed-form edits checked against output_hidden_states, generation, and the re-encoded
measurement."""

import contextlib
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import tiny_llama  # noqa: E402

from probejax.llm import LoadedModel, Positions, decoder_layers, extract  # noqa: E402
from probejax.llm._steer import (  # noqa: E402
    FixedSteering,
    TargetSteering,
    UnitVectorEdit,
    generate,
    probe_probability,
    steering_demo,
)

torch.set_num_threads(1)

N_LAYERS, D = 3, 32
PROMPTS = ["hello", "The cat", "abc", "12 x", "Once upon"]


def _loaded(seed=0, tied=False) -> LoadedModel:
    model, tok = tiny_llama(N_LAYERS, D, seed=seed, max_positions=128)
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.requires_grad_(False)
    return LoadedModel(model, tok, "tiny", "r0", N_LAYERS, D, 128)


@pytest.fixture(scope="module")
def lm():
    return _loaded()


def _run(lm, text, spec=None):
    ids = lm.tokenizer(text, return_tensors="pt").input_ids
    hooks = contextlib.nullcontext() if spec is None else spec.attach(lm.model)
    with torch.no_grad(), hooks:
        out = lm.model(input_ids=ids, output_hidden_states=True)
    return out.logits, out.hidden_states


def _unit(rng, d=D):
    u = rng.standard_normal(d)
    return u / np.linalg.norm(u)


def _logit(p):
    return math.log(p / (1 - p))


def test_hooks_come_off_exactly(lm):
    rng = np.random.default_rng(0)
    spec = FixedSteering({0: rng.standard_normal(D), 2: rng.standard_normal(D)}, 5.0)
    before, _ = _run(lm, "hello world")
    n_hooks = [len(b._forward_hooks) for b in decoder_layers(lm.model)]
    inside, _ = _run(lm, "hello world", spec)
    after, _ = _run(lm, "hello world")
    assert not torch.equal(before, inside)
    assert torch.equal(before, after)
    with pytest.raises(RuntimeError, match="boom"), spec.attach(lm.model):
        raise RuntimeError("boom")
    again, _ = _run(lm, "hello world")
    assert torch.equal(before, again)
    assert [len(b._forward_hooks) for b in decoder_layers(lm.model)] == n_hooks


@pytest.mark.parametrize("positions", [Positions.ALL, Positions.LAST])
def test_fixed_steering_adds_strength_times_unit_vector(lm, positions):
    rng = np.random.default_rng(1)
    u, strength, layer = 3.0 * rng.standard_normal(D), 2.5, 1
    # the unsteered run first: transformers installs its hidden-state recorders now,
    # ahead of the steering hooks, which must still run first
    _, ref = _run(lm, "steer me", None)
    spec = FixedSteering({layer: u}, strength, positions=positions)
    _, got = _run(lm, "steer me", spec)
    for j in range(layer + 1):
        assert torch.equal(ref[j], got[j])
    diff = (got[layer + 1] - ref[layer + 1])[0].numpy()
    want = strength * u / np.linalg.norm(u)
    edited = slice(None) if positions is Positions.ALL else slice(-1, None)
    np.testing.assert_allclose(diff[edited], np.broadcast_to(want, diff[edited].shape), atol=1e-5)
    if positions is Positions.LAST:
        assert np.all(diff[:-1] == 0)
    assert len(spec.log) == 1 and spec.log[0].applied
    assert spec.log[0].n_edited == (diff.shape[0] if positions is Positions.ALL else 1)


@pytest.mark.parametrize("target", [0.9999, 0.0001, 0.8])
def test_target_steering_lands_on_the_target_logit(lm, target):
    rng = np.random.default_rng(2)
    w, b, layer = 0.3 * rng.standard_normal(D), 0.7, 1
    if target == 0.8:  # make sure the probe starts below 0.8
        b = -5.0
    _, ref = _run(lm, "a probe", None)
    spec = TargetSteering({layer: (w, b)}, target)
    _, got = _run(lm, "a probe", spec)
    e = got[layer + 1][0].double().numpy()
    e0 = ref[layer + 1][0].double().numpy()
    assert abs(e[-1] @ w + b - _logit(target)) < 1e-4
    np.testing.assert_array_equal(e[:-1], e0[:-1])
    # the edit is along w only, of length eps
    (rec,) = spec.log
    assert rec.applied and rec.n_edited == 1
    np.testing.assert_allclose(e[-1] - e0[-1], rec.eps * w / np.linalg.norm(w), atol=1e-5)
    assert abs(rec.logit_before - (e0[-1] @ w + b)) < 1e-4
    assert abs(rec.logit_after - _logit(target)) < 1e-4


def test_target_steering_at_all_positions_edits_only_those_below(lm):
    rng = np.random.default_rng(9)
    w, layer = rng.standard_normal(D), 1
    _, ref = _run(lm, "every position", None)
    s0 = ref[layer + 1][0].double().numpy() @ w
    b = _logit(0.9) - float(np.median(s0))  # about half the positions start past 0.9
    spec = TargetSteering({layer: (w, b)}, 0.9, positions=Positions.ALL)
    _, got = _run(lm, "every position", spec)
    s = got[layer + 1][0].double().numpy() @ w + b
    below = s0 + b < _logit(0.9)
    assert 0 < below.sum() < len(below) and spec.log[0].n_edited == below.sum()
    np.testing.assert_allclose(s[below], _logit(0.9), atol=1e-4)
    np.testing.assert_array_equal(s[~below], s0[~below] + b)


def test_unit_vector_edit_treats_the_unit_vector_as_the_probe(lm):
    rng = np.random.default_rng(3)
    w, b, layer, target = 4.0 * _unit(rng), 0.5, 0, 0.99
    spec = TargetSteering({layer: (w, b)}, target, rule=UnitVectorEdit())
    _, got = _run(lm, "a probe", spec)
    e = got[layer + 1][0, -1].double().numpy()
    v = w / np.linalg.norm(w)
    assert abs(v @ e + b - _logit(target)) < 1e-4
    # the real probe overshoots: s = |w| (logit(p) - b) + b
    assert abs(w @ e + b - (4.0 * (_logit(target) - b) + b)) < 1e-3


@pytest.mark.parametrize(("b", "target"), [(50.0, 0.9), (-50.0, 0.1)])
def test_target_steering_skips_once_reached(lm, b, target):
    rng = np.random.default_rng(4)
    w = 0.1 * rng.standard_normal(D)
    logits, ref = _run(lm, "already there", None)
    spec = TargetSteering({2: (w, b)}, target)
    got_logits, got = _run(lm, "already there", spec)
    assert torch.equal(logits, got_logits)
    (rec,) = spec.log
    assert not rec.applied and rec.eps == 0.0 and rec.n_edited == 0
    assert rec.logit_after == rec.logit_before
    assert spec.summary()[0]["n_skipped"] == 1


def test_target_steering_during_generation(lm):
    rng = np.random.default_rng(5)
    w, b, layer, n_new = 0.5 * rng.standard_normal(D), -1.0, 1, 6
    spec = TargetSteering({layer: (w, b)}, 0.9999)
    generate(lm, "Once upon", max_new_tokens=n_new, steering=spec)
    steps = [r.step for r in spec.log]
    assert steps == list(range(len(steps))) and 1 <= len(steps) <= n_new
    for r in spec.log:
        assert r.applied == (r.logit_before < _logit(0.9999))
        if r.applied:
            assert abs(r.logit_after - _logit(0.9999)) < 1e-4
    # the hook's coordinate is extract's: the prompt's last token, unsteered
    (p,) = probe_probability(lm, ["Once upon"], w, b, layer)
    assert abs(spec.log[0].p_before - p) < 1e-5


def test_fixed_steering_changes_generation_and_leaves_no_trace(lm):
    rng = np.random.default_rng(6)
    u = rng.standard_normal(D)
    plain = [generate(lm, p, max_new_tokens=10) for p in PROMPTS]
    steered = [
        generate(lm, p, max_new_tokens=10, steering=FixedSteering({0: u}, 20.0)) for p in PROMPTS
    ]
    assert any(a != s for a, s in zip(plain, steered, strict=True))
    assert plain == [generate(lm, p, max_new_tokens=10) for p in PROMPTS]
    assert all(len(a) > 0 for a in plain)


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(lm):
    state = torch.get_rng_state()
    a = generate(lm, "hello", max_new_tokens=12, do_sample=True, seed=1)
    b = generate(lm, "hello", max_new_tokens=12, do_sample=True, seed=1)
    c = generate(lm, "hello", max_new_tokens=12, do_sample=True, seed=2)
    assert a == b and a != c
    assert torch.equal(state, torch.get_rng_state())


def test_probe_probability_is_the_sigmoid_of_extracted_scores(lm):
    rng = np.random.default_rng(7)
    w, b, texts = rng.standard_normal(D), 0.2, ["one text", "and another one", "x"]
    X = extract(lm, texts, layers=[2])[0].astype(np.float64)
    np.testing.assert_allclose(
        probe_probability(lm, texts, w, b, 2), 1 / (1 + np.exp(-(X @ w + b))), rtol=1e-12
    )


@pytest.mark.parametrize("layer", [0, 2])
def test_steering_towards_a_token_concept_shows_in_reencoded_text(layer):
    # A random Llama with tied embeddings: the residual stream of the last token is
    # dominated by that token's embedding, and the unembedding reads it back. The concept
    # "the current token is c" (w = embedding of c) is then both written by steering
    # (the model emits c) and read on the re-encoded text (which now ends in c).
    lm = _loaded(seed=0, tied=True)
    c = lm.tokenizer.convert_tokens_to_ids("7")
    w = 100.0 * lm.model.model.embed_tokens.weight[c].double().numpy()
    for prompt in PROMPTS[:3]:
        out = steering_demo(lm, prompt, w, 0.0, [layer], max_new_tokens=6)
        assert "7" in out["steered"] and "7" not in out["unsteered"]
        assert out["p_steered"][0] > out["p_unsteered"][0]
        (log,) = out["log"]
        assert log["n_applied"] >= 1 and abs(log["p_after_first"] - 0.9999) < 1e-6


def test_steering_demo_variants(lm):
    rng = np.random.default_rng(8)
    W, B = rng.standard_normal((2, D)), np.array([0.1, -0.1])
    away = steering_demo(lm, "hello", W, B, [0, 2], direction="away", max_new_tokens=4)
    assert away["method"] == "target" and away["target_p"] == 0.0001
    assert [s["layer"] for s in away["log"]] == [0, 2]
    assert len(away["p_steered"]) == 2 and len(away["p_unsteered"]) == 2
    for k, layer in enumerate([0, 2]):
        (p,) = probe_probability(lm, ["hello"], W[k], B[k], layer)
        assert abs(away["p_prompt"][k] - p) < 1e-12
    # the first steered block reads the prompt unsteered; block 2 sees block 0's edit
    assert abs(away["log"][0]["p_before_first"] - away["p_prompt"][0]) < 1e-5
    assert abs(away["log"][1]["p_before_first"] - away["p_prompt"][1]) > 1e-3
    fixed = steering_demo(lm, "hello", W[0], 0.0, [1], strength=8.0, max_new_tokens=4)
    assert fixed["method"] == "fixed" and fixed["log"][0]["mean_abs_eps"] == 8.0
    assert fixed["unsteered"] == away["unsteered"]


def test_errors_name_the_problem(lm):
    w = np.ones(D)
    with pytest.raises(ValueError, match="target_p"):
        TargetSteering({0: (w, 0.0)}, 1.0)
    with pytest.raises(ValueError, match="zero vector"):
        FixedSteering({0: np.zeros(D)}, 1.0)
    with pytest.raises(ValueError, match="positions"):
        FixedSteering({0: w}, 1.0, positions="first")
    with pytest.raises(ValueError, match="rule"):
        TargetSteering({0: (w, 0.0)}, 0.9, rule="approx")
    with pytest.raises(ValueError, match="does not point away"):
        steering_demo(lm, "hi", w, 0.0, [0], direction="away", target_p=0.9)
    with pytest.raises(ValueError, match="not both"):
        steering_demo(lm, "hi", w, 0.0, [0], target_p=0.9, strength=1.0)
    with pytest.raises(ValueError, match="d = 32"):
        _run(lm, "hi", FixedSteering({0: np.ones(5)}, 1.0))
    with pytest.raises(ValueError, match="out of range"):
        _run(lm, "hi", FixedSteering({7: w}, 1.0))
    logits, _ = _run(lm, "hi")
    assert torch.equal(logits, _run(lm, "hi")[0])

"""Steering vectors, batched generation and the scorers on a tiny random Llama: a batch
row equals the row generated alone, hooks come off exactly after errors, strengths are
relative to the documented median norm, and the A/B scorer matches a hand computation."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import tiny_llama  # noqa: E402

from probejax.estimators import MassMean  # noqa: E402
from probejax.llm import (  # noqa: E402
    LoadedModel,
    Positions,
    RowSteering,
    SteeringVector,
    TargetSteering,
    ab_probabilities,
    ab_sweep,
    continuation_nll,
    decoder_layers,
    dose_response,
    extract,
    generate_batch,
    repeated_ngram_rate,
    residual_norms,
    vader,
)

torch.set_num_threads(1)

N_LAYERS, D = 3, 32
PROMPTS = ["hello", "The cat sat", "abc", "12 x", "Once upon a time"]


@pytest.fixture(scope="module")
def lm():
    model, tok = tiny_llama(N_LAYERS, D, seed=0, max_positions=128)
    model.requires_grad_(False)
    return LoadedModel(model, tok, "tiny", "r0", N_LAYERS, D, 128)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model):
    return [(len(b._forward_hooks), len(b._forward_pre_hooks)) for b in decoder_layers(model)]


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("positions", [Positions.ALL, Positions.LAST])
def test_batched_rows_equal_rows_generated_alone(lm, temperature, positions):
    vecs = [SteeringVector.random(s, D, [1]).relative({1: 4.0}) for s in range(2)]
    rows_v = [None, vecs[0], vecs[1], vecs[0], None]
    mults = [0.0, 1.0, -2.0, 0.5, 0.0]
    seeds = [3, 1, 4, 1, 5]
    spec = RowSteering.rows(rows_v, mults, positions=positions)
    kw = dict(max_new_tokens=10, temperature=temperature, top_p=0.9)
    batch = generate_batch(lm, PROMPTS, seeds=seeds, steering=spec, **kw)
    for b, prompt in enumerate(PROMPTS):
        one = (
            None
            if rows_v[b] is None
            else RowSteering.constant(rows_v[b], mults[b], positions=positions)
        )
        alone = generate_batch(lm, [prompt], seeds=seeds[b], steering=one, **kw)
        assert alone.token_ids[0] == batch.token_ids[b]
        assert alone.texts[0] == batch.texts[b]
    # split into loops of two rows: the same rows
    split = generate_batch(lm, PROMPTS, seeds=seeds, steering=spec, batch_size=2, **kw)
    assert split.token_ids == batch.token_ids
    # steering changed something, and the seeds matter when sampling
    plain = generate_batch(lm, PROMPTS, seeds=seeds, **kw)
    assert plain.token_ids[1:4] != batch.token_ids[1:4]
    assert plain.token_ids[0] == batch.token_ids[0]
    if temperature:
        other = generate_batch(lm, PROMPTS, seeds=[s + 100 for s in seeds], **kw)
        assert other.token_ids != plain.token_ids


def test_generation_is_reproducible_and_leaves_global_rng(lm):
    state = torch.get_rng_state()
    a = generate_batch(lm, PROMPTS, seeds=7, max_new_tokens=8)
    b = generate_batch(lm, PROMPTS, seeds=7, max_new_tokens=8)
    assert a == b and torch.equal(state, torch.get_rng_state())


def test_target_steering_runs_batched_with_a_log_per_row(lm):
    rng = np.random.default_rng(0)
    spec = TargetSteering({1: (rng.standard_normal(D), -1.0)}, 0.99)
    out = generate_batch(lm, PROMPTS[:3], seeds=[0, 1, 2], max_new_tokens=4, steering=spec)
    assert {r.row for r in spec.log} == {0, 1, 2}
    assert all(len(t) <= 4 for t in out.token_ids)


class _Boom(RowSteering):
    def __init__(self, *a, fail_at: int, **k):
        super().__init__(*a, **k)
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, layer, hidden):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        return super().__call__(layer, hidden)


def test_hooks_removed_and_model_restored_after_errors(lm):
    ids = lm.tokenizer("hello world", return_tensors="pt").input_ids
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits
    state, hooks = _state(lm.model), _hooks(lm.model)
    vec = SteeringVector.random(0, D, [0, 2]).relative({0: 9.0, 2: 9.0})
    with (
        pytest.raises(RuntimeError, match="inside"),
        RowSteering.constant(vec, 3.0).attach(lm.model),
    ):
        with torch.no_grad():
            assert not torch.equal(lm.model(input_ids=ids).logits, before)
        raise RuntimeError("inside")
    boom = _Boom({1: np.ones((1, D))}, fail_at=4)
    with pytest.raises(RuntimeError, match="boom"):
        generate_batch(lm, PROMPTS, seeds=0, max_new_tokens=8, steering=boom)
    with pytest.raises(ValueError, match="rows"):
        generate_batch(lm, PROMPTS, steering=RowSteering({1: np.ones((2, D))}))
    assert _hooks(lm.model) == hooks
    after = _state(lm.model)
    assert all(torch.equal(state[k], after[k]) for k in state)
    with torch.no_grad():
        assert torch.equal(lm.model(input_ids=ids).logits, before)


def test_residual_norms_are_the_documented_median(lm):
    texts = ["hello there", "abc", "The cat sat on the mat"]
    # hidden_states[i + 1] is block i's output, except the last entry (after the final norm)
    got = residual_norms(lm, texts, [0, 1], batch_size=2)
    for layer in (0, 1):
        norms = []
        for t in texts:
            ids = lm.tokenizer(t, return_tensors="pt").input_ids
            with torch.no_grad():
                h = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1]
            norms += h[0, 1:].double().norm(dim=-1).tolist()  # tokens t >= 1
        assert got[layer] == pytest.approx(float(np.median(norms)), rel=1e-5)


def test_relative_strength_pushes_k_median_norms(lm):
    rho = residual_norms(lm, PROMPTS, [1])
    vec = SteeringVector({1: np.arange(D, dtype=float) + 1}).relative(rho)
    assert vec.norms()[1] == pytest.approx(rho[1])
    ids = lm.tokenizer("steer me", return_tensors="pt").input_ids
    with torch.no_grad():
        ref = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
        with RowSteering.constant(vec, -0.25).attach(lm.model):
            got = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
        with RowSteering.constant(vec, 0.5, positions=Positions.LAST).attach(lm.model):
            last = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[2]
    push = (got - ref)[0].double().norm(dim=-1).numpy()
    np.testing.assert_allclose(push, 0.25 * rho[1], rtol=1e-4)
    np.testing.assert_array_equal(last[0, :-1], ref[0, :-1])
    assert float((last - ref)[0, -1].norm()) == pytest.approx(0.5 * rho[1], rel=1e-4)


def test_vector_constructors(lm):
    pairs = [("good day", "bad day"), ("I love it", "I hate it"), ("yes", "no")]
    vec = SteeringVector.from_pairs(lm, pairs, [0, 2])
    X = extract(lm, [p for p, _ in pairs] + [n for _, n in pairs], layers=[0, 2]).astype(float)
    np.testing.assert_allclose(vec.directions[2], (X[1, :3] - X[1, 3:]).mean(0), rtol=1e-6)
    rng = np.random.default_rng(0)
    Xc, y = rng.standard_normal((40, D)), np.repeat([0, 1], 20)
    mm = SteeringVector.from_classes({1: Xc}, y)
    np.testing.assert_allclose(mm.directions[1], Xc[20:].mean(0) - Xc[:20].mean(0))
    import jax
    import jax.numpy as jnp

    probe = MassMean().fit(jnp.asarray(Xc), jnp.asarray(2.0 * y - 1), jax.random.key(0))
    pv = SteeringVector.from_probes({1: probe})
    assert pv.norms()[1] == pytest.approx(1.0, abs=1e-5)
    assert pv.directions[1] @ mm.directions[1] > 0.99 * np.linalg.norm(mm.directions[1])
    with pytest.raises(ValueError, match="layer 1"):
        SteeringVector({1: np.zeros(D)}).unit()
    with pytest.raises(ValueError, match="positions"):
        RowSteering({1: np.ones(D)}, positions="last")


def _letter_logits(lm, prompt):
    ids = lm.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        return lm.model(input_ids=ids).logits[0, -1].double()


def test_ab_scorer_matches_a_hand_computed_probability(lm):
    prompts = ["Pick one: (", "Which?\n(", "Answer:\n ("]
    match, other = ["A", "B", "A"], ["B", "A", "B"]
    got = ab_probabilities(lm, prompts, match, other)
    tok = lm.tokenizer
    for p, a, b, g in zip(prompts, match, other, got, strict=True):
        z = _letter_logits(lm, p)
        za, zb = float(z[tok.convert_tokens_to_ids(a)]), float(z[tok.convert_tokens_to_ids(b)])
        assert g == pytest.approx(math.exp(za) / (math.exp(za) + math.exp(zb)), abs=1e-6)
    # steered after the prompt, by hand: add m u at the last position of block 1
    vec = SteeringVector.random(3, D, [1]).relative({1: 6.0})
    u = torch.as_tensor(vec.directions[1], dtype=torch.float32)

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h.clone()
        h[:, -1] += 1.5 * u
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = decoder_layers(lm.model)[1].register_forward_hook(hook)
    try:
        want = []
        for p, a, b in zip(prompts, match, other, strict=True):
            z = _letter_logits(lm, p)
            za, zb = z[tok.convert_tokens_to_ids(a)], z[tok.convert_tokens_to_ids(b)]
            want.append(float(torch.sigmoid(za - zb)))
    finally:
        handle.remove()
    arms = [(None, 0.0), (vec, 1.5), (vec, -1.5)]
    sweep = ab_sweep(lm, prompts, match, other, arms, batch_size=2)
    np.testing.assert_allclose(sweep[0], got, atol=1e-6)
    np.testing.assert_allclose(sweep[1], want, atol=1e-5)
    one = RowSteering.constant(vec, 1.5, positions=Positions.LAST)
    np.testing.assert_allclose(
        ab_probabilities(lm, prompts, match, other, steering=one), want, atol=1e-5
    )
    with pytest.raises(ValueError, match="one extra token"):
        ab_probabilities(lm, ["x ("], ["AB"], ["B"])


def test_continuation_nll_matches_a_plain_forward(lm):
    g = generate_batch(lm, PROMPTS[:3], seeds=[0, 1, 2], max_new_tokens=6)
    got = continuation_nll(lm, g.prompt_ids, g.token_ids, batch_size=2)
    for p, t, x in zip(g.prompt_ids, g.token_ids, got, strict=True):
        ids = torch.tensor([p + t])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), -1)
        want = -np.mean([float(logp[len(p) - 1 + j, c]) for j, c in enumerate(t)])
        assert x == pytest.approx(want, abs=1e-4)
    assert np.isnan(continuation_nll(lm, [[5, 6]], [[]])[0])


def test_text_scores():
    assert repeated_ngram_rate("a b c a b c") == pytest.approx(1 / 4)
    assert repeated_ngram_rate("one two three four") == 0.0
    assert np.isnan(repeated_ngram_rate("too short"))
    s = vader(["What a wonderful, lovely day!", "This is awful and I hate it.", "The bus."])
    assert s[0] > 0.5 and s[1] < -0.5 and s[2] == 0.0


def test_dose_response_slopes_and_anti_steerable_fraction():
    rng = np.random.default_rng(0)
    recs = []
    for u in range(40):
        slope = -1.0 if u < 10 else 1.0  # a quarter of the units are anti-steerable
        for k in (-0.2, 0.0, 0.2):
            recs.append(
                {
                    "direction": "none" if k == 0 else "d",
                    "layer": None if k == 0 else 3,
                    "strength": k,
                    "prompt": f"p{u}",
                    "seed": 0,
                    "vader": 0.1 + slope * k + 0.01 * rng.standard_normal(),
                    "perplexity": 10.0 * (1 + 4 * abs(k)),
                    "rep3": 0.0,
                }
            )
    (c,) = dose_response(recs)["curves"]
    assert c["anti_steerable"] == pytest.approx(0.25)
    assert c["slope"] == pytest.approx(0.5, abs=0.05)
    (pair,) = c["pairs"]
    assert pair["diff"] == pytest.approx(0.4 * 0.5, abs=0.02)
    assert pair["ci"][0] < pair["diff"] < pair["ci"][1]
    assert not pair["fluent"] and c["window"] == [0.0, 0.0]  # 1.8x the unsteered perplexity


def test_steer_command_on_a_tiny_model_folder(tmp_path):
    from tiny_lm import save_tiny_llama
    from typer.testing import CliRunner

    from probejax.cli import app

    save_tiny_llama(tmp_path / "model", n_layers=3, d=32)
    args = ["llm", "steer", "hello", "abc", "--layer", "1", "--model", str(tmp_path / "model")]
    result = CliRunner().invoke(
        app, [*args, "--random", "--strengths", "-0.5,0,0.5", "--max-new-tokens", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "random at layer 1" in result.output and "+0.50" in result.output
    bad = CliRunner().invoke(app, [*args, "--random", "--pairs", "refusal"])
    assert bad.exit_code == 1 and "exactly one" in bad.output


@pytest.mark.slow
def test_steer_target_quick_runs_end_to_end(tmp_path):
    import json

    import probejax.reproduce as rp

    out = rp.run_target("steer", quick=True, results_dir=tmp_path, figures_dir=tmp_path)
    res = json.loads(out.results.read_text())
    need = {"direction", "layer", "strength", "seed", "prompt", "continuation", "vader"}
    assert all(need | {"perplexity"} <= set(r) for r in res["records"])
    assert {r["direction"] for r in res["records"]} >= {"none", "random", "raptor_edit"}
    assert len(out.figures) == 2 and all(f.is_file() for f in out.figures)


def test_steer_target_compute_and_plot_on_a_tiny_model(tmp_path, monkeypatch):
    from tiny_lm import save_tiny_llama

    from probejax.reproduce import _steer

    save_tiny_llama(tmp_path / "model", n_layers=3, d=32, max_positions=512)
    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path / "cache"))
    config = {
        "model": str(tmp_path / "model"),
        "threads": 1,
        "seed": 0,
        "positions": "all",
        "edit_estimator": "raptor",
        "edit_targets": [0.9999, 0.0001],
        "edit_layers": [1],
        "probe_examples": 24,
        "cache_layers": [1, 2],
        "estimators": {"raptor": {}, "mass_mean": {}},
        "grid": [{"layers": [1, 2], "strengths": [-0.5, 0.5]}],
        "n_prompts": 3,
        "seeds": [0, 1],
        "generation": {"max_new_tokens": 3, "temperature": 0.8, "top_p": 0.95},
        "batch_size": 16,
        "ab": None,
    }
    res = _steer.compute(config, log=lambda s: None)
    recs = res["records"]
    # unsteered, then 4 directions at 2 layers x 2 strengths, then the edits
    assert len(recs) == 6 + 4 * 2 * 2 * 6 + 2 * 6
    want = {"none", "raptor", "mass_mean", "pairs", "random", "raptor_edit"}
    assert {r["direction"] for r in recs} == want
    assert all(r["strength"] == 0 and r["layer"] is None for r in recs if r["direction"] == "none")
    assert all(np.isfinite(r["vader"]) for r in recs)
    curves = res["summary"]["curves"]
    assert len(curves) == 8 and all(len(c["points"]) == 3 for c in curves)
    assert [c["k"] for c in curves[0]["pairs"]] == [0.5]
    assert {e["target_p"] for e in res["edit_summary"]} == {0.9999, 0.0001}
    figures = _steer.plot(res, tmp_path / "fig")
    assert len(figures) == 1 and figures[0].stat().st_size > 0

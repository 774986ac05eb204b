"""Sequence probes: parameter-count formulas, exact masking, exact per-token
decompositions, references (PyTorch attention, naive EP order, numpy moments, closed-form
EMA and token loss), vmapped ensemble == loop, and learning on few-token tasks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax.seq as ps
from probejax import Splits
from probejax.seq._fit import fit_family
from probejax.seq._masked import last_index

D, T = 16, 12
KEY = jax.random.key(0)

# (name, make(key), formula)
FAMILIES = [
    ("ep", lambda k: ps.EfficientProbe(D, n_queries=4, key=k), ps.EfficientProbe.param_count(D, 4)),
    (
        "ep_dout",
        lambda k: ps.EfficientProbe(D, n_queries=4, d_out=2, key=k),
        ps.EfficientProbe.param_count(D, 4, 2),
    ),
    (
        "mha",
        lambda k: ps.MultiHeadAttentionProbe(D, n_heads=4, n_queries=2, key=k),
        ps.MultiHeadAttentionProbe.param_count(D, 4, 2),
    ),
    ("pool", lambda k: ps.AttentionPoolProbe(D, key=k), ps.AttentionPoolProbe.param_count(D)),
    ("mean", lambda k: ps.MeanLinearProbe(D, key=k), ps.MeanLinearProbe.param_count(D)),
    (
        "ema",
        lambda k: ps.MeanLinearProbe(D, ema_alpha=0.5, key=k),
        ps.MeanLinearProbe.param_count(D),
    ),
    (
        "mlp_mean",
        lambda k: ps.MLPMeanProbe(D, mlp_width=8, mlp_layers=3, key=k),
        ps.MLPMeanProbe.param_count(D, 8, 3),
    ),
    (
        "attn",
        lambda k: ps.MLPAttentionProbe(D, n_heads=3, mlp_width=8, key=k),
        ps.MLPAttentionProbe.param_count(D, 3, 8),
    ),
    (
        "multimax",
        lambda k: ps.MultiMaxProbe(D, n_heads=3, mlp_width=8, mlp_layers=1, key=k),
        ps.MultiMaxProbe.param_count(D, 3, 8, 1),
    ),
    (
        "rolling",
        lambda k: ps.RollingAttentionProbe(D, n_heads=3, window=4, mlp_width=8, key=k),
        ps.RollingAttentionProbe.param_count(D, 3, 8),
    ),
    (
        "mlp_seq",
        lambda k: ps.MLPProbe(D, width=8, depth=2, pooling="last", key=k),
        ps.MLPProbe.param_count(D, 8, 2),
    ),
    ("mlp_lin", lambda k: ps.MLPProbe(D, depth=0, key=k), ps.MLPProbe.param_count(D, 8, 0)),
    (
        "mlp_tok",
        lambda k: ps.MLPProbe(D, width=8, mode="token", key=k),
        ps.MLPProbe.param_count(D, 8, 1),
    ),
    (
        "moment",
        lambda k: ps.MomentProbe(D, hidden=32, n_heads=4, key=k),
        ps.MomentProbe.param_count(D, 32, 4),
    ),
    (
        "proto",
        lambda k: ps.PrototypeProbe(D, n_prototypes=3, key=k),
        ps.PrototypeProbe.param_count(D, 3),
    ),
]
IDS = [f[0] for f in FAMILIES]


def _build(make, seed=1):
    """The family's structure with every parameter drawn N(0, 0.5^2) on the host (so zero
    inits such as queries and biases do not hide bugs, and nothing compiles)."""
    rng = np.random.default_rng(seed)
    fill = lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype)
    shaped = eqx.filter_eval_shape(make, KEY)
    return jax.tree.map(lambda a: fill(a) if isinstance(a, jax.ShapeDtypeStruct) else a, shaped)


def _sequence(seed=3, n_real=8):
    x = 2.0 * np.random.default_rng(seed).standard_normal((T, D)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(np.arange(T) < n_real)


def _try(method, *args):
    try:
        return method(*args)
    except NotImplementedError:
        return None


def _outputs(probe, x, mask):
    return dict(
        logit=probe(x, mask),
        training=probe.training_logit(x, mask),
        tokens=_try(probe.token_scores, x, mask),
        attention=_try(probe.attention, x, mask),
    )


@eqx.filter_jit
def _all_outputs(probe, x, mask):
    """Outputs on clean, NaN/Inf-padded, 1e6-padded and unpadded copies, one program."""
    garbage = jnp.where(mask[:, None], x, jnp.nan).at[-1, 0].set(jnp.inf)
    return (
        _outputs(probe, x, mask),
        _outputs(probe, garbage, mask),
        _outputs(probe, jnp.where(mask[:, None], x, 1e6), mask),
        _outputs(probe, x[:8], mask[:8]),
    )


_CACHE = {}


def _family(name):
    if name not in _CACHE:
        make = dict((f[0], f[1]) for f in FAMILIES)[name]
        probe = _build(make)
        x, mask = _sequence()
        _CACHE[name] = (probe, x, mask, jax.tree.map(np.asarray, _all_outputs(probe, x, mask)))
    return _CACHE[name]


@pytest.mark.parametrize("name,make,formula", FAMILIES, ids=IDS)
def test_param_count_matches_formula(name, make, formula):
    assert ps.num_params(eqx.filter_eval_shape(make, KEY)) == formula


def test_param_count_formulas_at_paper_sizes():
    assert ps.EfficientProbe.param_count(576) == 32 * 576 + 576**2 + 576 + 1
    assert ps.MultiHeadAttentionProbe.param_count(4096) == 4096 + 4 * 4096**2 + 5 * 4096 + 1
    assert ps.MomentProbe.param_count(768) == 513 * 768 + 3815
    # the MP classifier input is 3 x 31 x 31 = 2883, as in the authors' code
    mp = eqx.filter_eval_shape(lambda k: ps.MomentProbe(768, key=k), KEY)
    assert mp.w2.shape == (2883,) and ps.num_params(mp) == 513 * 768 + 3815
    ep = eqx.filter_eval_shape(lambda k: ps.EfficientProbe(4096, key=k), KEY)
    assert ps.num_params(ep) == 32 * 4096 + 4096**2 + 4096 + 1


@pytest.mark.parametrize("name", IDS)
def test_padding_never_changes_outputs(name):
    _, _, _, (ref, garbage, big, short) = _family(name)
    jax.tree.map(np.testing.assert_array_equal, garbage, ref)
    jax.tree.map(np.testing.assert_array_equal, big, ref)
    for k in ("logit", "training"):
        np.testing.assert_allclose(short[k], ref[k], rtol=2e-5, atol=2e-6)
    for k in ("tokens", "attention"):
        if ref[k] is None:
            continue
        assert np.all(np.isfinite(ref[k]))
        np.testing.assert_array_equal(ref[k][..., 8:], 0.0)
        np.testing.assert_allclose(ref[k][..., :8], short[k], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", IDS)
def test_token_scores_make_the_logit(name):
    probe, _, _, (ref, *_) = _family(name)
    agg = probe.aggregate
    if agg is None:
        pytest.skip("no exact per-token identity for this family")
    real, f = ref["tokens"][:8], ref["logit"]
    if agg == "ema-max":
        e, out = 0.0, []
        for c in real:
            e = 0.5 * c + 0.5 * e
            out.append(e)
        want = max(out)
    else:
        want = {"sum": real.sum(), "mean": real.mean(), "max": real.max()}[agg]
    np.testing.assert_allclose(f, want, rtol=1e-5, atol=1e-6)


@jax.jit
def _masked_ops(s, mask):
    none = jnp.zeros_like(mask)
    return dict(
        a=ps.masked_softmax(s, mask),
        g=jax.grad(lambda z: ps.masked_softmax(z, mask)[0, 0])(s),
        empty=ps.masked_softmax(s, none),
        max_empty=ps.masked_max(s[0], none),
        mean=ps.masked_mean(s, mask),
        last=last_index(mask),
    )


def test_masked_ops_zero_weight_and_reference():
    s = 5.0 * np.random.default_rng(0).standard_normal((3, T)).astype(np.float32)
    mask = np.arange(T) % 3 != 1
    mask[-1] = False
    out = _masked_ops(s, mask)
    a, g = np.asarray(out["a"]), np.asarray(out["g"])
    np.testing.assert_array_equal(a[:, ~mask], 0.0)
    e = np.exp(s[:, mask] - s[:, mask].max(1, keepdims=True))
    np.testing.assert_allclose(a[:, mask], e / e.sum(1, keepdims=True), rtol=1e-5)
    assert np.all(np.isfinite(g)) and np.all(g[:, ~mask] == 0)
    np.testing.assert_array_equal(out["empty"], 0.0)
    assert float(out["max_empty"]) == 0.0
    np.testing.assert_allclose(out["mean"], s[:, mask].mean(1), rtol=1e-5)
    assert int(out["last"]) == 9


def test_efficient_probe_cheap_order_equals_projecting_every_token():
    p, x, mask, (ref, *_) = _family("ep_dout")
    x8, q, Wv = (np.asarray(a, np.float64) for a in (x[:8], p.queries, p.value))
    logits = q @ x8.T / np.sqrt(D)
    A = np.exp(logits - logits.max(1, keepdims=True))
    A /= A.sum(1, keepdims=True)
    np.testing.assert_allclose(ref["attention"][:, :8], A, rtol=1e-5, atol=1e-7)
    V = x8 @ Wv.T  # (T, dv): project every token first, then slice, as the authors' code
    s = Wv.shape[0] // 4
    y = np.concatenate([A[j] @ V[:, j * s : (j + 1) * s] for j in range(4)])
    pooled = eqx.filter_jit(lambda p, x, m: p.pooled(x, m))(p, x, mask)
    np.testing.assert_allclose(pooled, y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref["logit"], y @ np.asarray(p.w) + float(p.b), rtol=1e-4, atol=1e-5)


def test_multihead_attention_matches_torch():
    torch = pytest.importorskip("torch")
    p, x, mask, (ref, *_) = _family("mha")
    mha = torch.nn.MultiheadAttention(D, 4, bias=True, batch_first=True).double()
    t = lambda a: torch.tensor(np.asarray(a, np.float64))
    with torch.no_grad():
        mha.in_proj_weight.copy_(t(jnp.concatenate([p.wq, p.wk, p.wv])))
        mha.in_proj_bias.copy_(t(jnp.concatenate([p.bq, p.bk, p.bv])))
        mha.out_proj.weight.copy_(t(p.wo))
        mha.out_proj.bias.copy_(t(p.bo))
        o, _ = mha(
            t(p.queries)[None],
            t(x)[None],
            t(x)[None],
            key_padding_mask=torch.tensor(~np.asarray(mask))[None],
        )
    want = o[0].mean(0).numpy() @ np.asarray(p.w, np.float64) + float(p.b)
    np.testing.assert_allclose(ref["logit"], want, rtol=1e-4, atol=1e-5)


def test_moment_cross_covariances_match_numpy():
    p, x, mask, _ = _family("moment")
    z = np.asarray(x[:8] @ p.proj.T + p.proj_b, np.float64).reshape(8, 4, 8)
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
    z = z * np.asarray(p.ln_w) + np.asarray(p.ln_b)
    z = z - z.mean(0)
    C = np.stack([z[:, i].T @ z[:, i + 1] / 8 for i in range(3)])
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    np.testing.assert_allclose(p.cross_covariances(x, mask), C, rtol=1e-4, atol=1e-5)


def test_rolling_attention_matches_explicit_windows():
    p, x, mask, (ref, *_) = _family("rolling")
    y = np.asarray(x[:8], np.float64)
    for W, c in zip(p.mlp.weights, p.mlp.biases, strict=True):
        y = np.maximum(y @ np.asarray(W, np.float64).T + np.asarray(c), 0.0)
    s, v = y @ np.asarray(p.q, np.float64).T, y @ np.asarray(p.v, np.float64).T
    r = []
    for t in range(8):  # window 4: tokens t-3..t
        lo = max(0, t - 3)
        a = np.exp(s[lo : t + 1] - s[lo : t + 1].max(0))
        r.append(np.sum((a / a.sum(0)) * v[lo : t + 1]) + float(p.b))
    np.testing.assert_allclose(ref["logit"], max(r), rtol=1e-5)
    np.testing.assert_allclose(ref["tokens"][:8], r, rtol=1e-5, atol=1e-6)


def test_token_loss_closed_form():
    z = jnp.array([[0.5, -1.0, 2.0, 0.0], [1.5, 0.3, -0.2, 0.0]])
    mask = jnp.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    labels = jnp.array([[1, 0, -100, 1], [0, 1, 1, -100]])
    spans = jnp.array([[0, 0, 1, -1], [-1, 0, 0, 1]])

    class Fixed(ps.SeqProbe):
        z: jax.Array

        def __call__(self, x, m):
            return jnp.max(self.z)

        def token_scores(self, x, m):
            return self.z[x[0, 0].astype(int)]

    X = jnp.zeros((2, 4, 1)).at[1].set(1.0)
    data = ps.SeqData(X, mask, jnp.array([1.0, 0.0]), labels, spans)
    loss = eqx.filter_jit(ps.TokenLoss(span_weight=0.5, pos_weight=2.0, n_spans=2))(
        Fixed(z), data, True
    )
    sp = lambda u: np.log1p(np.exp(u))
    tok = [(1, 2.0, 0.5), (0, 1.0, -1.0), (0, 1.0, 1.5), (1, 2.0, 0.3), (1, 2.0, -0.2)]
    token = sum(w * sp(-(2 * y - 1) * v) for y, w, v in tok) / sum(w for _, w, _ in tok)
    # spans: seq0 {0,1} -> max 0.5, label 1; seq0 {2} -> 2.0, no labelled token -> 0;
    # seq1 {1,2} -> 0.3, label 1; seq1 {3} -> 0.0, label 0 (its token is ignored)
    span = np.mean([sp(-0.5), sp(2.0), sp(-0.3), sp(0.0)])
    np.testing.assert_allclose(loss, token + 0.5 * span, rtol=1e-5)


def _few_token_data(seed, n=160, d=D, k=2, s=5.0):
    """Positives hold k tokens at +s u and k at -s u (no mean shift); T = 16, variable lengths."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 16, d)).astype(np.float32)
    lengths = rng.integers(8, 17, n)
    mask = np.arange(16)[None] < lengths[:, None]
    for i in np.flatnonzero(y):
        pos = rng.choice(lengths[i], 2 * k, replace=False)
        X[i, pos[:k], 0] += s
        X[i, pos[k:], 0] -= s
    return X, mask, y


def _split_data(X, mask, y):
    data = ps.SeqData(jnp.asarray(X), jnp.asarray(mask), jnp.asarray(y, jnp.float32))
    return data.take(np.arange(0, 100)), data.take(np.arange(100, len(y)))


def test_ensemble_equals_loop_of_single_trainings():
    X, mask, y = _few_token_data(0)
    train, val = _split_data(X, mask, y)
    cfg = ps.TrainConfig(max_steps=24, eval_every=4, patience=2, batch_size=32)
    make = lambda k: ps.AttentionPoolProbe(D, key=k)
    init = jax.random.split(jax.random.key(1), 3)
    keys = jax.random.split(jax.random.key(2), 3)
    hypers = ps.Hyper(jnp.array([1e-2, 3e-2, 1e-1]), jnp.array([0.0, 0.01, 0.1]))
    ens = eqx.filter_jit(ps.train_ensemble)(
        eqx.filter_vmap(make)(init), hypers, train, val, keys, cfg
    )
    one = eqx.filter_jit(ps.train_probe)
    for c in range(3):
        r = one(make(init[c]), jax.tree.map(lambda a, c=c: a[c], hypers), train, val, keys[c], cfg)
        assert int(r.steps) == int(ens.steps[c]) and int(r.best_step) == int(ens.best_step[c])
        np.testing.assert_allclose(r.val_history, ens.val_history[c], rtol=1e-4, equal_nan=True)
        for a, b in zip(
            jax.tree.leaves(eqx.filter(r.probe, eqx.is_array)),
            jax.tree.leaves(eqx.filter(ens.probe, eqx.is_array)),
            strict=True,
        ):
            np.testing.assert_allclose(a, b[c], rtol=1e-4, atol=1e-5)
    # early stopping returns the best validation loss seen
    np.testing.assert_allclose(ens.best_val_loss, np.nanmin(np.asarray(ens.val_history), axis=1))


def test_few_token_signal_attention_learns_mean_linear_cannot():
    X, mask, y = _few_token_data(1, n=200)
    cfg = ps.TrainConfig(max_steps=150, eval_every=10, patience=4)
    idx = np.random.default_rng(0).permutation(200)  # explicit splits: 120 / 40 / 40
    splits = Splits(*(jnp.asarray(idx[a:b]) for a, b in ((0, 120), (120, 160), (160, 200))))
    kw = dict(grid=ps.SeqGrid(learning_rates=(1e-2,), seeds=2), config=cfg, splits=splits)
    mean = fit_family(lambda k: ps.MeanLinearProbe(D, key=k), X, mask, y, KEY, **kw)
    mm = fit_family(
        lambda k: ps.MultiMaxProbe(D, n_heads=2, mlp_width=8, mlp_layers=1, key=k),
        X,
        mask,
        y,
        KEY,
        **kw,
    )
    assert float(mean.accuracy) < 0.7 and float(mm.accuracy) > 0.9
    assert mm.test_accuracy.shape == (2,) and np.isfinite(float(mm.score_stability))
    # the fitted probe takes raw activations; padding is ignored; concept vector is unit
    fitted = mean.probe
    np.testing.assert_allclose(np.linalg.norm(fitted.concept_vector()), 1.0, rtol=1e-5)
    Xg = np.where(mask[..., None], X, 123.0)
    np.testing.assert_array_equal(
        mm.probe.decision_function(Xg, mask), mm.probe.decision_function(X, mask)
    )
    with pytest.raises(NotImplementedError, match="concept vector"):
        mm.probe.concept_vector()


def test_token_mlp_learns_token_labels():
    X, mask, y = _few_token_data(2)
    labels = np.where(mask, (np.abs(X[..., 0]) > 3.5).astype(int), -100)
    cfg = ps.TrainConfig(max_steps=100, eval_every=10, patience=5, loss=ps.TokenLoss())
    r = fit_family(
        lambda k: ps.MLPProbe(D, width=16, mode="token", key=k),
        X,
        mask,
        y,
        KEY,
        grid=ps.SeqGrid(learning_rates=(3e-2,), seeds=1),
        config=cfg,
        token_labels=labels,
    )
    assert float(r.accuracy) > 0.9
    z = r.probe.token_scores(X[:20], mask[:20])
    lab = labels[:20]
    assert np.mean((np.asarray(z)[lab >= 0] > 0) == (lab[lab >= 0] == 1)) > 0.95


def test_fit_errors_name_the_problem():
    X, mask, y = _few_token_data(3, n=40)
    mask[5] = False
    with pytest.raises(ValueError, match="row 5"):
        fit_family(lambda k: ps.MeanLinearProbe(D, key=k), X, mask, y, KEY)
    with pytest.raises(ValueError, match="mask has shape"):
        fit_family(lambda k: ps.MeanLinearProbe(D, key=k), X, mask[:, :3], y, KEY)
    with pytest.raises(ValueError, match="divisible"):
        ps.EfficientProbe(10, n_queries=4, key=KEY)
    with pytest.raises(ValueError, match="schedule"):
        ps.TrainConfig(schedule="linear")


def test_plot_token_scores(tmp_path):
    _, _, _, (ref, *_) = _family("attn")
    fig = ps.plot_token_scores(
        [f"t{i}" for i in range(8)], ref["tokens"], ref["attention"], title="demo"
    )
    fig.savefig(tmp_path / "tokens.png")
    assert (tmp_path / "tokens.png").stat().st_size > 0
    with pytest.raises(ValueError, match="attention"):
        ps.plot_token_scores(["a", "b"], [1.0, 2.0], np.ones(3))


@pytest.mark.slow  # about 20 s: imports torch and compiles the RAPTOR protocol
def test_llm_table_smoke_on_a_tiny_model():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_lm import tiny_llama

    from probejax.llm import LoadedModel, TextDataset
    from probejax.llm._sweep import ExtractionSpec
    from probejax.seq._llm_table import format_table, seq_probe_table

    model, tok = tiny_llama(2, 32, seed=0, max_positions=64)
    loaded = LoadedModel(model.requires_grad_(False), tok, "tiny", "r0", 2, 32, 64)
    rng = np.random.default_rng(0)
    texts = [("good " if i % 2 else "bad ") + "x" * int(rng.integers(1, 12)) for i in range(40)]
    data = TextDataset("toy", tuple(texts), np.arange(40) % 2)
    rows = seq_probe_table(
        loaded,
        [data],
        extraction=ExtractionSpec(layers=(1,), max_length=64, truncate=True),
        families=("mean-linear", "MultiMax (H=10)"),
        grid=ps.SeqGrid(learning_rates=(1e-2,), seeds=1),
        config=ps.TrainConfig(max_steps=20, eval_every=10, patience=2),
        log=None,
    )
    assert [r["probe"] for r in rows] == [
        "RAPTOR (ridge logistic, tuned) on the last token",  # the registry's label
        "mean-linear",
        "MultiMax (H=10)",
    ]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    assert "| MultiMax (H=10) |" in format_table(rows)


def test_seq_table_refuses_a_token_selection():
    pytest.importorskip("torch")
    from probejax.llm import Chat, ExtractionSpec, LastTokens
    from probejax.seq._llm_table import seq_probe_table

    for spec in (
        ExtractionSpec(layers=(1,), tokens=LastTokens(2)),
        ExtractionSpec(layers=(1,), chat=Chat()),
    ):
        with pytest.raises(ValueError, match="read every token"):
            seq_probe_table(None, ["cities"], extraction=spec, log=None)

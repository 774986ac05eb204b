"""Sequence probes: a few-token synthetic benchmark, and Efficient Probing vs multi-head
attention (speed and parameters) at d = 576 and 4096, measured side by side in one run.

Command:  python benchmarks/seq_probes.py --part speed    (about 3 minutes on 2 shared CPU cores)
          python benchmarks/seq_probes.py --part signal   (about 15 minutes on 2 shared CPU cores)
          python benchmarks/seq_probes.py --quick         (smoke run of both parts, about a minute)

Part 1 (``--part signal``). n = 600 sequences of T_i ~ U{64..128} tokens, d = 64,
standard normal tokens. In a positive sequence k = 3 random tokens get +s u and 3 others
-s u (u a random unit vector, s = 5): the class shifts no mean, so the mean-pooled
linear probe has nothing to read, while a probe that can look at single tokens
(attention, MultiMax, per-token max) can. Every family is a `probejax.seq.SeqEstimator`
(`probejax.seq.default_families`) fitted by `probejax.evaluate` on
`probejax.core.Tokens(X, mask)` (RAPTOR split 64/16/20, a `SeqGrid` of 4 learning
rates x 2 seeds trained as one vmapped program, early stopping, selection by
validation loss); test accuracy and AUROC are printed. Measured (jax 0.10.2, CPU,
seed 0; 120 test sequences) when the fit drew its split and initialisations from the
key as `fit_seq_probe` did (evaluate derives them differently, so a rerun differs in
the draws, not in the picture): mean-linear 0.558 / AUROC 0.510, mean-linear EMA-max 0.533 / 0.491, MLP on
the last token 0.550 / 0.497 (chance); attention pool 0.983 / 0.998, EP 1.000 / 1.000,
multi-head attention 1.000 / 1.000, MLP attention 0.983 / 1.000, MultiMax 1.000 / 1.000,
rolling attention 0.983 / 0.999, per-token MLP (max) 0.992 / 0.999, MLP-mean 0.992 /
0.999 (its MLP turns the +-s tokens into a mean shift, |u.x|), moment 0.950 / 0.992,
prototype 0.942 / 0.994.

Part 2 (``--part speed``). Batches of B = 16 sequences of T = 128 tokens. For each d:
Efficient Probing (M = 32 queries, one value projection, A X first), the same probe
computed in the naive order (every token projected first), and the standard multi-head
cross-attention probe (8 heads, W_Q, W_K, W_V, W_O, 1 query). Timed: a jit-compiled
forward pass over the batch and a jit-compiled AdamW training step, the median of
--repeats calls after one warm-up call; ratios are printed against EP. Measured (CPU,
2 shared cores), MHA / EP: d = 576: 3.8x the parameters, 6.0x the forward time, 5.5x
the training step; d = 4096: 4.0x, 10.2x, 11.2x. The naive EP order costs 3.3-5.5x the
A-X-first order.
"""

from __future__ import annotations

import argparse
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import probejax
import probejax.seq as ps
from probejax.core import Tokens


def few_token_data(seed: int, n: int, d: int, t_min: int, t_max: int, k: int, s: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((n, t_max, d)).astype(np.float32)
    lengths = rng.integers(t_min, t_max + 1, n)
    mask = np.arange(t_max)[None] < lengths[:, None]
    for i in np.flatnonzero(y):
        pos = rng.choice(lengths[i], 2 * k, replace=False)
        X[i, pos[:k]] += s * u
        X[i, pos[k:]] -= s * u
    X[~mask] = 0.0
    return X, mask, y


def part_signal(quick: bool):
    n, d = (200, 32) if quick else (600, 64)
    X, mask, y = few_token_data(0, n, d, 32 if quick else 64, 64 if quick else 128, 3, 5.0)
    print(
        f"\n== few-token signal: n={n}, d={d}, T in [{mask.sum(1).min()}, {mask.shape[1]}], "
        "3 tokens at +5u and 3 at -5u in positives =="
    )
    cfg = ps.TrainConfig(
        max_steps=60 if quick else 400, eval_every=10, patience=5 if quick else 8, batch_size=64
    )
    grid = ps.SeqGrid(learning_rates=(3e-3, 1e-2) if quick else (1e-3, 3e-3, 1e-2, 3e-2), seeds=2)
    families = ps.default_families(d, grid, cfg)
    if quick:
        families = {
            k: families[k] for k in ("mean-linear", "MultiMax (H=10)", "MLP attention (H=10)")
        }
    tokens = Tokens(X, mask)
    rows = []
    for name, est in families.items():
        t0 = time.perf_counter()
        ev = probejax.evaluate(est, tokens, y, jax.random.key(0))
        dt = time.perf_counter() - t0
        info, i = ev.info, int(ev.info["index"])
        n_params = ps.num_params(ev.probe.probe.fitted.probe)  # Diagnosed -> SeqTokensProbe
        rows.append((name, float(ev.test_accuracy), float(ev.test_auroc), n_params, dt))
        print(
            f"{name:<34} test acc {rows[-1][1]:.3f}  AUROC {rows[-1][2]:.3f}  "
            f"params {rows[-1][3]:>8,d}  lr {float(info['learning_rate']):.0e}  "
            f"steps {int(info['steps'][i])}  ({dt:.1f}s)",
            flush=True,
        )
    return rows


class NaiveEfficientProbe(eqx.Module):
    """EP computed as the authors' code does: project every token, then attend."""

    p: ps.EfficientProbe

    def __call__(self, x, mask):
        A = self.p.attention(x, mask)
        V = (x @ self.p.value.T).reshape(x.shape[0], self.p.n_queries, -1)  # (T, M, s)
        y = jnp.einsum("mt,tms->ms", A, V).reshape(-1)
        return y @ self.p.w + self.p.b


def _median_time(f, *args, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), first


def part_speed(ds, B: int, T: int, repeats: int):
    opt = optax.adamw(1e-3)
    print(
        f"\n== EP vs multi-head attention: batch B={B}, T={T} tokens, median of {repeats} "
        f"calls after a warm-up (compile time in brackets) =="
    )
    for d in ds:
        key = jax.random.key(d)
        X = jax.random.normal(key, (B, T, d))
        mask = jnp.arange(T)[None] < jnp.asarray(np.linspace(T // 2, T, B).astype(int))[:, None]
        y = (jnp.arange(B) % 2).astype(jnp.float32)
        ep = ps.EfficientProbe(d, n_queries=32, key=key)
        models = {
            "EP (M=32, AX first)": ep,
            "EP (M=32, naive order)": NaiveEfficientProbe(ep),
            "MHA (8 heads, 1 query)": ps.MultiHeadAttentionProbe(d, n_heads=8, key=key),
        }

        @eqx.filter_jit
        def forward(m, X, mask):
            return jax.vmap(m)(X, mask)

        @eqx.filter_jit
        def step(m, s, X, mask, y):
            loss = lambda m: jnp.mean(jax.nn.softplus(-(2 * y - 1) * jax.vmap(m)(X, mask)))
            g = eqx.filter_grad(loss)(m)
            u, s = opt.update(g, s, eqx.filter(m, eqx.is_array))
            return eqx.apply_updates(m, u), s

        res = {}
        for name, m in models.items():
            s = opt.init(eqx.filter(m, eqx.is_array))
            tf, cf = _median_time(forward, m, X, mask, repeats=repeats)
            ts, cs = _median_time(step, m, s, X, mask, y, repeats=repeats)
            res[name] = (ps.num_params(m), tf, ts, cf, cs)
        base = res["EP (M=32, AX first)"]
        print(f"-- d = {d}")
        print(
            f"{'probe':<26}{'params':>13}{'x EP':>8}{'forward ms':>14}{'x EP':>8}"
            f"{'train step ms':>16}{'x EP':>8}"
        )
        for name, (n, tf, ts, cf, cs) in res.items():
            print(
                f"{name:<26}{n:>13,d}{n / base[0]:>8.1f}{1e3 * tf:>9.1f} [{cf:4.1f}s]"
                f"{tf / base[1]:>7.1f}{1e3 * ts:>11.1f} [{cs:4.1f}s]{ts / base[2]:>7.1f}",
                flush=True,
            )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("signal", "speed", "both"), default="both")
    p.add_argument("--d", type=int, nargs="+", default=[576, 4096])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    if a.part in ("signal", "both"):
        part_signal(a.quick)
    if a.part in ("speed", "both"):
        ds = [64, 576] if a.quick else a.d
        part_speed(
            ds, 4 if a.quick else a.batch, 32 if a.quick else a.tokens, 1 if a.quick else a.repeats
        )


if __name__ == "__main__":
    main()

"""Batched against unbatched steered generation on SmolLM2-135M, in the same run.

Command:  python benchmarks/steer_generation.py            (32 rows, 16 new tokens)
          python benchmarks/steer_generation.py --rows 8 --tokens 8   (smoke test)
Expected runtime: about 2 minutes on 2 CPU cores with one torch thread.

Rows are the first neutral prompts (probejax.llm.NEUTRAL_PROMPTS) at signed strengths
k in {-0.25, 0, 0.25} x the median residual norm along a random direction at block 15,
sampled at temperature 0.8 with a seed per row. "Unbatched" calls
`probejax.llm.generate_batch` once per row (the same seeded sampler, one row at a
time); "batched" calls it once for all rows with a per-row `RowSteering`. Reported:
seconds, generated tokens per second for each, their ratio, and whether every row's
tokens agree between the two (they should: a row's draws depend only on its seed).
Timing starts after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from probejax.llm import (
        NEUTRAL_PROMPTS,
        RowSteering,
        SteeringVector,
        generate_batch,
        load_model,
        residual_norms,
    )

    lm = load_model("default", threads=args.threads)
    rho = residual_norms(lm, NEUTRAL_PROMPTS, [args.layer])
    vec = SteeringVector.random(0, lm.d_model, [args.layer]).relative(rho)
    ks = [(-0.25, 0.0, 0.25)[i % 3] for i in range(args.rows)]
    prompts = [NEUTRAL_PROMPTS[i % len(NEUTRAL_PROMPTS)] for i in range(args.rows)]
    seeds = list(range(args.rows))
    kw = dict(max_new_tokens=args.tokens, temperature=0.8, top_p=0.95)
    generate_batch(lm, prompts[:2], seeds=seeds[:2], **kw)  # warm-up

    t0 = time.perf_counter()
    single = [
        generate_batch(lm, [p], seeds=s, steering=RowSteering.constant(vec, k), **kw).token_ids[0]
        for p, k, s in zip(prompts, ks, seeds, strict=True)
    ]
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = generate_batch(
        lm, prompts, seeds=seeds, steering=RowSteering.rows([vec] * args.rows, ks), **kw
    ).token_ids
    t_batch = time.perf_counter() - t0
    n_tok = sum(len(t) for t in batch)
    out = {
        "rows": args.rows,
        "max_new_tokens": args.tokens,
        "threads": args.threads,
        "unbatched_s": round(t_single, 2),
        "batched_s": round(t_batch, 2),
        "unbatched_tokens_per_s": round(sum(len(t) for t in single) / t_single, 1),
        "batched_tokens_per_s": round(n_tok / t_batch, 1),
        "speedup": round(t_single / t_batch, 2),
        "rows_equal": sum(a == b for a, b in zip(single, batch, strict=True)),
    }
    print(json.dumps(out, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

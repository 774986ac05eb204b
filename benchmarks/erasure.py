"""INLP against LEACE: held-out logistic accuracy left, rank removed, fit seconds.

Command: ``.venv/bin/python benchmarks/erasure.py [--out benchmarks/erasure.json]``
(synthetic planted problem: n = 4000 Gaussian examples, d = 64, a strong class
shift; half train, half test). Expected: LEACE at chance with rank 1; INLP needs
several directions. Writes JSON with the command and machine.
"""

import argparse
import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.linear_model import LogisticRegression

from probejax.erasure import fit_leace
from probejax.estimators import inlp_directions
from probejax.estimators._kdirection import default_base, project_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/erasure.json")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--d", type=int, default=64)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    z = rng.integers(0, 2, n)
    A = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    X = (rng.standard_normal((n, d)) @ A + 2.0 * rng.standard_normal(d) * z[:, None]).astype(
        np.float32
    )
    tr, te = slice(0, n // 2), slice(n // 2, None)

    def left(Xe):
        return float(LogisticRegression(max_iter=1000).fit(Xe[tr], z[tr]).score(Xe[te], z[te]))

    rows = [{"method": "none", "rank": 0, "accuracy": left(X), "seconds": 0.0}]
    t = time.perf_counter()
    e = fit_leace(jnp.asarray(X[tr]), z[tr])
    jax.block_until_ready(e.U)
    s = time.perf_counter() - t
    rows.append(
        {
            "method": "LEACE",
            "rank": int(e.rank),
            "accuracy": left(np.asarray(e(jnp.asarray(X)))),
            "seconds": s,
        }
    )
    for k in (1, 4, 16):
        t = time.perf_counter()
        W = inlp_directions(
            default_base(), jnp.asarray(X[tr]), jnp.asarray(2.0 * z[tr] - 1), k, jax.random.key(0)
        )
        jax.block_until_ready(W)
        s = time.perf_counter() - t
        acc = left(np.asarray(project_out(jnp.asarray(X), W)))
        rows.append({"method": "INLP", "rank": k, "accuracy": acc, "seconds": s})
    print(f"{'method':8s} {'rank':>4s} {'acc left':>8s} {'seconds':>8s}")
    for r in rows:
        print(f"{r['method']:8s} {r['rank']:4d} {r['accuracy']:8.3f} {r['seconds']:8.2f}")
    out = {
        "command": " ".join(sys.argv),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "n": n,
        "d": d,
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

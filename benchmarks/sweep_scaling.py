"""Sweep scaling: wall time of the ridge-logistic lambda sweep run through the sweep
runner (`probejax.protocol.path_sweep`), against the number of lambdas, n, d and layers.

Command:  python benchmarks/sweep_scaling.py            (base n=500, d=256, 100 lambdas, 4 layers)
          python benchmarks/sweep_scaling.py --quick    (smoke test of this entry point)
          python benchmarks/sweep_scaling.py --n 1000 2000 4000 --d 256 1024 4096 \\
              --base-n 2000 --base-d 1024 --layers 1 4 16 32     (bigger, for a larger machine)
Expected runtime: about 6 minutes on 2 CPU cores (each run compiles once, 5-10 s here).

Each row varies one of (lambdas, n, d, layers) around the base point and runs one
sweep into a fresh results store with the default memory budget (every layer in one
chunk at these sizes). Timed: `seconds_compute` of the sweep (transfers, the compiled
chunks and the atomic chunk writes; compilation reported apart). The solver is L-BFGS
on the eigen-reduced design (one eigendecomposition per layer, shared by every lambda;
then per iteration two products with the n x min(n, d) factor for all lambdas at once).
Expected shape: time nearly flat in the number of lambdas while the per-layer
decomposition and the products with the factor dominate (the products become matrix-
matrix: more lambdas ride along), then linear once the per-lambda work dominates;
linear in layers; in n and d through the Gram/eigendecomposition and the factor size.
The lambdas of a layer share one vmapped while loop, which runs until its slowest lane
converges, so the layer's largest iteration count (column "max it") drives the time;
on CPU the layers of a chunk run one after another (`cell_batching="map"`). The
"direct" row times the same fits by a Python loop over layers of
`probejax.solvers.ridge_logistic_path` (already compiled): the runner's overhead.

Data: synthetic Gaussian activations per layer, classes shifted by +-1.5 along a random
unit direction; lambdas logspace(-2, 4). float32. Wall times are the minimum over
--repeats rounds (3) through all rows, each run compiling afresh. On a CPU shared with
other jobs, XLA's thread-pool hand-offs in the many small ops of the while loops make
single runs up to 10x slower (measured here: the same compiled path 0.14 s or 3.4 s,
CPU time following wall time): trust the minima, or an idle machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probejax.protocol import path_sweep
from probejax.solvers import LBFGS, ridge_logistic_path
from probejax.sweep import Execution


def make_layers(seed: int, layers: int, n: int, d: int, signal: float = 1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((layers, n, d), dtype=np.float32)
    u = rng.standard_normal((layers, d)).astype(np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    X += (signal * (2 * y - 1)).astype(np.float32)[None, :, None] * u[:, None, :]
    return X, y


def lam_grid(k: int) -> np.ndarray:
    return np.logspace(-2, 4, k) if k > 1 else np.array([1.0])


def sweep_once(X, y, lams, root: Path) -> dict:
    res = path_sweep(X, y, root, lams=lams, solver=LBFGS(), execution=Execution(progress=False))
    shutil.rmtree(root)
    v = res.values
    return {
        "compute": res.seconds_compute,
        "compile": res.seconds_compile,
        "cells_per_device": res.plan.cells_per_device,
        "mean_it": float(v.n_iter.mean()),
        "max_it": int(v.n_iter.max()),
        "converged": float(v.converged.mean()),
    }


def direct_loop(X, y, lams) -> float:
    """Seconds of a Python loop over layers of the compiled `ridge_logistic_path`."""
    lams = jnp.asarray(lams, jnp.float32)
    Xs = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    run = lambda: [ridge_logistic_path(Xs[i], y, lams, solver=LBFGS()) for i in range(len(X))]
    jax.block_until_ready(run())
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-n", type=int, default=500)
    ap.add_argument("--base-d", type=int, default=256)
    ap.add_argument("--base-lams", type=int, default=100)
    ap.add_argument("--base-layers", type=int, default=4)
    ap.add_argument("--lams", type=int, nargs="+", default=[1, 10, 100, 300])
    ap.add_argument("--n", type=int, nargs="+", default=[250, 1000, 2000])
    ap.add_argument("--d", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: smoke test")
    args = ap.parse_args()
    if args.quick:
        args.base_n, args.base_d, args.base_lams, args.base_layers = 200, 32, 10, 2
        args.lams, args.n, args.d, args.layers = [1, 30], [400], [8], [4]
    base = dict(n=args.base_n, d=args.base_d, lams=args.base_lams, layers=args.base_layers)
    rows = [("base", base)]
    for key, values in (("lams", args.lams), ("n", args.n), ("d", args.d), ("layers", args.layers)):
        rows += [(key, base | {key: v}) for v in values if v != base[key]]

    dev = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {len(jax.devices())} "
        f"device(s); float32; L-BFGS path; min of {args.repeats} run(s)"
    )
    print(
        "| varied | layers | n | d | lambdas | compute s | per layer-lambda ms | compile s "
        "| cells/device | mean it | max it | converged |"
    )
    print("|" + "---|" * 12)
    root = Path(tempfile.mkdtemp(prefix="sweep_scaling_"))
    data = {i: make_layers(args.seed, p["layers"], p["n"], p["d"]) for i, (_, p) in enumerate(rows)}
    best: dict = {}
    try:
        # repeats in rounds over all rows, so that a burst of load on a shared machine
        # does not spoil every run of one row
        for rnd in range(args.repeats):
            for i, (key, p) in enumerate(rows):
                X, y = data[i]
                r = sweep_once(X, y, lam_grid(p["lams"]), root / f"row{i}")
                if i not in best or r["compute"] < best[i]["compute"]:
                    best[i] = r
                if key == "base":
                    t = direct_loop(X, y, lam_grid(p["lams"]))
                    best["direct"] = min(best.get("direct", np.inf), t)
            print(f"round {rnd + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for i, (key, p) in enumerate(rows):
        r = best[i]
        per = 1e3 * r["compute"] / (p["layers"] * p["lams"])
        print(
            f"| {key} | {p['layers']} | {p['n']} | {p['d']} | {p['lams']} | "
            f"{r['compute']:.3f} | {per:.2f} | {r['compile']:.1f} | {r['cells_per_device']} | "
            f"{r['mean_it']:.1f} | {r['max_it']} | {r['converged']:.2f} |"
        )
        if key == "base":
            t = best["direct"]
            print(
                f"| direct loop over layers (no runner) | {p['layers']} | {p['n']} | "
                f"{p['d']} | {p['lams']} | {t:.3f} | "
                f"{1e3 * t / (p['layers'] * p['lams']):.2f} | - | - | - | - | - |"
            )


if __name__ == "__main__":
    main()

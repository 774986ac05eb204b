"""The persistent cache of compiled programs: a layer sweep with it off, with an empty
cache folder, and again with the folder the previous run filled, side by side.

Command:  python benchmarks/compile_cache.py                     (6 layers, n = 1000, d = 256)
          python benchmarks/compile_cache.py --layers 2 --n 200 --d 32 --methods raptor,lda
          python benchmarks/compile_cache.py --min-compile-seconds 0     (keep every program)
Expected runtime: about 1.2 minutes on 2 CPU cores.
Expected result: the warm run compiles a small fraction of what the cold one does and
takes that much less time; its results are identical to the cold run's; the cold run
costs little more than the run with the cache off (writing entries is cheap).
Measured 2026-11-26 on 2 CPU cores, nothing else running (defaults): off 29.6 s (19.8 s
compiling), cold 30.8 s (20.8 s), warm 12.3 s (2.5 s, 13 programs loaded), warm / cold
0.40, accuracies identical. (Writing every program, ``--min-compile-seconds 0``: off
28.9 s, cold 29.3 s, warm 10.2 s with 70 programs loaded; see :func:`probejax.enable_compile_cache` for why the
default leaves the fastest compilations out.)

Each run is a fresh Python process (JAX keeps compiled programs in memory for the
life of a process), running :func:`probejax.compare` on synthetic layers (two
Gaussian classes whose mean difference grows with depth, the seed fixed) with the
methods of ``--methods`` (default: the sweep's six) and stability on two layers, as
``probejax llm sweep`` does on language-model activations. Reported per run: wall
seconds of the ``compare`` call, seconds XLA spent compiling (JAX's
``backend_compile_duration`` events), programs loaded from the cache, and whether
every method's test accuracy equals the cold run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import jax, numpy as np
from jax import monitoring

compile_s, hits = [0.0], [0]
monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: compile_s.__setitem__(0, compile_s[0] + secs)
    if name == "/jax/core/compile/backend_compile_duration" else None
)
monitoring.register_event_listener(
    lambda name, **kw: hits.__setitem__(0, hits[0] + 1)
    if name == "/jax/compilation_cache/cache_hits" else None
)
import probejax
from probejax.estimators import resolve_methods

folder, layers, n, d, methods = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
if folder != "off":
    probejax.enable_compile_cache(folder, min_compile_seconds=float(sys.argv[6]))
rng = np.random.default_rng(0)
y = rng.integers(0, 2, n)
u = rng.standard_normal(d) / np.sqrt(d)
X = np.stack([
    rng.standard_normal((n, d)) + (0.5 + l) * np.outer(2 * y - 1, u) * 3 for l in range(layers)
]).astype(np.float32)
estimators, _, stable = resolve_methods(methods)
t0 = time.perf_counter()
spec = probejax.StabilitySpec(estimators=stable, layers=[0, layers - 1])
quiet = probejax.sweep.Execution(cells_per_device=4, progress=False)
out = probejax.compare(estimators, X, y, jax.random.key(0), stability=spec, execution=quiet)
seconds = time.perf_counter() - t0
acc = {m: np.asarray(r["test_accuracy"]).tolist() for m, r in out.estimators.items()}
print(json.dumps({"seconds": seconds, "compile_seconds": compile_s[0], "cache_hits": hits[0],
                  "accuracy": acc}))
"""


def run(folder: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["PROBEJAX_COMPILE_CACHE"] = "off"  # only the child's explicit call enables it
    out = subprocess.run(
        [sys.executable, "-c", CHILD, folder, str(args.layers), str(args.n), str(args.d),
         args.methods, str(args.min_compile_seconds)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the {folder!r} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--methods", default="raptor,mass_mean,lda,pca,ridge_ls,gcs")
    p.add_argument(
        "--min-compile-seconds", type=float, default=0.2,
        help="programs compiling faster are not kept (enable_compile_cache's default)",
    )  # fmt: skip
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args()
    if args.layers < 2:
        p.error("--layers must be >= 2 (stability runs on the first and the last)")
    with tempfile.TemporaryDirectory(prefix="probejax-xla-bench-") as folder:
        rows = {"off": run("off", args), "cold": run(folder, args), "warm": run(folder, args)}
    same = {k: r["accuracy"] == rows["cold"]["accuracy"] for k, r in rows.items()}
    print(
        f"compare: {args.layers} layers, n = {args.n}, d = {args.d}, methods {args.methods}, "
        f"stability on 2 layers; programs kept from {args.min_compile_seconds} s of compiling"
    )
    print("| cache | seconds | compiling s | programs loaded | accuracies = cold run's |")
    print("|---|---|---|---|---|")
    for k, r in rows.items():
        print(
            f"| {k} | {r['seconds']:.1f} | {r['compile_seconds']:.1f} | {r['cache_hits']} "
            f"| {'yes' if same[k] else 'NO'} |"
        )
    print(f"warm / cold: {rows['warm']['seconds'] / rows['cold']['seconds']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    if not same["warm"]:
        raise SystemExit("the warm run's accuracies differ from the cold run's")


if __name__ == "__main__":
    main()

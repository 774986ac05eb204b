"""RAPTOR on real activations: probejax against the authors' scikit-learn loop, every
layer of cached SmolLM2 activations, the same splits, in the same run.

Command:  python benchmarks/raptor_real.py                      (both datasets, every layer)
          python benchmarks/raptor_real.py --datasets cities --layers 0,15,29   (quick)
          python benchmarks/raptor_real.py --loop-threads 2   (the loop's BLAS at 2 threads)
Expected runtime: about 6 minutes on 2 CPU cores once the activations are cached, most
of it the scikit-learn loop (about 35 minutes with its BLAS at one thread per core; the
first run extracts the activations, about 4 minutes, into ~/.cache/probejax).

Data: the bundled `cities` and `sentiment` datasets (1500 texts each, seed 0),
last-token block outputs of all 30 layers of SmolLM2-135M-Instruct (576 dimensions;
the activations `probejax llm sweep --max-examples 1500` caches).

Per layer, on the splits `protocol_splits(key(0), y)` (64/16/20, stratified):
- probejax: `evaluate(raptor(), ...)` (standardise on train_sub, 100-point C grid as one compiled
  warm-started path, best validation accuracy, refit on train_sub + val); the median of
  --repeats calls after a first call, whose compilation is reported separately (one
  compilation serves every layer of a dataset);
- the authors' loop: `LogisticRegression(lbfgs, warm_start=True, max_iter=1000)` over
  the grid one C after another, scikit-learn's default tol, refit, test (one call),
  with its BLAS at --loop-threads threads (default 1, its fastest on small CPUs; a
  plain scikit-learn install runs OpenBLAS at one thread per core, about 6 times slower
  on 2 cores: `probejax.protocol._sklearn_reference`);
- ratio = authors' seconds / probejax seconds; whether both select the same C;
- on the --tight-layers, the authors' loop again at tol 1e-10 (max_iter 100000), an
  accuracy reference: whether it converged and whether its C equals probejax's.

Prints a table per dataset and a summary (median and smallest ratio, same-C counts),
and writes it to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

import probejax as pj
from probejax.io import write_json_atomic
from probejax.protocol._sklearn_reference import sklearn_raptor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raptor_versions import activations


def parse_layers(spec: str, n: int) -> list[int]:
    if spec == "all":
        return list(range(n))
    if spec == "none":
        return []
    return [int(s) for s in spec.split(",") if s.strip()]


def run_dataset(
    name: str, layers_spec: str, tight_spec: str, repeats: int, loop_threads: int
) -> dict:
    X, y = activations(name)
    layers = parse_layers(layers_spec, X.shape[0])
    tight = set(parse_layers(tight_spec, X.shape[0]))
    splits = pj.protocol_splits(jax.random.key(0), y)
    raptor = pj.estimators.raptor()
    tr, va, te = (np.asarray(a) for a in (splits.train_sub, splits.val, splits.test))
    t0 = time.perf_counter()
    jax.block_until_ready(pj.evaluate(raptor, np.asarray(X[layers[0]]), y, split=splits))
    first = time.perf_counter() - t0
    rows = []
    for layer in layers:
        Xl = np.asarray(X[layer])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = jax.block_until_ready(pj.evaluate(raptor, Xl, y, split=splits))
            times.append(time.perf_counter() - t0)
        t_pj = statistics.median(times)
        sk = sklearn_raptor(Xl.astype(np.float64), y, tr, va, te, blas_threads=loop_threads)
        row = {
            "layer": layer,
            "probejax_seconds": t_pj,
            "sklearn_seconds": sk["total_seconds"],
            "ratio": sk["total_seconds"] / t_pj,
            "C": float(res.info["C"]),
            "sklearn_C": sk["C"],
            "same_C": bool(np.isclose(float(res.info["C"]), sk["C"], rtol=1e-5)),
            "test_accuracy": float(res.test_accuracy),
            "sklearn_test_accuracy": sk["test_accuracy"],
            "path_converged": float(np.mean(np.asarray(res.info["path_converged"]))),
        }
        if layer in tight:
            ref = sklearn_raptor(
                Xl.astype(np.float64),
                y,
                tr,
                va,
                te,
                tol=1e-10,
                max_iter=100_000,
                blas_threads=loop_threads,
            )
            row.update(
                tight_C=ref["C"],
                tight_converged=ref["converged"],
                tight_same_C=bool(np.isclose(float(res.info["C"]), ref["C"], rtol=1e-5)),
            )
        rows.append(row)
        tail = (
            f"  tol-1e-10 C {row['tight_C']:.4g} (converged {row['tight_converged']}, "
            f"same {row['tight_same_C']})"
            if "tight_C" in row
            else ""
        )
        print(
            f"{name} layer {layer:2d}: probejax {t_pj:.3f} s, authors' loop "
            f"{sk['total_seconds']:.2f} s, {row['ratio']:.0f}x; C {row['C']:.4g} vs "
            f"{row['sklearn_C']:.4g}{tail}",
            flush=True,
        )
    ratios = [r["ratio"] for r in rows]
    tight_rows = [r for r in rows if "tight_C" in r]
    converged = [r for r in tight_rows if r["tight_converged"]]
    summary = {
        "layers": len(rows),
        "first_call_seconds": first,
        "median_ratio": statistics.median(ratios),
        "min_ratio": min(ratios),
        "same_C_as_authors_loop": sum(r["same_C"] for r in rows),
        "tight_layers": len(tight_rows),
        "tight_converged": len(converged),
        "same_C_where_tight_converged": sum(r["tight_same_C"] for r in converged),
    }
    print(f"{name}: {json.dumps(summary)}", flush=True)
    return {"rows": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["cities", "sentiment"])
    ap.add_argument("--layers", default="all", help="'all' or e.g. '0,15,29'")
    ap.add_argument(
        "--tight-layers",
        default="5,15,25",
        help="layers with the tol-1e-10 reference ('all', 'none')",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-threads", type=int, default=1, help="BLAS threads of the loop")
    ap.add_argument("--out", default="results/benchmarks/raptor_real.json")
    args = ap.parse_args()
    out = {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "loop_blas_threads": args.loop_threads,
        "datasets": {
            name: run_dataset(name, args.layers, args.tight_layers, args.repeats, args.loop_threads)
            for name in args.datasets
        },
    }
    all_ratios = [r["ratio"] for d in out["datasets"].values() for r in d["rows"]]
    out["median_ratio"] = statistics.median(all_ratios)
    out["min_ratio"] = min(all_ratios)
    print(f"all layers: median ratio {out['median_ratio']:.1f}x, smallest {out['min_ratio']:.1f}x")
    write_json_atomic(Path(args.out), out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""RAPTOR against its baselines on each embedded model and bundled dataset (best layer
and mean over layers, as RAPTOR's Table 1 reports), and RAPTOR's validation-chosen C
against the C approximate leave-one-out chooses on train + validation (``raptor_alo``).

One ``llm_sweep`` per (model, dataset), the dataset's default split (grouped where it
has groups), stability on 8 layers spread over the depth. Writes two benchmark files
that the docs' benchmark page renders:

- ``model_layers.json``: per model, dataset and estimator the best layer, the test
  accuracy there, the mean over layers, and the sweep's wall time;
- ``alo_vs_validation.json``: per model and dataset, RAPTOR and ``raptor_alo``'s test
  accuracy and stability averaged over layers, each with a 95% interval over layers
  (1.96 standard errors), and the median chosen log10 C.

    python benchmarks/model_layers.py --out results/benchmarks
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("default", "gemma-3-270m")
DATASETS = ("cities", "sentiment", "morality")
ESTIMATORS = ("raptor", "raptor_alo", "mass_mean", "lda", "ridge_ls")


def _mean_ci(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and x == x], float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))


def main(argv=None) -> tuple[dict, dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--max-examples", type=int, default=1500)
    ap.add_argument("--runs", type=int, default=10, help="stability runs per layer")
    ap.add_argument("--out", default="results/benchmarks")
    args = ap.parse_args(argv)

    from probejax.llm import llm_sweep, load_dataset, load_model
    from probejax.protocol import Spread, StabilitySpec

    rows, alo = [], []
    for model in args.models.split(","):
        loaded = load_model(model)
        for name in args.datasets.split(","):
            data = load_dataset(name, max_examples=args.max_examples, seed=0)
            t0 = time.perf_counter()
            res = llm_sweep(
                loaded,
                data,
                None,
                estimators=ESTIMATORS,
                stability=StabilitySpec(runs=args.runs, layers=Spread(8)),
                log=None,
            ).results
            seconds = time.perf_counter() - t0
            split = res["split"]["kind"]
            for est, r in res["estimators"].items():
                acc = [a for a in r["test_accuracy"] if a is not None]
                best = int(np.argmax(acc))
                rows.append(
                    {
                        "model": res["model"]["id"].split(" (")[0],
                        "dataset": f"{name} ({split})",
                        "estimator": est,
                        "best layer": res["layers"][best],
                        "best accuracy": round(float(acc[best]), 3),
                        "mean over layers": round(float(np.mean(acc)), 3),
                        "sweep s": round(seconds, 1),
                    }
                )
            for est in ("raptor", "raptor_alo"):
                r = res["estimators"][est]
                acc, acc_ci = _mean_ci(r["test_accuracy"])
                stab, stab_ci = _mean_ci(r["stability"])
                lam = [v for v in r.get("lam", []) if v is not None]
                alo.append(
                    {
                        "model": res["model"]["id"].split(" (")[0],
                        "dataset": f"{name} ({split})",
                        "C chosen by": "validation" if est == "raptor" else "ALO on train+val",
                        "accuracy": f"{acc:.3f} ± {acc_ci:.3f}",
                        "stability": f"{stab:.3f} ± {stab_ci:.3f}",
                        "median log10 C": round(float(np.median(-np.log10(lam))), 2)
                        if lam
                        else None,
                    }
                )
            print(f"{model} {name}: {seconds:.0f} s", flush=True)
    machine = {"platform": platform.platform(), "python": platform.python_version()}
    command = "python " + " ".join(["benchmarks/model_layers.py", *(argv or sys.argv[1:])])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = {"benchmark": "RAPTOR and baselines per embedded model and dataset",
              "command": command, "machine": machine, "rows": rows}  # fmt: skip
    versus = {"benchmark": "C chosen on validation (RAPTOR) or by ALO on train+val",
              "command": command, "machine": machine, "rows": alo}  # fmt: skip
    (out / "model_layers.json").write_text(json.dumps(layers, indent=1) + "\n")
    (out / "alo_vs_validation.json").write_text(json.dumps(versus, indent=1) + "\n")
    return layers, versus


if __name__ == "__main__":
    main()

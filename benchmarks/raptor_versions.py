"""RAPTOR's selections under two versions of the code, on the same SmolLM2 activations.

Command:  python benchmarks/raptor_versions.py --rev cfd6dab       (the pre-protocol code)
          python benchmarks/raptor_versions.py --rev HEAD~1 --datasets cities
Expected runtime: about 5 minutes on 2 CPU cores once the activations are cached (the
first run extracts them: about 4 minutes, into ~/.cache/probejax).
Expected result (--rev cfd6dab): the selected C agrees at 59 of the 60 (dataset, layer)
pairs; the exception, cities layer 4 (test accuracy 0.55, chance), is a near-tie that the
old layer sweep (layers vmapped in chunks of 4) broke the other way: RAPTOR on that layer
alone gives the new sweep's C under both versions.

For each dataset (1500 texts, seed 0, last-token block outputs of all 30 layers, the
activations `probejax llm sweep --max-examples 1500` caches), RAPTOR on every layer
(one split from `jax.random.key(0)`) runs once with this working tree and once with a temporary git
worktree of --rev (a subprocess with that tree first on PYTHONPATH); printed per
dataset: layers with the same C, the smallest cosine between the two concept vectors,
the largest test-accuracy difference, and the layers that differ with both Cs and the
C that RAPTOR on that layer alone selects under each version (the worker speaks both the
old API and the current one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, numpy as np, jax, probejax as pj
X = np.load(sys.argv[1], mmap_mode="r"); y = np.load(sys.argv[2])
if hasattr(pj, "fit_raptor"):  # the API before the protocol took estimators and specs
    r = pj.raptor_layers(X, y, jax.random.key(0), chunk_size=4)
    C, w, acc = r.results.C, r.results.probe.w, r.results.test_accuracy
    single = [float(pj.fit_raptor(np.asarray(X[i]), y, jax.random.key(0))[0].C) for i in range(len(X))]
else:  # the same splits, drawn from the key itself as the old functions drew them
    est, splits = pj.estimators.raptor(), pj.protocol_splits(jax.random.key(0), y)
    run = pj.sweep.Execution(cells_per_device=4, progress=False)
    m = pj.compare({"m": est}, X, y, jax.random.key(0), split=splits, stability=None,
                   execution=run).estimators["m"]
    C, w, acc = 1.0 / m["lam"], m["w"], m["test_accuracy"]
    single = [float(pj.evaluate(est, np.asarray(X[i]), y, split=splits).info["C"])
              for i in range(len(X))]
np.savez(sys.argv[3], C=np.asarray(C), w=np.asarray(w), acc=np.asarray(acc),
         single_C=np.asarray(single), where=pj.__file__)
"""


def activations(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The cached ``(30, 1500, 576)`` activations and labels of a bundled dataset."""
    from probejax.llm import cached_activations, load_dataset, load_model
    from probejax.llm._extract import ExtractionSpec
    from probejax.llm._model import cache_root
    from probejax.llm._sweep import activation_cache_dir

    lm = load_model("default")
    ds = load_dataset(name, max_examples=1500, seed=0)
    cache = activation_cache_dir(cache_root(), lm, ds, ExtractionSpec())
    X = cached_activations(lm, ds.texts, ds.hash, cache, ExtractionSpec())
    return X, np.asarray(ds.labels)


def run(tree: Path, X_path: str, y_path: str, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(
        [sys.executable, "-c", WORKER, X_path, y_path, out], env=env, cwd=tree, check=True
    )
    res = dict(np.load(out))
    assert Path(str(res["where"])).is_relative_to(tree), f"imported {res['where']}, not {tree}"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="cfd6dab", help="the other version (a git revision)")
    ap.add_argument("--datasets", nargs="+", default=["cities", "sentiment"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="raptor-versions-") as tmp:
        tmp = Path(tmp)
        other = tmp / "other"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(other), args.rev],
            check=True,
        )
        try:
            for name in args.datasets:
                X, y = activations(name)
                np.save(tmp / "y.npy", y)
                X_path = str(Path(X.filename)) if hasattr(X, "filename") else str(tmp / "X.npy")
                if not hasattr(X, "filename"):
                    np.save(X_path, np.asarray(X))
                new = run(ROOT, X_path, str(tmp / "y.npy"), str(tmp / "new.npz"))
                old = run(other, X_path, str(tmp / "y.npy"), str(tmp / "old.npz"))
                same = np.isclose(old["C"], new["C"], rtol=1e-6)
                w0, w1 = old["w"], new["w"]
                cos = np.sum(w0 * w1, 1) / np.linalg.norm(w0, axis=1) / np.linalg.norm(w1, axis=1)
                print(
                    f"{name}: same C at {int(same.sum())} of {same.size} layers; "
                    f"min cos {cos.min():.5f}; max |test accuracy difference| "
                    f"{np.abs(old['acc'] - new['acc']).max():.4f}"
                )
                for i in np.flatnonzero(~same):
                    print(
                        f"  layer {i}: sweep C {old['C'][i]:.4g} ({args.rev}) vs "
                        f"{new['C'][i]:.4g} (this tree); RAPTOR on the layer alone "
                        f"{old['single_C'][i]:.4g} ({args.rev}) vs {new['single_C'][i]:.4g}"
                    )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False
            )


if __name__ == "__main__":
    main()

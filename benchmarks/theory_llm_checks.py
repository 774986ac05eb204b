"""Where the mixture theory misses on SmolLM2 layers: the checks the README's
"Theory for a real layer" section quotes beyond the `theory-llm` target.

Command:  python benchmarks/theory_llm_checks.py      (needs the `probejax reproduce llm`
          activation caches of cities and sentiment)
Expected runtime: about 3 minutes on 2 CPU cores.

1. Pool size: at layer 16, n = 1000 class-balanced draws (two thirds of the 1500-example
   pool, 6 draws, 9 values of C), theory minus measured accuracy on the real layer and
   on a synthetic Gaussian pool with the layer's moments (key 16), and the change of the
   prediction under nonlinear shrinkage of the spectrum.
2. Gaussianity along the pool's mean difference, every layer of the target: the pool's
   accuracy there against the Gaussian value, the class standard-deviation ratio and the
   excess kurtosis (`diagnostics` of `probejax.reproduce._theory_llm`).
3. A pool smaller than d: the 160-example cities cache (`probejax reproduce llm --quick`)
   at layer 16, n = 80, 6 draws: measured accuracy against the theory with the plain
   pooled covariance and with Ledoit-Wolf shrinkage (`--small-pool` runs only this).
"""

from __future__ import annotations

import json

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from probejax.datamodels._mixture import GaussianMixture  # noqa: E402
from probejax.reproduce._theory_llm import diagnostics, load_layer, measure, theory  # noqa: E402
from probejax.theory._layer import mixture_curves  # noqa: E402


def small_pool():
    import glob
    from pathlib import Path

    from probejax.llm._datasets import load_dataset
    from probejax.llm._model import cache_root

    data = load_dataset("cities", max_examples=160, seed=0)
    pattern = str(cache_root() / "activations" / "*" / f"cities-{data.hash[:12]}-last-block_output")
    folder = Path(sorted(glob.glob(pattern))[0])
    manifest = json.loads((folder / "manifest.json").read_text())
    A = np.load(folder / "activations.npy")
    X, y = A[manifest["layers"].index(16)].astype(np.float64), np.asarray(data.labels)
    Cs = [1e-3, 1e-2, 1e-1, 1.0]
    me = measure(X, y, [80], Cs, 6, 0)
    print(f"small pool {X.shape}, n = 80, C = {Cs}")
    print("  measured:", np.round(me["acc"][0], 3).tolist())
    for sh in ("none", "ledoit_wolf"):
        model = GaussianMixture.from_activations(X, y, shrinkage=sh)
        print(
            f"  theory ({sh}):",
            np.round(mixture_curves(model, [80.0], Cs)["accuracy"][0], 3).tolist(),
        )


def main():
    import sys

    if "--small-pool" in sys.argv:
        return small_pool()
    Cs = [float(c) for c in np.logspace(-4, 2, 9)]
    print("C grid:", np.round(Cs, 4).tolist())
    for name in ["cities", "sentiment"]:
        X, y = load_layer(name, 16)
        fitted = GaussianMixture.from_activations(X, y, debias=False)
        Xc, yc = fitted.sample(jax.random.key(16), len(y), balanced=True)
        Xc, yc = np.asarray(Xc), (np.asarray(yc) > 0).astype(np.int64)
        for label, (A, b) in {"real": (X, y), "control": (Xc, yc)}.items():
            me = measure(A, b, [1000], Cs, 6, 0)
            th = theory(A, b, [1000], Cs)
            gap = np.array(th["acc"][0]) - np.array(me["acc"][0])
            print(f"{name} 16 {label} n=1000 theory - measured:", np.round(gap, 3).tolist())
            print("  s.e.:", np.round(me["acc_se"][0], 3).tolist())
            shrunk = GaussianMixture.from_activations(A, b, shrinkage="nonlinear")
            plain = GaussianMixture.from_activations(A, b)
            delta = (
                mixture_curves(shrunk, [1000.0], Cs)["accuracy"][0]
                - mixture_curves(plain, [1000.0], Cs)["accuracy"][0]
            )
            print("  nonlinear shrinkage - plain:", np.round(delta, 3).tolist())
    for name in ["cities", "sentiment"]:
        for layer in [4, 10, 16, 24]:
            X, y = load_layer(name, layer)
            d = {k: round(v, 4) for k, v in diagnostics(X, y).items()}
            print(name, layer, json.dumps(d))
    small_pool()


if __name__ == "__main__":
    main()

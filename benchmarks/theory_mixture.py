"""Mixture theory speed: a 100 x 100 (n, lam) grid of fixed points for a d = 576 spectrum.

Command:  python benchmarks/theory_mixture.py                 (power-law spectrum)
          python benchmarks/theory_mixture.py --layer cities:16  (a cached SmolLM2 layer)
          python benchmarks/theory_mixture.py --n 20             (quick)
Expected runtime: about a minute on 2 CPU cores (compilation included).

`probejax.theory.solve_mixture_grid` (vmap over n, continuation in lam = 1/C from the
strongest ridge down, float64, tolerance 1e-10 on the fixed-point residual), timed after
compilation on a second grid of the same shape (n shifted by 1e-9 relative, so nothing
is cached). The spectrum: eigenvalues i^-1 scaled to mean 1 with means +-mu, or a
layer's pooled within-class covariance and class means (pool-standardised).
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from probejax.datamodels._mixture import GaussianMixture  # noqa: E402
from probejax.theory._mixture import solve_mixture_grid  # noqa: E402


def power_law(d: int) -> GaussianMixture:
    rng = np.random.default_rng(0)
    om = 1.0 / (1.0 + np.arange(d))
    om /= om.mean()
    mu = rng.standard_normal(d) * np.sqrt(om)
    mu *= 1.5 / np.linalg.norm(mu)
    return GaussianMixture.from_spectrum(om, np.stack([mu, -mu]))


def layer(spec: str) -> GaussianMixture:
    from probejax.reproduce._theory_llm import load_layer

    name, idx = spec.split(":")
    X, y = load_layer(name, int(idx))
    return GaussianMixture.from_activations(X, y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="grid points per axis")
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--layer", default=None, help="dataset:layer of the cached activations")
    args = ap.parse_args()
    model = power_law(args.d) if args.layer is None else layer(args.layer)
    ns = np.logspace(np.log10(20), np.log10(2000), args.n)
    lams = 1.0 / np.logspace(-4, 2, args.n)
    t0 = time.perf_counter()
    jax.block_until_ready(solve_mixture_grid(model, ns, lams))
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid = jax.block_until_ready(solve_mixture_grid(model, ns * (1 + 1e-9), lams))
    t_grid = time.perf_counter() - t0
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; float64; "
        f"{'power law' if args.layer is None else args.layer}, d = {model.d}; "
        f"n in [20, 2000] x C in [1e-4, 1e2], {args.n} x {args.n} points"
    )
    print("| grid s (after compile) | compile+first s | converged | per point ms | max residual |")
    print("|---|---|---|---|---|")
    print(
        f"| {t_grid:.2f} | {t_first:.1f} | {float(grid.converged.mean()):.4f} | "
        f"{1e3 * t_grid / ns.size / lams.size:.3f} | {float(np.max(grid.residual)):.1e} |"
    )


if __name__ == "__main__":
    main()

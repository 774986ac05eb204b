"""Theory grid speed: a 100 x 100 (alpha, lam) grid of fixed points, and a
scipy.quad-style reference implementation timed on a few points, in the same run.

Command:  python benchmarks/theory_grid.py              (sign and logistic teachers)
          python benchmarks/theory_grid.py --n 20 --ref-points 1   (quick)
Expected runtime: about 2 minutes on 2 CPU cores (compilation included).

probejax solves the grid with `probejax.theory.solve_grid` (vmap over alpha,
continuation in lam, float64, tolerance 1e-10 on the fixed-point residual), timed after
compilation on a second grid of the same shape. The reference follows the public
numpy/scipy codes (e.g. GCMProject): damped iteration of the same equations, each
expectation a `scipy.integrate.quad` over xi whose integrand solves the proximal
point with `scipy.optimize.brentq` at every evaluation (and, for the logistic teacher,
an inner `quad` over z for Z0). Both must agree on (m, q, V) at the reference points.
"""

from __future__ import annotations

import argparse
import math
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from scipy import integrate, optimize, special, stats  # noqa: E402

import probejax as pj  # noqa: E402
from probejax.theory import solve_fixed_point, solve_grid  # noqa: E402


def ref_prox_u(a, V):
    g = lambda u: u - a - V * special.expit(-u)
    return optimize.brentq(g, a, a + V, xtol=1e-14, rtol=1e-14)


def ref_partition(channel, omega0, V0):
    if channel == "sign":
        s = math.sqrt(max(V0, 1e-300))
        return stats.norm.cdf(omega0 / s), stats.norm.pdf(omega0 / s) / s
    Z = integrate.quad(
        lambda z: stats.norm.pdf(z) * special.expit(omega0 + math.sqrt(V0) * z), -12, 12
    )[0]
    dZ = integrate.quad(
        lambda z: (
            stats.norm.pdf(z)
            * special.expit(omega0 + math.sqrt(V0) * z)
            * special.expit(-omega0 - math.sqrt(V0) * z)
        ),
        -12,
        12,
    )[0]
    return Z, dZ


def ref_hats(channel, alpha, m, q, V):
    sq, V0 = math.sqrt(q), max(1.0 - m * m / q, 0.0)

    def terms(xi):
        u = ref_prox_u(sq * xi, V)
        s = special.expit(-u)
        D = s * (1 - s)
        Z, dZ = ref_partition(channel, m / sq * xi, V0)
        return np.array([dZ * s, Z * s * s, Z * D / (1 + V * D)]) * stats.norm.pdf(xi)

    vals = [
        integrate.quad(lambda x, k=k: terms(x)[k], -10, 10, limit=200, points=[0.0, -V / sq])[0]
        for k in range(3)
    ]
    return [2 * alpha * v for v in vals]


def ref_fixed_point(channel, alpha, lam, tol=1e-9, damping=0.5, max_iter=2000):
    m, q, V = 0.5, 1.0, 1.0 / (lam + 0.25 * alpha)
    for _ in range(max_iter):
        mh, qh, Vh = ref_hats(channel, alpha, m, q, V)
        Vn = 1 / (lam + Vh)
        mn, qn = mh * Vn, (mh**2 + qh) * Vn**2
        diff = max(abs(mn - m), abs(qn - q) / q, abs(Vn - V) / V)
        m, q, V = (
            (1 - damping) * m + damping * mn,
            (1 - damping) * q + damping * qn,
            (1 - damping) * V + damping * Vn,
        )
        if diff < tol:
            break
    return m, q, V


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="grid points per axis")
    ap.add_argument("--ref-points", type=int, default=2)
    ap.add_argument("--teachers", nargs="+", default=["sign", "logistic"])
    args = ap.parse_args()
    alphas = np.logspace(-1, 1, args.n)
    lams = np.logspace(-3, 1, args.n)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; float64; grid alpha in "
        f"[0.1, 10] x lam in [1e-3, 10], {args.n} x {args.n} points, rho = beta = 1"
    )
    print(
        "| teacher | grid s (after compile) | compile+first s | converged | per point ms "
        "| reference per point s | ratio | max rel. diff (m, q, V) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for channel in args.teachers:
        model = pj.GaussianTeacherStudent(channel)
        t0 = time.perf_counter()
        jax.block_until_ready(solve_grid(model, alphas, lams))
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        grid = jax.block_until_ready(solve_grid(model, alphas * (1 + 1e-9), lams))
        t_grid = time.perf_counter() - t0
        per_point = t_grid / alphas.size / lams.size
        rng = np.random.default_rng(0)
        t_ref, worst = [], 0.0
        for _ in range(args.ref_points):
            a, lam = float(rng.choice(alphas[alphas > 0.5])), float(rng.choice(lams[lams > 1e-2]))
            t0 = time.perf_counter()
            m, q, V = ref_fixed_point(channel, a, lam)
            t_ref.append(time.perf_counter() - t0)
            fp = solve_fixed_point(model, a, lam)
            worst = max(
                worst,
                *(
                    abs(r / float(o) - 1)
                    for r, o in zip((m, q, V), (fp.m, fp.q, fp.V), strict=True)
                ),
            )
        ref = float(np.mean(t_ref))
        print(
            f"| {channel} | {t_grid:.2f} | {t_first:.1f} | {float(grid.converged.mean()):.4f} | "
            f"{1e3 * per_point:.2f} | {ref:.1f} | {ref / per_point:.0f}x | {worst:.1e} |"
        )


if __name__ == "__main__":
    main()

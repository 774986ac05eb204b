"""Sweeps on an accelerator against its roofline: the ridge-logistic lambda sweep
(n = 1000 and 10000, d = 4096, 100 lambdas, 32 layers) and the theory grid (100 alphas
x 100 lambdas), with achieved FLOP/s and memory bandwidth as fractions of the device's
peak, and speed ratios against scikit-learn on the CPU and a one-lambda-at-a-time loop.

Command:  python benchmarks/gpu_sweep.py                  (on a GPU: the sizes above)
          python benchmarks/gpu_sweep.py --quick          (smoke test; runs on CPU, ~3 min here)
          python benchmarks/gpu_sweep.py --peak-flops 6.7e13 --peak-bw 3.35e12 \\
              --out results/gpu_sweep.json               (peaks of a device not in PEAKS)
Expected runtime on one H100: about 10 minutes (data generation ~1 min, compilation,
the scikit-learn and loop samples); host memory ~6 GB for the n = 10000 activations.

Ridge sweep. `probejax.protocol.path_sweep` (standardise each layer, L-BFGS on the
eigen-reduced design vmapped over the lambdas: one Gram matrix and eigendecomposition
per layer, then per iteration two products with the n x r factor, r = min(n, d), for all
lambdas at once), default memory budget (half the device memory), float32 with exact
fp32 products (`--precision highest`; TF32 products, `--precision default`, are faster
but can stop the solver short of its 1e-5 tolerance: see the converged column). Timed:
the sweep's compute seconds (transfers, chunks, chunk writes), compilation apart.

FLOPs and bytes are counted analytically from the solver's iteration counts (XLA's
cost_analysis counts a while loop's body once). Per layer, r = min(n, d):
setup = 6nd (standardise) + 2n^2 d + 9n^3 (Gram, eigh: Golub-Van Loan's 9r^3 for a
symmetric eigendecomposition with vectors) when n < d, else 4nd^2 + 9d^3 (X^T X, eigh,
F = XV); per lambda and iteration 4nr + 60n + 30r (two products with F, three line-
search steps, gradient, two-loop recursion); per lambda 6nr + 2nd (first and last
gradient, lift to w). Bytes: setup reads X three times and the Gram matrix ten times
(16nd + 40r^2); per iteration F is read twice for all lambdas together (8nr) and each
lambda streams about 25 length-n vectors (100n) plus its history (64r). A vmapped
while loop runs until the slowest lane of the device's block converges, so *executed*
work counts every lane for the block's largest iteration count (the block is the
device's cells under `--cell-batching vmap`, the default on accelerators, else one
layer); *useful* work counts each lane's own iterations. Achieved rates divide
executed work by the time.

Baselines, each timed on a sample and extrapolated to the full sweep (marked "est."):
the one-lambda-at-a-time JAX loop (one fit `probejax.solve_ridge_logistic` compiled
once and called per lambda on device-resident data: Newton, which the library picks
for a single fit, and L-BFGS, which then redoes the eigendecomposition for every
lambda) on `--loop-lams` lambdas of one layer, and
scikit-learn's `LogisticRegression(lbfgs, warm_start=True, max_iter=1000)` as the
RAPTOR authors run it, on the CPU, on `--sk-lams` lambdas of one layer (its default
tol 1e-4 is looser than ours: the ratio favours it).

Theory grid. `probejax.theory.theory_sweep` (logistic teacher, beta = 2, float64,
tolerance 1e-10), against `probejax.theory.solve_grid` on the same grid (no runner).
FLOPs: XLA's cost_analysis of one residual evaluation times about 5 evaluations per
Newton iteration (forward Jacobian of 3 coordinates + 1-2 trial points) plus 9 per
cold start (damped warm-up), summed over the grid's iteration counts: an estimate.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import probejax as pj
from probejax.protocol import path_sweep
from probejax.solvers import LBFGS, Newton, solve_ridge_logistic
from probejax.sweep import Execution

# Dense peaks per device: (fp32 FLOP/s without tensor cores, fp64 FLOP/s, bytes/s).
PEAKS = {
    "H200": (67e12, 34e12, 4.8e12),
    "H100 PCIe": (51e12, 26e12, 2.0e12),
    "H100": (67e12, 34e12, 3.35e12),  # SXM
    "A100": (19.5e12, 9.7e12, 2.0e12),
    "L4": (30.3e12, 0.49e12, 0.3e12),
}


def device_peaks(args):
    kind = jax.devices()[0].device_kind
    found = next((v for k, v in PEAKS.items() if k in kind), (None, None, None))
    fp32 = args.peak_flops or found[0]
    fp64 = args.peak_flops64 or found[1]
    bw = args.peak_bw or found[2]
    n_dev = len(jax.local_devices())
    scale = lambda v: None if v is None else v * n_dev
    return kind, scale(fp32), scale(fp64), scale(bw)


def make_layers(seed: int, layers: int, n: int, d: int, signal: float = 1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = np.empty((layers, n, d), np.float32)
    s = (signal * (2 * y - 1)).astype(np.float32)[:, None]
    for i in range(layers):
        u = rng.standard_normal(d).astype(np.float32)
        X[i] = rng.standard_normal((n, d), dtype=np.float32) + s * (u / np.linalg.norm(u))
    return X, y


def ridge_work(n: int, d: int, n_iter: np.ndarray, block: int):
    """Analytic (useful flops, executed flops, executed bytes) of the path sweep (module
    docstring); ``n_iter`` is (layers, lambdas), ``block`` the cells per device block."""
    r = min(n, d)
    layers, lams = n_iter.shape
    setup = 6 * n * d + (2 * n * n * d + 9 * n**3 if n < d else 4 * n * d * d + 9 * d**3)
    it_flops, it_lane_bytes = 4 * n * r + 60 * n + 30 * r, 100 * n + 64 * r
    lane = 6 * n * r + 2 * n * d
    useful = layers * setup + lams * layers * lane + it_flops * float(n_iter.sum())
    executed, nbytes = layers * (setup + lams * lane), layers * (16 * n * d + 40 * r * r)
    for start in range(0, layers, block):
        k = float(n_iter[start : start + block].max())
        cells = min(block, layers - start)
        executed += k * cells * lams * it_flops
        nbytes += k * cells * (8 * n * r + lams * it_lane_bytes)
    return float(useful), float(executed), float(nbytes)


def batching(choice: str) -> str:
    if choice == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return choice


def ratio(x, peak):
    return "n/a" if peak is None else f"{100 * x / peak:.1f}%"


def timed_loop(fn, items, repeats=1):
    jax.block_until_ready(fn(items[0]))  # compile
    t0 = time.perf_counter()
    for _ in range(repeats):
        for it in items:
            jax.block_until_ready(fn(it))
    return (time.perf_counter() - t0) / (repeats * len(items))


def loop_per_lambda(Xs, y, lams, solver: Newton | LBFGS) -> float:
    """Seconds per lambda of one compiled single fit (`solve_ridge_logistic`, no input
    checks or transfers) called once per lambda."""
    one = jax.jit(lambda lam: solve_ridge_logistic(Xs, y, lam, solver=solver))
    return timed_loop(lambda lam: one(jnp.asarray(lam, Xs.dtype)), list(lams))


def sklearn_per_lambda(Xs, y, lams):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(solver="lbfgs", max_iter=1000, warm_start=True)
    Xs = np.asarray(Xs, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for lam in sorted(lams, reverse=True):  # strongest ridge first, warm-started
            clf.set_params(C=1.0 / float(lam)).fit(Xs, y)
    return (time.perf_counter() - t0) / len(lams)


def ridge_rows(args, peaks, root: Path) -> list[dict]:
    kind, fp32, _, bw = peaks
    lams = np.logspace(-2, 4, args.lams)
    rows = []
    for n in args.n:
        X, y = make_layers(args.seed, args.layers, n, args.d)
        res = path_sweep(
            X,
            y,
            root / f"ridge_n{n}",
            lams=lams,
            solver=LBFGS(),
            fingerprint=f"synthetic seed={args.seed} layers={args.layers} n={n} d={args.d}",
            execution=Execution(
                memory_budget_bytes=args.memory_budget,
                cells_per_device=args.cells_per_device,
                cell_batching=args.cell_batching,
                progress=False,
            ),
        )
        t = res.seconds_compute
        n_iter = np.asarray(res.values.n_iter)
        lockstep = batching(args.cell_batching) == "vmap"
        block = res.plan.cells_per_device if lockstep else 1
        useful, executed, nbytes = ridge_work(n, args.d, n_iter, block)
        Xs = (X[0] - X[0].mean(0)) / X[0].std(0)
        Xs_j, y_j = jnp.asarray(Xs), jnp.asarray(np.where(y > 0, 1.0, -1.0), jnp.float32)
        pick = lambda k: lams[np.linspace(0, len(lams) - 1, k).round().astype(int)]
        loop = {
            name: loop_per_lambda(Xs_j, y_j, pick(args.loop_lams), solver) * len(lams) * args.layers
            for name, solver in (("newton", Newton()), ("lbfgs", LBFGS()))
        }
        sk = sklearn_per_lambda(Xs, y, pick(args.sk_lams)) * len(lams) * args.layers
        rows.append(
            dict(
                n=n,
                d=args.d,
                layers=args.layers,
                lams=len(lams),
                seconds=t,
                compile=res.seconds_compile,
                cells_per_device=res.plan.cells_per_device,
                program_bytes=res.plan.program_bytes,
                mean_iter=float(n_iter.mean()),
                max_iter=int(n_iter.max()),
                converged=float(np.mean(res.values.converged)),
                useful_flops=useful,
                executed_flops=executed,
                bytes=nbytes,
                flops_per_s=executed / t,
                bytes_per_s=nbytes / t,
                flops_vs_peak=ratio(executed / t, fp32),
                bw_vs_peak=ratio(nbytes / t, bw),
                loop_newton_est=loop["newton"],
                loop_lbfgs_est=loop["lbfgs"],
                sklearn_est=sk,
            )
        )
        print(
            f"| {n} | {args.d} | {args.layers} | {len(lams)} | {t:.2f} | "
            f"{res.seconds_compile:.0f} | {res.plan.cells_per_device} | "
            f"{n_iter.mean():.0f}/{n_iter.max()} | {np.mean(res.values.converged):.2f} | "
            f"{useful / 1e9:.3g}/{executed / 1e9:.3g} | {executed / t / 1e9:.4g} "
            f"({ratio(executed / t, fp32)}) | {nbytes / t / 1e9:.3g} ({ratio(nbytes / t, bw)}) | "
            f"{sk:.3g} ({sk / t:.3g}x) | {loop['newton']:.3g} ({loop['newton'] / t:.3g}x) | "
            f"{loop['lbfgs']:.3g} ({loop['lbfgs'] / t:.3g}x) |",
            flush=True,
        )
        del X
    return rows


def theory_rows(args, peaks, root: Path) -> dict:
    from probejax.theory import solve_grid, theory_sweep
    from probejax.theory._fixed_point import Params, residual, to_coords
    from probejax.theory._quadrature import Quadrature

    _, _, fp64, bw = peaks
    alphas = np.linspace(0.2, 5.0, args.theory_alphas)
    lams = np.logspace(-3, 1, args.theory_lams)
    res = theory_sweep(
        root / "theory",
        alphas=alphas,
        lams=lams,
        betas=[2.0],
        execution=Execution(memory_budget_bytes=args.memory_budget, progress=False),
    )
    fp = res.values
    model = pj.GaussianTeacherStudent("logistic", beta=2.0)
    jax.block_until_ready(solve_grid(model, alphas, lams))
    t0 = time.perf_counter()
    ref = jax.block_until_ready(solve_grid(model, alphas * (1 + 1e-9), lams))
    t_direct = time.perf_counter() - t0
    agree = float(np.nanmax(np.abs(np.asarray(fp.m[0, 0]) - np.asarray(ref.m).T)))
    one = jax.jit(
        lambda x, a, lam: residual(
            x, Params(a, lam, jax.tree.map(jnp.asarray, model)), Quadrature()
        )
    )
    x0 = to_coords(1.0, jnp.asarray(0.5), jnp.asarray(1.0), jnp.asarray(1.0))
    cost = one.lower(x0, jnp.asarray(1.0), jnp.asarray(0.1)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    evals = 5 * float(np.sum(fp.n_iter)) + 9 * fp.n_iter.size / len(lams)  # cold starts
    flops = cost.get("flops", math.nan) * evals
    nbytes = cost.get("bytes accessed", math.nan) * evals
    t = res.seconds_compute
    print(
        f"| {len(alphas)} x {len(lams)} | {t:.2f} | {res.seconds_compile:.0f} | {t_direct:.2f} | "
        f"{fp.n_iter.mean():.1f} | {np.mean(fp.converged):.3f} | {agree:.1e} | "
        f"{flops / 1e9:.3g} | {flops / t / 1e9:.3g} ({ratio(flops / t, fp64)}) | "
        f"{nbytes / t / 1e9:.3g} ({ratio(nbytes / t, bw)}) |",
        flush=True,
    )
    return dict(
        points=int(fp.m.size),
        seconds=t,
        compile=res.seconds_compile,
        solve_grid_seconds=t_direct,
        mean_iter=float(fp.n_iter.mean()),
        converged=float(np.mean(fp.converged)),
        max_abs_diff_m=agree,
        flops_est=flops,
        bytes_est=nbytes,
        flops_vs_peak64=ratio(flops / t, fp64),
        bw_vs_peak=ratio(nbytes / t, bw),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--lams", type=int, default=100)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--loop-lams", type=int, default=10)
    ap.add_argument("--sk-lams", type=int, default=5)
    ap.add_argument("--theory-alphas", type=int, default=100)
    ap.add_argument("--theory-lams", type=int, default=100)
    ap.add_argument("--memory-budget", type=int, default=None, help="bytes per device")
    ap.add_argument("--cells-per-device", type=int, default=None)
    ap.add_argument("--cell-batching", choices=["auto", "vmap", "map"], default="auto")
    ap.add_argument("--precision", choices=["highest", "default"], default="highest")
    ap.add_argument("--peak-flops", type=float, default=None, help="fp32 FLOP/s per device")
    ap.add_argument("--peak-flops64", type=float, default=None, help="fp64 FLOP/s per device")
    ap.add_argument("--peak-bw", type=float, default=None, help="memory bytes/s per device")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    ap.add_argument("--quick", action="store_true", help="small sizes (CPU smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.d, args.lams, args.layers = [200, 600], 128, 20, 4
        args.loop_lams, args.sk_lams, args.theory_alphas, args.theory_lams = 3, 3, 8, 8
    if args.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    peaks = device_peaks(args)
    kind, fp32, fp64, bw = peaks
    print(
        f"jax {jax.__version__}, {len(jax.local_devices())} x {kind} "
        f"({jax.default_backend()}); peaks used: fp32 {fp32 or 'n/a'} FLOP/s, fp64 "
        f"{fp64 or 'n/a'} FLOP/s, {bw or 'n/a'} B/s; matmul precision {args.precision}"
    )
    print("\nRidge-logistic lambda sweep (float32, L-BFGS path per layer)\n")
    print(
        "| n | d | layers | lambdas | sweep s | compile s | cells/device | iters mean/max "
        "| converged | GFLOP useful/executed | GFLOP/s (of peak) | GB/s (of peak) "
        "| sklearn CPU s est. (ratio) | loop newton s est. (ratio) | loop lbfgs s est. (ratio) |"
    )
    print("|" + "---|" * 15)
    root = Path(tempfile.mkdtemp(prefix="gpu_sweep_"))
    try:
        ridge = ridge_rows(args, peaks, root)
        jax.config.update("jax_enable_x64", True)
        print("\nTheory grid (float64, logistic teacher, beta = 2)\n")
        print(
            "| alphas x lambdas | sweep s | compile s | solve_grid s | mean iter | converged "
            "| max |dm| vs solve_grid | GFLOP est. | GFLOP/s (of fp64 peak) | GB/s est. (of peak) |"
        )
        print("|" + "---|" * 10)
        theory = theory_rows(args, peaks, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out is not None:
        from probejax.io._results import write_json_atomic

        write_json_atomic(
            args.out,
            {
                "device": kind,
                "devices": len(jax.local_devices()),
                "jax": jax.__version__,
                "precision": args.precision,
                "peaks": {"fp32": fp32, "fp64": fp64, "bandwidth": bw},
                "ridge": ridge,
                "theory": theory,
            },
        )
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

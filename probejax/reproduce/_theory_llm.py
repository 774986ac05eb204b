r"""Reproduction target ``theory-llm``: the Gaussian-mixture theory against probes on
SmolLM2 layers (config: ``experiments/theory_llm.py``).

For each dataset and layer of the cached activations (pool of :math:`N` examples):

- theory (:func:`probejax.theory.mixture_curves`): the pool's moments
  (:meth:`probejax.GaussianMixture.from_activations`: pool standardisation, pooled
  within-class covariance, debiased class means) give the test accuracy along the C grid
  for each ``n``, and the stability of two probes trained on independent draws from the
  pool (which share a fraction :math:`c_k = n\rho_k/N_k` of their examples);
- measured: ``resamples`` class-balanced draws of ``n`` from the pool, features
  standardised by the pool's mean and standard deviation, L2-logistic probes with
  intercept along the grid, accuracy on the rest of the pool (mean and standard error
  over draws), :math:`|\cos|` between the weight vectors of two draws (mean over all pairs,
  standard error from disjoint pairs);
- the same on a synthetic control: a Gaussian pool of :math:`N` examples drawn from the
  layer's fitted mixture (same means and covariance), run through the identical
  pipeline, so that its gap is the finite-size / estimation error and the extra gap of
  the real layer measures non-Gaussianity;
- RAPTOR's protocol (the config's ``protocol.estimator``, by default the registered
  RAPTOR, through :func:`probejax.evaluate` and :func:`probejax.stability`) measured
  on the pool (``protocol.seeds`` splits; its stability over ``protocol.runs`` runs)
  against :func:`probejax.theory.predict_raptor`;
- diagnostics of non-Gaussianity: the pool's own accuracy along its mean difference
  (threshold at the midpoint) against the Gaussian value
  :math:`\sum_k\pi_k\Phi(\cdot)` with the pooled within-class variance along it, the
  ratio of the two classes' standard deviations along it, excess kurtosis of the
  within-class residuals along it, along a regularised discriminant and along the top
  eigenvector, the share of the largest eigenvalue, and the largest raw feature standard
  deviation over the median one (outlier dimensions).

:func:`plot` draws, per dataset, accuracy and stability against C (theory lines,
measured points, control markers) and the layer profile of RAPTOR's predicted and
measured test accuracy.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..datamodels._mixture import GaussianMixture
from ..estimators import LogisticRidge, get_estimator
from ..protocol import StabilitySpec, evaluate, protocol_splits, stability
from ..theory._layer import mixture_curves, pool_overlap, predict_raptor

# The computation's version, bumped by hand whenever what compute() writes changes (its
# own code or the library code it calls); the results file is keyed by it and the config
# (probejax.reproduce.target_hash), never by the source text.
VERSION = 2

__all__ = ["compute", "load_layer", "plot"]


def load_layer(name: str, layer: int, max_examples: int = 1500, seed: int = 0):
    """``(X, y)`` of a bundled dataset's cached SmolLM2 activations at ``layer``
    (``X`` float64 ``(N, d)``, ``y`` 0/1), from the cache that ``probejax reproduce llm``
    fills (``$PROBEJAX_CACHE`` or ``~/.cache/probejax``)."""
    from ..io import cache_root
    from ..llm._datasets import load_dataset

    data = load_dataset(name, max_examples=max_examples, seed=seed)
    pattern = str(cache_root() / "activations" / "*" / f"{name}-{data.hash[:12]}-last-block_output")
    for folder in sorted(glob.glob(pattern)):
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        if manifest.get("complete") and layer in manifest["layers"]:
            A = np.load(Path(folder) / "activations.npy", mmap_mode="r")
            return np.asarray(A[manifest["layers"].index(layer)], np.float64), np.asarray(
                data.labels
            )
    raise FileNotFoundError(
        f"no complete activation cache with layer {layer} for {name!r} (looked for {pattern}); "
        "run `probejax reproduce llm` first to extract it."
    )


def measure(X, y, ns, Cs, resamples: int, seed: int) -> dict:
    """Accuracy and stability of class-balanced draws (module docstring); arrays
    ``(len(ns), len(Cs))`` of means and standard errors."""
    sd = X.std(0)
    Xs = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    lams = jnp.asarray(1.0 / np.asarray(Cs))
    path = jax.jit(lambda X_, y_: LogisticRidge().path(X_, y_, lams))
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("acc", "acc_se", "stab", "stab_se")}
    for n in ns:
        accs, ws = [], []
        for _ in range(resamples):
            idx = np.r_[
                rng.choice(np.flatnonzero(y == 1), n // 2, replace=False),
                rng.choice(np.flatnonzero(y == 0), n - n // 2, replace=False),
            ]
            rest = np.setdiff1d(np.arange(len(y)), idx)
            probe = path(jnp.asarray(Xs[idx]), jnp.asarray(2.0 * y[idx] - 1)).probe
            w, b = np.asarray(probe.w), np.asarray(probe.b)
            scores = Xs[rest] @ w.T + b
            accs.append(np.mean((scores > 0) == (y[rest, None] == 1), axis=0))
            ws.append(w / np.linalg.norm(w, axis=1, keepdims=True))
        accs, ws = np.array(accs), np.array(ws)
        cos = np.abs(np.einsum("rcd,scd->rsc", ws, ws))
        pairs = cos[np.triu_indices(resamples, 1)]
        disjoint = np.abs(np.sum(ws[0::2] * ws[1::2], axis=2))
        out["acc"].append(accs.mean(0))
        out["acc_se"].append(accs.std(0, ddof=1) / np.sqrt(resamples))
        out["stab"].append(pairs.mean(0))
        out["stab_se"].append(disjoint.std(0, ddof=1) / np.sqrt(len(disjoint)))
    return {k: np.array(v).tolist() for k, v in out.items()}


def theory(X, y, ns, Cs) -> dict:
    model = GaussianMixture.from_activations(X, y)
    rows = {k: [] for k in ("acc", "stab", "stab_raw", "converged")}
    for n in ns:
        c = mixture_curves(model, [float(n)], Cs, shared=pool_overlap(y, n))
        rows["acc"].append(c["accuracy"][0])
        rows["stab"].append(np.abs(c["stability_shared"][0]))
        rows["stab_raw"].append(np.abs(c["stability_shared_raw"][0]))
        rows["converged"].append(c["converged"][0])
    return {k: np.array(v).tolist() for k, v in rows.items()}


def protocol_measured(estimator, X, y, seeds: int, runs: int, seed: int) -> dict:
    Cs, accs, vals = [], [], []
    for s in range(seeds):
        # the splits drawn from the seed's key itself, as this target always drew them
        splits = protocol_splits(jax.random.key(seed + s), y)
        res = evaluate(estimator, X, y, split=splits)
        Cs.append(float(res.info["C"]))
        accs.append(float(res.test_accuracy))
        vals.append(np.asarray(res.info["val_accuracy"]))
    stab = stability(estimator, X, y, jax.random.key(seed), spec=StabilitySpec(runs=runs))
    return {
        "C": Cs,
        "C_geomean": float(np.exp(np.mean(np.log(Cs)))),
        "test_accuracy": float(np.mean(accs)),
        "test_accuracy_se": float(np.std(accs, ddof=1) / np.sqrt(seeds)) if seeds > 1 else 0.0,
        "val_accuracy": np.mean(vals, axis=0).tolist(),
        "stability": float(stab.mean_abs_cos),
    }


def diagnostics(X, y) -> dict:
    sd = X.std(0)
    Xs = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    pos = y == 1
    R = Xs - np.where(pos[:, None], Xs[pos].mean(0), Xs[~pos].mean(0))
    S = R.T @ R / len(y)
    w, U = np.linalg.eigh(S)
    delta = Xs[pos].mean(0) - Xs[~pos].mean(0)
    bayes = np.linalg.solve(S + 1e-3 * np.trace(S) / len(S) * np.eye(len(S)), delta)

    def kurt(v):
        z = R @ v
        return float(np.mean(z**4) / np.mean(z**2) ** 2 - 3.0)

    from scipy.stats import norm

    mid = 0.5 * (Xs[pos].mean(0) + Xs[~pos].mean(0))
    proj = (Xs - mid) @ delta
    sd_pos, sd_neg = proj[pos].std(), proj[~pos].std()
    pooled = np.sqrt(delta @ S @ delta)
    prior = pos.mean()
    gauss = prior * norm.cdf(proj[pos].mean() / pooled) + (1 - prior) * norm.cdf(
        -proj[~pos].mean() / pooled
    )
    return {
        "mean_diff_accuracy": float(np.mean((proj > 0) == pos)),
        "mean_diff_accuracy_gaussian": float(gauss),
        "mean_diff_sd_ratio": float(sd_pos / sd_neg),
        "kurtosis_mean_diff": kurt(delta),
        "kurtosis_discriminant": kurt(bayes),
        "kurtosis_top_eigvec": kurt(U[:, -1]),
        "top_eigval_share": float(w[-1] / w.sum()),
        "max_over_median_std": float(sd.max() / np.median(sd)),
    }


def _gaps(th: dict, me: dict) -> dict:
    acc = np.abs(np.array(th["acc"]) - np.array(me["acc"]))
    stab = np.abs(np.array(th["stab"]) - np.array(me["stab"]))
    return {
        "acc_median": float(np.median(acc)),
        "acc_max": float(np.max(acc)),
        "stab_median": float(np.median(stab)),
        "stab_max": float(np.max(stab)),
    }


def compute(config: dict, log: Callable[[str], None] = print) -> dict:
    Cs, ns = config["Cs"], config["ns"]
    out = {"datasets": {}}
    for name in config["datasets"]:
        rows = []
        for layer in config["layers"]:
            t0 = time.perf_counter()
            X, y = load_layer(name, layer, config["max_examples"], config["seed"])
            row = {"layer": layer, "N": len(y), "d": X.shape[1]}
            row["theory"] = theory(X, y, ns, Cs)
            row["measured"] = measure(X, y, ns, Cs, config["resamples"], config["seed"])
            row["gaps"] = _gaps(row["theory"], row["measured"])
            fitted = GaussianMixture.from_activations(X, y, debias=False)
            Xc, yc = fitted.sample(jax.random.key(config["seed"] + layer), len(y), balanced=True)
            Xc, yc = np.asarray(Xc, np.float64), (np.asarray(yc) > 0).astype(np.int64)
            row["control"] = {"theory": theory(Xc, yc, ns, Cs)}
            row["control"]["measured"] = measure(
                Xc, yc, ns, Cs, config["resamples"], config["seed"]
            )
            row["control"]["gaps"] = _gaps(row["control"]["theory"], row["control"]["measured"])
            rc = config["protocol"]
            if rc:
                row["raptor_predicted"] = predict_raptor(
                    GaussianMixture.from_activations(X, y), len(y), rc["Cs"]
                )
                row["raptor_measured"] = protocol_measured(
                    get_estimator(rc["estimator"]), X, y, rc["seeds"], rc["runs"], config["seed"]
                )
            row["diagnostics"] = diagnostics(X, y)
            row["seconds"] = time.perf_counter() - t0
            g, gc = row["gaps"], row["control"]["gaps"]
            log(
                f"{name} layer {layer}: |acc gap| median {g['acc_median']:.4f} max "
                f"{g['acc_max']:.4f} (control {gc['acc_median']:.4f}); |stab gap| median "
                f"{g['stab_median']:.4f} ({row['seconds']:.0f} s)"
            )
            rows.append(row)
        out["datasets"][name] = rows
    return out


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    cfg = results["config"]
    Cs, ns = np.asarray(cfg["Cs"]), cfg["ns"]
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for name, rows in results["datasets"].items():
        fig, axes = plt.subplots(2, len(rows), figsize=(3.2 * len(rows), 6), squeeze=False)
        for j, row in enumerate(rows):
            for i, (key, label) in enumerate(
                (("acc", "test accuracy"), ("stab", "|cos| (two draws)"))
            ):
                ax = axes[i, j]
                for k, n in enumerate(ns):
                    col = colors[k % len(colors)]
                    ax.plot(Cs, row["theory"][key][k], "-", color=col, label=f"theory n={n}")
                    ax.errorbar(
                        Cs,
                        row["measured"][key][k],
                        yerr=row["measured"][f"{key}_se"][k],
                        fmt="o",
                        ms=3,
                        color=col,
                        label=f"measured n={n}",
                    )
                    ax.plot(Cs, row["control"]["measured"][key][k], "x", ms=4, color=col)
                ax.set_xscale("log")
                ax.set_xlabel("C")
                if j == 0:
                    ax.set_ylabel(label)
                if i == 0:
                    ax.set_title(f"{name} layer {row['layer']}")
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(
            "lines: theory; dots: measured (mean ± s.e.); x: measured on the synthetic "
            "Gaussian control (its own theory differs: compare its gaps in the table)"
        )
        fig.tight_layout()
        p = figures_dir / f"theory_llm_{name}_curves.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    if any("raptor_measured" in r for rows in results["datasets"].values() for r in rows):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for k, (name, rows) in enumerate(results["datasets"].items()):
            L = [r["layer"] for r in rows]
            col = colors[k % len(colors)]
            ax.plot(
                L,
                [r["raptor_predicted"]["test_accuracy"] for r in rows],
                "-",
                color=col,
                label=f"{name} theory",
            )
            ax.errorbar(
                L,
                [r["raptor_measured"]["test_accuracy"] for r in rows],
                yerr=[r["raptor_measured"]["test_accuracy_se"] for r in rows],
                fmt="o",
                color=col,
                label=f"{name} measured",
            )
        ax.set_xlabel("layer")
        ax.set_ylabel("RAPTOR test accuracy")
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = figures_dir / "theory_llm_raptor_layers.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def table(results: Path | str | dict) -> str:
    """The README table from a results file: per dataset and layer, median and max
    |predicted - measured| accuracy and stability over the C grid and n (the control's
    median accuracy gap alongside), RAPTOR's predicted and measured selected C and test
    accuracy, and the pool's Gaussian check along its mean difference."""
    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    lines = [
        "| dataset | layer | acc gap median / max | control acc gap median | "
        "stab gap median / max | RAPTOR C pred / meas | RAPTOR acc pred / meas | "
        "RAPTOR stab pred / meas | mean-diff acc pool / Gaussian |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results["datasets"].items():
        for r in rows:
            g, gc = r["gaps"], r["control"]["gaps"]
            cells = [
                name,
                str(r["layer"]),
                f"{g['acc_median']:.3f} / {g['acc_max']:.3f}",
                f"{gc['acc_median']:.3f}",
                f"{g['stab_median']:.3f} / {g['stab_max']:.3f}",
            ]
            if "raptor_measured" in r:
                p, m = r["raptor_predicted"], r["raptor_measured"]
                cells += [
                    f"{p['C']:.3g} / {m['C_geomean']:.3g}",
                    f"{p['test_accuracy']:.3f} / {m['test_accuracy']:.3f} ± "
                    f"{m['test_accuracy_se']:.3f}",
                    f"{p['stability']:.3f} / {m['stability']:.3f}",
                ]
            else:
                cells += ["-", "-", "-"]
            dg = r["diagnostics"]
            cells.append(
                f"{dg['mean_diff_accuracy']:.3f} / {dg['mean_diff_accuracy_gaussian']:.3f}"
                if "mean_diff_accuracy" in dg
                else "-"
            )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(table(sys.argv[1] if len(sys.argv) > 1 else "results/theory_llm/results.json"))

"""Figures of a language-model sweep, drawn from its ``results.json`` only.

Figures per (model, dataset): test accuracy vs layer per method, directional
stability vs layer per method, the training cost per layer of probejax's RAPTOR
against the authors' scikit-learn loop, and the validity controls (random vs
held-out-group split, control task, permutation null) when the sweep ran them. matplotlib's object API (headless, no pyplot).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _title(res: dict) -> str:
    pooling = "" if res.get("pooling") is None else f", {res['pooling']} token"
    return (
        f"{res['model']['id'].split('/')[-1]} on {res['dataset']['name']} "
        f"(n = {res['dataset']['n']}{pooling})"
    )


def _per_method(res: dict, field: str, ylabel: str, path: Path, **ax_kw) -> Path | None:
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.add_subplot()
    drew = False
    for name, m in res["estimators"].items():
        v = np.asarray(m[field], dtype=float)
        ok = np.isfinite(v)
        if ok.any():
            x = np.asarray(res["layers"])[ok]
            style = {k: s for k, s in res.get("styles", {}).get(name, {}).items() if s}
            label = res.get("labels", {}).get(name, name)
            ax.plot(x, v[ok], marker="o", ms=3, label=label, **style)
            drew = True
    if not drew:
        return None
    site = res.get("site")
    xlabel = "layer" if site is None else f"layer ({site.replace('_', ' ')})"
    ax.set(xlabel=xlabel, ylabel=ylabel, title=_title(res), **ax_kw)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _cost(res: dict, path: Path) -> Path | None:
    same = res.get("sklearn", {}).get("estimator")
    if same is None:  # no loop timed, or no estimator the loop reproduces
        return None
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.add_subplot()
    pj = np.asarray(res["estimators"][same]["fit_seconds"], float)
    sk = np.asarray(res["sklearn"]["total_seconds"], float)
    sk_layers = res["sklearn"].get("layers", res["layers"])
    ax.plot(sk_layers, sk, marker="s", ls="--", label="scikit-learn loop (authors' code)")
    label = res.get("labels", {}).get(same, same)
    ax.plot(res["layers"], pj, marker="o", ms=3, label=f"probejax: {label}")
    # fit_seconds is compute time: compilation is reported apart
    at = [res["layers"].index(i) for i in sk_layers]
    ratio = float(np.median([sk[k] / pj[j] for k, j in enumerate(at)]))
    ax.set(
        yscale="log",
        xlabel="layer",
        ylabel="seconds per layer (C sweep + refit)",
        title=f"{_title(res)}\nmedian ratio {ratio:.0f}x (compute time; compilation excluded)",
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _controls(res: dict, path: Path) -> Path | None:
    """Test accuracy per layer on the random and the held-out-group split, the control
    task, and the permutation null's mean and 95th percentile."""
    if "controls" not in res:
        return None
    c = res["controls"]
    x = np.asarray(res["layers"])
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, c["accuracy"], marker="o", ms=3, label=f"{c['estimator']}: random split")
    if "grouped_accuracy" in c:
        groups = ", ".join(c["groups"])
        ax.plot(x, c["grouped_accuracy"], marker="s", ms=3, label=f"held-out groups ({groups})")
    ax.plot(x, c["control_accuracy"], ls="--", label="control task (random labels per type)")
    ax.fill_between(
        x,
        np.asarray(c["null_mean"]),
        np.asarray(c["null_q95"]),
        color="grey",
        alpha=0.3,
        label=f"permutation null ({c['permutations']}), mean to 95th pct.",
    )
    se = 1.96 * np.sqrt(0.25 / c["n_test"])
    ax.axhspan(0.5 - se, 0.5 + se, color="k", alpha=0.06, label="chance +- 1.96 SE")
    ax.axhline(0.5, color="k", lw=0.8)
    ax.set(xlabel="layer", ylabel="test accuracy", title=f"{_title(res)}\nvalidity controls")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def plot_sweep(results_path: str | Path, figures_dir: str | Path, prefix: str) -> list[Path]:
    """Draw ``{prefix}_accuracy.png``, ``_stability.png``, ``_cost.png`` into ``figures_dir``."""
    with open(results_path) as f:
        res = json.load(f)
    return plot_sweep_results(res, figures_dir, prefix)


def plot_sweep_results(res: dict, figures_dir: str | Path, prefix: str) -> list[Path]:
    """As :func:`plot_sweep`, from a results dict."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _per_method(res, "test_accuracy", "test accuracy", out / f"{prefix}_accuracy.png"),
        None
        if res.get("stability") is None
        else _per_method(
            res,
            "stability",
            f"stability: mean |cos| over {res['stability']['runs']} runs",
            out / f"{prefix}_stability.png",
        ),
        _cost(res, out / f"{prefix}_cost.png"),
        _controls(res, out / f"{prefix}_controls.png"),
    ]
    return [p for p in paths if p is not None]

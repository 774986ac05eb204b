"""Figures of the ``theory`` target, drawn from its results file only (no computation).

Theory lines (the :math:`d\\to\\infty` fixed point) under simulation points with error
bars (mean +- standard error over seeds). Uses matplotlib's object API (no pyplot, no
global state), so it runs headless.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

FIGURES = ("accuracy", "cosine", "stability", "optimal_lam", "phase")
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _a(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _teacher(t: dict) -> str:
    if t["channel"] == "logistic":
        return f"logistic teacher (rho={t['rho']:g}, beta={t['beta']:g})"
    return f"{t['channel']} teacher (rho={t.get('rho', 1.0):g})"


def _sim_note(sim: dict) -> str:
    return f"lines: theory; points: simulation d={sim['d']}, mean ± s.e. over {sim['seeds']} seeds"


def _vs_lam(res: dict, field: str, ylabel: str, path: Path) -> None:
    cur, sim = res["curves"], res["simulation"]
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for j, alpha in enumerate(cur["alphas"]):
        c = COLORS[j % len(COLORS)]
        ax.plot(cur["lams"], _a(cur[field])[:, j], color=c, label=f"alpha = {alpha:g}")
        r = sim["runs"][j]
        ax.errorbar(sim["lams"], _a(r[field]), yerr=_a(r[f"{field}_se"]), fmt="o", ms=3.5,
                    color=c, capsize=2)  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="ridge lambda", ylabel=ylabel)
    ax.set_title(f"{ylabel}, {_teacher(res['config']['teacher'])}\n{_sim_note(sim)}", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=130)


def _stability(res: dict, path: Path) -> None:
    cur, sim, st = res["curves"], res["simulation"], res["stability"]
    fig = Figure(figsize=(4.2 * len(st["alphas"]), 4.4), layout="constrained")
    axes = fig.subplots(1, len(st["alphas"]), squeeze=False)[0]
    for i, (ax, alpha) in enumerate(zip(axes, st["alphas"], strict=True)):
        j = cur["alphas"].index(alpha)
        ax.plot(cur["lams"], _a(cur["stability"])[:, j], color="tab:blue",
                label="independent samples: m²/(rho q)")  # fmt: skip
        r = sim["runs"][j]
        ax.errorbar(sim["lams"], _a(r["stability"]), yerr=_a(r["stability_se"]), fmt="o",
                    ms=3.5, color="tab:blue", capsize=2)  # fmt: skip
        ax.plot(st["lams"], _a(st["overlap"])[:, i], color="tab:red",
                label=f"{100 * st['c']:g}% shared samples")  # fmt: skip
        r = st["sim_runs"][i]
        ax.errorbar(sim["lams"], _a(r["stability"]), yerr=_a(r["stability_se"]), fmt="s",
                    ms=3.5, color="tab:red", capsize=2)  # fmt: skip
        ax.set_xscale("log")
        ax.set(xlabel="ridge lambda", ylabel="stability cos(w1, w2)", title=f"alpha = {alpha:g}")
        ax.legend(fontsize=8)
    fig.suptitle(f"Stability, {_teacher(res['config']['teacher'])}; {_sim_note(sim)}", fontsize=9)
    fig.savefig(path, dpi=130)


def _optimal(res: dict, path: Path) -> None:
    op, sim = res["optimal"], res["simulation"]
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for c, name in zip(COLORS, op["teachers"], strict=False):
        label = _teacher(op["teachers"][name])
        lam, end = _a(op[name]["lam"]), np.asarray(op[name]["at_end"], bool)
        ax1.plot(op["alphas"], lam, "-o", ms=3, color=c, label=label)
        ax1.plot(_a(op["alphas"])[end], lam[end], "o", mfc="white", color=c, ms=6)
        ax2.plot(
            op["alphas"], 1 - _a(op[name]["acc"]), color=c, label=f"{label}, theory at lambda*"
        )
        runs = op["sim"][name]["runs"]
        ax2.errorbar(op["sim_alphas"], [1 - r["acc"] for r in runs],
                     yerr=[r["acc_se"] for r in runs], fmt="o", ms=4, color=c, capsize=2)  # fmt: skip
    bayes = _a(op["bayes_error_sign"])
    ax2.plot(op["alphas"], bayes, "k--", label="Bayes-optimal, sign teacher")
    gap = np.nanmax(np.abs(1 - _a(op["sign"]["acc"]) - bayes))
    ax2.text(0.97, 0.97, f"sign teacher: |error(lambda*) - Bayes| <= {gap:.1e}",
             transform=ax2.transAxes, ha="right", va="top", fontsize=8)  # fmt: skip
    ax1.set(xscale="log", yscale="log", xlabel="alpha = n/d", ylabel="accuracy-optimal lambda*")
    ax1.set_title("accuracy-optimal ridge\n(open markers: at the search bracket's end)", fontsize=9)
    ax2.set(xscale="log", yscale="log", xlabel="alpha = n/d", ylabel="test error at lambda*")
    ax2.set_title(f"test error at lambda*\n{_sim_note(sim)}", fontsize=9)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.savefig(path, dpi=130)


def _phase(res: dict, path: Path) -> None:
    ph = res["phase"]
    G, A = np.meshgrid(_a(ph["gammas"]), _a(ph["alphas"]), indexing="ij")
    status = np.asarray(ph["status"], int)
    fig = Figure(figsize=(8.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    gc, ac = _a(ph["curve_gammas"]), _a(ph["curve_alpha_c"])
    top = max(float(A.max()), float(ac.max())) * 1.2
    ax.fill_between(gc, ac, top, color="tab:green", alpha=0.12, label="theory: MLE exists")
    ax.plot(gc, ac, "k-", label="alpha_c = 1/h(gamma) (Candes-Sur)")
    for code, (mk, c, lab) in enumerate(
        [
            ("o", "tab:green", "converged"),
            ("x", "tab:orange", "max_iter"),
            ("x", "tab:red", "diverged"),
        ]
    ):
        sel = status == code
        ax.plot(G[sel], A[sel], mk, color=c, ms=4, label=f"fixed point: {lab}")
    ax.set(
        yscale="log",
        xlabel="gamma = beta sqrt(rho)",
        ylabel="alpha = n/d",
        ylim=(A.min() / 1.1, top),
    )
    ax.set_title("Unregularised (lambda = 0) logistic teacher: where the fixed point exists\n"
                 "noiseless sign teacher: always separable, alpha_c = inf", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.savefig(path, dpi=130)


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    """Write ``theory_{accuracy,cosine,stability,optimal_lam,phase}.png`` into
    ``figures_dir`` from a results file (its path, or its parsed content).

    **Returns:** the paths written.
    """
    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"theory_{name}.png" for name in FIGURES}
    _vs_lam(results, "acc", "test accuracy", paths["accuracy"])
    _vs_lam(results, "cos", "cosine to the teacher", paths["cosine"])
    _stability(results, paths["stability"])
    _optimal(results, paths["optimal_lam"])
    _phase(results, paths["phase"])
    return list(paths.values())

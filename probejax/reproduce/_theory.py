r"""Reproduction target ``theory``: theory lines against simulations (config:
``experiments/theory.py``).

:func:`compute` evaluates, for the config's teachers,

- accuracy, cosine and independent-sample stability :math:`m^2/(\rho q)` on an
  :math:`(\alpha, \lambda)` grid (:func:`probejax.theory.solve_grid`), and the same
  quantities measured by :func:`probejax.theory.simulate` at dimension ``d`` over
  ``seeds`` teachers/datasets (mean and standard error);
- the stability of two learners sharing a fraction ``c`` of their samples
  (:func:`probejax.theory.two_learner_overlap`) and its simulation;
- the accuracy-optimal ridge :math:`\lambda^*(\alpha)` for the sign and logistic
  teachers, the test error there, the sign teacher's Bayes-optimal error, and
  simulations at :math:`\lambda^*`;
- the :math:`\lambda = 0` phase diagram of the logistic teacher in
  :math:`(\gamma = \beta\sqrt\rho, \alpha)`: convergence of the fixed point against the
  Candes-Sur threshold :math:`\alpha_c = 1/h(\gamma)`.

Standardised deviations :math:`z = (\bar x_{\rm sim} - x_{\rm theory})/\mathrm{se}` go to
the results' ``summary``; the theory at the simulated :math:`\lambda` is read off the
theory grid by interpolation in :math:`\log\lambda` (exact where the grids share points).
:func:`plot` (in ``_theory_plot``) draws the figures from the results file.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np

from ..datamodels._teacher_student import GaussianTeacherStudent
from ..theory import bayes_optimal_error_sign, separability_threshold, solve_grid
from ._sweeps import (
    alpha_c,
    optimal_curve,
    overlap_stability,
    phase_grid,
    simulation_sweep,
    theory_curves,
)
from ._theory_plot import plot as plot

# The computation's version, bumped by hand whenever what compute() writes changes (its
# own code or the library code it calls); the results file is keyed by it and the config
# (probejax.reproduce.target_hash), never by the source text.
VERSION = 1

__all__ = ["compute", "headline", "plot"]


def _at(lams_theory, curve, lams):
    return np.interp(np.log(lams), np.log(lams_theory), curve)


def _z(sim, se, theory):
    return np.abs(sim - theory) / np.where(se > 0, se, np.nan)


def _z_stats(runs, lams_theory, curves, lams, field: str) -> dict:
    """:math:`|z|` of ``runs[j][field]`` against column ``j`` of ``curves``."""
    z = np.concatenate(
        [
            _z(r[field], r[f"{field}_se"], _at(lams_theory, curves[:, j], lams))
            for j, r in enumerate(runs)
        ]
    )
    return {"max_abs_z": np.nanmax(z), "median_abs_z": np.nanmedian(z), "points": z.size}


def _key(seed: int, *tags: int):
    key = jax.random.key(seed)
    for t in tags:
        key = jax.random.fold_in(key, t)
    return key


def compute(config: dict, log: Callable[[str], None] = lambda s: None) -> dict:
    """Every number the figures show, as a JSON-able dict (module docstring)."""
    timing: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timing[name] = round(time.perf_counter() - t0, 2)
        log(f"  {name}: {timing[name]:.1f} s")
        t0 = time.perf_counter()

    model = GaussianTeacherStudent(**config["teacher"])
    sign = GaussianTeacherStudent(**config["sign_teacher"])
    alphas, lams = config["alphas"], np.asarray(config["lams"])
    sim_cfg, stab_cfg, opt_cfg, ph_cfg = (
        config[k] for k in ("simulation", "stability", "optimal", "phase")
    )
    missing = [a for a in stab_cfg["alphas"] if a not in alphas]
    if missing:
        raise ValueError(f"config stability.alphas {missing} must be among alphas {alphas}.")
    if "sign" not in opt_cfg["teachers"]:
        raise ValueError("config optimal.teachers must include 'sign' (the Bayes comparison).")
    d, seeds, seed = sim_cfg["d"], sim_cfg["seeds"], sim_cfg["seed"]
    sim_lams = np.asarray(sim_cfg["lams"])
    tag = lambda a: round(1000 * a)  # the same datasets for one alpha across sections

    log("theory curves (accuracy, cosine, stability)")
    fp = solve_grid(model, alphas, lams)
    curves = theory_curves(model, alphas, lams, fp)
    # Two learners on every stride-th lam of the same grid, from the same fixed points.
    stride, cols = stab_cfg["lam_stride"], [alphas.index(a) for a in stab_cfg["alphas"]]
    stab_lams = lams[::stride]
    stab_fp = jax.tree.map(lambda x: x[::stride][:, cols], fp)
    overlap = overlap_stability(model, stab_cfg["alphas"], stab_lams, stab_cfg["c"], stab_fp)
    lap("theory")

    log(f"simulations: d = {d}, {seeds} seeds, {len(alphas)} alphas x {len(sim_lams)} lams")
    sims = [
        simulation_sweep(model, a, sim_lams, d=d, seeds=seeds, key=_key(seed, tag(a)))
        for a in alphas
    ]
    sims_overlap = [
        simulation_sweep(
            model, a, sim_lams, d=d, seeds=seeds, key=_key(seed, tag(a)), overlap=stab_cfg["c"]
        )
        for a in stab_cfg["alphas"]
    ]
    lap("simulation")

    teachers = {k: {"sign": sign, "logistic": model}[k] for k in opt_cfg["teachers"]}
    log(f"optimal lambda ({', '.join(teachers)} teachers), Bayes-optimal error")
    n_opt, sim_alphas = len(opt_cfg["alphas"]), opt_cfg["sim_alphas"]
    optimal, opt_sims = {}, {}
    for name, m in teachers.items():
        # One compiled search for the curve and the simulated alphas together.
        both = optimal_curve(m, [*opt_cfg["alphas"], *sim_alphas], opt_cfg["bracket"])
        optimal[name] = {k: v[:n_opt] for k, v in both.items()}
        lam_star = both["lam"][n_opt:]
        opt_sims[name] = {"lam": lam_star, "acc_theory": both["acc"][n_opt:], "runs": []}
        for a, lam in zip(sim_alphas, lam_star, strict=True):
            key = _key(seed, tag(a), 1 + list(teachers).index(name))
            s = simulation_sweep(m, a, [lam], d=d, seeds=seeds, key=key)
            opt_sims[name]["runs"].append({k: v[0] for k, v in s.items()})
    bayes = np.asarray(jax.vmap(bayes_optimal_error_sign)(np.asarray(opt_cfg["alphas"])))
    lap("optimal")

    log("phase diagram at lam = 0")
    phase = phase_grid(ph_cfg["gammas"], ph_cfg["alphas"], max_iter=ph_cfg["max_iter"])
    curve_gammas = np.asarray(ph_cfg["curve_gammas"])
    phase_curve = alpha_c(curve_gammas)
    exists = np.asarray(ph_cfg["alphas"])[None, :] > phase["alpha_c"][:, None]
    lap("phase")

    best = np.nanargmax(curves["acc"], axis=0)
    all_runs = sims + sims_overlap + [r for v in opt_sims.values() for r in v["runs"]]
    summary = {
        "accuracy_peak_on_grid": {
            "alpha": alphas,
            "lam": lams[best],
            "acc": curves["acc"][best, np.arange(len(alphas))],
        },
        "sim_vs_theory": {
            "acc": _z_stats(sims, lams, curves["acc"], sim_lams, "acc"),
            "cos": _z_stats(sims, lams, curves["cos"], sim_lams, "cos"),
            "stability_independent": _z_stats(
                sims, lams, curves["stability"], sim_lams, "stability"
            ),
            "stability_overlap": _z_stats(
                sims_overlap, stab_lams, overlap["stability"], sim_lams, "stability"
            ),
            "optimal_acc_abs_z": {
                k: [
                    _z(r["acc"], r["acc_se"], a)
                    for r, a in zip(v["runs"], v["acc_theory"], strict=True)
                ]
                for k, v in opt_sims.items()
            },
            "fits_converged": np.mean([np.mean(r["converged"]) for r in all_runs]),
        },
        "theory_converged": bool(
            curves["converged"].all()
            and overlap["converged"].all()
            and all((o["status"] == 0).all() for o in optimal.values())
        ),
        "sign_error_at_lam_star": 1.0 - optimal["sign"]["acc"],
        "sign_gap_to_bayes": (1.0 - optimal["sign"]["acc"]) - bayes,
        "phase_agreement": np.mean(phase["converged"] == exists),
        "alpha_c": {"gamma": [0.0, 1.0, 2.0, 4.0], "value": alpha_c([0.0, 1.0, 2.0, 4.0])},
    }
    return {
        "curves": {"alphas": alphas, "lams": lams, **curves},
        "simulation": {"alphas": alphas, "lams": sim_lams, "d": d, "seeds": seeds, "runs": sims},
        "stability": {
            "alphas": stab_cfg["alphas"],
            "c": stab_cfg["c"],
            "lams": stab_lams,
            "overlap": overlap["stability"],
            "overlap_converged": overlap["converged"],
            "sim_runs": sims_overlap,
        },
        "optimal": {
            "alphas": opt_cfg["alphas"],
            "teachers": {k: config["sign_teacher" if k == "sign" else "teacher"] for k in teachers},
            **optimal,
            "bayes_error_sign": bayes,
            "sim_alphas": sim_alphas,
            "sim": opt_sims,
        },
        "phase": {
            "gammas": ph_cfg["gammas"],
            "alphas": ph_cfg["alphas"],
            "converged": phase["converged"],
            "status": phase["status"],
            "alpha_c": phase["alpha_c"],
            "curve_gammas": curve_gammas,
            "curve_alpha_c": phase_curve,
            "sign_alpha_c": float(separability_threshold(sign)),
        },
        "summary": summary,
        "timing_s": timing,
    }


def headline(results: dict) -> list[str]:
    """The lines ``probejax reproduce`` prints at the end: the accuracy peak per alpha
    and how far the simulations are from the theory."""
    s = results["summary"]
    peak = s["accuracy_peak_on_grid"]
    lines = [
        "theory accuracy peak: "
        + ", ".join(
            f"alpha {a:g}: {acc:.3f} at lam {lam:.3g}"
            for a, lam, acc in zip(peak["alpha"], peak["lam"], peak["acc"], strict=True)
        )
    ]
    for field in ("acc", "cos", "stability_independent"):
        z = s["sim_vs_theory"][field]
        lines.append(
            f"simulation vs theory, {field}: median |z| {z['median_abs_z']:.2f}, "
            f"max {z['max_abs_z']:.2f} over {z['points']} points"
        )
    return lines

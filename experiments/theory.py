"""Theory of ridge-logistic probes against simulations: five figures.

Command:   probejax reproduce theory            (quick variant: add --quick)
Runtime:   2.2-2.6 minutes on 2 CPU cores (measured 133 s and 156 s; about half is
           compilation; quick: 47-60 s). A second run with the same config reuses
           the results file and only redraws (--force recomputes).
Outputs:   results/theory/results.json, figures/theory_{accuracy,cosine,stability,
           optimal_lam,phase}.png (quick: results/theory_quick/, figures under it).

Expected result (measured, full config; see "summary" in the results file):
- logistic teacher (rho = 1, beta = 4, gamma = 4): the theory accuracy peaks at
  lam ~ 0.1 for every alpha: 0.6456 / 0.6982 / 0.7565 / 0.8060 at alpha = 0.5 / 1 /
  2 / 4 (grid peak; optimal_lam: lam* = 0.124 / 0.099 at alpha = 0.5 / 2); cosine to
  the teacher 0.48 / 0.64 / 0.79 / 0.90 at lam = 0.1. Simulations at d = 500, 8 seeds, 11 lams
  from 1e-3 to 1e2: every fit converged; |sim - theory| / s.e. at most 1.7 for the
  accuracy and the cosine (median 0.6, 44 points each), at most 2.5 for the stability.
- stability cos(w1, w2) at alpha = 4: independent samples 0.73 (lam = 1e-3), 0.80
  (lam = 0.1), 0.68 (lam = 1e2); 80% shared samples 0.89 / 0.95 / 0.94 (at alpha = 1:
  0.38 / 0.41 / 0.35 and 0.81 / 0.86 / 0.87); simulations of the 80% case within
  2.1 s.e. (22 points).
- optimal lam (accuracy): sign teacher 0.045 -> 0.0011 and logistic teacher 0.124 ->
  0.077 over alpha in [0.5, 10], all interior optima; the sign teacher's error at lam*
  is 1.1e-5 to 5.5e-5 above the Bayes-optimal error (0.3224 at alpha = 0.5, 0.0436 at
  alpha = 10). Simulated errors at lam* (alpha = 0.5, 2, 8) within 1 s.e. except the
  sign teacher at alpha = 0.5 (0.3151 +- 0.0018 against 0.3224: 4.1 s.e. with 8 seeds;
  two sets of 16 seeds at each of d = 250, 500, 1000 give 0.317-0.325, within
  2.1 s.e.).
- phase diagram (lam = 0, 13 x 17 grid): the fixed point converges exactly where
  alpha > alpha_c = 1/h(gamma) (agreement 1.0; alpha_c = 2, 2.278, 2.899, 4.515 at
  gamma = 0, 1, 2, 4); the noiseless sign teacher is always separable (alpha_c = inf).
"""

from __future__ import annotations

import numpy as np


def _logspace(lo: float, hi: float, num: int) -> list[float]:
    return [float(v) for v in np.logspace(np.log10(lo), np.log10(hi), num)]


def get_config(quick: bool = False) -> dict:
    """The reproduction config (plain JSON-able values; its hash, output paths
    excluded, keys the results file).

    - ``teacher``, ``sign_teacher``: :class:`probejax.GaussianTeacherStudent` arguments;
    - ``alphas``, ``lams``: the theory grid of the accuracy / cosine / stability curves;
    - ``simulation``: dimension ``d``, ``seeds`` (teacher + dataset each), base ``seed``,
      the simulated ``lams`` (a subset of ``lams``);
    - ``stability``: ``alphas`` (among ``alphas``), shared fraction ``c`` (RAPTOR: 0.8),
      two-learner theory on every ``lam_stride``-th ``lam``;
    - ``optimal``: ``teachers``, ``alphas`` and search ``bracket`` of lambda*, and the
      ``sim_alphas`` simulated at lambda*;
    - ``phase``: the (gamma, alpha) grid at lambda = 0 and the fixed point's ``max_iter``.

    ``quick`` shrinks every grid, the dimension and the seeds for a smoke test.
    """
    teacher = {"channel": "logistic", "rho": 1.0, "beta": 4.0}
    sign = {"channel": "sign", "rho": 1.0}
    if quick:
        return {
            "target": "theory",
            "results_dir": "results/theory_quick",
            "figures_dir": "results/theory_quick/figures",
            "teacher": teacher,
            "sign_teacher": sign,
            "alphas": [2.0],
            "lams": _logspace(1e-3, 1e2, 9),
            "simulation": {"d": 100, "seeds": 3, "seed": 0, "lams": _logspace(1e-3, 1e2, 3)},
            "stability": {"alphas": [2.0], "c": 0.8, "lam_stride": 2},
            "optimal": {
                "teachers": ["sign"],
                "alphas": [0.5, 2.0, 8.0],
                "bracket": [1e-4, 1e2],
                "sim_alphas": [2.0],
            },
            "phase": {
                "gammas": [0.0, 2.0, 4.0],
                "alphas": _logspace(1.0, 10.0, 4),
                "curve_gammas": [float(g) for g in np.linspace(0.0, 6.0, 7)],
                "max_iter": 40,
            },
        }
    return {
        "target": "theory",
        "results_dir": "results/theory",
        "figures_dir": "figures",
        "teacher": teacher,
        "sign_teacher": sign,
        "alphas": [0.5, 1.0, 2.0, 4.0],
        "lams": _logspace(1e-3, 1e2, 41),
        "simulation": {"d": 500, "seeds": 8, "seed": 0, "lams": _logspace(1e-3, 1e2, 11)},
        "stability": {"alphas": [1.0, 4.0], "c": 0.8, "lam_stride": 2},
        "optimal": {
            "teachers": ["sign", "logistic"],
            "alphas": _logspace(0.5, 10.0, 12),
            "bracket": [1e-4, 1e2],
            "sim_alphas": [0.5, 2.0, 8.0],
        },
        "phase": {
            "gammas": [float(g) for g in np.linspace(0.0, 6.0, 13)],
            "alphas": _logspace(1.0, 16.0, 17),
            "curve_gammas": [float(g) for g in np.linspace(0.0, 6.0, 61)],
            "max_iter": 40,
        },
    }

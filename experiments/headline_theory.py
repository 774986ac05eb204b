"""The headline of the theory: ridge-logistic probes, replica theory against simulation.

Command:   probejax reproduce                 (with headline-llm; the README's first
           command) or probejax reproduce headline-theory
Runtime:   see the README (about a minute on 2 CPU cores, half of it compilation).
Outputs:   results/headline/theory/results.json, figures/headline/theory_*.png.

The full theory target (`experiments/theory.py`, `probejax reproduce theory`) on
smaller simulations: the same teacher, alphas and ridge grid for the theory curves;
simulations at d = 300 with 4 seeds; two-learner stability at alpha = 4; the optimal
ridge of the sign teacher only; a coarser phase grid.

Expected result: the simulated accuracy and cosine follow the theory curves (within
about 2 standard errors) and the accuracy peaks at lam ~ 0.1 for every alpha.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _theory_config(quick: bool) -> dict:
    """``get_config(quick)`` of the sibling ``theory.py`` (configs are files, not a
    package)."""
    path = Path(__file__).with_name("theory.py")
    spec = importlib.util.spec_from_file_location("_probejax_experiment_theory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(quick=quick)


def get_config(quick: bool = False) -> dict:
    """``experiments/theory.py``'s full config with the smaller simulations above
    (``quick``: its quick config, under results/headline_quick/)."""
    if quick:
        config = _theory_config(quick=True)
        return {
            **config,
            "target": "headline-theory",
            "results_dir": "results/headline_quick/theory",
            "figures_dir": "results/headline_quick/figures",
        }
    config = _theory_config(quick=False)
    config.update(
        target="headline-theory",
        results_dir="results/headline/theory",
        figures_dir="figures/headline",
        simulation={**config["simulation"], "d": 300, "seeds": 4},
        stability={**config["stability"], "alphas": [4.0]},
        optimal={
            **config["optimal"],
            "teachers": ["sign"],
            "alphas": config["optimal"]["alphas"][::3],
            "sim_alphas": [2.0],
        },
        phase={
            **config["phase"],
            "gammas": config["phase"]["gammas"][::3],
            "alphas": config["phase"]["alphas"][::2],
            "curve_gammas": config["phase"]["curve_gammas"][::4],
        },
    )
    return config

"""The Gaussian-mixture theory against ridge-logistic probes on SmolLM2 layers.

Command:   probejax reproduce theory-llm            (quick variant: add --quick)
Needs:     the activation caches of `probejax reproduce llm` (cities and sentiment,
           1500 examples each, every layer; under ~/.cache/probejax/activations).
Runtime:   see "compute_seconds" in the results file and the README section "Theory for
           a real layer" (full: about 15 minutes on 2 shared CPU cores; quick: ~2 minutes).
Outputs:   results/theory_llm/results.json, figures/theory_llm_{cities,sentiment}_curves.png,
           figures/theory_llm_raptor_layers.png (quick: under results/theory_llm_quick/).

Expected result: the README's table (median |predicted - measured| test accuracy over
the C grid and n, per dataset and layer, the same for stability, RAPTOR's predicted and
measured selected C and test accuracy), with the synthetic Gaussian control's gaps.
"""

from __future__ import annotations

import numpy as np


def get_config(quick: bool = False) -> dict:
    """The reproduction config (plain JSON-able values).

    - ``datasets``, ``layers``: cached SmolLM2-135M activations (last token, block output);
    - ``max_examples``, ``seed``: the datasets as `probejax reproduce llm` builds them;
    - ``ns``: class-balanced training sizes drawn from the pool; ``Cs``: the C grid;
      ``resamples``: draws per n (accuracy on the rest of the pool; stability over pairs);
    - ``raptor``: the protocol's C grid, split ``seeds`` and stability ``runs``
      (False: skip).
    """
    base = {"target": "theory-llm", "max_examples": 1500, "seed": 0}
    if quick:
        return {
            **base,
            "results_dir": "results/theory_llm_quick",
            "figures_dir": "results/theory_llm_quick/figures",
            "datasets": ["cities"],
            "layers": [16],
            "ns": [100],
            "Cs": [float(c) for c in np.logspace(-3, 1, 3)],
            "resamples": 4,
            "raptor": False,
        }
    return {
        **base,
        "results_dir": "results/theory_llm",
        "figures_dir": "figures",
        "datasets": ["cities", "sentiment"],
        "layers": [4, 10, 16, 24],
        "ns": [100, 400],
        "Cs": [float(c) for c in np.logspace(-4, 2, 9)],
        "resamples": 8,
        "raptor": {"Cs": [float(c) for c in np.logspace(-4, 2, 100)], "seeds": 2, "runs": 4},
    }

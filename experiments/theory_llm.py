"""The Gaussian-mixture theory against ridge-logistic probes on SmolLM2 layers.

Command:   probejax reproduce theory-llm            (quick variant: add --quick)
Needs:     the activation caches of `probejax reproduce llm` (cities and sentiment,
           1500 examples each, every layer; under ~/.cache/probejax/activations).
Runtime:   measured 1658 s (27.6 min) on 2 CPU cores shared with two other jobs (load
           4-5), 110-250 s per layer; quick: 49 s. Not part of the default job.
Outputs:   results/theory_llm/results.json, figures/theory_llm_{cities,sentiment}_curves.png,
           figures/theory_llm_raptor_layers.png (quick: under results/theory_llm_quick/).

Expected result (measured, the README's table): median |predicted - measured| test
accuracy over the C grid and n per layer 0.006-0.015 (all 144 points: median 0.009, max
0.037; the synthetic Gaussian control: median 0.008), stability 0.013-0.031; RAPTOR's
predicted test accuracy above the measured one at 7 of 8 layers (up to 0.09).
"""

from __future__ import annotations

import numpy as np


def get_config(quick: bool = False) -> dict:
    """The reproduction config (plain JSON-able values).

    - ``datasets``, ``layers``: cached SmolLM2-135M activations (last token, block output);
    - ``max_examples``, ``seed``: the datasets as `probejax reproduce llm` builds them;
    - ``ns``: class-balanced training sizes drawn from the pool; ``Cs``: the C grid;
      ``resamples``: draws per n (accuracy on the rest of the pool; stability over pairs);
    - ``protocol``: the registered ``estimator`` whose protocol is measured (RAPTOR), the
      theory's C grid ``Cs``, split ``seeds`` and stability ``runs`` (False: skip).
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
            "protocol": False,
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
        "protocol": {
            "estimator": "raptor",
            "Cs": [float(c) for c in np.logspace(-4, 2, 100)],
            "seeds": 2,
            "runs": 4,
        },
    }

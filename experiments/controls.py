"""Validity controls for SmolLM2 probes: held-out groups, permutation nulls, control
tasks, k-direction probes and cross-dataset transfer.

Command:   probejax reproduce controls            (quick variant: add --quick)
Runtime:   see the README table (the first run extracts the datasets not yet cached:
           morality and refusal, about a minute each on 2 CPU cores).
Outputs:   results/controls/results.json (per-layer stores under results/controls/sweeps:
           an interrupted run resumes), figures/controls_layers.png,
           figures/controls_kdir.png, figures/controls_transfer.png (quick: under
           results/controls_quick/).

Per dataset, on every layer: RAPTOR on the random split (as its authors split) and on
the held-out-group split (cities: whole countries held out, each test statement's
city purged from training; contrast sets: whole pairs), a permutation test of the
held-out-group score, and a control task (random labels per country / pair) with its
selectivity. At each dataset's best held-out-group layer: the k-direction (INLP)
probe's accuracy against k with k* chosen by permutation nulls, and the
random-direction baseline. Across datasets: RAPTOR trained on one and tested on
another at the same layer (AUROC, threshold-free: the datasets' activations differ in
offset).

Expected result: see the README's validity table (cities: the random split is up to
6 standard errors below chance at layers 0-3; held-out groups put every layer within
2 standard errors of chance or above).
"""

from __future__ import annotations


def get_config(quick: bool = False) -> dict:
    """The reproduction config (plain JSON-able values).

    - ``model``, ``pooling``, ``site``, ``batch_size``, ``seed``: as ``experiments/llm.py``;
    - ``estimator``: the registered estimator whose probes are controlled (RAPTOR);
    - ``datasets``: ``{name: max_examples}`` (None: all), bundled names;
    - ``layers``: swept layers (None: all); ``permutations``: label shuffles per layer;
    - ``k_max``: directions of the k-direction probe (its steps' permutation tests use
      ``permutations`` shuffles too; 200 random directions make the baseline);
    - ``transfer_layer``: the layer of the transfer matrix.
    """
    base = {
        "target": "controls",
        "model": "default",
        "pooling": "last",
        "site": "block_output",
        "batch_size": 16,
        "seed": 0,
        "estimator": "raptor",
    }
    if quick:
        return {
            **base,
            "results_dir": "results/controls_quick",
            "figures_dir": "results/controls_quick/figures",
            "datasets": {"cities": 200, "morality": 120},
            "layers": [2, 12],
            "permutations": 4,
            "k_max": 3,
            "transfer_layer": 12,
        }
    return {
        **base,
        "results_dir": "results/controls",
        "figures_dir": "figures",
        "datasets": {"cities": 1500, "sentiment": 1500, "morality": None, "refusal": 600},
        "layers": None,
        "permutations": 20,
        "k_max": 8,
        "transfer_layer": 16,
    }

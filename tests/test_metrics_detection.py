"""Detection metrics against scikit-learn, and the bootstrap interval's coverage by
Monte Carlo."""

import jax
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from probejax.metrics import brier, detection_metrics, recall_at_fpr


def _draw(rng, n_pos=150, n_neg=250, shift=1.2):
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    return y, rng.normal(size=n_pos + n_neg) + shift * y


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_recall_at_fpr_is_the_roc_curves_best_recall_within_the_rate(fpr):
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, s = _draw(rng)
        f, t, _ = roc_curve(y, s)
        want = t[f <= fpr + 1e-12].max()
        assert float(recall_at_fpr(y, s, fpr)) == pytest.approx(want)


def test_recall_at_fpr_counts_ties_at_the_threshold_against_the_probe():
    y = np.array([1, 1, 0, 0])
    s = np.array([1.0, 0.0, 0.0, -1.0])  # a positive ties the top negative
    assert float(recall_at_fpr(y, s, 0.0)) == 0.5
    assert np.isnan(float(recall_at_fpr(np.ones(4), s, 0.05)))


def test_brier_equals_scikit_learn_on_the_sigmoid_probabilities():
    y, s = _draw(np.random.default_rng(2))
    p = 1 / (1 + np.exp(-s))
    assert float(brier(y, s)) == pytest.approx(brier_score_loss(y, p), rel=1e-6)


def test_rows_share_resamples_and_values_match_the_plain_metrics():
    y, s = _draw(np.random.default_rng(3))
    S = np.stack([s, 2 * s])  # a monotone transform: same ranks in every resample
    r = detection_metrics(y, S, jax.random.key(0), resamples=300)
    assert r["auroc"]["value"].shape == (2,)
    assert r["auroc"]["value"][0] == pytest.approx(roc_auc_score(y, s), rel=1e-6)
    np.testing.assert_allclose(r["auroc"]["low"][0], r["auroc"]["low"][1], rtol=1e-6)
    for k, v in r.items():
        assert np.all(v["low"] <= v["value"] + 1e-9) and np.all(v["value"] <= v["high"] + 1e-9), k


def test_bootstrap_interval_covers_the_population_auroc_about_95_percent():
    rng = np.random.default_rng(4)
    shift = 1.0
    # population AUROC of N(shift, 1) against N(0, 1): Phi(shift / sqrt 2)
    from scipy.stats import norm

    truth = norm.cdf(shift / np.sqrt(2))
    hits = []
    for i in range(120):
        y, s = _draw(rng, 60, 90, shift)
        r = detection_metrics(y, s, jax.random.key(i), resamples=400)["auroc"]
        hits.append(r["low"] <= truth <= r["high"])
    assert 0.86 <= np.mean(hits) <= 0.995


def test_bad_arguments_are_named():
    y, s = _draw(np.random.default_rng(5))
    with pytest.raises(ValueError, match="resamples"):
        detection_metrics(y, s, jax.random.key(0), resamples=0)
    with pytest.raises(ValueError, match="level"):
        detection_metrics(y, s, jax.random.key(0), level=1.5)
    with pytest.raises(ValueError, match="scores have 3 examples"):
        detection_metrics(y, s[:3], jax.random.key(0))

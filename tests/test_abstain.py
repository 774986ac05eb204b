"""Split conformal prediction (probejax.abstain): a closed-form example, the coverage
guarantee against Monte Carlo over random calibration/test draws (marginal and per
class), invariances, input checks; and the three-class truth dataset."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probejax.abstain import (
    ABSTAIN,
    APS,
    LAC,
    abstention,
    calibrate,
    conformal_level,
    conformal_quantile,
    conformal_report,
)

ALPHA = 0.1
N_CAL, N_TEST, SPLITS = 200, 500, 50
PRIOR = jnp.array([0.6, 0.3, 0.1])
SEPARATION = jnp.array([2.0, 1.5, 0.5])  # class 2 is rare and hard


@functools.partial(jax.jit, static_argnums=1)
def _draw(key, n):
    """A probe's softmax probabilities on ``n`` points of three classes (continuous)."""
    k_y, k_z = jax.random.split(key)
    y = jax.random.choice(k_y, 3, (n,), p=PRIOR)
    z = SEPARATION[y][:, None] * jax.nn.one_hot(y, 3) + jax.random.normal(k_z, (n, 3))
    return jax.nn.softmax(z, axis=1), y


VARIANTS = {
    "lac": (False, LAC()),
    "mondrian": (True, LAC()),
    "aps": (False, APS()),
    "aps-randomized": (False, APS(randomized=True)),
}


def _one_split(key):
    """Every variant on one fresh calibration / test draw."""
    k_cal, k_test, k_s1, k_s2 = jax.random.split(key, 4)
    p_cal, y_cal = _draw(k_cal, N_CAL)
    p_test, y_test = _draw(k_test, N_TEST)
    out = {"n_c": jnp.sum(y_cal[:, None] == jnp.arange(3), axis=0)}
    for name, (conditional, score) in VARIANTS.items():
        conf = calibrate(p_cal, y_cal, ALPHA, conditional=conditional, score=score, key=k_s1)
        report = conformal_report(conf.sets(p_test, k_s2), y_test)
        out[name] = (report.coverage, report.class_coverage)
    return out


@pytest.fixture(scope="module")
def splits():
    """SPLITS independent draws, one vmapped program."""
    keys = jax.random.split(jax.random.key(0), SPLITS)
    return jax.jit(jax.vmap(_one_split))(keys)


def _mean_se(x):
    x = np.asarray(x, float)
    return x.mean(), x.std(ddof=1) / math.sqrt(len(x))


def test_closed_form_small_example():
    # nine calibration points, alpha = 0.2: k = ceil(10 * 0.8) = 8, the 8th smallest score
    p_true = np.array([0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    probs = np.stack([p_true, 1 - p_true], axis=1)
    conf = calibrate(probs, np.zeros(9, int), 0.2)
    assert int(conformal_level(9, 0.2)) == 8
    np.testing.assert_allclose(conf.threshold, [0.7, 0.7], rtol=1e-6)  # 1 - 0.3
    test = np.array([[0.95, 0.05], [0.5, 0.5], [0.25, 0.75], [0.2, 0.8]])
    sets = np.asarray(conf.sets(test))
    # p >= 0.3 is in the set
    np.testing.assert_array_equal(sets, [[1, 0], [1, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(abstention(sets), [0, ABSTAIN, 1, 1])
    report = conformal_report(sets, np.array([0, 1, 0, 1]))
    np.testing.assert_allclose(report.coverage, 3 / 4)
    np.testing.assert_allclose(report.abstention, 1 / 4)
    np.testing.assert_allclose(report.accuracy, 2 / 3)  # 0 right, 1 wrong, 1 right
    np.testing.assert_allclose(report.set_size, 5 / 4)
    np.testing.assert_allclose(report.class_coverage, [1 / 2, 1.0])


def test_binary_probabilities_equal_two_columns():
    p = np.array([0.1, 0.4, 0.8, 0.95, 0.3, 0.7, 0.6, 0.2, 0.9, 0.55])
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 0])
    a = calibrate(p, y, 0.1)
    b = calibrate(np.stack([1 - p, p], 1), y, 0.1)
    np.testing.assert_array_equal(a.threshold, b.threshold)
    np.testing.assert_array_equal(a.sets(p), b.sets(np.stack([1 - p, p], 1)))


def test_marginal_coverage_matches_theory_over_random_splits(splits):
    """Continuous scores: E[coverage] = k/(n+1) in [1 - alpha, 1 - alpha + 1/(n+1))."""
    coverage, class_coverage = splits["lac"]
    mean, se = _mean_se(coverage)
    k = int(conformal_level(N_CAL, ALPHA))
    assert mean >= 1 - ALPHA - 3 * se
    assert mean <= 1 - ALPHA + 1 / (N_CAL + 1) + 3 * se
    assert abs(mean - k / (N_CAL + 1)) <= 3 * se
    # the marginal guarantee says nothing per class: the rare hard class is under-covered
    hard, hard_se = _mean_se(class_coverage[:, 2])
    assert hard + 3 * hard_se < 1 - ALPHA


def test_class_conditional_coverage_per_class(splits):
    """Mondrian: E[coverage | y = c] = E[k_c/(n_c+1)] >= 1 - alpha for every class."""
    _, class_coverage = splits["mondrian"]
    n_c = splits["n_c"]
    for c in range(3):
        mean, se = _mean_se(class_coverage[:, c])
        n = np.asarray(n_c[:, c])
        expected = np.mean(np.ceil((n + 1) * (1 - ALPHA) * (1 - 1e-6)) / (n + 1))
        assert mean >= 1 - ALPHA - 3 * se, (c, mean, se)
        assert mean <= 1 - ALPHA + np.mean(1 / (n + 1)) + 3 * se, (c, mean, se)
        assert abs(mean - expected) <= 3 * se, (c, mean, expected, se)


@pytest.mark.parametrize("variant", ["aps", "aps-randomized"])
def test_aps_coverage(splits, variant):
    mean, se = _mean_se(splits[variant][0])
    assert mean >= 1 - ALPHA - 3 * se
    if variant == "aps-randomized":  # randomised APS is exact up to 1/(n+1)
        assert mean <= 1 - ALPHA + 1 / (N_CAL + 1) + 3 * se


def test_aps_closed_form():
    probs = jnp.array([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(APS()(probs), [[0.5, 0.8, 1.0]], rtol=1e-6)
    u = jax.random.uniform(jax.random.key(3), (1, 1))
    np.testing.assert_allclose(
        APS(randomized=True)(probs, jax.random.key(3)),
        [[0.5 * u[0, 0], 0.5 + 0.3 * u[0, 0], 0.8 + 0.2 * u[0, 0]]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(LAC()(probs), 1 - probs)


@pytest.mark.parametrize("conditional", [False, True])
def test_permuting_calibration_points_changes_nothing(conditional):
    p_cal, y_cal = _draw(jax.random.key(1), 120)
    p_test, _ = _draw(jax.random.key(2), 300)
    a = calibrate(p_cal, y_cal, ALPHA, conditional=conditional)
    perm = np.random.default_rng(0).permutation(120)
    b = calibrate(p_cal[perm], y_cal[perm], ALPHA, conditional=conditional)
    np.testing.assert_array_equal(a.threshold, b.threshold)
    np.testing.assert_array_equal(a.sets(p_test), b.sets(p_test))


def test_jit_and_vmap_equal_eager():
    p_cal, y_cal = _draw(jax.random.key(4), 120)
    s = 1 - jnp.take_along_axis(p_cal, y_cal[:, None], 1)[:, 0]
    alphas = jnp.array([0.05, 0.1, 0.2, 0.5])
    looped = [float(conformal_quantile(s, float(a))) for a in alphas]
    np.testing.assert_allclose(jax.vmap(lambda a: conformal_quantile(s, a))(alphas), looped)
    eager = calibrate(p_cal, y_cal, 0.1, conditional=True)
    jitted = jax.jit(lambda p, y: calibrate(p, y, 0.1, conditional=True))(p_cal, y_cal)
    np.testing.assert_array_equal(eager.threshold, jitted.threshold)
    # the quantile is the k-th order statistic, k = ceil((n+1)(1-alpha))
    np.testing.assert_allclose(
        eager.threshold[0],
        np.sort(np.asarray(s)[np.asarray(y_cal) == 0])[
            math.ceil((int(np.sum(y_cal == 0)) + 1) * 0.9) - 1
        ],
    )


def test_too_few_points_give_infinite_threshold_when_traced():
    s = jnp.linspace(0, 1, 5)
    assert jnp.isinf(jax.jit(conformal_quantile)(s, 0.1))  # k = ceil(6 * 0.9) = 6 > 5
    assert float(conformal_quantile(s, 0.5)) == pytest.approx(0.5)  # k = 3


def test_abstention_on_empty_and_multi_label_sets():
    sets = jnp.array([[0, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 1]], bool)
    np.testing.assert_array_equal(abstention(sets), [ABSTAIN, 0, ABSTAIN, 2, ABSTAIN])
    r = conformal_report(sets, jnp.array([0, 0, 1, 1, 2]))
    np.testing.assert_allclose(r.empty, 1 / 5)
    np.testing.assert_allclose(r.accuracy, 1 / 2)
    assert jnp.isnan(conformal_report(sets[jnp.array([0, 2])], jnp.array([0, 1])).accuracy)


def test_input_errors_name_the_problem():
    p, y = _draw(jax.random.key(5), 50)
    for alpha in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
            calibrate(p, y, alpha)
    with pytest.raises(ValueError, match=r"needs at least 99 calibration points.*got n = 50"):
        calibrate(p, y, 0.01)
    with pytest.raises(ValueError, match=r"per class.*class 2 has"):
        calibrate(p, y, 0.1, conditional=True)
    bad = np.array(y)
    bad[3] = 3
    with pytest.raises(ValueError, match=r"labels\[3\] = 3"):
        calibrate(p, bad, 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(50,\)"):
        calibrate(p, y[:40], 0.5)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; scores\[\d+, 1\]"):
        calibrate(np.asarray(p).copy() * np.array([1, 5, 1]), y, 0.5)
    with pytest.raises(ValueError, match="K >= 2"):
        calibrate(np.ones((50, 1)), np.zeros(50, int), 0.5)
    conf = calibrate(p, y, 0.5)
    with pytest.raises(ValueError, match="calibrated for K = 3 classes"):
        conf.sets(np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        calibrate(p, y, 0.5, score=APS(randomized=True))


def test_truth_neither_dataset():
    pytest.importorskip("torch")
    from probejax.abstain import truth_neither_dataset

    data = truth_neither_dataset(seed=3, n_per_class=40)
    assert len(data) == 120 and data.counts() == {"false": 40, "true": 40, "neither": 40}
    assert data.label_names == ("false", "true", "neither")
    again = truth_neither_dataset(seed=3, n_per_class=40)
    assert again.texts == data.texts and np.array_equal(again.labels, data.labels)
    assert truth_neither_dataset(seed=4, n_per_class=40).texts != data.texts
    neither = [t for t, y in zip(data.texts, data.labels, strict=True) if y == 2]
    real = [t for t, y in zip(data.texts, data.labels, strict=True) if y != 2]
    real_cities = {c for c, y in zip(data.groups["city"], data.labels, strict=True) if y != 2}
    assert all(t.startswith("The city of ") and t.endswith(".") for t in data.texts)
    assert len(set(neither)) == 40 and not set(neither) & set(real)
    assert (
        not {c for c, y in zip(data.groups["city"], data.labels, strict=True) if y == 2}
        & real_cities
    )
    with pytest.raises(ValueError, match="n_per_class must be an integer from 2 to 750"):
        truth_neither_dataset(n_per_class=751)

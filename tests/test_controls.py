"""Validity controls: grouped splits keep groups apart, the permutation null is uniform
on pure noise, a control task on a signal-free task has zero selectivity, and a
memorised balanced design is below chance on random splits but not on grouped ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probejax as pj
from probejax.core._splits import as_groups, grouped_partition
from probejax.estimators import LogisticRidge, MassMean
from probejax.protocol import (
    ControlsSpec,
    control_labels,
    controls,
    permutation_p_value,
    permutation_test,
    probe_sweep,
    protocol_splits,
    resampled_runs,
)
from probejax.protocol._splits import PARTS
from probejax.sweep import Execution

QUIET = Execution(progress=False)


def _linked_groups(rng, n_pairs, n_countries):
    """Cities-like rows: pair i has two rows with one city and two countries."""
    city = np.repeat(np.arange(n_pairs), 2)
    country = rng.integers(n_countries, size=2 * n_pairs)
    y = np.tile([1, 0], n_pairs)
    return np.stack([country, city], 1), y


def _assert_apart(splits, codes):
    parts = [np.asarray(getattr(splits, p)) for p in PARTS]
    assert sum(p.size for p in parts) == np.unique(np.concatenate(parts)).size  # disjoint
    for j in range(codes.shape[1]):
        seen = [set(codes[p, j].tolist()) for p in parts]
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


@pytest.mark.parametrize("seed", range(3))
def test_grouped_splits_never_share_a_group(seed):
    rng = np.random.default_rng(seed)
    groups, y = _linked_groups(rng, 300, 60)
    codes = as_groups(groups, y.size)
    for g in (groups, groups[:, 1], [f"c{c}" for c in groups[:, 0]]):
        sp = protocol_splits(jax.random.key(seed), y, groups=g)
        _assert_apart(sp, as_groups(g, y.size))
    sp = protocol_splits(jax.random.key(seed), y, groups=groups)
    # stability resampling keeps them apart too (test part fixed), and its runs stack
    runs = resampled_runs(
        jax.random.split(jax.random.key(seed + 1), 4), y, sp, drop=0.2, val_fraction=0.2,
        groups=groups,
    )  # fmt: skip
    assert runs.train_sub.shape[0] == 4
    for r in range(4):
        _assert_apart(jax.tree.map(lambda a, r=r: a[r], runs), codes)
    # one column: nothing is purged and the held-out share is close to the fraction
    test, val, rest = grouped_partition(jax.random.key(seed), y, groups[:, 1], (0.2, 0.25))
    assert test.size + val.size + rest.size == y.size
    assert abs(test.size / y.size - 0.2) < 0.01


def test_grouped_split_errors_name_the_problem():
    y = np.tile([1, 0], 10)
    with pytest.raises(ValueError, match=r"groups of the protocol's examples must have shape"):
        protocol_splits(jax.random.key(0), y, groups=np.zeros(7))
    # every example its class's own group: one cut holds a single class
    with pytest.raises(ValueError, match="class"):
        protocol_splits(jax.random.key(0), y, groups=y)


def test_probe_sweep_with_groups_keeps_groups_apart(tmp_path):
    rng = np.random.default_rng(0)
    groups, y = _linked_groups(rng, 120, 30)
    X = rng.normal(size=(2, y.size, 6)) + y[None, :, None]
    res = probe_sweep(
        MassMean(), X, y, tmp_path / "s", seeds=[0, 1], groups=groups, execution=QUIET
    )
    acc = np.asarray(res.values.test_accuracy)
    assert acc.shape == (2, 2) and (acc > 0.7).all()


def _noise_p_values(n_sets, n_perm, stat):
    def one(key):
        kx, ky, ks, kp = jax.random.split(key, 4)
        X = jax.random.normal(kx, (100, 10))
        y = jnp.where(jax.random.bernoulli(ky, 0.5, (100,)), 1.0, -1.0)
        y = y.at[:2].set(jnp.array([1.0, -1.0]))
        perm = jax.random.permutation(ks, 100)
        splits = pj.Splits(perm[:50], perm[50:60], perm[60:])
        t = permutation_test(MassMean(), X, y, splits, kp, permutations=n_perm, batch_size=None)
        return getattr(t, f"p_{stat}")

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), n_sets)))


def test_permutation_null_is_uniform_on_pure_noise():
    """p-values of a probe on pure noise spread over (0, 1]: the rate at every nominal
    level is within binomial error of the level (AUROC), and the accuracy test, with
    its ties, is valid (conservative) at 5%."""
    n = 400
    p = _noise_p_values(n, 19, "auroc")
    for level in (0.05, 0.25, 0.5, 0.75):
        rate = np.mean(p <= level + 1e-9)
        assert abs(rate - level) < 3.5 * np.sqrt(level * (1 - level) / n), (level, rate)
    p_acc = _noise_p_values(n, 19, "accuracy")
    assert np.mean(p_acc <= 0.05 + 1e-9) < 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / n)
    assert np.mean(p_acc) > 0.4


def test_permutation_p_value_formula_and_signal():
    assert float(
        permutation_p_value(jnp.array(0.8), jnp.array([0.5, 0.9, 0.8, 0.1]))
    ) == pytest.approx(0.6)
    rng = np.random.default_rng(0)
    y = np.tile([1, 0], 100)
    X = rng.normal(size=(200, 8)) + 1.5 * y[:, None] * np.eye(8)[0]
    c = controls(MassMean(), X, y, jax.random.key(0), spec=ControlsSpec(permutations=19))
    assert float(c.permutation.p_accuracy) == pytest.approx(1 / 20)  # nothing beats it
    assert float(c.selectivity) > 0.15  # per-example types: control ~ chance


def test_control_labels_are_balanced_per_type():
    y = np.tile([1, 0], 50)
    types = np.repeat(np.arange(25), 4)
    lab = control_labels(jax.random.key(0), y, types)
    assert set(np.unique(lab)) == {-1.0, 1.0}
    assert all(np.unique(lab[types == t]).size == 1 for t in range(25))
    assert abs(np.sum(lab[::4] > 0) - 12.5) <= 0.5  # half the types positive
    free = control_labels(jax.random.key(0), y)
    assert np.sum(free > 0) == 50


def test_selectivity_of_a_signal_free_task_is_near_zero():
    sel = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(300, 10))
        y = np.tile([1, 0], 150)
        c = controls(
            LogisticRidge(lam=1.0), X, y, jax.random.key(seed), spec=ControlsSpec(permutations=4)
        )
        sel.append(float(c.selectivity))
    assert abs(np.mean(sel)) < 0.04 and np.max(np.abs(sel)) < 0.15


def test_memorised_balanced_design_is_below_chance_only_on_random_splits():
    """Each group appears equally often in both classes and its identity is readable
    from X (a 'country' token): random splits anti-correlate train and test frequencies
    and a probe scores below chance; held-out groups bring it back to chance."""
    rand, grouped, ctrl = [], [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        country = np.repeat(np.arange(60), 6)
        y = np.tile([1, 1, 1, 0, 0, 0], 60)
        X = np.c_[np.eye(60)[country], rng.normal(size=(360, 5))]
        X = X + 0.1 * rng.normal(size=X.shape)
        c = controls(
            LogisticRidge(lam=0.01),
            X,
            y,
            jax.random.key(seed),
            groups=country,
            spec=ControlsSpec(permutations=2),
        )
        rand.append(float(c.accuracy))
        grouped.append(float(c.grouped_accuracy))
        ctrl.append(float(c.control_accuracy))
    # measured: means 0.403, 0.509, 0.838 (standard errors about 0.01 over 6 seeds)
    assert np.mean(rand) < 0.45  # memorisation against the label
    assert abs(np.mean(grouped) - 0.5) < 0.05
    assert np.mean(ctrl) > 0.7  # the group identity is what the probe can read

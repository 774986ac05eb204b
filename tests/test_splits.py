"""The traced stratified sample and split against a direct numpy construction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probejax.core._splits import traced_stratified_sample, traced_stratified_split


def _reference(key, y, m):
    """Per class, the examples of smallest priority, negatives first (numpy sort)."""
    n = len(y)
    u = np.asarray(jax.random.uniform(key, (n,)))
    pos = y > 0
    k_pos = min(int(np.round(m * pos.sum() / n)), int(pos.sum()))
    neg_idx, pos_idx = np.flatnonzero(~pos), np.flatnonzero(pos)
    neg = neg_idx[np.argsort(u[neg_idx], kind="stable")][: m - k_pos]
    pos_ = pos_idx[np.argsort(u[pos_idx], kind="stable")][:k_pos]
    return np.concatenate([neg, pos_])


@pytest.mark.parametrize("n_pos, n, m", [(40, 100, 10), (7, 61, 20), (50, 51, 30), (3, 90, 89)])
def test_traced_sample_and_split_match_numpy(n_pos, n, m):
    rng = np.random.default_rng(n)
    y = np.where(rng.permutation(n) < n_pos, 1.0, -1.0).astype(np.float32)
    keys = jax.random.split(jax.random.key(n_pos), 6)
    sample = jax.jit(jax.vmap(lambda k: traced_stratified_sample(k, jnp.asarray(y), m)))(keys)
    keep, out = jax.jit(jax.vmap(lambda k: traced_stratified_split(k, jnp.asarray(y), m)))(keys)
    for i, key in enumerate(keys):
        want = _reference(key, y, m)
        np.testing.assert_array_equal(sample[i], want)
        np.testing.assert_array_equal(out[i], want)
        np.testing.assert_array_equal(keep[i], np.setdiff1d(np.arange(n), want))


def test_traced_sample_rejects_bad_size():
    with pytest.raises(ValueError, match=r"sample size must be in \(0, 5\), got 5"):
        traced_stratified_sample(jax.random.key(0), jnp.ones(5), 5)
    with pytest.raises(ValueError, match=r"n_out must be in \(0, 5\), got 0"):
        traced_stratified_split(jax.random.key(0), jnp.ones(5), 0)

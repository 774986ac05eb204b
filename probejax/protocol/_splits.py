r"""The protocol's splits: train_sub / val / test index arrays, made on the host from
concrete labels (so their sizes are static) and handed to every estimator and layer.

:func:`protocol_splits` cuts a stratified test part, then a stratified validation part
of the rest (RAPTOR's 64/16/20 by default). :func:`resampled_splits` makes one
stability run's splits: drop a stratified fraction of the training pool (train_sub +
val; the test part is never touched) and re-split the rest into train_sub / val.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from ..core._checks import check_two_classes
from ..core._splits import stratified_partition

PARTS = ("train_sub", "val", "test")


class Splits(eqx.Module):
    """Index arrays into the examples: ``train_sub``, ``val``, ``test``."""

    train_sub: Int[Array, " n_tr"]
    val: Int[Array, " n_val"]
    test: Int[Array, " n_te"]

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The parts as NumPy arrays named ``<prefix>train_sub``, ... (sweep data)."""
        return {prefix + k: np.asarray(getattr(self, k)) for k in PARTS}

    @classmethod
    def from_arrays(cls, data: dict, prefix: str = "") -> Splits:
        """The splits :meth:`arrays` wrote into ``data``."""
        return cls(*(data[prefix + k] for k in PARTS))


def protocol_splits(
    key: PRNGKeyArray, y, *, test_fraction: float = 0.2, val_fraction: float = 0.2
) -> Splits:
    """Stratified test split, then validation split of the rest (vmappable over keys)."""
    test, val, train_sub = stratified_partition(
        key, y, (test_fraction, val_fraction), where="the protocol's examples"
    )
    return Splits(train_sub, val, test)


def resampled_splits(
    key: PRNGKeyArray, y, base: Splits, *, drop: float, val_fraction: float
) -> Splits:
    """One stability run's splits: drop ``drop`` of the pool, re-split the rest."""
    pool = np.concatenate([np.asarray(base.train_sub), np.asarray(base.val)])
    _, val, train_sub = stratified_partition(
        key, np.asarray(y)[pool], (drop, val_fraction), where="the stability pool"
    )
    pool = jnp.asarray(pool)
    return Splits(pool[train_sub], pool[val], base.test)


def check_splits(splits: Splits, y_pm1: np.ndarray, n: int) -> Splits:
    """Each part a non-empty 1-D index array within ``[0, n)`` holding both classes."""
    for name in PARTS:
        idx = np.asarray(getattr(splits, name))
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"splits.{name} must be a non-empty 1-D index array.")
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(
                f"splits.{name} holds indices outside [0, {n}): min {idx.min()}, max {idx.max()}."
            )
        check_two_classes(np.asarray(y_pm1)[idx], name)
    return splits

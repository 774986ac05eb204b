r"""The protocol's splits: train_sub / val / test index arrays, made on the host from
concrete labels (so their sizes are static) and handed to every estimator and layer.

:func:`protocol_splits` cuts a stratified test part, then a stratified validation part
of the rest (RAPTOR's 64/16/20 by default). :func:`resampled_splits` makes one
stability run's splits: drop a stratified fraction of the training pool (train_sub +
val; the test part is never touched) and re-split the rest into train_sub / val.

With ``groups`` (``(n,)`` or ``(n, m)`` labels, e.g. the country and the city of each
statement, or the contrast pair of each text) every cut keeps groups whole and no
group of any column straddles two parts
(:func:`probejax.core._splits.grouped_partition`): the test part then measures
generalisation to unseen groups. Grouped splits are made on the host; the stability
runs' parts are trimmed to a common size (whole trailing examples of a random order)
so that they stack.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from ..core._checks import check_two_classes
from ..core._splits import as_groups, grouped_partition, stratified_partition, take_groups
from ._specs import SplitSpec

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


def protocol_splits(key: PRNGKeyArray, y, spec: SplitSpec = SplitSpec(), *, groups=None) -> Splits:
    """Stratified test split, then validation split of the rest, with the shares of
    ``spec`` (vmappable over keys); with ``groups``, grouped cuts instead (module
    docstring; not vmappable)."""
    if not isinstance(spec, SplitSpec):
        raise TypeError(f"spec must be a probejax.SplitSpec, got {type(spec).__name__}.")
    fractions, where = (spec.test_fraction, spec.val_fraction), "the protocol's examples"
    if groups is None:
        test, val, train_sub = stratified_partition(key, y, fractions, where=where)
    else:
        test, val, train_sub = grouped_partition(key, y, groups, fractions, where=where)
    return Splits(train_sub, val, test)


def resampled_splits(
    key: PRNGKeyArray, y, base: Splits, *, drop: float, val_fraction: float, groups=None
) -> Splits:
    """One stability run's splits: drop ``drop`` of the pool, re-split the rest (with
    ``groups``: drop whole groups of column 0, then a grouped validation cut)."""
    pool = np.concatenate([np.asarray(base.train_sub), np.asarray(base.val)])
    y_pool = np.asarray(y)[pool]
    if groups is None:
        _, val, train_sub = stratified_partition(
            key, y_pool, (drop, val_fraction), where="the stability pool"
        )
    else:
        codes = as_groups(groups, len(np.asarray(y)))[pool]
        k_drop, k_val = jax.random.split(key)
        kept = np.flatnonzero(~take_groups(k_drop, codes[:, 0], int(drop * pool.size)))
        val, train_sub = grouped_partition(
            k_val, y_pool[kept], codes[kept], (val_fraction,), where="the stability pool"
        )
        val, train_sub = kept[np.asarray(val)], kept[np.asarray(train_sub)]
    pool = jnp.asarray(pool)
    return Splits(pool[train_sub], pool[val], base.test)


def resampled_runs(
    keys: PRNGKeyArray, y, base: Splits, *, drop: float, val_fraction: float, groups=None
) -> Splits:
    """:func:`resampled_splits` for each key, stacked (leading axis: runs). Grouped
    runs differ in size: each part is trimmed to the runs' smallest (dropping the
    tail of its random order)."""
    y = np.asarray(y)
    if groups is None:
        return jax.vmap(
            lambda k: resampled_splits(k, y, base, drop=drop, val_fraction=val_fraction)
        )(keys)
    return stack_trimmed(
        [
            resampled_splits(k, y, base, drop=drop, val_fraction=val_fraction, groups=groups)
            for k in keys
        ]
    )


def stack_trimmed(runs: list[Splits]) -> Splits:
    """Splits stacked on a leading axis, each part first trimmed to the runs' smallest
    (the tail of its random order dropped; grouped splits differ in size)."""
    size = {p: min(np.size(getattr(r, p)) for r in runs) for p in PARTS}
    return jax.tree.map(
        lambda *a: jnp.stack(a),
        *(Splits(*(jnp.asarray(getattr(r, p))[: size[p]] for p in PARTS)) for r in runs),
    )


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

r"""Stratified splits driven by explicit PRNG keys.

Class sizes come from the concrete labels, so every split has a static size and the
splitting functions can be ``vmap``-ped over keys (e.g. for stability runs). Per class
:math:`c` with :math:`n_c` examples, the held-out part has :math:`t_c` examples where
:math:`\sum_c t_c = \lceil f n\rceil` and the :math:`t_c` follow :math:`f n_c` by largest
remainders (scikit-learn's ``train_test_split(stratify=...)`` rule, ties broken by class
order rather than at random).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._checks import check_fraction


def held_out_counts(counts: np.ndarray, fraction: float) -> np.ndarray:
    """How many of each class go to the held-out side (see module docstring)."""
    counts = np.asarray(counts, dtype=int)
    n_out = math.ceil(fraction * counts.sum())
    exact = n_out * counts / counts.sum()
    out = np.floor(exact).astype(int)
    remainder = n_out - out.sum()
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:remainder]] += 1
    return out


def stratified_partition(
    key: PRNGKeyArray, y, fractions, *, where: str = "data"
) -> tuple[Int[Array, " part"], ...]:
    """Cut the indices ``0..len(y)-1`` into stratified parts taken one after another.

    Part ``k`` takes ``fractions[k]`` of what the parts before it left; the last
    returned array is the rest. One permutation per class serves every cut, so this
    equals (in distribution) repeated stratified two-way splits.

    **Arguments:**

    - ``key``: PRNG key (may be traced: the function vmaps over keys).
    - ``y``: concrete labels; only their classes are used.
    - ``fractions``: shares in (0, 1), e.g. ``(0.2, 0.2)`` for test then validation.
    - ``where``: name of the data being split, for error messages.

    **Returns:** ``(part_1, ..., part_k, rest)`` index arrays.
    """
    yn = np.asarray(y)
    classes, inverse = np.unique(yn, return_inverse=True)
    left = np.bincount(inverse)
    cuts = []
    for k, f in enumerate(fractions):
        f = check_fraction(f, f"split fraction {k} for {where}")
        out = held_out_counts(left, f)
        rest = left - out
        if (out == 0).any() or (rest == 0).any():
            raise ValueError(
                f"splitting {where} ({len(yn)} examples, class counts "
                f"{dict(zip(classes.tolist(), np.bincount(inverse).tolist(), strict=False))}) with fraction "
                f"{f} at cut {k} leaves a side without some class (taken per class: "
                f"{out.tolist()}, left: {rest.tolist()}). Use more data or other fractions."
            )
        cuts.append(out)
        left = rest
    cuts.append(left)
    keys = jax.random.split(key, len(classes))
    parts = [[] for _ in cuts]
    for c in range(len(classes)):
        perm = jax.random.permutation(keys[c], jnp.asarray(np.flatnonzero(inverse == c)))
        start = 0
        for k, counts in enumerate(cuts):
            parts[k].append(perm[start : start + counts[c]])
            start += counts[c]
    return tuple(jnp.concatenate(p) for p in parts)


def stratified_split(
    key: PRNGKeyArray, y, fraction: float, *, where: str = "data"
) -> tuple[Int[Array, " n_keep"], Int[Array, " n_out"]]:
    """Two-way stratified split: **Returns** ``(keep_idx, out_idx)`` with ``out_idx``
    holding ``fraction`` of the examples (see :func:`stratified_partition`)."""
    out, keep = stratified_partition(key, y, (fraction,), where=where)
    return keep, out


def traced_stratified_split(
    key: PRNGKeyArray, y: Float[Array, " n"], n_out: int
) -> tuple[Int[Array, " n_keep"], Int[Array, " n_out"]]:
    """A stratified two-way split that traces through labels (for estimators that split
    inside ``fit``, under ``jit``/``vmap`` where the class counts are not known).

    ``n_out`` (static) examples are held out; of them
    :math:`\\operatorname{round}(n_{out} n_+/n)` are positive (``y > 0``), the rest
    negative, each class's share drawn uniformly without replacement. Unlike
    :func:`stratified_partition` a side may lack a class when a class is tiny; callers
    choose ``n_out`` so it does not.

    **Returns:** ``(keep_idx, out_idx)``, each sorted by a random priority.
    """
    n = y.shape[0]
    if not 0 < n_out < n:
        raise ValueError(f"n_out must be in (0, {n}), got {n_out}.")
    pos = y > 0
    n_pos = jnp.sum(pos)
    k_pos = jnp.clip(jnp.round(n_out * n_pos / n), 0, n_pos).astype(jnp.int32)
    k_neg = n_out - k_pos
    u = jax.random.uniform(key, (n,))
    # rank of each example among its class, by its random priority
    order = jnp.lexsort((u, pos))  # negatives first, each class by priority
    rank_sorted = jnp.arange(n) - jnp.where(pos[order], n - n_pos, 0)
    rank = jnp.zeros(n, jnp.int32).at[order].set(rank_sorted.astype(jnp.int32))
    out = jnp.where(pos, rank < k_pos, rank < k_neg)
    by_side = jnp.argsort(jnp.where(out, 1.0, 0.0) + 0.5 * u, stable=True)
    return by_side[: n - n_out], by_side[n - n_out :]

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


def traced_stratified_sample(key: PRNGKeyArray, y: Float[Array, " n"], m: int) -> Int[Array, " m"]:
    """``m`` (static) indices drawn per class without replacement, tracing through the
    labels (for estimators that subsample inside ``fit``, under ``jit``/``vmap`` where the
    class counts are not known).

    Of the ``m``, :math:`k_+ = \\operatorname{round}(m n_+/n)` are positive (``y > 0``)
    and :math:`k_- = m - k_+` negative. Each example gets a uniform priority
    :math:`u_i` from ``key``; the sample is the :math:`k_-` negatives and the :math:`k_+`
    positives of smallest priority (ties: lower index), negatives first, each class in
    order of priority. Two partial selections (``lax.top_k`` of ``m`` per class) find
    them, much cheaper on the CPU than sorting all ``n`` priorities. A class smaller
    than its share is a caller's error (choose ``m`` so that it is not).
    """
    n = y.shape[0]
    if not 0 < m < n:
        raise ValueError(f"the sample size must be in (0, {n}), got {m}.")
    pos = y > 0
    n_pos = jnp.sum(pos)
    k_pos = jnp.clip(jnp.round(m * n_pos / n), 0, n_pos).astype(jnp.int32)
    k_neg = m - k_pos
    u = jax.random.uniform(key, (n,))
    _, first_neg = jax.lax.top_k(-jnp.where(pos, jnp.inf, u), m)
    _, first_pos = jax.lax.top_k(-jnp.where(pos, u, jnp.inf), m)
    j = jnp.arange(m)
    return jnp.where(j < k_neg, first_neg, first_pos[jnp.maximum(j - k_neg, 0)])


def traced_stratified_split(
    key: PRNGKeyArray, y: Float[Array, " n"], n_out: int
) -> tuple[Int[Array, " n_keep"], Int[Array, " n_out"]]:
    """A stratified two-way split that traces through labels: the held-out side is
    :func:`traced_stratified_sample` ``(key, y, n_out)``, the kept side the other
    indices in increasing order. Unlike :func:`stratified_partition` a side may lack a
    class when a class is tiny; callers choose ``n_out`` so it does not.

    **Returns:** ``(keep_idx, out_idx)``.
    """
    n = y.shape[0]
    if not 0 < n_out < n:
        raise ValueError(f"n_out must be in (0, {n}), got {n_out}.")
    out = traced_stratified_sample(key, y, n_out)
    keep = jnp.ones(n, bool).at[out].set(False)
    slot = jnp.where(keep, jnp.cumsum(keep) - 1, n - n_out)
    keep_idx = jnp.zeros(n - n_out + 1, jnp.int32).at[slot].set(jnp.arange(n, dtype=jnp.int32))
    return keep_idx[: n - n_out], out


def as_groups(groups, n: int, where: str = "groups") -> np.ndarray:
    """Group labels as integer codes ``(n, m)``: one column per kind of group.

    ``groups`` is ``(n,)`` (one kind) or ``(n, m)``; entries may be integers or
    strings (any values ``np.unique`` orders). Column 0 holds the units that are held
    out; the other columns link examples that must not straddle the cut (see
    :func:`grouped_partition`).
    """
    g = np.asarray(groups)
    if g.ndim == 1:
        g = g[:, None]
    if g.ndim != 2 or g.shape[0] != n or g.shape[1] == 0:
        raise ValueError(
            f"{where} must have shape ({n},) or ({n}, m) to match the {n} examples, "
            f"got {np.shape(groups)}."
        )
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        bad = int(np.flatnonzero(~np.isfinite(g).all(axis=1))[0])
        raise ValueError(f"{where}[{bad}] is not finite: {g[bad].tolist()}.")
    codes = np.empty(g.shape, np.int64)
    for j in range(g.shape[1]):
        codes[:, j] = np.unique(g[:, j], return_inverse=True)[1].ravel()
    return codes


def take_groups(key: PRNGKeyArray, group: np.ndarray, target: int, candidates=None) -> np.ndarray:
    """Rows of whole groups, the groups taken in an order drawn from ``key`` while they
    fit in ``target`` rows (first fit; the smallest group when none fits).

    **Arguments:** ``group``: ``(n,)`` integer group codes; ``target``: rows to take at
    most; ``candidates``: boolean mask of the rows that may be taken (default all; a
    group's size counts its candidate rows).

    **Returns:** a boolean mask over the ``n`` rows.
    """
    candidates = np.ones(group.size, bool) if candidates is None else candidates
    sizes = np.bincount(group[candidates], minlength=group.max() + 1)
    taken = np.zeros(sizes.size, bool)
    total = 0
    for g in np.asarray(jax.random.permutation(key, sizes.size)):
        if 0 < sizes[g] and total + sizes[g] <= target:
            taken[g] = True
            total += sizes[g]
    if total == 0:
        present = np.flatnonzero(sizes > 0)
        taken[present[np.argmin(sizes[present])]] = True
    return candidates & taken[group]


def grouped_partition(
    key: PRNGKeyArray, y, groups, fractions, *, where: str = "data"
) -> tuple[Int[Array, " part"], ...]:
    r"""Cut the examples into parts that share no group, taken one after another.

    The grouped analogue of :func:`stratified_partition` (held-out-group evaluation:
    a probe is tested on groups, e.g. countries or contrast pairs, it never saw).
    With ``groups`` of shape ``(n, m)`` (:func:`as_groups`), cut :math:`k` takes whole
    groups of column 0, in an order drawn from ``key``, while they fit in
    :math:`\lceil f_k\, r\rceil` of the :math:`r` examples left (first fit; the
    smallest group if none fits). It then *purges* what is left: an example that
    shares a group of **any** column with the part just cut is dropped (it goes to no
    part), so no group of any kind straddles two parts. With one column nothing is
    purged.

    Example: in true/false statements "The city of X is in Y." each row has a
    country (column 0) and a city (column 1); a test part of whole countries, purged of
    the other statement of each of its cities, shares neither a country nor a city with
    the training part.

    Classes are not stratified (groups are indivisible); every part must hold both
    classes or a ``ValueError`` names the cut.

    **Returns:** ``(part_1, ..., part_k, rest)`` index arrays; the dropped examples
    are in none of them.
    """
    yn = np.asarray(y)
    codes = as_groups(groups, len(yn), f"groups of {where}")
    left = np.ones(len(yn), bool)
    parts = []
    keys = jax.random.split(key, len(fractions) + 1)
    for k, f in enumerate(fractions):
        f = check_fraction(f, f"split fraction {k} for {where}")
        out = take_groups(keys[k], codes[:, 0], math.ceil(f * left.sum()), left)
        left &= ~out
        for j in range(codes.shape[1]):  # purge links of every kind of group
            left &= ~np.isin(codes[:, j], codes[out, j])
        parts.append(out)
    parts.append(left)
    names = [*(f"cut {k}" for k in range(len(fractions))), "the rest"]
    for name, mask in zip(names, parts, strict=True):
        if np.unique(yn[mask]).size < 2:
            raise ValueError(
                f"grouped split of {where} ({len(yn)} examples, {codes[:, 0].max() + 1} "
                f"groups) with fractions {tuple(fractions)}: {name} holds "
                f"{int(mask.sum())} examples of {np.unique(yn[mask]).size} class(es); "
                "use more groups, other fractions or another seed."
            )
    shuffle = jax.random.split(keys[-1], len(parts))
    return tuple(
        jnp.asarray(np.flatnonzero(m)[np.asarray(jax.random.permutation(kk, int(m.sum())))])
        for kk, m in zip(shuffle, parts, strict=True)
    )

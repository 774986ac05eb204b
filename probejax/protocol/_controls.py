r"""Validity controls for any estimator: is a probe's score evidence of the concept?

Three nulls, each the whole protocol (:func:`evaluate`: fit with validation, score on
test) rerun on other labels, for one activation matrix (traceable) and for every layer
through the one engine (:func:`control_layers`):

- **Permutation test** (Ojala and Garriga 2010): the labels shuffled :math:`P` times
  (all examples; the splits kept), the protocol rerun on each, all permutations one
  compiled program (``lax.map`` over batches of ``vmap``-ped fits). With observed test
  score :math:`s` and null scores :math:`s_1..s_P`, the p-value is

  .. math:: p = \frac{1 + \#\{j : s_j \ge s\}}{1 + P},

  exact (valid at every level) under exchangeability.
- **Control task** (Hewitt and Liang 2019): each *type* (a group, e.g. the country
  named, or each example when there are no groups) gets a random label, balanced over
  types, and every example takes its type's label. A probe that reads the concept
  cannot predict these labels on unseen examples; one that memorises types can when
  types recur across train and test. **Selectivity** = test accuracy on the task -
  test accuracy on its control, on the same splits.
- **Held-out groups**: the same protocol on grouped splits
  (:func:`probejax.protocol.protocol_splits` with ``groups``), reported beside the
  random split: the test part shares no group with what the probe was fitted on.

A random-direction baseline for concept vectors is an estimator of its own
(:class:`probejax.estimators.RandomDirection`).
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels
from ..core._rows import Tokens, n_rows
from ..core._splits import as_groups
from ..estimators._base import Estimator
from ..io._results import config_hash
from ..sweep._execution import Execution
from ._engine import (
    array_digests,
    check_layers,
    describe_estimator,
    layer_inputs,
    sweep_layers,
)
from ._evaluate import evaluate, fit_key
from ._splits import Splits, check_splits, protocol_splits

CONTROLS_VERSION = "controls/1"


class PermutationTest(eqx.Module):
    """``observed`` test accuracy and AUROC; ``null_accuracy``, ``null_auroc`` ``(P,)``;
    ``p_accuracy``, ``p_auroc`` (module docstring)."""

    observed_accuracy: Float[Array, ""]
    observed_auroc: Float[Array, ""]
    null_accuracy: Float[Array, " P"]
    null_auroc: Float[Array, " P"]
    p_accuracy: Float[Array, ""]
    p_auroc: Float[Array, ""]


def permutation_p_value(observed, null) -> Float[Array, ""]:
    r""":math:`(1 + \#\{s_j \ge s\})/(1 + P)` over the last axis of ``null``."""
    null = jnp.asarray(null)
    return (1.0 + jnp.sum(null >= observed[..., None], axis=-1)) / (1.0 + null.shape[-1])


def permutation_test(
    estimator: Estimator,
    X,
    y: Float[Array, " n"],
    splits: Splits,
    key: PRNGKeyArray,
    *,
    n_permutations: int = 100,
    batch_size: int | None = 8,
) -> PermutationTest:
    """The protocol on ``y`` and on ``n_permutations`` shuffles of it (traceable; ``y``
    in +-1; ``batch_size`` permutations fitted at once, ``None``: all).

    The estimator gets ``fold_in(key, 1)`` on every label vector (as
    :func:`probejax.compare` gives it), so the fits differ only by their labels.
    """
    fkey = fit_key(key)
    real = evaluate(estimator, X, y, splits, fkey)
    keys = jax.random.split(key, n_permutations)

    def null(k):
        ev = evaluate(estimator, X, jax.random.permutation(k, y), splits, fkey)
        return ev.test_accuracy, ev.test_auroc

    acc, auc = jax.lax.map(null, keys, batch_size=batch_size)
    return PermutationTest(
        real.test_accuracy,
        real.test_auroc,
        acc,
        auc,
        permutation_p_value(real.test_accuracy, acc),
        permutation_p_value(real.test_auroc, auc),
    )


def control_labels(key: PRNGKeyArray, y, groups=None) -> np.ndarray:
    """A control task's labels (+-1) for the examples (module docstring): each type
    (column 0 of ``groups``; each example when ``None``) a random label, the share of
    positive types that of positive examples in ``y`` (largest remainder)."""
    y = np.asarray(y)
    types = np.arange(y.size) if groups is None else as_groups(groups, y.size)[:, 0]
    n_types = int(types.max()) + 1
    n_pos = round(n_types * float(np.mean(y > 0)))
    n_pos = min(max(n_pos, 1), n_types - 1)
    order = np.asarray(jax.random.permutation(key, n_types))
    label = np.full(n_types, -1.0)
    label[order[:n_pos]] = 1.0
    return label[types]


class Controls(eqx.Module):
    """One layer's controls: ``accuracy``/``auroc`` on the random split;
    ``grouped_accuracy``/``grouped_auroc`` on the held-out-group split (NaN without
    groups); ``control_accuracy`` (control task, random split) and ``selectivity``;
    ``permutation`` (:class:`PermutationTest`, on the grouped split when there are
    groups, else the random one)."""

    accuracy: Float[Array, ""]
    auroc: Float[Array, ""]
    grouped_accuracy: Float[Array, ""]
    grouped_auroc: Float[Array, ""]
    control_accuracy: Float[Array, ""]
    selectivity: Float[Array, ""]
    permutation: PermutationTest


def layer_controls(
    estimator: Estimator,
    X,
    y: Float[Array, " n"],
    y_control: Float[Array, " n"],
    splits: Splits,
    grouped: Splits | None,
    key: PRNGKeyArray,
    *,
    n_permutations: int = 100,
    batch_size: int | None = 8,
) -> Controls:
    """:class:`Controls` of one activation matrix (traceable; labels in +-1)."""
    fkey = fit_key(key)
    ev = evaluate(estimator, X, y, splits, fkey)
    control = evaluate(estimator, X, y_control, splits, fkey)
    nan = jnp.asarray(jnp.nan, ev.test_accuracy.dtype)
    if grouped is None:
        g_acc = g_auc = nan
        perm = permutation_test(
            estimator, X, y, splits, key, n_permutations=n_permutations, batch_size=batch_size
        )
    else:
        perm = permutation_test(
            estimator, X, y, grouped, key, n_permutations=n_permutations, batch_size=batch_size
        )
        g_acc, g_auc = perm.observed_accuracy, perm.observed_auroc
    return Controls(
        ev.test_accuracy,
        ev.test_auroc,
        g_acc,
        g_auc,
        control.test_accuracy,
        ev.test_accuracy - control.test_accuracy,
        perm,
    )


class ControlSplits(eqx.Module):
    """The splits :func:`controls` and :func:`control_layers` use: ``random``,
    ``grouped`` (``None`` without groups), and the control task's labels
    ``y_control``."""

    random: Splits
    grouped: Splits | None
    y_control: Float[Array, " n"]


def control_splits(key: PRNGKeyArray, y, groups=None, *, test_fraction=0.2, val_fraction=0.2):
    """The random split (as :func:`probejax.compare` draws it from ``key``), the grouped
    split and the control labels, from one key."""
    y = np.asarray(y)
    k_split, _ = jax.random.split(key)
    fr = dict(test_fraction=test_fraction, val_fraction=val_fraction)
    random = protocol_splits(k_split, y, **fr)
    grouped = None
    if groups is not None:
        grouped = check_splits(
            protocol_splits(jax.random.fold_in(k_split, 2), y, **fr, groups=groups), y, y.size
        )
    y_control = control_labels(jax.random.fold_in(key, 3), y, groups)
    return ControlSplits(check_splits(random, y, y.size), grouped, jnp.asarray(y_control))


def controls(
    estimator: Estimator,
    X,
    y,
    key: PRNGKeyArray,
    *,
    groups=None,
    n_permutations: int = 100,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    batch_size: int | None = 8,
) -> Controls:
    """Every control of :mod:`probejax.protocol._controls` for one activation matrix.

    **Arguments:** any ``estimator``; ``X`` ``(n, d)`` (or
    :class:`probejax.core.Tokens`); two-class ``y``; a PRNG ``key`` (the random split is
    the one :func:`probejax.compare` draws from it); ``groups`` ``(n,)`` or ``(n, m)``
    (held-out-group split and control-task types; ``None``: no grouped split, one type
    per example); ``n_permutations``; split fractions; ``batch_size`` fits at once.

    **Returns:** :class:`Controls`.
    """
    X = X.check() if isinstance(X, Tokens) else as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, n_rows(X))
    cs = control_splits(key, y, groups, test_fraction=test_fraction, val_fraction=val_fraction)
    return _controls_jit(
        estimator, X, y, cs.y_control, cs.random, cs.grouped, key, n_permutations, batch_size
    )


@eqx.filter_jit
def _controls_jit(estimator, X, y, y_control, random, grouped, key, n_permutations, batch_size):
    return layer_controls(
        estimator,
        X,
        y,
        y_control,
        random,
        grouped,
        key,
        n_permutations=n_permutations,
        batch_size=batch_size,
    )


def control_layers(
    estimator: Estimator,
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    groups=None,
    n_permutations: int = 100,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    mask=None,
    layer_ids=None,
    fingerprint: str | None = None,
    directory: str | os.PathLike | None = None,
    batch_size: int | None = 8,
    progress: bool = True,
) -> tuple[Controls, ControlSplits]:
    """:func:`controls` on every layer, through the one layer engine (resumable with a
    ``directory``; one layer per compiled chunk). Arguments as :func:`controls`, plus
    ``X_layers`` ``(layers, n, d)`` (or a list), ``mask`` for token activations,
    ``layer_ids`` and ``fingerprint`` as :func:`probejax.compare`; ``directory``: a
    folder for the resumable store (one subfolder per settings and code version).

    **Returns:** ``(Controls with a leading layers axis, ControlSplits)``.
    """
    shape = check_layers(X_layers)
    y_pm1, _ = as_pm1_labels(y, shape[1])
    y_np = np.asarray(y_pm1)
    cs = control_splits(key, y_np, groups, test_fraction=test_fraction, val_fraction=val_fraction)
    data = {
        "y": y_np,
        "y_control": np.asarray(cs.y_control),
        "key": np.asarray(jax.random.key_data(key)),
        **cs.random.arrays(),
        **({} if cs.grouped is None else cs.grouped.arrays("grouped_")),
    }
    if mask is not None:
        data["mask"] = np.asarray(mask, bool)

    def fn(X, cell, data):
        grouped = Splits.from_arrays(data, "grouped_") if "grouped_test" in data else None
        return layer_controls(
            estimator,
            layer_inputs(X, data),
            data["y"],
            data["y_control"],
            Splits.from_arrays(data),
            grouped,
            jax.random.wrap_key_data(data["key"]),
            n_permutations=n_permutations,
            batch_size=batch_size,
        )

    config = {
        "sweep": CONTROLS_VERSION,
        "estimator": describe_estimator(estimator),
        "permutations": int(n_permutations),
        "data": array_digests(data),
        "fingerprint": fingerprint,
    }
    if directory is not None:  # one store per config: a changed one starts afresh
        directory = os.path.join(directory, f"controls-{config_hash(config)[:12]}")
    out = sweep_layers(
        fn,
        X_layers,
        directory,
        data=data,
        config=config,
        layer_labels=layer_ids,
        fingerprint=fingerprint,
        execution=Execution(cells_per_device=1, progress=progress),
        desc="controls",
    )
    return out.values, cs


def chance_z(accuracy, n_test: int, chance: float = 0.5) -> np.ndarray:
    r"""z-scores of test accuracies against ``chance`` on ``n_test`` examples, with the
    binomial standard error :math:`\sqrt{c(1-c)/n}`: below -1.96, significantly below
    chance (two-sided 5%)."""
    return (np.asarray(accuracy) - chance) / np.sqrt(chance * (1 - chance) / n_test)

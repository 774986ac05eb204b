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

from ..core._checks import as_pm1_labels
from ..core._splits import as_groups
from ..estimators._base import Estimator
from ..io._results import config_hash
from ..sweep._execution import Execution
from ._engine import (
    array_digests,
    check_layers,
    check_mask,
    describe_estimator,
    layer_inputs,
    sweep_layers,
)
from ._evaluate import check_inputs, evaluate_on, fit_key
from ._specs import ControlsSpec, SplitSpec
from ._splits import Splits, check_splits, protocol_splits

# The computation's version in the store's hash: bump it by hand when what a layer's
# controls return changes.
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
    permutations: int = 100,
    batch_size: int | None = 8,
) -> PermutationTest:
    """The protocol on ``y`` and on ``permutations`` shuffles of it (traceable; ``y``
    in +-1; ``batch_size`` permutations fitted at once, ``None``: all).

    The estimator gets ``fold_in(key, 1)`` on every label vector (as
    :func:`probejax.compare` gives it), so the fits differ only by their labels.
    """
    fkey = fit_key(key)
    real = evaluate_on(estimator, X, y, splits, fkey)
    keys = jax.random.split(key, permutations)

    def null(k):
        ev = evaluate_on(estimator, X, jax.random.permutation(k, y), splits, fkey)
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
    spec: ControlsSpec = ControlsSpec(),
) -> Controls:
    """:class:`Controls` of one activation matrix (traceable; labels in +-1)."""
    fkey = fit_key(key)
    ev = evaluate_on(estimator, X, y, splits, fkey)
    control = evaluate_on(estimator, X, y_control, splits, fkey)
    perm_args = dict(permutations=spec.permutations, batch_size=spec.batch_size)
    nan = jnp.asarray(jnp.nan, ev.test_accuracy.dtype)
    if grouped is None:
        g_acc = g_auc = nan
        perm = permutation_test(estimator, X, y, splits, key, **perm_args)
    else:
        perm = permutation_test(estimator, X, y, grouped, key, **perm_args)
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


def control_splits(key: PRNGKeyArray, y, groups=None, split: SplitSpec = SplitSpec()):
    """The random split (as :func:`probejax.compare` draws it from ``key``), the grouped
    split and the control labels, from one key."""
    y = np.asarray(y)
    k_split, _ = jax.random.split(key)
    random = protocol_splits(k_split, y, split)
    grouped = None
    if groups is not None:
        grouped = check_splits(
            protocol_splits(jax.random.fold_in(k_split, 2), y, split, groups=groups), y, y.size
        )
    y_control = control_labels(jax.random.fold_in(key, 3), y, groups)
    return ControlSplits(check_splits(random, y, y.size), grouped, jnp.asarray(y_control))


def controls(
    estimator: Estimator,
    X,
    y,
    key: PRNGKeyArray,
    *,
    spec: ControlsSpec = ControlsSpec(),
    split: SplitSpec = SplitSpec(),
    groups=None,
) -> Controls:
    """Every control of :mod:`probejax.protocol._controls` for one activation matrix.

    **Arguments:** any ``estimator``; ``X`` ``(n, d)`` (or
    :class:`probejax.core.Tokens`); two-class ``y``; a PRNG ``key`` (the random split is
    the one :func:`probejax.compare` draws from it); ``spec``: a
    :class:`~probejax.protocol.ControlsSpec` (``permutations``, ``batch_size`` fits at
    once); ``split``: the split shares; ``groups`` ``(n,)`` or ``(n, m)``
    (held-out-group split and control-task types; ``None``: no grouped split, one type
    per example).

    **Returns:** :class:`Controls`.
    """
    X, y = check_inputs(X, y)
    cs = control_splits(key, y, groups, split)
    return _controls_jit(estimator, X, y, cs.y_control, cs.random, cs.grouped, key, spec)


@eqx.filter_jit
def _controls_jit(estimator, X, y, y_control, random, grouped, key, spec):
    return layer_controls(estimator, X, y, y_control, random, grouped, key, spec)


def control_layers(
    estimator: Estimator,
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    spec: ControlsSpec = ControlsSpec(),
    split: SplitSpec = SplitSpec(),
    groups=None,
    mask=None,
    layers=None,
    fingerprint: str | None = None,
    directory: str | os.PathLike | None = None,
    execution: Execution = Execution(cells_per_device=1),
) -> tuple[Controls, ControlSplits]:
    """:func:`controls` on every layer, through the one layer engine (resumable with a
    ``directory``). Arguments as :func:`controls`, plus ``X_layers`` ``(layers, n, d)``
    (or a list), ``mask`` for token activations, ``layers`` and ``fingerprint`` as
    :func:`probejax.compare`; ``directory``: a folder for the resumable store (one
    subfolder per settings and computation version); ``execution``: as
    :func:`probejax.compare` (one layer per compiled chunk by default).

    **Returns:** ``(Controls with a leading layers axis, ControlSplits)``.
    """
    shape = check_layers(X_layers)
    y_pm1, _ = as_pm1_labels(y, shape[1])
    y_np = np.asarray(y_pm1)
    cs = control_splits(key, y_np, groups, split)
    data = {
        "y": y_np,
        "y_control": np.asarray(cs.y_control),
        "key": np.asarray(jax.random.key_data(key)),
        **cs.random.arrays(),
        **({} if cs.grouped is None else cs.grouped.arrays("grouped_")),
    }
    if mask is not None:
        data["mask"] = check_mask(mask, shape)

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
            spec,
        )

    config = {
        "sweep": CONTROLS_VERSION,
        "estimator": describe_estimator(estimator),
        "permutations": spec.permutations,
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
        layer_labels=layers,
        fingerprint=fingerprint,
        execution=execution,
        desc="controls",
    )
    return out.values, cs


def chance_z(accuracy, n_test: int, chance: float = 0.5) -> np.ndarray:
    r"""z-scores of test accuracies against ``chance`` on ``n_test`` examples, with the
    binomial standard error :math:`\sqrt{c(1-c)/n}`: below -1.96, significantly below
    chance (two-sided 5%)."""
    return (np.asarray(accuracy) - chance) / np.sqrt(chance * (1 - chance) / n_test)

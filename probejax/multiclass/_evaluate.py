r"""Multi-class evaluation: one stratified split, the metrics multi-class users report,
and a sweep over layers.

- accuracy: the share of test examples whose argmax class is right;
- macro-F1: :math:`\tfrac1K\sum_k F_1^{(k)}`, with
  :math:`F_1^{(k)} = 2\,\mathrm{TP}_k / (2\,\mathrm{TP}_k + \mathrm{FP}_k + \mathrm{FN}_k)`
  (0 for a class never predicted nor present), as scikit-learn's
  ``f1_score(average="macro")``;
- per-class AUROC: class :math:`k`'s score against the rest (one-vs-rest), as
  scikit-learn's ``roc_auc_score(y == k, s_k)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..core._metrics import auroc
from ..protocol._specs import SplitSpec
from ..protocol._splits import Splits, protocol_splits
from ._estimators import check_classes


def macro_f1(y: Int[Array, " n"], pred: Int[Array, " n"], n_classes: int) -> Float[Array, ""]:
    """The mean over classes of each class's F1 score (module docstring)."""
    k = jnp.arange(n_classes)[:, None]
    tp = jnp.sum((pred[None] == k) & (y[None] == k), axis=1)
    fp = jnp.sum((pred[None] == k) & (y[None] != k), axis=1)
    fn = jnp.sum((pred[None] != k) & (y[None] == k), axis=1)
    denom = 2 * tp + fp + fn
    return jnp.mean(jnp.where(denom > 0, 2 * tp / jnp.where(denom > 0, denom, 1), 0.0))


def per_class_auroc(y: Int[Array, " n"], scores: Float[Array, "n K"]) -> Float[Array, " K"]:
    """Each class's one-vs-rest AUROC of its own score column."""
    K = scores.shape[1]
    signs = jnp.where(y[None, :] == jnp.arange(K)[:, None], 1.0, -1.0)
    return jax.vmap(auroc)(signs, scores.T)


@dataclasses.dataclass(frozen=True)
class MulticlassEvaluation:
    """One fit on one split: ``probe``, ``splits``, ``test_accuracy``, ``macro_f1``,
    ``per_class_auroc`` ``(K,)``, and ``info`` (the estimator's diagnostics)."""

    probe: object
    splits: Splits
    test_accuracy: float
    macro_f1: float
    per_class_auroc: np.ndarray
    info: dict


@eqx.filter_jit
def _fit(estimator, X, y, train, val, key):
    """One compiled fit per estimator structure and shapes (layers reuse it)."""
    return estimator.fit_with_validation(X, y, train, val, key)


def evaluate_multiclass(
    estimator, X: Float[Array, "n d"], y, key: PRNGKeyArray, *, split: SplitSpec = SplitSpec()
) -> MulticlassEvaluation:
    """Fit ``estimator`` (``fit_with_validation``) on the train and validation parts of a
    stratified split of ``(X, y)`` and score it on the test part.

    ``y``: integer labels ``0..K-1``; ``split``: the shares (RAPTOR's 64/16/20 by
    default). Raises ``ValueError`` for labels that are not ``0..K-1`` with every class
    present, and when a part of the split would lack a class."""
    y, K = check_classes(y)
    X = jnp.asarray(X)
    splits = protocol_splits(key, y, split)
    probe = _fit(estimator, X, jnp.asarray(y), splits.train_sub, splits.val, key)
    te = np.asarray(splits.test)
    scores = probe.decision_function(X[te])
    pred = jnp.argmax(scores, axis=1)
    y_te = jnp.asarray(y[te])
    return MulticlassEvaluation(
        probe=probe,
        splits=splits,
        test_accuracy=float(jnp.mean(pred == y_te)),
        macro_f1=float(macro_f1(y_te, pred, K)),
        per_class_auroc=np.asarray(per_class_auroc(y_te, scores)),
        info={k: np.asarray(v) for k, v in getattr(probe, "info", {}).items()},
    )


def compare_multiclass(
    estimators: Mapping[str, object],
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    layers: Sequence[int] | None = None,
    split: SplitSpec = SplitSpec(),
) -> dict:
    """Every estimator on every layer of ``X_layers`` (``(L, n, d)``, an array or a lazy
    stack read a layer at a time), on one shared split.

    **Returns:** ``{"layers", "n_classes", "estimators": {name: {"test_accuracy",
    "macro_f1", "per_class_auroc" (L, K), "C" (or None per layer)}}}``."""
    y_int, K = check_classes(y)
    L = len(X_layers)
    layers = list(range(L)) if layers is None else list(layers)
    out = {name: {"test_accuracy": [], "macro_f1": [], "per_class_auroc": [], "C": []}
           for name in estimators}  # fmt: skip
    for row in range(L):
        X = jnp.asarray(np.asarray(X_layers[row]))
        for name, est in estimators.items():
            ev = evaluate_multiclass(est, X, y_int, key, split=split)
            r = out[name]
            r["test_accuracy"].append(ev.test_accuracy)
            r["macro_f1"].append(ev.macro_f1)
            r["per_class_auroc"].append(ev.per_class_auroc.tolist())
            r["C"].append(float(ev.info["C"]) if "C" in ev.info else None)
    return {"layers": layers, "n_classes": K, "estimators": out}
